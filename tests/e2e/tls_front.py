"""A test-only stand-in for API Gateway's custom domain with mutual TLS, in front of `chalice local`.

It listens on 127.0.0.1, completes a TLS handshake only with a client that presents a certificate
signed by the client CA (CERT_REQUIRED, as a domain with a truststore does), and then forwards the
decrypted bytes both ways to the connector, unchanged. It counts the handshakes it completed and
the ones it refused, with the reason, so a test can tell "refused at the door" from "answered by
the connector". Never deployed: API Gateway does this in production.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .procs import LOOPBACK

_HANDSHAKE_TIMEOUT_SECONDS = 10
_CHUNK = 65536


@dataclass
class FrontCounts:
    accepted: int = 0
    refused: int = 0
    refusals: list[str] = field(default_factory=list)  # the first few reasons


class MutualTlsFront:
    def __init__(self, upstream_port: int, server_cert: Path, server_key: Path, client_ca: Path) -> None:
        self.upstream = (LOOPBACK, upstream_port)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # API Gateway's custom domains offer TLS 1.2 at least (SecurityPolicy TLS_1_2).
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(server_cert, server_key)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.load_verify_locations(cafile=client_ca)
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"https://{LOOPBACK}:{self.port}"
        self._lock = threading.Lock()
        self._counts = FrontCounts()
        self._open: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tls-front", daemon=True)

    def start(self) -> MutualTlsFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _close(sock)
        self._thread.join(timeout=5)

    def counts(self) -> FrontCounts:
        with self._lock:
            return FrontCounts(self._counts.accepted, self._counts.refused, list(self._counts.refusals))

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._serve, args=(raw,), name="tls-front-conn", daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _serve(self, raw: socket.socket) -> None:
        self._track(raw)
        raw.settimeout(_HANDSHAKE_TIMEOUT_SECONDS)
        try:
            client = self.context.wrap_socket(raw, server_side=True)  # handshake, client certificate checked
        except (ssl.SSLError, OSError) as error:
            with self._lock:
                self._counts.refused += 1
                if len(self._counts.refusals) < 5:
                    self._counts.refusals.append(str(error))
            _close(raw)
            return
        with self._lock:
            self._counts.accepted += 1
        client.settimeout(None)
        self._track(client)
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            _close(client)
            return
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._track(upstream)
        back = threading.Thread(target=_pump, args=(upstream, client), name="tls-front-back", daemon=True)
        back.start()
        _pump(client, upstream)
        back.join(timeout=30)
        with self._lock:
            self._open -= {raw, client, upstream}


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy until either side closes or fails, then close both: an HTTP exchange is over when
    one side of it is (and a TLS socket cannot be half-closed)."""
    try:
        while True:
            data = source.recv(_CHUNK)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
