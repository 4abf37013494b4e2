"""The HTTP client of InfluxDB's v1-compatible API: `POST /write` (line protocol) and
`GET /query` (InfluxQL), the API InfluxDB 1.x serves, 2.x through DBRP mappings and 3 too.

One kept-alive connection per thread (the writer's calls run on a thread pool), `TCP_NODELAY`
(http.client sets it), the connect and answer timeouts apart. The caller's `Authorization`
header is sent as is and never logged. Error answers become `InfluxDBError` with InfluxDB's own
message (1.x and 3: `{"error": ...}`, 2.x: `{"message": ...}`); no answer becomes
`InfluxDBUnreachable`. What either means for the request is the writer's and reader's business.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import urllib.parse
from dataclasses import dataclass

from chalicelib.errors import one_line


class InfluxDBError(Exception):
    """An error answer from InfluxDB: its HTTP status and its message (one line)."""

    def __init__(self, status: int, message: str, body: bytes = b"") -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body = body


class InfluxDBUnreachable(Exception):
    """No answer from InfluxDB: the connection failed, was closed, or timed out."""


def error_message(status: int, headers: http.client.HTTPMessage | dict[str, str], body: bytes) -> str:
    """InfluxDB's own message of an error answer, on one line; the status when there is none."""
    try:
        document = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        document = {}
    message = ""
    if isinstance(document, dict):
        message = str(document.get("error") or document.get("message") or "")
    if not message:
        message = str(headers.get("X-Influxdb-Error") or "")
    if not message and body and not body.lstrip().startswith(b"<"):
        message = body.decode("utf-8", "replace")
    return one_line(message) or f"HTTP {status}"


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urllib.parse.urlsplit(url)
        default_port = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname or "", parts.port or default_port, parts.path.rstrip("/"))


class InfluxDBClient:
    """Makes calls to one InfluxDB; safe to share between threads."""

    def __init__(
        self, url: str, connect_timeout: float, write_timeout: float, query_timeout: float
    ) -> None:
        self.endpoint = Endpoint.parse(url)
        self._connect_timeout = connect_timeout
        self._write_timeout = write_timeout
        self._query_timeout = query_timeout
        self._local = threading.local()
        self._ssl: ssl.SSLContext | None = None
        if self.endpoint.scheme == "https":
            # A private CA (or a TLS-inspecting proxy's), as botocore honours it on the other engine.
            self._ssl = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)

    def write(self, database: str, body: bytes, authorization: str | None) -> None:
        """POST line protocol (millisecond timestamps) to `database`. Raises InfluxDBError for
        any answer but 2xx and InfluxDBUnreachable for none."""
        query = urllib.parse.urlencode({"db": database, "precision": "ms"})
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        self._call("POST", f"/write?{query}", body, headers, authorization, self._write_timeout)

    def query(self, database: str, statement: str, authorization: str | None) -> bytes:
        """Run one InfluxQL SELECT on `database`, times as epoch milliseconds; the JSON body.
        GET, which every version serves for SELECT."""
        query = urllib.parse.urlencode({"db": database, "q": statement, "epoch": "ms"})
        return self._call("GET", f"/query?{query}", None, {}, authorization, self._query_timeout)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection and whether it was used before (then it may have been
        closed by the server meanwhile)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        endpoint = self.endpoint
        if self._ssl is not None:
            connection = http.client.HTTPSConnection(
                endpoint.host, endpoint.port, timeout=self._connect_timeout, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(
                endpoint.host, endpoint.port, timeout=self._connect_timeout
            )
        self._local.connection = connection
        return connection, False

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _call(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str],
        authorization: str | None, timeout: float,
    ) -> bytes:
        headers = dict(headers)
        if authorization:
            headers["Authorization"] = authorization
        while True:
            connection, reused = self._connection()
            try:
                if connection.sock is None:
                    connection.connect()
                connection.sock.settimeout(timeout)
                connection.request(method, self.endpoint.base_path + path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                self._drop_connection()
                if reused and not isinstance(error, TimeoutError):
                    # A kept-alive connection the server closed while idle: one fresh attempt
                    # (a rewrite is identical, so this can never duplicate a point).
                    continue
                raise InfluxDBUnreachable(f"{type(error).__name__}: {one_line(str(error))}") from None
            if response.getheader("Connection", "").lower() == "close":
                self._drop_connection()
            if 200 <= response.status < 300:
                return data
            raise InfluxDBError(response.status, error_message(response.status, response.headers, data), data)
