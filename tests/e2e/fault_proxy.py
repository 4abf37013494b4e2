"""A small HTTP proxy, run in a thread of the test process, that forwards to one upstream and can
inject faults for a while. It serves two places in the end-to-end tests:

* between the connector and the local Timestream (the Timestream stand-in): it can throttle or
  fail `WriteRecords` calls the way Timestream does, which the stand-in itself does not, and it
  refuses keys that are not authorized (see below);
* between a sender (Prometheus) and the connector, as a tap: it records every remote-write
  request and the connector's answer so a test can look at what really went over the wire.

Faults, as Timestream sends them (Timestream's common-errors table; JSON protocol, so the error
code is the `__type` of a JSON body and botocore reads the message from `message`/`Message`):

* ``throttle``: HTTP 400 ``{"__type": "ThrottlingException", ...}`` - Timestream answers
  throttling with 400, not 429/503; botocore and the connector must recognise it by its code.
* ``internal``: HTTP 500 ``{"__type": "InternalServerException", ...}`` before anything is
  stored.
* ``internal_after_write``: the call is forwarded and stored, then answered with the same 500,
  as when a response is lost. A retry then rewrites identical records, which Timestream (and the
  local Timestream) accepts as a no-op.
* ``stall``: the call is held until the fault window ends, then forwarded (and stored). A test
  uses it to kill the connector while a write is in flight.

Only `WriteRecords` calls are faulted unless a fault names other operations.

The local Timestream checks signatures (an unknown key gets ``UnrecognizedClientException``, a
wrong secret ``InvalidSignatureException``), merges ``CommonAttributes`` and enforces Timestream's
write rules itself, so the proxy forwards requests byte for byte (the body and the Host header
are part of the signature). What it cannot know is IAM permissions: with `timestream_compat` on,
a correctly signed call with a key listed as denied gets ``AccessDeniedException`` with HTTP 400
(the status Timestream documents for it) from the proxy instead of being forwarded.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, urlsplit

LOOPBACK = "127.0.0.1"

FAULTS = {
    "throttle": (400, "ThrottlingException", "Rate exceeded (injected by the e2e fault proxy)"),
    "internal": (500, "InternalServerException", "Internal server error (injected by the e2e fault proxy)"),
    "internal_after_write": (
        500,
        "InternalServerException",
        "Internal server error after the write (injected by the e2e fault proxy)",
    ),
    "stall": (0, "", ""),
}

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}

_AUTH_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
    r"SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)"
)


def check_sigv4(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    secrets: dict[str, str],
    service: str = "timestream",
    region: str = "us-east-1",
) -> tuple[str | None, str | None]:
    """Verify an AWS Signature Version 4 request signed for `service` in `region`. Returns
    (access key id, None) when it is valid, or (access key id or None, error code) when not."""
    lower = {k.lower(): v for k, v in headers.items()}
    match = _AUTH_HEADER.match(lower.get("authorization", ""))
    if not match:
        return None, "MissingAuthenticationTokenException"
    key_id, date, signed_region, signed_service, signed_headers, signature = match.groups()
    secret = secrets.get(key_id)
    if secret is None:
        return key_id, "UnrecognizedClientException"
    if (signed_region, signed_service) != (region, service):
        return key_id, "InvalidSignatureException"
    amz_date = lower.get("x-amz-date", "")
    names = signed_headers.split(";")
    canonical_headers = "".join(f"{n}:{' '.join(lower.get(n, '').split())}\n" for n in names)
    parts = urlsplit(path)
    query = "&".join(sorted(parts.query.split("&"))) if parts.query else ""
    canonical_request = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/~"),
            query,
            canonical_headers,
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return key_id, "InvalidSignatureException"
    return key_id, None


@dataclass
class Exchange:
    """One request through the proxy and the answer it got."""

    started: float
    method: str
    path: str
    operation: str  # X-Amz-Target's operation, e.g. "WriteRecords"; "" for other traffic
    request_headers: dict[str, str]
    request_body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    fault: str | None = None
    upstream_error: str | None = None


@dataclass
class _Fault:
    kind: str
    until: float
    operations: frozenset[str]


class FaultProxy:
    """Forward HTTP to `upstream` ("http://127.0.0.1:PORT"); see the module docstring."""

    def __init__(
        self,
        upstream: str,
        *,
        timestream_compat: bool = False,
        credentials: dict[str, str] | None = None,
        denied_keys: tuple[str, ...] = (),
        keep_bodies: bool = True,
        upstream_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.hostname != LOOPBACK:
            raise ValueError("the e2e proxy only forwards to 127.0.0.1")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.timestream_compat = timestream_compat
        self.credentials = dict(credentials or {})
        self.denied_keys = frozenset(denied_keys)
        self.keep_bodies = keep_bodies
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Lock()
        self._faults: list[_Fault] = []
        self.exchanges: list[Exchange] = []
        self._in_flight = 0
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"proxy-{self.port}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- control from the test -------------------------------------------------------------
    def inject(self, kind: str, seconds: float, operations: tuple[str, ...] = ("WriteRecords",)) -> None:
        """Answer matching calls with fault `kind` for the next `seconds` seconds."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(kind, time.monotonic() + seconds, frozenset(operations)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def snapshot(self) -> list[Exchange]:
        with self._lock:
            return list(self.exchanges)

    def faults_injected(self, kind: str | None = None) -> int:
        return sum(1 for ex in self.snapshot() if ex.fault and (kind is None or ex.fault == kind))

    # -- internals -------------------------------------------------------------------------
    def _active_fault(self, operation: str) -> _Fault | None:
        now = time.monotonic()
        with self._lock:
            self._faults = [f for f in self._faults if f.until > now]
            for fault in self._faults:
                if operation in fault.operations:
                    return fault
        return None

    def in_flight(self) -> int:
        """Requests received and not answered yet."""
        with self._lock:
            return self._in_flight

    def _record(self, exchange: Exchange) -> None:
        if not self.keep_bodies:
            exchange.request_body = b""
        with self._lock:
            self.exchanges.append(exchange)

    def _auth_refusal(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple | None:
        """(status, code, message) when the caller signed correctly with a denied key, else None:
        every other call is forwarded, and the local Timestream checks its signature."""
        key_id, error = check_sigv4(method, path, headers, body, self.credentials)
        if error is None and key_id in self.denied_keys:
            message = (
                f"User: arn:aws:iam::123456789012:user/{key_id} is not authorized to perform: "
                "timestream:WriteRecords because no identity-based policy allows the action"
            )
            return 400, "AccessDeniedException", message
        return None

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=self.upstream_timeout)
        try:
            # Host is passed through unchanged: it is part of the SigV4 signature.
            out_headers = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            out_headers["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=out_headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, {k: v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                pass

            def _handle(self) -> None:
                with proxy._lock:
                    proxy._in_flight += 1
                try:
                    self._handle_one()
                finally:
                    with proxy._lock:
                        proxy._in_flight -= 1

            def _handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                target = self.headers.get("X-Amz-Target", "")
                operation = target.rsplit(".", 1)[-1] if target else ""
                exchange = Exchange(time.time(), self.command, self.path, operation, headers, body)
                active = proxy._active_fault(operation) if operation else None
                fault = active.kind if active else None
                exchange.fault = fault
                if proxy.timestream_compat and operation:
                    refusal = proxy._auth_refusal(self.command, self.path, headers, body)
                    if refusal:
                        self._reply_json_error(exchange, *refusal)
                        return
                if active and fault == "stall":
                    time.sleep(max(0.0, active.until - time.monotonic()))
                if fault in ("throttle", "internal"):
                    status, code, message = FAULTS[fault]
                    self._reply_json_error(exchange, status, code, message)
                    return
                try:
                    status, resp_headers, data = proxy._forward(self.command, self.path, headers, body)
                except OSError as exc:
                    exchange.upstream_error = repr(exc)
                    self._reply(exchange, 502, {"Content-Type": "text/plain"}, f"upstream error: {exc}\n".encode())
                    return
                if fault == "internal_after_write":
                    status, code, message = FAULTS[fault]
                    self._reply_json_error(exchange, status, code, message)
                    return
                passed = {k: v for k, v in resp_headers.items() if k.lower() not in _HOP_BY_HOP}
                self._reply(exchange, status, passed, data)

            def _reply_json_error(self, exchange: Exchange, status: int, code: str, message: str) -> None:
                body = json.dumps({"__type": code, "message": message}).encode()
                headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}
                self._reply(exchange, status, headers, body)

            def _reply(self, exchange: Exchange, status: int, headers: dict[str, str], body: bytes) -> None:
                exchange.status = status
                exchange.response_headers = dict(headers)
                exchange.response_body = body
                proxy._record(exchange)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                except OSError:
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        return Handler

