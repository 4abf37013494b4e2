"""Sends prebuilt WriteRecords bodies with little per-call overhead.

A botocore client call costs ~1 ms of CPU beyond serialisation (event hooks, endpoint rules,
request objects), about as much as building the 100 records it carries. This sender keeps
botocore for what it is good at, and does only the rest itself:

- credentials and SigV4 signing: botocore's `Credentials` and `SigV4Auth`;
- endpoint discovery: the botocore client's `describe_endpoints`, cached for the period
  Timestream gives, dropped when Timestream says the endpoint is no longer valid;
- error parsing: botocore's JSON parser and the client's modeled exception classes, so callers
  see exactly the ClientError botocore would have raised;
- sending: one shared urllib3 pool per endpoint, reused across requests and credentials.

Retries stay with the writer, which owns the time budget.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.parsers import create_parser

_TARGET = "Timestream_20181101.WriteRecords"
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SIGNING_NAME = "timestream"
# Timestream answers these when a discovered endpoint has moved.
_ENDPOINT_GONE = frozenset({"InvalidEndpointException"})


class EndpointCache:
    """The write endpoint: configured, or discovered through the client and cached."""

    def __init__(self, configured: str | None, clock: Any = time.monotonic) -> None:
        self._configured = configured.rstrip("/") if configured else None
        self._clock = clock
        self._lock = threading.Lock()
        self._discovered: str | None = None
        self._expires = 0.0

    def get(self, client: Any) -> str:
        if self._configured:
            return self._configured
        with self._lock:
            if self._discovered and self._clock() < self._expires:
                return self._discovered
        endpoints = client.describe_endpoints()["Endpoints"]
        address = endpoints[0]["Address"]
        minutes = endpoints[0].get("CachePeriodInMinutes", 1)
        with self._lock:
            self._discovered = address if "://" in address else f"https://{address}"
            self._expires = self._clock() + minutes * 60
            return self._discovered

    def invalidate(self) -> None:
        with self._lock:
            self._discovered = None


class WriteRecordsSender:
    """Signs and sends WriteRecords bodies for one credential; raises what botocore would."""

    def __init__(
        self,
        client: Any,
        credentials: Any,
        region: str,
        endpoints: EndpointCache,
        pools: urllib3.PoolManager,
    ) -> None:
        self.client = client
        self._credentials = credentials
        self._region = region
        self._endpoints = endpoints
        self._pools = pools
        self._operation = client.meta.service_model.operation_model("WriteRecords")
        self._parser = create_parser(client.meta.service_model.metadata["protocol"])

    def send(self, body: bytes) -> None:
        url = self._endpoints.get(self.client) + "/"
        request = AWSRequest(
            method="POST", url=url, data=body,
            headers={"Content-Type": _CONTENT_TYPE, "X-Amz-Target": _TARGET},
        )
        # Refreshable (role) credentials are frozen per call so a rotation mid-sign is impossible.
        credentials = self._credentials
        if hasattr(credentials, "get_frozen_credentials"):
            credentials = credentials.get_frozen_credentials()
        SigV4Auth(credentials, _SIGNING_NAME, self._region).add_auth(request)
        try:
            response = self._pools.request(
                "POST", url, body=body, headers=dict(request.headers.items()), retries=False
            )
        except urllib3.exceptions.ReadTimeoutError as error:
            raise ReadTimeoutError(endpoint_url=url, error=error) from None
        except urllib3.exceptions.NewConnectionError as error:
            raise EndpointConnectionError(endpoint_url=url, error=error) from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError) as error:
            raise ConnectionClosedError(endpoint_url=url, error=error) from None
        if response.status < 300:
            return
        self._raise_error(response)

    def _raise_error(self, response: Any) -> None:
        raw = {"status_code": response.status, "headers": dict(response.headers), "body": response.data}
        parsed = self._parser.parse(raw, self._operation.output_shape)
        code = parsed.get("Error", {}).get("Code")
        error_shape = self._operation.service_model.shape_for_error_code(code) if code else None
        if error_shape is not None:
            parsed.update(self._parser.parse(raw, error_shape))
        if code in _ENDPOINT_GONE or response.status == 421:
            self._endpoints.invalidate()
        raise self.client.exceptions.from_code(code)(parsed, "WriteRecords")
