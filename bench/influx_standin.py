"""A fast InfluxDB `/write` stand-in for `bench/bench_engines.py`, run as its own process.

What the InfluxDB engine's benchmark needs of a server, nothing more: `POST /write?db=...&
precision=ms` answered 204 (as InfluxDB answers a stored write), optionally after a fixed delay
per call, and counts of what arrived so the benchmark can prove every sample did: calls, lines,
the sum of the `value` fields, the most calls in flight at once. A request for another database,
another precision or without the expected `Authorization` (the sender's basic auth, which the
connector passes on) is refused with 400 and counted as an error.

Control on the same port: `GET /_standin/stats`, `POST /_standin/reset`,
`POST /_standin/delay?ms=20`.

    python bench/influx_standin.py --port 9400 [--delay-ms 0] [--database bench]
        [--authorization 'Basic ...']
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# The Timestream stand-in's counters: `records` counts lines here, `units` stays 0.
from standin import MAX_ERRORS_KEPT, Counters, QuietKeepAliveHandler


def line_values(body: bytes) -> list[float]:
    """The `value` field of each line of a line-protocol body. The field set and the timestamp
    are the last two space-separated parts of a line (tag values escape their spaces), and the
    connector writes one field, `value=<float>`."""
    values = []
    for line in body.split(b"\n"):
        if not line:
            continue
        _, fields, _timestamp = line.rsplit(b" ", 2)
        name, _, number = fields.partition(b"=")
        if name != b"value":
            raise ValueError(f"a line without the value field: {line[:200]!r}")
        values.append(float(number))
    return values


class InfluxStandIn(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], database: str, authorization: str | None) -> None:
        super().__init__(address, Handler)
        self.counters = Counters()
        self.database = database
        self.authorization = authorization


class Handler(QuietKeepAliveHandler):
    server: InfluxStandIn

    def _answer(self, status: int, payload: dict | None = None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/_standin/stats":
            with self.server.counters.lock:
                self._answer(200, self.server.counters.snapshot())
            return
        self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        counters = self.server.counters
        if url.path == "/_standin/reset":
            with counters.lock:
                counters.reset()
            self._answer(200, {})
            return
        if url.path == "/_standin/delay":
            counters.delay_seconds = float(parse_qs(url.query)["ms"][0]) / 1000
            self._answer(200, {})
            return
        if url.path != "/write":
            self._answer(404, {"error": "not found"})
            return
        with counters.lock:
            counters.in_flight += 1
            counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            self._write(url.query, body)
        finally:
            with counters.lock:
                counters.in_flight -= 1

    def _write(self, query: str, body: bytes) -> None:
        counters = self.server.counters
        started = time.monotonic()
        params = {key: values[0] for key, values in parse_qs(query).items()}
        problem = None
        if params.get("db") != self.server.database or params.get("precision") != "ms":
            problem = f"db={params.get('db')!r} precision={params.get('precision')!r}"
        elif self.server.authorization and self.headers.get("Authorization") != self.server.authorization:
            problem = "not the sender's Authorization"
        else:
            try:
                values = line_values(body)
            except ValueError as error:
                problem = str(error)
        if problem:
            with counters.lock:
                counters.errors += 1
                if len(counters.error_examples) < MAX_ERRORS_KEPT:
                    counters.error_examples.append(problem)
            self._answer(400, {"error": problem})
            return
        remaining = counters.delay_seconds - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)
        with counters.lock:
            counters.calls += 1
            counters.records += len(values)
            counters.value_sum = math.fsum((counters.value_sum, *values))
        self._answer(204)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--database", default="bench")
    parser.add_argument("--authorization", default=None,
                        help="the Authorization header every write must carry")
    args = parser.parse_args()
    server = InfluxStandIn((args.host, args.port), args.database, args.authorization)
    server.counters.delay_seconds = args.delay_ms / 1000
    print(f"influx stand-in on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
