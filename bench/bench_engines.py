"""`make bench` (second part): the two storage engines side by side on the same requests.

For each engine the connector runs under `chalice local --no-autoreload`, one process per engine,
both started at once, and receives the same pre-built remote-write requests (bench/workload.py:
2000 node-exporter-like series of 8 labels, one sample each):

- **LiveAnalytics** (`STORAGE_ENGINE=liveanalytics`) writes to the Timestream stand-in of
  `make bench` (bench/standin.py: signed WriteRecords calls, metered, counted);
- **InfluxDB** (`STORAGE_ENGINE=influxdb`) writes to bench/influx_standin.py (POST /write of line
  protocol answered 204, counted, the sender's basic auth checked);
- and, when Debian's `influxd` is installed, **InfluxDB** again against that real server (1.6.7,
  started by `local_influxdb` on loopback in a temporary directory), to show the stand-in is not
  flattering the engine.

What is measured, as bench/bench_write.py measures it (bench/README.md):
1. CPU per sample: user+sys of each connector process from /proc, before and after each pass
   (one request of every set, sent one after another); passes of the engines interleaved, the
   order alternating, after a warm-up round that is not measured. Every pass checks that the
   server received every sample (count and sum of values); anything missing stops the run.
2. Latency: median wall time of one 2000-sample request while every call to the storage takes
   the same fixed delay (20 ms) in both stand-ins; for the real influxd, its own time.

The InfluxDB engine should cost less CPU: one line of text per sample and one HTTP call per 5000
lines, where LiveAnalytics signs a WriteRecords call per 100 records.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(1, str(ROOT))

import workload  # noqa: E402
from bench_write import (  # noqa: E402
    HEADERS,
    HOST,
    PYTHON,
    BenchError,
    PassResult,
    Server,
    StandInClient,
    command_of,
    connector_env,
    free_port,
    load_average,
    machine_info,
    measure_pass,
    post,
    summary,
)

DATABASE = "bench"
INFLUXD = os.environ.get("INFLUXD", "/usr/bin/influxd")


def chalice_local(name: str, port: int, env: dict[str, str], log_dir: Path) -> Server:
    # --no-autoreload: the reloader's file watcher would be counted as the connector's CPU.
    argv = [str(Path(PYTHON).parent / "chalice"), "local", "--host", HOST, "--port", str(port),
            "--stage", "local", "--no-autoreload"]
    return Server(name, argv, port, log_dir, env=env, cwd=ROOT)


def influx_env(url: str) -> dict[str, str]:
    """The connector's environment for the InfluxDB engine: the same as LiveAnalytics' but the
    engine, its URL and a default database (no table: InfluxDB has none)."""
    env = connector_env(0)
    for name in ("TIMESTREAM_WRITE_ENDPOINT", "DEFAULT_TABLE"):
        env.pop(name, None)
    env.update({"STORAGE_ENGINE": "influxdb", "INFLUXDB_URL": url, "DEFAULT_DATABASE": DATABASE})
    return env


class RealInfluxCounter:
    """What the real influxd holds, read the way the stand-ins report it (count, sum of values)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.before = (0, 0.0)

    def _totals(self) -> tuple[int, float]:
        query = 'SELECT count("value"), sum("value") FROM /.*/'
        response = self.session.get(f"{self.url}/query", timeout=120,
                                    params={"db": DATABASE, "q": query})
        response.raise_for_status()
        count, total = 0, 0.0
        for series in response.json()["results"][0].get("series", []):
            _, series_count, series_sum = series["values"][0]
            count += int(series_count)
            total = math.fsum((total, float(series_sum)))
        return count, total

    def reset(self) -> None:
        self.before = self._totals()

    def expect(self, records: int, value_sum: float, what: str) -> None:
        count, total = self._totals()
        count -= self.before[0]
        total -= self.before[1]
        if count != records:
            raise BenchError(f"{what}: influxd holds {count} new points, expected {records}")
        if not math.isclose(total, value_sum, rel_tol=1e-6):
            raise BenchError(f"{what}: influxd's sum of the new values {total!r} differs from {value_sum!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU per sample and latency of both storage engines.")
    parser.add_argument("--sets", type=int, default=10, help="requests per pass (default 10)")
    parser.add_argument("--passes", type=int, default=6, help="measured passes per engine (default 6)")
    parser.add_argument("--series", type=int, default=2000, help="series (samples) per request")
    parser.add_argument("--latency-requests", type=int, default=10)
    parser.add_argument("--latency-delay-ms", type=float, default=20.0)
    parser.add_argument("--no-real-influxd", action="store_true", help="leave out the real influxd")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    if not (1 <= args.sets <= 50 and 1 <= args.passes <= 40 and 1 <= args.series <= 20000
            and 1 <= args.latency_requests <= 100):
        parser.error("values out of range (sets 1-50, passes 1-40, series 1-20000, latency-requests 1-100)")
    real_influxd = not args.no_real_influxd and os.access(INFLUXD, os.X_OK)

    print("== make bench: the two storage engines on the same requests ==", flush=True)
    for line in machine_info():
        print(line)
    print(f"load average at start: {load_average()}", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    servers: list[Server] = []
    influxd = None
    try:
        # Rounds: 0 warm-up, 1..passes measured, then one for latency (fresh timestamps each).
        load = workload.Workload(args.sets, args.passes + 2, args.series, int(time.time() * 1000))

        timestream_port, influx_port = free_port(), free_port()
        timestream_argv = [PYTHON, str(BENCH / "standin.py"), "--port", str(timestream_port),
                           "--database", DATABASE, "--table", "metrics"]
        influx_argv = [PYTHON, str(BENCH / "influx_standin.py"), "--port", str(influx_port),
                       "--database", DATABASE, "--authorization", HEADERS["Authorization"]]
        standins = {
            "liveanalytics": Server("timestream-standin", timestream_argv, timestream_port, log_dir),
            "influxdb": Server("influx-standin", influx_argv, influx_port, log_dir),
        }
        for standin in standins.values():
            servers.append(standin)
            standin.start()
        envs = {"liveanalytics": connector_env(timestream_port),
                "influxdb": influx_env(f"http://{HOST}:{influx_port}")}
        counters = {"liveanalytics": StandInClient(timestream_port), "influxdb": StandInClient(influx_port)}
        engines = ["liveanalytics", "influxdb"]
        if real_influxd:
            from local_influxdb.server import start

            influxd = start(log_dir / "influxd", databases=(DATABASE,))
            envs["influxdb (real influxd 1.6.7)"] = influx_env(influxd.url)
            counters["influxdb (real influxd 1.6.7)"] = RealInfluxCounter(influxd.url)
            engines.append("influxdb (real influxd 1.6.7)")
        connectors: dict[str, Server] = {}
        urls: dict[str, str] = {}
        for index, engine in enumerate(engines):
            port = free_port()
            connectors[engine] = chalice_local(f"connector-{index}", port, envs[engine], log_dir)
            servers.append(connectors[engine])
            connectors[engine].start()
            urls[engine] = f"http://{HOST}:{port}/write"
            print(f"{engine}: chalice local pid {connectors[engine].pid} "
                  f"({command_of(connectors[engine].pid)})", flush=True)
        sessions = {engine: requests.Session() for engine in engines}

        def send_round(engine: str, round_index: int, what: str, measure: bool) -> PassResult | None:
            requests_of_round = load.round(round_index)
            samples = args.series * len(requests_of_round)
            counters[engine].reset()
            if measure:
                result = measure_pass(connectors[engine], urls[engine], sessions[engine],
                                      [body for body, _ in requests_of_round], samples, what)
            else:
                for body, _ in requests_of_round:
                    post(sessions[engine], urls[engine], body, what)
                result = None
            counters[engine].expect(samples, math.fsum(total for _, total in requests_of_round), what)
            return result

        for engine in engines:
            send_round(engine, 0, f"{engine} warm-up", measure=False)
        passes: dict[str, list[PassResult]] = {engine: [] for engine in engines}
        for round_index in range(1, args.passes + 1):
            # Alternate who goes first, so that neither always runs right after the other's load.
            order = engines if round_index % 2 else list(reversed(engines))
            for engine in order:
                passes[engine].append(send_round(engine, round_index, f"{engine} pass {round_index}", True))

        latency: dict[str, float] = {}
        latency_round = args.passes + 1
        for engine in engines:
            client = counters[engine]
            if isinstance(client, StandInClient):
                client.delay(args.latency_delay_ms)
            walls = []
            for set_index in range(min(args.latency_requests, args.sets)):
                walls.append(post(sessions[engine], urls[engine], load.request(set_index, latency_round),
                                  f"{engine} latency"))
            latency[engine] = statistics.median(walls) * 1000
            if isinstance(client, StandInClient):
                client.delay(0)

        results = {engine: summary(passes[engine]) for engine in engines}
        print(f"\nload average at end: {load_average()}")
        print(f"\n{args.passes} passes of {args.sets} requests x {args.series} samples per engine, "
              f"interleaved; latency: median of {min(args.latency_requests, args.sets)} requests, "
              f"{args.latency_delay_ms:.0f} ms per storage call in the stand-ins\n")
        header = f"{'engine':34} {'CPU us/sample':>13} {'(per pass min-max)':>20} {'CPU ms/request':>14} " \
                 f"{'latency ms':>10}"
        print(header)
        print("-" * len(header))
        for engine in engines:
            result = results[engine]
            spread = f"{min(result['per_pass']):.1f}-{max(result['per_pass']):.1f}"
            print(f"{engine:34} {result['us_per_sample']:13.1f} {spread:>20} "
                  f"{result['cpu_ms_per_request']:14.1f} {latency[engine]:10.1f}")
        ratio = results["influxdb"]["us_per_sample"] / results["liveanalytics"]["us_per_sample"]
        print(f"\nInfluxDB engine / LiveAnalytics engine, CPU per sample: {ratio:.2f} "
              f"({'PASS' if ratio < 1 else 'MISS'}: target < 1)")
        print(json.dumps({"bench_engines": {engine: {**results[engine], "latency_ms": latency[engine]}
                                            for engine in engines}, "ratio": ratio}))
        return 0
    except BenchError as error:
        print(f"\nbench_engines: {error}", file=sys.stderr)
        return 1
    finally:
        for server in reversed(servers):
            server.stop()
        if influxd is not None:
            influxd.stop()
        if args.keep_logs:
            print(f"logs: {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

