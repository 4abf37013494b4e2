"""Signs and sends WriteRecords (and endpoint discovery) calls with little per-call overhead.

A botocore client call costs ~1 ms of CPU beyond serialisation (event hooks, endpoint rules,
request objects), about as much as building the 100 records it carries, and creating a client
costs ~100 ms on a cold start (service models, endpoint data), typically paid in the middle of
a throttling storm if it is only needed for errors. This path needs neither:

- credentials and SigV4 signing: botocore's `SigV4Auth` (and its credential providers);
- endpoint discovery: Timestream's `DescribeEndpoints`, signed the same way, cached for the
  period Timestream gives and dropped when Timestream says the endpoint has moved;
- sending: botocore's own HTTP session (urllib3 connection pools, kept alive across requests
  and credentials), set up as botocore sets up a client's: proxies from `HTTPS_PROXY` /
  `HTTP_PROXY` / `NO_PROXY` for each endpoint, the CA bundle from `AWS_CA_BUNDLE`, TCP_NODELAY;
- errors: the AWS JSON 1.0 error answer parsed into errors.TimestreamError; no answer at all
  is errors.TimestreamUnreachable.

Retries stay with the writer, which owns the time budget.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ConnectionClosedError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.httpsession import URLLib3Session
from botocore.useragent import UserAgentString
from botocore.utils import get_environ_proxies

from chalicelib import USER_AGENT_PRODUCT
from chalicelib.errors import TimestreamUnreachable, parse_error_response
from chalicelib.records import Record
from chalicelib.write_body import write_records_body

_TARGET_PREFIX = "Timestream_20181101."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SIGNING_NAME = "timestream"
# Timestream answers these when a discovered endpoint has moved.
_ENDPOINT_GONE = frozenset({"InvalidEndpointException"})
# What botocore's clients set on their sockets: the body's last segment must not wait for the
# peer's delayed ACK (up to 40 ms a call), and idle pooled connections are kept probed.
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]


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


class HttpSessions:
    """botocore HTTP sessions, one per endpoint, each with that endpoint's proxy settings.

    botocore decides a client's proxy once, from the environment, for the client's endpoint;
    here the write and discovery endpoints are two such endpoints, and NO_PROXY may treat them
    differently, so each gets its own session (connection pools are per host either way)."""

    def __init__(
        self, connect_timeout: float, read_timeout: float, max_connections: int, ca_bundle: str | None = None
    ) -> None:
        self._timeout = (connect_timeout, read_timeout)
        self._max_connections = max_connections
        # AWS_CA_BUNDLE as botocore reads it: private CAs, TLS-inspecting proxies.
        self._verify: str | bool = ca_bundle or os.environ.get("AWS_CA_BUNDLE") or True
        self._sessions: dict[str, URLLib3Session] = {}
        self._lock = threading.Lock()

    def session(self, endpoint: str) -> URLLib3Session:
        session = self._sessions.get(endpoint)
        if session is None:
            with self._lock:
                session = self._sessions.get(endpoint)
                if session is None:
                    session = URLLib3Session(
                        verify=self._verify,
                        proxies=get_environ_proxies(endpoint),
                        timeout=self._timeout,
                        max_pool_connections=self._max_connections,
                        socket_options=_SOCKET_OPTIONS,
                    )
                    self._sessions[endpoint] = session
        return session

    def post(self, endpoint: str, request: AWSRequest) -> tuple[int, dict[str, str], bytes]:
        """Send a signed request to `endpoint`; TimestreamUnreachable when nothing answers."""
        prepared = request.prepare()
        session = self.session(endpoint)
        for attempt in (1, 2):
            try:
                response = session.send(prepared)
                return response.status_code, dict(response.headers.items()), response.content
            except ConnectionClosedError as error:
                # A kept-alive connection the server closed just as it was reused: send once
                # more on a new one (WriteRecords is idempotent) before calling it unreachable.
                if attempt == 2:
                    raise TimestreamUnreachable(f"{type(error).__name__}: {error}") from None
            except (HTTPClientError, BotocoreConnectionError) as error:
                # Refused or reset connections, timeouts, TLS and proxy failures: all retryable.
                raise TimestreamUnreachable(f"{type(error).__name__}: {error}") from None
        raise AssertionError("unreachable: the second attempt returns or raises")


class WriteRecordsSender:
    """Signs and sends WriteRecords calls for one credential (a writer.Sender)."""

    def __init__(
        self,
        credentials: Any,
        region: str,
        endpoints: EndpointCache,
        http: HttpSessions,
        discovery_endpoint: str | None = None,
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._discovery_endpoint = discovery_endpoint or discovery_url(region)
        self._endpoints = endpoints
        self._http = http

    def write_records(self, database: str, table: str, records: list[Record]) -> None:
        body = write_records_body(database, table, records)
        self._call(self._endpoints.get(self._discover), "WriteRecords", body)

    def _discover(self) -> dict[str, Any]:
        return json.loads(self._call(self._discovery_endpoint, "DescribeEndpoints", b"{}"))

    def _call(self, url: str, operation: str, body: bytes) -> bytes:
        request = AWSRequest(
            method="POST", url=url + "/", data=body,
            headers={
                "Content-Type": _CONTENT_TYPE,
                "X-Amz-Target": _TARGET_PREFIX + operation,
                "User-Agent": USER_AGENT,
            },
        )
        credentials = self._credentials
        # Refreshable (role) credentials are frozen per call so a rotation mid-sign is impossible.
        if hasattr(credentials, "get_frozen_credentials"):
            credentials = credentials.get_frozen_credentials()
        SigV4Auth(credentials, _SIGNING_NAME, self._region).add_auth(request)
        status, headers, data = self._http.post(url, request)
        if status >= 300:
            error = parse_error_response(status, headers, data)
            if (error.code in _ENDPOINT_GONE or status == 421) and operation == "WriteRecords":
                self._endpoints.invalidate()
            raise error
        return data
