"""Record remote-write requests from a real sender, for the cost benchmark.

Starts Debian's `prometheus` scraping `prometheus-node-exporter` and itself, with the
`external_labels` a real deployment sets (cluster, env, region), and remote-writing to a small
recording HTTP server in this process. After `--seconds` it stops both (by PID) and saves every
request body that carries samples, exactly as received (snappy-compressed protobuf), to one
file: `bench/workload/recorded.bin` (a 4-byte big-endian length before each body) with
`recorded.json` beside it saying what produced it. Metadata-only requests are not kept: they
write nothing to Timestream.

Everything listens on 127.0.0.1, on free ports.

    .venv/bin/python bench/record_workload.py [--seconds 120] [--scrape-interval 15s]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import snappy

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chalicelib.prompb.prometheus_remote_pb2 import WriteRequest  # noqa: E402

sys.path.insert(0, str(BENCH))
from standin import QuietKeepAliveHandler  # noqa: E402

HOST = "127.0.0.1"
WORKLOAD_DIR = BENCH / "workload"
BODIES = WORKLOAD_DIR / "recorded.bin"
METADATA = WORKLOAD_DIR / "recorded.json"
PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
# What a real deployment adds to every series it sends (Prometheus `global.external_labels`).
EXTERNAL_LABELS = {"cluster": "prod-eu-west-1-platform", "env": "production", "region": "eu-west-1"}
# The committed recording must stay small.
MAX_TOTAL_BYTES = 2_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, RecordingHandler)
        self.lock = threading.Lock()
        self.bodies: list[bytes] = []
        self.metadata_only = 0


class RecordingHandler(QuietKeepAliveHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = WriteRequest.FromString(snappy.uncompress(body))
        with self.server.lock:
            if any(series.samples for series in request.timeseries):
                self.server.bodies.append(body)
            else:
                self.server.metadata_only += 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def prometheus_config(node_port: int, prometheus_port: int, recorder_port: int, interval: str) -> str:
    labels = "".join(f"    {name}: {value}\n" for name, value in EXTERNAL_LABELS.items())
    return (
        "global:\n"
        f"  scrape_interval: {interval}\n"
        "  external_labels:\n"
        f"{labels}"
        "scrape_configs:\n"
        "  - job_name: node\n"
        f"    static_configs: [{{targets: ['{HOST}:{node_port}']}}]\n"
        "  - job_name: prometheus\n"
        f"    static_configs: [{{targets: ['{HOST}:{prometheus_port}']}}]\n"
        "remote_write:\n"
        f"  - url: http://{HOST}:{recorder_port}/write\n"
    )


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as handle:
        return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def save(bodies: list[bytes], metadata: dict) -> int:
    WORKLOAD_DIR.mkdir(exist_ok=True)
    with open(BODIES, "wb") as handle:
        for body in bodies:
            handle.write(struct.pack(">I", len(body)))
            handle.write(body)
    METADATA.write_text(json.dumps(metadata, indent=2) + "\n")
    return BODIES.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to record (default 120)")
    parser.add_argument("--scrape-interval", default="15s", help="Prometheus scrape_interval (default 15s)")
    args = parser.parse_args()
    for binary in (PROMETHEUS, NODE_EXPORTER):
        if not Path(binary).exists():
            print(f"{binary} not found: apt-get install -y prometheus prometheus-node-exporter",
                  file=sys.stderr)
            return 1

    recorder = Recorder((HOST, free_port()))
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    work = Path(tempfile.mkdtemp(prefix="record-workload-"))
    node_port, prometheus_port = free_port(), free_port()
    config = work / "prometheus.yml"
    config.write_text(prometheus_config(node_port, prometheus_port, recorder.server_address[1],
                                        args.scrape_interval))
    processes = []
    try:
        processes.append(start([NODE_EXPORTER, f"--web.listen-address={HOST}:{node_port}"],
                               work / "node-exporter.log"))
        processes.append(start([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
                                f"--web.listen-address={HOST}:{prometheus_port}", "--log.level=warn"],
                               work / "prometheus.log"))
        print(f"recording {args.seconds:.0f}s: node exporter pid {processes[0].pid}, prometheus pid "
              f"{processes[1].pid}, recorder on {HOST}:{recorder.server_address[1]}", flush=True)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            for process, log in zip(processes, ("node-exporter.log", "prometheus.log"), strict=True):
                if process.poll() is not None:
                    print(f"{process.args[0]} exited:\n{(work / log).read_text()[-2000:]}", file=sys.stderr)
                    return 1
            time.sleep(1)
    finally:
        for process in reversed(processes):
            stop(process)
        recorder.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    with recorder.lock:
        bodies = list(recorder.bodies)
    samples = series = 0
    for body in bodies:
        request = WriteRequest.FromString(snappy.uncompress(body))
        series += len(request.timeseries)
        samples += sum(len(ts.samples) for ts in request.timeseries)
    version = subprocess.run([PROMETHEUS, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    exporter = subprocess.run([NODE_EXPORTER, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True).stdout.splitlines()[:1]
    metadata = {
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sender": version,
        "node_exporter": exporter[0] if exporter else "unknown",
        "seconds": args.seconds,
        "scrape_interval": args.scrape_interval,
        "external_labels": EXTERNAL_LABELS,
        "requests": len(bodies),
        "metadata_only_requests_left_out": recorder.metadata_only,
        "timeseries": series,
        "samples": samples,
    }
    size = save(bodies, metadata)
    print(f"saved {len(bodies)} requests, {samples} samples, {size} bytes to {BODIES.relative_to(ROOT)}")
    if size > MAX_TOTAL_BYTES:
        print(f"warning: over {MAX_TOTAL_BYTES} bytes: record for fewer --seconds", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
