"""HTTP for the Timestream calls: kept-alive connections shared by all credentials, each request
written in one send and its answer read directly, a request's calls sent together.

Connections carry TCP_NODELAY (the body's last segment must not wait for the peer's delayed
ACK, up to 40 ms a call) and trust the CA bundle botocore trusts. Wherever botocore would use a
proxy (`HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`) the request goes through botocore's own HTTP
session instead. No answer at all is errors.TimestreamUnreachable.
"""

from __future__ import annotations

import http.client
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from botocore.awsrequest import AWSRequest
from botocore.exceptions import ConnectionClosedError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.httpsession import URLLib3Session
from botocore.utils import get_environ_proxies

from chalicelib.errors import TimestreamUnreachable
from chalicelib.liveanalytics.sigv4 import host_header

# A kept-alive connection the server has closed fails like this before any answer arrives.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
# An HTTP answer: status, headers, body.
_Answer = tuple[int, dict[str, str], bytes]
# Gives the i-th request of a post_many: its signed headers and body.
_Prepare = Callable[[int], tuple[dict[str, str], bytes]]
# What botocore's clients set on their sockets: the body's last segment must not wait for the
# peer's delayed ACK (up to 40 ms a call), and idle pooled connections are kept probed.
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]


class _Connections(threading.local):
    """This thread's open direct connections, by (scheme, host, port)."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str, int], _Connection] = {}


class HttpClient:
    """POSTs signed requests to Timestream endpoints, over kept-alive connections.

    An endpoint that botocore would reach through a proxy (`HTTPS_PROXY` / `HTTP_PROXY`, unless
    `NO_PROXY` exempts it) is reached through botocore's own HTTP session, set up as botocore
    sets up a client's, so proxies behave exactly as on the read path. Every other endpoint (the
    usual case: Timestream directly or through a VPC endpoint) gets a plain `http.client`
    connection per thread: measured here, a 40 KB call costs ~55 us of CPU that way against
    ~155 us through the session (urllib3 and botocore's request objects), about 1 us per sample.
    Both trust the CA bundle botocore trusts (`AWS_CA_BUNDLE`, else the system's).
    """

    def __init__(
        self, connect_timeout: float, read_timeout: float, max_connections: int, ca_bundle: str | None = None
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_connections = max_connections
        self._ca_bundle = ca_bundle or os.environ.get("AWS_CA_BUNDLE") or None
        self._tls: ssl.SSLContext | None = None
        self._connections = _Connections()
        # Kept-alive connections between the calls of post_many, by (scheme, host, port).
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        # Per URL: (connection key, path, Host header as signed).
        self._where: dict[str, tuple[tuple[str, str, int], str, str]] = {}
        # Per endpoint: the botocore session when a proxy applies, None for a direct connection.
        self._proxied: dict[str, URLLib3Session | None] = {}
        self._lock = threading.Lock()

    def post(self, endpoint: str, headers: dict[str, str], body: bytes) -> _Answer:
        """POST a signed body to `endpoint` + "/"; TimestreamUnreachable when nothing answers."""
        session = self._proxied.get(endpoint, False)
        if session is False:
            session = self._session_if_proxied(endpoint)
        if session is not None:
            request = AWSRequest(method="POST", url=endpoint + "/", data=body, headers=headers)
            return self._post_through_session(session, request)
        return self._post_direct(endpoint, headers, body)

    def post_many(
        self, endpoint: str, count: int, prepare: _Prepare, in_flight: int
    ) -> list[_Answer | TimestreamUnreachable] | None:
        """POST `count` signed bodies (`prepare(i)` gives the i-th's headers and body, called just
        before it is sent) to `endpoint` + "/", up to `in_flight` at once, all from this thread:
        each answer (or TimestreamUnreachable), in order. None when a proxy applies to the
        endpoint: the caller then sends them one by one.

        One thread waits for every answer (selectors), so the calls of a request cost no thread
        hand-offs: a thread per call in flight, woken for its answer and handed the GIL, cost
        ~1 us per sample more CPU with 16-32 threads than one thread does."""
        if self._session_if_proxied(endpoint) is not None:
            return None
        return _Exchange(self, endpoint, prepare, count).run(in_flight)

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _give_back(self, key: tuple[str, str, int], connection: _Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _MAX_IDLE_CONNECTIONS:
                idle.append(connection)
                return
        connection.close()

    def _where_of(self, url: str) -> tuple[tuple[str, str, int], str, str]:
        where = self._where.get(url)
        if where is None:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            key = (parts.scheme, parts.hostname or "", port)
            where = self._where[url] = (key, parts.path or "/", host_header(url))
        return where

    def _session_if_proxied(self, endpoint: str) -> URLLib3Session | None:
        session = self._proxied.get(endpoint, False)
        if session is not False:
            return session
        with self._lock:
            if endpoint not in self._proxied:
                proxies = get_environ_proxies(endpoint)
                self._proxied[endpoint] = URLLib3Session(
                    verify=self._ca_bundle or True,
                    proxies=proxies,
                    timeout=(self._connect_timeout, self._read_timeout),
                    max_pool_connections=self._max_connections,
                    socket_options=_SOCKET_OPTIONS,
                ) if proxies else None
            return self._proxied[endpoint]

    @staticmethod
    def _post_through_session(session: URLLib3Session, request: AWSRequest) -> _Answer:
        prepared = request.prepare()
        for attempt in (1, 2):
            try:
                response = session.send(prepared)
                return response.status_code, dict(response.headers.items()), response.content
            except ConnectionClosedError as error:
                # A kept-alive connection closed just as it was reused: send once more on a new
                # one (WriteRecords is idempotent) before calling Timestream unreachable.
                if attempt == 2:
                    raise TimestreamUnreachable(f"{type(error).__name__}: {error}") from None
            except (HTTPClientError, BotocoreConnectionError) as error:
                # Refused or reset connections, timeouts, TLS and proxy failures: all retryable.
                raise TimestreamUnreachable(f"{type(error).__name__}: {error}") from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _post_direct(self, url: str, headers: dict[str, str], body: bytes) -> _Answer:
        key, path, host = self._where_of(url)
        for attempt in (1, 2):
            reused = key in self._connections.open
            try:
                connection = self._connection(key)
                status, answer_headers, data, keep = connection.post(path, host, headers, body)
                if not keep:
                    self._close(key)
                return status, answer_headers, data
            except _STALE_CONNECTION as error:
                self._close(key)
                # The server closed a kept-alive connection: send once more on a new one.
                if reused and attempt == 1:
                    continue
                raise TimestreamUnreachable(f"connection closed by {url}: {error!r}") from None
            except TimeoutError:
                self._close(key)
                raise TimestreamUnreachable(f"ReadTimeout: no answer from {url} in time") from None
            except (OSError, http.client.HTTPException) as error:
                self._close(key)
                raise TimestreamUnreachable(f"could not reach {url}: {error!r}") from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _connection(self, key: tuple[str, str, int]) -> _Connection:
        connection = self._connections.open.get(key)
        if connection is not None:
            return connection
        connection = self._connections.open[key] = self._open(key)
        return connection

    def _open(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        sock = socket.create_connection((host, port), timeout=self._connect_timeout)
        try:
            for level, option, value in _SOCKET_OPTIONS:
                sock.setsockopt(level, option, value)
            if scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context(cafile=self._ca_bundle)
                sock = self._tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(self._read_timeout)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _close(self, key: tuple[str, str, int]) -> None:
        connection = self._connections.open.pop(key, None)
        if connection is not None:
            connection.close()


class _Exchange:
    """The calls of one post_many: sent on kept-alive connections, answers awaited together."""

    def __init__(self, client: HttpClient, endpoint: str, prepare: _Prepare, count: int) -> None:
        self.client = client
        self.endpoint = endpoint
        self.key, self.path, self.host = client._where_of(endpoint)
        self.prepare = prepare
        self.results: list[_Answer | TimestreamUnreachable | None] = [None] * count
        # Connection -> (index of its call, when its answer is late, whether it was kept alive).
        self.waiting: dict[_Connection, tuple[int, float, bool]] = {}
        self.selector = selectors.DefaultSelector()

    def run(self, in_flight: int) -> list[_Answer | TimestreamUnreachable]:
        count = len(self.results)
        started = 0
        try:
            while started < count or self.waiting:
                while started < count and len(self.waiting) < in_flight:
                    self.start(started, fresh=False)
                    started += 1
                if self.waiting:
                    self.wait()
        finally:
            for connection in list(self.waiting):
                self.drop(connection)
            self.selector.close()
        return self.results  # type: ignore[return-value]

    def start(self, index: int, fresh: bool) -> None:
        """Send call `index` on an idle kept-alive connection (a new one if `fresh`, if none is
        idle, or if the idle one turns out closed by the server)."""
        headers, body = self.prepare(index)
        for attempt in (1, 2):
            connection = None if fresh or attempt == 2 else self.client._take_idle(self.key)
            reused = connection is not None
            try:
                if connection is None:
                    connection = self.client._open(self.key)
                connection.send(self.path, self.host, headers, body)
            except _STALE_CONNECTION as error:
                if connection is not None:
                    connection.close()
                if reused:
                    continue
                self.fail(index, f"connection closed by {self.endpoint}: {error!r}")
                return
            except TimeoutError:
                if connection is not None:
                    connection.close()
                self.fail(index, f"ReadTimeout: no answer from {self.endpoint} in time")
                return
            except (OSError, http.client.HTTPException) as error:
                if connection is not None:
                    connection.close()
                self.fail(index, f"could not reach {self.endpoint}: {error!r}")
                return
            self.waiting[connection] = (index, time.monotonic() + self.client._read_timeout, reused)
            self.selector.register(connection, selectors.EVENT_READ)
            return

    def wait(self) -> None:
        """Read the answers that have begun to arrive; give up on those that are late."""
        ready = [connection for connection in self.waiting if connection.answer_buffered()]
        if not ready:
            late = min(deadline for _, deadline, _ in self.waiting.values())
            ready = [key.fileobj for key, _ in self.selector.select(max(0.0, late - time.monotonic()))]
        if not ready:
            now = time.monotonic()
            for connection, (index, deadline, _) in list(self.waiting.items()):
                if deadline <= now:
                    self.drop(connection)
                    self.fail(index, f"ReadTimeout: no answer from {self.endpoint} in time")
            return
        for connection in ready:
            self.finish(connection)  # type: ignore[arg-type]

    def finish(self, connection: _Connection) -> None:
        index, _, reused = self.waiting.pop(connection)
        self.selector.unregister(connection)
        try:
            status, headers, data, keep = connection.read_answer()
        except _STALE_CONNECTION as error:
            connection.close()
            if reused:
                # The server had closed the kept-alive connection: once more on a new one.
                self.start(index, fresh=True)
            else:
                self.fail(index, f"connection closed by {self.endpoint}: {error!r}")
            return
        except TimeoutError:
            connection.close()
            self.fail(index, f"ReadTimeout: no answer from {self.endpoint} in time")
            return
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            self.fail(index, f"could not reach {self.endpoint}: {error!r}")
            return
        self.results[index] = (status, headers, data)
        if keep:
            self.client._give_back(self.key, connection)
        else:
            connection.close()

    def fail(self, index: int, message: str) -> None:
        self.results[index] = TimestreamUnreachable(message)

    def drop(self, connection: _Connection) -> None:
        self.waiting.pop(connection, None)
        try:
            self.selector.unregister(connection)
        except (KeyError, ValueError):
            pass
        connection.close()


# Idle connections kept per endpoint for post_many (beyond: closed).
_MAX_IDLE_CONNECTIONS = 64
# Largest answer head (status line and headers) read; Timestream's are a few hundred bytes.
_MAX_HEAD_BYTES = 65_536
_RECV_BYTES = 65_536


class _Connection:
    """One kept-alive HTTP/1.1 connection: a POST written in one send, its answer read back.

    http.client costs ~120 us of CPU a call here (header objects, the email package's header
    parser, two sends), as much as signing and building a 40-record body together; this is
    ~25 us. The answers it reads are what any HTTP/1.1 server sends: a length, chunks, or a body
    up to the connection's close; interim 1xx answers are skipped."""

    __slots__ = ("sock", "_buffer")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def post(
        self, path: str, host: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, whether the connection can carry another request)."""
        self.send(path, host, headers, body)
        return self.read_answer()

    def send(self, path: str, host: str, headers: dict[str, str], body: bytes) -> None:
        head = [f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"]
        for name, value in headers.items():
            # A value is never allowed to end the header early (as http.client refuses too).
            if "\n" in value or "\r" in value:
                raise ValueError(f"invalid value for HTTP header {name}")
            head.append(f"{name}: {value}\r\n")
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        self._buffer = b""
        self.sock.sendall("".join(head).encode("latin-1") + body)

    def fileno(self) -> int:
        return self.sock.fileno()

    def answer_buffered(self) -> bool:
        """Whether bytes of the answer already wait above the socket (TLS decrypts ahead)."""
        pending = getattr(self.sock, "pending", None)
        return bool(self._buffer) or bool(pending and pending())

    def read_answer(self) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, whether the connection can carry another request)."""
        status, version, answer_headers = self._read_head()
        while 100 <= status < 200:
            status, version, answer_headers = self._read_head()
        fields = {name.lower(): value for name, value in answer_headers.items()}
        keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
        if "chunked" in fields.get("transfer-encoding", "").lower():
            data = self._read_chunked()
        elif "content-length" in fields:
            data = self._read_exactly(int(fields["content-length"]))
        else:
            data = self._read_to_close()
            keep = False
        # Bytes beyond the answer: nothing this connection says can be trusted any more.
        return status, answer_headers, data, keep and not self._buffer

    def _receive(self) -> bool:
        chunk = self.sock.recv(_RECV_BYTES)
        self._buffer += chunk
        return bool(chunk)

    def _read_head(self) -> tuple[int, str, dict[str, str]]:
        end = self._buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES:
                raise http.client.LineTooLong("answer head")
            if not self._receive():
                if self._buffer:
                    raise http.client.IncompleteRead(self._buffer)
                raise http.client.RemoteDisconnected("closed without an answer")
            end = self._buffer.find(b"\r\n\r\n")
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        self._buffer = self._buffer[end + 4:]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit():
            raise http.client.BadStatusLine(lines[0])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        return int(code), version, headers

    def _read_exactly(self, length: int) -> bytes:
        while len(self._buffer) < length:
            if not self._receive():
                raise http.client.IncompleteRead(self._buffer, length - len(self._buffer))
        data, self._buffer = self._buffer[:length], self._buffer[length:]
        return data

    def _read_line(self) -> bytes:
        end = self._buffer.find(b"\r\n")
        while end < 0:
            if len(self._buffer) > _MAX_HEAD_BYTES or not self._receive():
                raise http.client.IncompleteRead(self._buffer)
            end = self._buffer.find(b"\r\n")
        line, self._buffer = self._buffer[:end], self._buffer[end + 2:]
        return line

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise http.client.IncompleteRead(size_text) from None
            if size == 0:
                while self._read_line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            self._read_exactly(2)  # the CRLF after each chunk

    def _read_to_close(self) -> bytes:
        while self._receive():
            pass
        data, self._buffer = self._buffer, b""
        return data
