"""A stand-in InfluxDB v1 API for tests (never deployed): records every request and answers
/write and /query as the test scripts it, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 204
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, message: str) -> Answer:
        return cls(status, json.dumps({"error": message}).encode(), {"X-Influxdb-Error": message})


class StandIn:
    """`answer(request) -> Answer` decides each answer (default: 204 for /write, an empty
    result for /query); `requests` holds what was received, in order."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answer: Callable[[Received], Answer] = self.default_answer
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body go out in two writes: without this each call waits for a delayed ACK.
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                received = Received(
                    self.command, parts.path, dict(urllib.parse.parse_qsl(parts.query)),
                    {name.lower(): value for name, value in self.headers.items()}, self.rfile.read(length),
                )
                with standin._lock:
                    standin.requests.append(received)
                answer = standin.answer(received)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                if answer.body:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def default_answer(request: Received) -> Answer:
        if request.path == "/query":
            return Answer(200, b'{"results":[{"statement_id":0}]}')
        return Answer(204)

    def writes(self) -> list[Received]:
        return [request for request in self.requests if request.path == "/write"]

    def start(self) -> StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
