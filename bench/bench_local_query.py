"""How fast the local Timestream answers remote read (`make bench-local`).

Starts the local Timestream (`python -m local_timestream`) of a checkout as its own process,
fills one table with ~100k records (400 series of node-exporter-like labels, a sample every
15 s for the last ~62 minutes, written 100 records a call as the connector writes them), then
answers one remote-read query of the last 5 minutes over all 400 series, two ways, and prints
the median of several runs of each:

* through the connector's own reader (`chalicelib.liveanalytics.reader.read`: DESCRIBE, then SELECT pages
  through a botocore client): what a remote read costs end to end, botocore's parsing of the
  pages included;
* the same SELECT and its pages as signed HTTP calls whose answers are only read: the local
  Timestream's own time.

Not a test: numbers to compare before and after a change.

    .venv/bin/python bench/bench_local_query.py                    # this checkout
    .venv/bin/python bench/bench_local_query.py --project /tmp/old # another checkout's emulator
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import requests  # noqa: E402

from chalicelib.config import Settings  # noqa: E402
from chalicelib.liveanalytics.reader import EQ, ColumnsCache, Matcher, read  # noqa: E402
from chalicelib.prompb import prometheus_remote_pb2 as pb  # noqa: E402

DATABASE, TABLE = "prometheus", "metrics"
REGION = "us-east-1"
# The pair the emulator is told to accept (an emulator without a credential check ignores it).
ACCESS_KEY_ID, SECRET_ACCESS_KEY = "AKIABENCHLOCAL000000", "bench-local-secret"
METRICS = ("node_cpu_seconds_total", "node_load1", "node_memory_MemFree_bytes",
           "node_network_receive_bytes_total")
STEP_MS = 15_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator(project: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOCAL_TIMESTREAM_ACCESS_KEY_ID": ACCESS_KEY_ID,
           "LOCAL_TIMESTREAM_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
    argv = [sys.executable, "-m", "local_timestream", "--host", "127.0.0.1", "--port", str(port),
            "--database", DATABASE, "--table", TABLE]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the local Timestream exited with {process.returncode}; see {log_path}")
        try:
            requests.get(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=2)
            tables = boto3.client("timestream-write", **client_args(port)).list_tables(DatabaseName=DATABASE)
            if tables["Tables"]:
                return process
        except Exception:  # noqa: BLE001 - still starting
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the local Timestream did not start in 60 s; see {log_path}")


def client_args(port: int) -> dict[str, str]:
    return {"region_name": REGION, "endpoint_url": f"http://127.0.0.1:{port}",
            "aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY}


def series(count: int) -> list[tuple[str, list[dict[str, str]]]]:
    """`count` series: (measure name, dimensions), node-exporter-like."""
    out = []
    for i in range(count):
        dims = {"instance": f"node-{i // len(METRICS):03d}.example.internal:9100", "job": "node",
                "cluster": "bench", "region": "eu-west-1"}
        out.append((METRICS[i % len(METRICS)], [{"Name": k, "Value": v} for k, v in dims.items()]))
    return out


def fill(port: int, count: int, samples: int, end_ms: int) -> int:
    client = boto3.client("timestream-write", **client_args(port))
    common = {"MeasureValueType": "DOUBLE", "TimeUnit": "MILLISECONDS"}
    written = 0
    batch: list[dict[str, object]] = []
    for k in range(samples):
        ts = end_ms - (samples - 1 - k) * STEP_MS
        for j, (name, dims) in enumerate(series(count)):
            batch.append({"MeasureName": name, "Dimensions": dims, "MeasureValue": repr(k * 0.5 + j),
                          "Time": str(ts)})
    for start in range(0, len(batch), 100):
        chunk = batch[start:start + 100]
        client.write_records(DatabaseName=DATABASE, TableName=TABLE, CommonAttributes=common, Records=chunk)
        written += len(chunk)
    return written


def read_once(port: int, start_ms: int, end_ms: int) -> tuple[float, int, int]:
    """Seconds for one remote read of [start_ms, end_ms] selecting job="node", series and samples."""
    query_client = boto3.client("timestream-query", **client_args(port))
    request = pb.ReadRequest()
    query = request.queries.add(start_timestamp_ms=start_ms, end_timestamp_ms=end_ms)
    query.matchers.add(type=pb.LabelMatcher.EQ, name="job", value="node")
    settings = Settings(default_database=DATABASE, default_table=TABLE)
    started = time.perf_counter()
    response = read(request, settings, query_client, ColumnsCache())
    seconds = time.perf_counter() - started
    found = response.results[0].timeseries
    return seconds, len(found), sum(len(s.samples) for s in found)


def server_once(port: int, start_ms: int, end_ms: int) -> tuple[float, int]:
    """Seconds for the local Timestream to answer the reader's SELECT, every page, and the rows."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from chalicelib.liveanalytics.reader import build_query

    dimensions = ("instance", "job", "cluster", "region")
    sql = build_query(DATABASE, TABLE, [Matcher(EQ, "job", "node")], start_ms, end_ms, dimensions)
    signer = SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "timestream", REGION)
    session = requests.Session()
    rows, token = 0, None
    started = time.perf_counter()
    while True:
        body = json.dumps({"QueryString": sql, **({"NextToken": token} if token else {})})
        request = AWSRequest("POST", f"http://127.0.0.1:{port}/", data=body, headers={
            "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "Timestream_20181101.Query"})
        signer.add_auth(request)
        answer = session.post(request.url, data=body, headers=dict(request.headers), timeout=60)
        answer.raise_for_status()
        page = answer.json()
        rows += len(page["Rows"])
        token = page.get("NextToken")
        if not token:
            return time.perf_counter() - started, rows


def summary(times: list[float]) -> str:
    return (f"median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms over {len(times)} runs")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT,
                        help="checkout whose local_timestream is measured")
    parser.add_argument("--series", type=int, default=400)
    parser.add_argument("--samples", type=int, default=250, help="samples per series, 15 s apart")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"bench-local-timestream-{port}.log"
    process = start_emulator(args.project.resolve(), port, log_path)
    try:
        end_ms = int(time.time() * 1000) - 60_000
        started = time.perf_counter()
        written = fill(port, args.series, args.samples, end_ms)
        fill_seconds = time.perf_counter() - started
        print(f"wrote {written} records ({args.series} series x {args.samples} samples) "
              f"in {fill_seconds:.1f} s")
        runs = [read_once(port, end_ms - 300_000, end_ms) for _ in range(args.repeat)]
        _, found, samples = runs[0]
        print(f"remote read, last 5 minutes, job=\"node\": {found} series, {samples} samples "
              f"({args.project.resolve()})")
        print("  through the connector's reader:  " + summary([seconds for seconds, _, _ in runs]))
        server = [server_once(port, end_ms - 300_000, end_ms) for _ in range(args.repeat)]
        print(f"  the local Timestream's answer:   {summary([seconds for seconds, _ in server])} "
              f"({server[0][1]} rows)")
    finally:
        process.terminate()
        process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
