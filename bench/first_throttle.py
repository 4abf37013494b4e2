"""Latency of the first throttled /write request of a fresh process (one credential).

The first error answer a process sees used to cost a botocore client (~100 ms) just to parse
it, and it typically arrives in a throttling storm. This measures that request end to end
through the write handler: a fresh Python process per run, a local stand-in that answers
every WriteRecords with a ThrottlingException, and a write budget that allows one attempt.

    python bench/first_throttle.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh interpreter: imports, one warm-up-free request, its wall time in ms.
_ONE_RUN = r"""
import base64, sys, time
sys.path.insert(0, sys.argv[2])
import snappy
from chalicelib.config import load_settings
from tests.helpers import write_request
try:
    from chalicelib.handlers import handle_write
    from chalicelib.liveanalytics.engine import LiveAnalyticsEngine
    from chalicelib.liveanalytics.writer import Writer
except ImportError:  # the layouts before the engine packages
    try:
        from chalicelib.handlers import handle_write
    except ImportError:
        from chalicelib.pipeline import handle_write
    from chalicelib.clients import ClientCache
    from chalicelib.records import SeriesCache
    from chalicelib.writer import Writer
    LiveAnalyticsEngine = None

settings = load_settings({"AWS_REGION": "us-east-1", "TIMESTREAM_WRITE_ENDPOINT": sys.argv[1],
                          "DEFAULT_DATABASE": "prometheus", "DEFAULT_TABLE": "metrics"})
now = int(time.time() * 1000)
message = write_request([([("__name__", "up"), ("job", "node")], [(1.0, now)])])
body = snappy.compress(message.SerializeToString())
token = base64.b64encode(b"AKIAFIRSTTHROTTLE000:secret").decode()
headers = {"content-type": "application/x-protobuf", "content-encoding": "snappy",
           "authorization": "Basic " + token}
# A budget shorter than one attempt: exactly one call, so the time is the error path's alone.
writer = Writer(concurrency=1, budget_seconds=0.5, attempt_seconds=30)
started = time.perf_counter()
if LiveAnalyticsEngine is not None:
    engine = LiveAnalyticsEngine(settings)
    engine.writer = writer
    result = handle_write(body, headers, settings, engine)
else:
    result = handle_write(body, headers, settings, ClientCache(settings), writer, SeriesCache(settings))
elapsed = (time.perf_counter() - started) * 1000
status = result.status if isinstance(result.status, int) else result.status()
assert status == 503, status
print(elapsed)
"""


class Throttling(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--project", default=str(ROOT), help="project checkout to measure")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    times = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", _ONE_RUN, endpoint, args.project],
            capture_output=True, text=True, check=True, cwd=args.project,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    server.shutdown()
    print(f"first throttled request: median {statistics.median(times):.1f} ms, "
          f"min {min(times):.1f} ms, max {max(times):.1f} ms over {args.runs} fresh processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
