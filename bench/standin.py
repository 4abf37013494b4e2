"""A fast Timestream `WriteRecords` stand-in for the benchmark, run as its own process.

moto stores every record and is far slower than the connector, so it cannot stand in for
Timestream when the connector's CPU is being measured. This server only does what the
benchmark needs: it answers `WriteRecords` like Timestream does (200 and `RecordsIngested`),
optionally after a fixed delay per call, and counts what it received so the benchmark can prove
that every sample arrived:

- calls, records (`len(Records)`, so `CommonAttributes` are fine), the sum of all measure
  values (a cheap check that values arrived unchanged), the largest call and the most calls in
  flight at once;
- write units, metered from each body as Timestream bills them (`billed_units`, written from
  the JSON alone, apart from the connector's own metering);
- errors: anything that is not a signed `WriteRecords` call to the expected table with
  1-100 records. Those get a 400 `ValidationException`, as Timestream would answer.

Control (plain HTTP on the same port): `GET /_standin/stats`, `POST /_standin/reset`,
`POST /_standin/delay?ms=20`.

    python bench/standin.py --port 9300 [--delay-ms 0] [--database bench --table metrics]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WRITE_RECORDS_TARGET = "Timestream_20181101.WriteRecords"
MAX_RECORDS_PER_CALL = 100
MAX_ERRORS_KEPT = 5


def _attribute_bytes(attributes: dict) -> int:
    """Metered bytes of a record's (or CommonAttributes') dimensions and measure name."""
    size = len(attributes.get("MeasureName", "").encode())
    for dimension in attributes.get("Dimensions", []):
        size += len(dimension["Name"].encode()) + len(dimension["Value"].encode())
    return size


def billed_units(payload: dict) -> int:
    """Write units of one WriteRecords call: per record its time (8 bytes), DOUBLE value (8),
    dimension names and values and measure name (UTF-8 bytes); CommonAttributes once; the call
    rounded up to whole KiB."""
    size = _attribute_bytes(payload.get("CommonAttributes") or {})
    for record in payload["Records"]:
        size += 8 + 8 + _attribute_bytes(record)
    return -(-size // 1024)


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delay_seconds = 0.0
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.records = 0
        self.value_sum = 0.0
        self.units = 0
        self.max_records_per_call = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.errors = 0
        self.error_examples: list[str] = []

    def snapshot(self) -> dict:
        return {
            "calls": self.calls,
            "records": self.records,
            "value_sum": self.value_sum,
            "units": self.units,
            "max_records_per_call": self.max_records_per_call,
            "max_in_flight": self.max_in_flight,
            "errors": self.errors,
            "error_examples": list(self.error_examples),
            "delay_ms": self.delay_seconds * 1000,
        }


class StandIn(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], database: str, table: str, access_key_id: str) -> None:
        super().__init__(address, Handler)
        self.counters = Counters()
        self.database = database
        self.table = table
        self.access_key_id = access_key_id


class QuietKeepAliveHandler(BaseHTTPRequestHandler):
    """A handler that keeps connections alive, answers without delay and logs nothing."""

    # Keep-alive, as Timestream's endpoint does: botocore pools connections.
    protocol_version = "HTTP/1.1"
    # The status line and headers go out in one send and the body in another: with Nagle's
    # algorithm on, the body waits for the client's delayed ACK, adding ~40 ms to every call.
    disable_nagle_algorithm = True

    def log_message(self, format, *args) -> None:  # noqa: A002 - signature from the base class
        pass


class Handler(QuietKeepAliveHandler):
    server: StandIn

    def _send(self, status: int, payload: dict, content_type: str = "application/x-amz-json-1.0") -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/_standin/stats":
            counters = self.server.counters
            with counters.lock:
                snapshot = counters.snapshot()
            self._send(200, snapshot, "application/json")
        else:
            self._send(404, {"message": "not found"}, "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        url = urlsplit(self.path)
        if url.path.startswith("/_standin/"):
            self._control(url.path, parse_qs(url.query))
            return
        counters = self.server.counters
        with counters.lock:
            counters.in_flight += 1
            counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
            delay = counters.delay_seconds
        try:
            started = time.monotonic()
            error = None
            count = 0
            value_sum = 0.0
            units = 0
            try:
                count, value_sum, units = self._check(body)
            except ValueError as problem:
                error = str(problem)
            if delay:
                # The delay stands for Timestream's own processing time, whatever the parsing cost.
                remaining = delay - (time.monotonic() - started)
                if remaining > 0:
                    time.sleep(remaining)
            with counters.lock:
                counters.calls += 1
                if error is None:
                    counters.records += count
                    counters.value_sum += value_sum
                    counters.units += units
                    counters.max_records_per_call = max(counters.max_records_per_call, count)
                else:
                    counters.errors += 1
                    if len(counters.error_examples) < MAX_ERRORS_KEPT:
                        counters.error_examples.append(error)
            if error is not None:
                self._send(400, {"__type": "com.amazonaws.timestream.v20181101#ValidationException",
                                 "message": error})
            else:
                self._send(200, {"RecordsIngested": {"Total": count, "MemoryStore": count,
                                                     "MagneticStore": 0}})
        finally:
            with counters.lock:
                counters.in_flight -= 1

    def _check(self, body: bytes) -> tuple[int, float, int]:
        target = self.headers.get("X-Amz-Target")
        if target != WRITE_RECORDS_TARGET:
            raise ValueError(f"unexpected X-Amz-Target {target!r}")
        authorization = self.headers.get("Authorization") or ""
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or (
            f"Credential={self.server.access_key_id}/" not in authorization
        ):
            raise ValueError("request is not SigV4-signed with the benchmark's access key")
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        try:
            payload = json.loads(body)
        except ValueError:
            raise ValueError("body is not JSON") from None
        destination = (payload.get("DatabaseName"), payload.get("TableName"))
        if destination != (self.server.database, self.server.table):
            raise ValueError(
                f"unexpected destination {payload.get('DatabaseName')!r}.{payload.get('TableName')!r}"
            )
        records = payload.get("Records")
        if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS_PER_CALL:
            raise ValueError(f"Records must hold 1-{MAX_RECORDS_PER_CALL} records")
        common_value = (payload.get("CommonAttributes") or {}).get("MeasureValue")
        try:
            value_sum = math.fsum(float(record.get("MeasureValue", common_value)) for record in records)
        except (TypeError, ValueError):
            raise ValueError("a record has no numeric MeasureValue") from None
        try:
            units = billed_units(payload)
        except (AttributeError, KeyError, TypeError):
            raise ValueError("a record or CommonAttributes is malformed") from None
        return len(records), value_sum, units

    def _control(self, path: str, query: dict) -> None:
        counters = self.server.counters
        with counters.lock:
            if path == "/_standin/reset":
                counters.reset()
            elif path == "/_standin/delay":
                counters.delay_seconds = float(query.get("ms", ["0"])[0]) / 1000
            else:
                self._send(404, {"message": "not found"}, "application/json")
                return
            snapshot = counters.snapshot()
        self._send(200, snapshot, "application/json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--database", default="bench")
    parser.add_argument("--table", default="metrics")
    parser.add_argument("--access-key-id", default="AKIALOCALEXAMPLE0000")
    args = parser.parse_args()
    server = StandIn((args.host, args.port), args.database, args.table, args.access_key_id)
    server.counters.delay_seconds = args.delay_ms / 1000
    print(f"standin listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
