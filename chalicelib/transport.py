"""Sends WriteRecords (and endpoint discovery) calls with little per-call overhead.

A botocore client call costs ~1 ms of CPU beyond serialisation (event hooks, endpoint rules,
request objects), about as much as building the 100 records it carries, and creating the
client costs ~100 ms on a cold start (service models, endpoint data). The happy path here
needs neither:

- credentials and SigV4 signing: botocore's `SigV4Auth` (and its credential providers);
- endpoint discovery: Timestream's `DescribeEndpoints`, signed the same way, cached for the
  period Timestream gives and dropped when Timestream says the endpoint has moved;
- sending: one persistent `http.client` connection per thread and endpoint, reused across
  requests and credentials, with TCP_NODELAY (no Nagle/delayed-ACK stall);
- errors: parsed by botocore's JSON parser with the service model of a botocore client,
  created only when the first error arrives, and raised as that client's modeled exception,
  so callers see exactly the ClientError botocore would have raised.

Retries stay with the writer, which owns the time budget.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

_TARGET_PREFIX = "Timestream_20181101."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SIGNING_NAME = "timestream"
# Timestream answers these when a discovered endpoint has moved.
_ENDPOINT_GONE = frozenset({"InvalidEndpointException"})
# A kept-alive connection the server has closed fails like this before any answer arrives;
# the call is then sent once more on a new connection (WriteRecords is idempotent).
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


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

    @property
    def configured(self) -> bool:
        return self._configured is not None

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


class _Connections(threading.local):
    """This thread's open connections, by (scheme, host, port)."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str, int], http.client.HTTPConnection] = {}


class HttpClient:
    """POSTs over persistent connections (one per thread and endpoint), with timeouts that
    raise botocore's connection exceptions."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._connections = _Connections()
        self._tls: ssl.SSLContext | None = None

    def post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        path = parts.path or "/"
        for attempt in (1, 2):
            reused = key in self._connections.open
            try:
                return self._exchange(self._connection(key, url), path, headers, body)
            except _STALE_CONNECTION as error:
                self._close(key)
                if reused and attempt == 1:
                    continue
                raise ConnectionClosedError(endpoint_url=url, error=error) from None
            except TimeoutError as error:
                self._close(key)
                raise ReadTimeoutError(endpoint_url=url, error=error) from None
            except (OSError, http.client.HTTPException) as error:
                self._close(key)
                raise ConnectionClosedError(endpoint_url=url, error=error) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    @staticmethod
    def _exchange(
        connection: http.client.HTTPConnection, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), data

    def _connection(self, key: tuple[str, str, int], url: str) -> http.client.HTTPConnection:
        connection = self._connections.open.get(key)
        if connection is not None:
            return connection
        scheme, host, port = key
        if scheme == "https":
            if self._tls is None:
                # AWS_CA_BUNDLE is honoured as botocore does (private CAs, TLS-inspecting proxies).
                self._tls = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
            connection = http.client.HTTPSConnection(
                host, port, timeout=self._connect_timeout, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        try:
            connection.connect()
        except OSError as error:
            raise EndpointConnectionError(endpoint_url=url, error=error) from None
        connection.sock.settimeout(self._read_timeout)
        # http.client writes the headers and the body in two sends; without TCP_NODELAY the
        # body's last segment can wait for the peer's delayed ACK (up to 40 ms a call).
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connections.open[key] = connection
        return connection

    def _close(self, key: tuple[str, str, int]) -> None:
        connection = self._connections.open.pop(key, None)
        if connection is not None:
            connection.close()


class WriteRecordsSender:
    """Signs and sends WriteRecords bodies for one credential; raises what botocore would."""

    def __init__(
        self,
        credentials: Any,
        region: str,
        endpoints: EndpointCache,
        http: HttpClient,
        botocore_client: Callable[[], Any],
        discovery_endpoint: str | None = None,
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._discovery_endpoint = discovery_endpoint or discovery_url(region)
        self._endpoints = endpoints
        self._http = http
        # Only for parsing errors: creating it costs ~100 ms, so not before the first one.
        self._botocore_client = botocore_client

    def send(self, body: bytes) -> None:
        url = self._endpoints.get(self._discover)
        self._call(url, "WriteRecords", body)

    def _discover(self) -> dict[str, Any]:
        return json.loads(self._call(self._discovery_endpoint, "DescribeEndpoints", b"{}"))

    def _call(self, url: str, operation: str, body: bytes) -> bytes:
        request = AWSRequest(
            method="POST", url=url + "/", data=body,
            headers={"Content-Type": _CONTENT_TYPE, "X-Amz-Target": _TARGET_PREFIX + operation},
        )
        credentials = self._credentials
        # Refreshable (role) credentials are frozen per call so a rotation mid-sign is impossible.
        if hasattr(credentials, "get_frozen_credentials"):
            credentials = credentials.get_frozen_credentials()
        SigV4Auth(credentials, _SIGNING_NAME, self._region).add_auth(request)
        status, headers, data = self._http.post(url + "/", dict(request.headers.items()), body)
        if status >= 300:
            self._raise_error(operation, status, headers, data)
        return data

    def _raise_error(self, operation: str, status: int, headers: dict[str, str], data: bytes) -> None:
        from botocore.parsers import create_parser

        client = self._botocore_client()
        model = client.meta.service_model
        parser = create_parser(model.metadata["protocol"])
        raw = {"status_code": status, "headers": headers, "body": data}
        parsed = parser.parse(raw, model.operation_model(operation).output_shape)
        code = parsed.get("Error", {}).get("Code")
        error_shape = model.shape_for_error_code(code) if code else None
        if error_shape is not None:
            parsed.update(parser.parse(raw, error_shape))
        if (code in _ENDPOINT_GONE or status == 421) and operation == "WriteRecords":
            self._endpoints.invalidate()
        raise client.exceptions.from_code(code)(parsed, operation)
