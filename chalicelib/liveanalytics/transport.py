"""Signs and sends WriteRecords (and endpoint discovery) calls with little per-call overhead.

A botocore client call costs ~1 ms of CPU beyond serialisation (event hooks, endpoint rules,
request objects), about as much as building the 100 records it carries, and creating a client
costs ~100 ms on a cold start (service models, endpoint data), typically paid in the middle of
a throttling storm if it is only needed for errors. This path needs neither:

- credentials: botocore's credential providers; SigV4 signing: sigv4.py (the canonical request
  written directly, the signing key derived once a day);
- endpoint discovery: Timestream's `DescribeEndpoints`, signed the same way, cached for the
  period Timestream gives and dropped when Timestream says the endpoint has moved;
- sending: http_client.py (kept-alive connections, one send a request, a request's calls sent
  together by `write_records_many`; botocore's session wherever botocore would use a proxy);
- errors: the AWS JSON 1.0 error answer parsed into errors.TimestreamError; no answer at all
  is errors.TimestreamUnreachable.

Retries stay with the writer, which owns the time budget.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.useragent import UserAgentString

from chalicelib import USER_AGENT_PRODUCT
from chalicelib.errors import TimestreamError, parse_error_response
from chalicelib.liveanalytics.http_client import HttpClient
from chalicelib.liveanalytics.records import MultiRecord, Record
from chalicelib.liveanalytics.sigv4 import SigV4Signer
from chalicelib.liveanalytics.write_body import write_any_records_body

_TARGET_PREFIX = "Timestream_20181101."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SIGNING_NAME = "timestream"
# Timestream answers these when a discovered endpoint has moved.
_ENDPOINT_GONE = frozenset({"InvalidEndpointException"})


# botocore's own User-Agent (version, platform, language), then this connector's.
USER_AGENT = f"{UserAgentString.from_environment().to_string()} {USER_AGENT_PRODUCT}"


def discovery_url(region: str) -> str:
    """Where Timestream's write API answers DescribeEndpoints for a region."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://ingest.timestream.{region}.{suffix}"


class EndpointCache:
    """The write endpoint: configured, or discovered and cached for the period Timestream gives."""

    def __init__(self, configured: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._configured = configured.rstrip("/") if configured else None
        self._clock = clock
        self._lock = threading.Lock()
        self._discovered: str | None = None
        self._expires = 0.0

    def get(self, discover: Callable[[], dict[str, Any]]) -> str:
        """The endpoint URL; `discover` returns a DescribeEndpoints answer when one is needed."""
        if self._configured:
            return self._configured
        with self._lock:
            if self._discovered and self._clock() < self._expires:
                return self._discovered
        endpoint = discover()["Endpoints"][0]
        address = endpoint["Address"]
        with self._lock:
            self._discovered = address if "://" in address else f"https://{address}"
            self._expires = self._clock() + endpoint.get("CachePeriodInMinutes", 1) * 60
            return self._discovered

    def invalidate(self) -> None:
        with self._lock:
            self._discovered = None


class WriteRecordsSender:
    """Signs and sends WriteRecords calls for one credential (a writer.Sender)."""

    def __init__(
        self,
        credentials: Any,
        region: str,
        endpoints: EndpointCache,
        http: HttpClient,
        discovery_endpoint: str | None = None,
    ) -> None:
        self._credentials = credentials
        self._signer = SigV4Signer(_SIGNING_NAME, region)
        self._discovery_endpoint = discovery_endpoint or discovery_url(region)
        self._endpoints = endpoints
        self._http = http

    def write_records(self, database: str, table: str, records: list[Record] | list[MultiRecord]) -> None:
        body = write_any_records_body(database, table, records)
        self._call(self._endpoints.get(self._discover), "WriteRecords", body)

    def write_records_many(
        self, calls: list[tuple[str, str, list[Any]]], in_flight: int
    ) -> list[Exception | None] | None:
        """Every call sent once, up to `in_flight` at once from this thread (HttpClient.post_many):
        for each, None when Timestream stored it, else the error write_records would have raised.
        None when the endpoint is behind a proxy (then call write_records for each)."""
        url = self._endpoints.get(self._discover)

        def prepare(index: int) -> tuple[dict[str, str], bytes]:
            database, table, records = calls[index]
            body = write_any_records_body(database, table, records)
            return self._sign(url, "WriteRecords", body), body

        answers = self._http.post_many(url, len(calls), prepare, in_flight)
        if answers is None:
            return None
        outcomes: list[Exception | None] = []
        for answer in answers:
            if isinstance(answer, Exception):
                outcomes.append(answer)
                continue
            try:
                self._answer("WriteRecords", *answer)
            except TimestreamError as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    def _discover(self) -> dict[str, Any]:
        return json.loads(self._call(self._discovery_endpoint, "DescribeEndpoints", b"{}"))

    def _call(self, url: str, operation: str, body: bytes) -> bytes:
        status, headers, data = self._http.post(url, self._sign(url, operation, body), body)
        return self._answer(operation, status, headers, data)

    def _sign(self, url: str, operation: str, body: bytes) -> dict[str, str]:
        credentials = self._credentials
        # Refreshable (role) credentials are frozen per call so a rotation mid-sign is impossible.
        if hasattr(credentials, "get_frozen_credentials"):
            credentials = credentials.get_frozen_credentials()
        unsigned = {
            "Content-Type": _CONTENT_TYPE,
            "X-Amz-Target": _TARGET_PREFIX + operation,
            "User-Agent": USER_AGENT,
        }
        return self._signer.headers(credentials, url + "/", unsigned, body)

    def _answer(self, operation: str, status: int, headers: dict[str, str], data: bytes) -> bytes:
        """The answer's body, or the TimestreamError it says."""
        if status >= 300:
            error = parse_error_response(status, headers, data)
            if (error.code in _ENDPOINT_GONE or status == 421) and operation == "WriteRecords":
                self._endpoints.invalidate()
            raise error
        return data
