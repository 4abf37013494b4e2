"""`make bench`: what the /write path costs, next to Prometheus's own remote-write receiver.

One run, one machine, seven measurements:

1. CPU per sample of the whole /write path over HTTP: `chalice local` (one process, no
   autoreload) writing to a fast Timestream stand-in (bench/standin.py, another process). CPU
   is user+sys of the serving process from /proc/PID/stat (all its threads, live or exited),
   read before and after each pass of requests sent one after another. A warm-up round goes
   first and is not measured, so botocore client creation and first-import costs are excluded.
2. The same requests to Prometheus 2.42 (`--web.enable-remote-write-receiver`, appending to its
   TSDB), measured the same way, passes interleaved with the connector's; and the ratio.
3. Latency of one 2000-sample request when every WriteRecords call takes 20 ms (stand-in delay).
4. Cold start: a fresh interpreter imports app.py and answers its first /write, invoked as the
   Lambda runtime does (`app(event, context)`, API Gateway proxy event), from spawn to response.
5. Peak memory (VmHWM) of a fresh process handling one request of just under 32 MiB
   decompressed, invoked the same way.
6. Cost: requests recorded from a real Prometheus (bench/workload/, bench/cost.py) sent in two
   orders; the write units Timestream bills for the bodies the connector sends, against a floor
   and the layouts it is compared with, and dollars per million samples.
7. Both shapes of request: the requests of 1-3 (a node's series together) beside requests whose
   every series is of its own node (bench/workload.py fleet_series): calls per request, write
   units against the floor, CPU per sample, latency at 20 ms per call, dollars per million
   samples, for each.

Requests: 2000 node-exporter-like series each, 8 labels, one sample, full-precision values and
current timestamps, all built and snappy-compressed before anything is timed (bench/workload.py).
Every phase checks that the stand-in (or Prometheus) received every sample; anything missing,
any non-2xx, any error exits nonzero. Targets missed are reported, not failed: exit 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import cost  # noqa: E402
import workload  # noqa: E402

PYTHON = sys.executable
HOST = "127.0.0.1"
DATABASE = "bench"
TABLE = "metrics"
ACCESS_KEY_ID = "AKIALOCALEXAMPLE0000"
SECRET_ACCESS_KEY = "local-secret-key"
PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
MIB = 1024 * 1024
MAX_DECOMPRESSED = 32 * MIB
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "User-Agent": "Prometheus/2.42.0",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "Authorization": "Basic " + base64.b64encode(f"{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}".encode()).decode(),
}

# The targets the write path is held to.
TARGET_LATENCY_MS = 150.0
# Both shapes of request (series grouped by target, one series per target) within this, so that
# saving write units never costs a request's latency unseen.
TARGET_SHAPE_LATENCY_MS = 100.0
TARGET_COLD_START_MS = 500.0
TARGET_PEAK_MIB = 256.0
# The recorded workload is sent this many more times at full speed, for CPU per sample on it.
COST_CPU_PASSES = 3


class BenchError(Exception):
    """Something is broken (not merely slow): the run cannot be trusted."""


# ---------------------------------------------------------------- processes and /proc


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, sys) CPU of a whole process (every thread, including exited ones) from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """user+sys CPU of a whole process (every thread, including exited ones) from /proc."""
    return sum(cpu_times(pid))


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def listening_pid(port: int, root_pid: int) -> int | None:
    """Which of root_pid and its descendants owns the socket listening on HOST:port."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    parts = line.split()
                    if parts[1].endswith(f":{port:04X}") and parts[3] == "0A":
                        inodes.add(f"socket:[{parts[9]}]")
        except OSError:
            continue
    pending = [root_pid]
    seen = set()
    while pending and len(seen) < 64:
        pid = pending.pop()
        seen.add(pid)
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
                except OSError:
                    continue
        except OSError:
            pass
        pending.extend(child for child in children_of(pid) if child not in seen)
    return None


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def command_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()


@dataclass
class Server:
    name: str
    argv: list[str]
    port: int
    log_dir: Path
    env: dict[str, str] | None = None
    cwd: Path = ROOT
    process: subprocess.Popen | None = None
    pid: int = 0  # the process that owns the listening socket
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.log_dir / f"{self.name}.log"

    def start(self, ready_seconds: float = 60.0) -> None:
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + ready_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            pid = listening_pid(self.port, self.process.pid)
            if pid is not None:
                self.pid = pid
                return
            time.sleep(0.1)
        raise BenchError(f"{self.name} not listening on {HOST}:{self.port} after {ready_seconds:.0f}s:\n"
                         f"{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise BenchError(f"{self.name} died:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# ---------------------------------------------------------------- HTTP helpers


class StandInClient:
    def __init__(self, port: int) -> None:
        self.base = f"http://{HOST}:{port}/_standin"
        self.session = requests.Session()

    def stats(self) -> dict:
        return self.session.get(f"{self.base}/stats", timeout=10).json()

    def reset(self) -> None:
        self.session.post(f"{self.base}/reset", timeout=10).raise_for_status()

    def delay(self, ms: float) -> None:
        self.session.post(f"{self.base}/delay", params={"ms": ms}, timeout=10).raise_for_status()

    def expect(self, records: int, value_sum: float, what: str) -> dict:
        """Fail loudly unless exactly `records` records (with these values) arrived since reset."""
        stats = self.stats()
        if stats["errors"]:
            raise BenchError(f"{what}: the stand-in refused {stats['errors']} calls: "
                             f"{stats['error_examples']}")
        if stats["records"] != records:
            raise BenchError(f"{what}: the stand-in received {stats['records']} records, "
                             f"expected {records} (one per sample sent)")
        if not math.isclose(stats["value_sum"], value_sum, rel_tol=1e-9, abs_tol=1e-6):
            raise BenchError(f"{what}: sum of the values received {stats['value_sum']!r} "
                             f"differs from the sum sent {value_sum!r}")
        return stats


def post(session: requests.Session, url: str, body: bytes, what: str) -> float:
    """POST one remote write request; seconds taken. Non-2xx is a BenchError."""
    started = time.perf_counter()
    response = session.post(url, data=body, headers=HEADERS, timeout=120)
    elapsed = time.perf_counter() - started
    if not 200 <= response.status_code < 300:
        raise BenchError(f"{what}: {url} answered {response.status_code}: {response.text.strip()[:300]}")
    return elapsed


def prometheus_appended(port: int) -> float:
    """prometheus_tsdb_head_samples_appended_total, all types summed."""
    text = requests.get(f"http://{HOST}:{port}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_tsdb_head_samples_appended_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_ready(url: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise BenchError(f"{url} not ready after {seconds:.0f}s")


# ---------------------------------------------------------------- measurements


@dataclass
class PassResult:
    samples: int
    cpu_seconds: float
    wall_seconds: list[float]
    # The kernel's share (loopback TCP on both ends of the connection is charged to the sender).
    sys_seconds: float = 0.0

    @property
    def us_per_sample(self) -> float:
        return self.cpu_seconds / self.samples * 1e6


def measure_pass(server: Server, url: str, session: requests.Session, bodies: list[bytes],
                 samples: int, what: str) -> PassResult:
    server.check_alive()
    user_before, sys_before = cpu_times(server.pid)
    walls = [post(session, url, body, what) for body in bodies]
    user_after, sys_after = cpu_times(server.pid)
    user, system = user_after - user_before, sys_after - sys_before
    return PassResult(samples, user + system, walls, system)


def summary(passes: list[PassResult]) -> dict:
    samples = sum(p.samples for p in passes)
    cpu = sum(p.cpu_seconds for p in passes)
    walls = [w for p in passes for w in p.wall_seconds]
    per_pass = [p.us_per_sample for p in passes]
    return {
        "us_per_sample": cpu / samples * 1e6,
        "per_pass": per_pass,
        "cpu_ms_per_request": cpu / len(walls) * 1000,
        "wall_ms_median": statistics.median(walls) * 1000,
        "requests": len(walls),
        "samples": samples,
    }


def connector_env(standin_port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "TIMESTREAM_", "DEFAULT_", "DATABASE_", "TABLE_"))}
    env.update({
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "TIMESTREAM_WRITE_ENDPOINT": f"http://{HOST}:{standin_port}",
        "DEFAULT_DATABASE": DATABASE,
        "DEFAULT_TABLE": TABLE,
        "LOG_LEVEL": "WARNING",
    })
    for name in ("WRITE_CONCURRENCY",):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def run_probe(argv: list[str], project: Path, env: dict[str, str], what: str, timeout: float = 120) -> dict:
    completed = subprocess.run([PYTHON, str(BENCH / "lambda_probe.py"), *argv], cwd=project, env=env,
                               capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise BenchError(f"{what}: probe exited {completed.returncode}:\n{completed.stderr[-2000:]}"
                         f"{completed.stdout[-500:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def lambda_memory_mb(project: Path) -> int:
    """The deployed function's memory (the prod stage of .chalice/config.json; Chalice's default
    is 128 MB)."""
    try:
        config = json.loads((project / ".chalice" / "config.json").read_text())
    except (OSError, ValueError):
        return 128
    stage = config.get("stages", {}).get("prod", {})
    return int(stage.get("lambda_memory_size", config.get("lambda_memory_size", 128)))


def measure_cost(session: requests.Session, url: str, timestream: StandInClient, delay_ms: float,
                 connector: Server, rows: list[tuple[str, str, str, str]], notes: list[str],
                 project: Path) -> None:
    """Send the recorded workload in both orders; the stand-in meters the bodies it receives.

    Timestream calls take `delay_ms` each, so the wall time per request stands for the Lambda
    duration that is billed. Then the same requests again at full speed, for the connector's CPU
    per sample on real traffic."""
    bodies = cost.read_bodies()
    memory_mb = lambda_memory_mb(project)
    results = {}
    cpu = {}
    for order, ordered in cost.orders(bodies).items():
        expected = cost.account(ordered)
        timestream.reset()
        timestream.delay(delay_ms)
        walls = [post(session, url, body, f"cost, {order}") for body in ordered]
        timestream.delay(0)
        stats = timestream.expect(expected.samples, expected.value_sum, f"cost, {order}")
        results[order] = (expected, stats, statistics.median(walls))
        passes = []
        for _ in range(COST_CPU_PASSES):
            timestream.reset()
            passes.append(measure_pass(connector, url, session, ordered, expected.samples, f"cost, {order}"))
            timestream.expect(expected.samples, expected.value_sum, f"cost, {order}, CPU pass")
        cpu[order] = summary(passes)
        if project == ROOT and stats["units"] != expected.billed:
            notes.append(f"cost, {order}: the stand-in metered {stats['units']} units, this checkout's "
                         f"batching predicts {expected.billed} (calls formed with what the connector learnt "
                         "before)")
    orders = " / ".join(results)
    first = next(iter(results.values()))[0]
    per_request = first.samples / first.requests
    rows.append((f"6. cost of the recorded workload: {first.requests} requests of Prometheus 2.42 (node "
                 f"exporter and itself), {first.samples} samples, {per_request:.0f} per request", "", "", ""))
    for order, (expected, stats, _) in results.items():
        ratio = stats["units"] / expected.floor
        rows.append((f"   write units per 1000 samples, {order}: billed / floor / ratio",
                     f"{expected.per_thousand(stats['units']):.1f} ({stats['calls']} calls) / "
                     f"{expected.per_thousand(expected.floor):.1f} / {ratio:.2f}",
                     "ratio <= 1.3", verdict(ratio <= 1.3)))
    layouts = (("request order, 100 records a call (before grouping)", "request_order"),
               ("without CommonAttributes (the older Go connector)", "without_common"))
    for label, field_name in layouts:
        values = [f"{done.per_thousand(getattr(done, field_name)):.1f} ({done.ratio_of(field_name):.2f})"
                  for done, _, _ in results.values()]
        rows.append((f"   {label}, {orders} (ratio to floor)", " / ".join(values), "", ""))
    rows.append((f"   $ per million samples, {orders} (us-east-1, prices of {cost.PRICES_READ})", "", "", ""))
    notes.append(f"cost: Lambda of {memory_mb} MB (.chalice/config.json, prod), billed for the median wall "
                 f"time of a request of the recorded workload with {delay_ms:.0f} ms per Timestream call; "
                 "API Gateway REST API; prices in bench/cost.py")
    split = {order: cost.dollars_per_million_samples(stats["units"] / expected.samples,
                                                     expected.samples / expected.requests, wall, memory_mb)
             for order, (expected, stats, wall) in results.items()}
    for part in next(iter(split.values())):
        rows.append((f"     {part}", " / ".join(f"${each[part]:.4f}" for each in split.values()), "", ""))
    rows.append(("     total", " / ".join(f"${sum(each.values()):.4f}" for each in split.values()), "", ""))
    for label, field_name in layouts:
        values = [cost.dollars_per_million_samples(getattr(done, field_name) / done.samples, 1, 0, 0)
                  for done, _, _ in results.values()]
        rows.append((f"     Timestream writes, {label.split(' (')[0]}",
                     " / ".join(f"${dollars['Timestream writes']:.4f}" for dollars in values), "", ""))
    walls = " / ".join(f"{wall * 1000:.0f} ms" for _, _, wall in results.values())
    rows.append(("     Lambda billed time per request (median wall)", walls, "", ""))
    label = f"   connector CPU per sample on them ({COST_CPU_PASSES} passes at full speed), {orders}"
    rows.append((label, " / ".join(f"{each['us_per_sample']:.1f} us" for each in cpu.values()), "", ""))


@dataclass
class ShapeResult:
    """One shape of request (bench/workload.py SHAPES): what the connector did with it."""

    passes: list[PassResult] = field(default_factory=list)
    requests: int = 0
    calls: int = 0  # WriteRecords calls of the measured passes
    units: int = 0  # write units the stand-in metered on them
    floor_units: int = 0  # the same samples' floor (cost.py), per request summed
    latency_ms: list[float] = field(default_factory=list)

    def add_pass(self, result: PassResult, stats: dict, requests: int) -> None:
        self.passes.append(result)
        self.requests += requests
        self.calls += stats["calls"]
        self.units += stats["units"]

    @property
    def samples(self) -> int:
        return sum(p.samples for p in self.passes)


def floor_per_request(bodies: list[bytes]) -> float:
    """The floor's write units per request (cost.py: calls of 100 as if every dimension were
    shared), from the connector's own records of these requests."""
    return cost.account(bodies).floor / len(bodies)


def measure_latency(session: requests.Session, url: str, timestream: StandInClient, bodies: list[bytes],
                    samples_per_request: int, delay_ms: float, what: str) -> tuple[list[float], dict]:
    """Median-ready walls (ms) of `bodies` sent one after another, each Timestream call taking
    `delay_ms`, after two not counted; the stand-in's stats for the counted ones."""
    timestream.delay(delay_ms)
    for body in bodies[:2]:
        post(session, url, body, f"{what} warm-up")
    timestream.reset()
    walls = [post(session, url, body, what) * 1000 for body in bodies[2:]]
    stats = timestream.stats()
    expected = (len(bodies) - 2) * samples_per_request
    if stats["errors"] or stats["records"] != expected:
        raise BenchError(f"{what}: stand-in received {stats['records']} records, expected {expected}; "
                         f"errors {stats['error_examples']}")
    timestream.delay(0)
    return walls, stats


def measure_shape(load: workload.Workload, passes: int, latency_requests: int, delay_ms: float,
                  connector: Server, url: str, session: requests.Session, timestream: StandInClient,
                  shape: str) -> ShapeResult:
    """CPU passes (after a warm-up round) and latency of one shape of request."""
    per_request = load.series_per_request
    warm = load.round(0)
    timestream.reset()
    for body, _ in warm:
        post(session, url, body, f"{shape}, warm-up")
    timestream.expect(len(warm) * per_request, math.fsum(v for _, v in warm), f"{shape}, warm-up")
    result = ShapeResult()
    for round_index in range(1, passes + 1):
        batch = load.round(round_index)
        bodies = [body for body, _ in batch]
        timestream.reset()
        measured = measure_pass(connector, url, session, bodies, len(bodies) * per_request, shape)
        stats = timestream.expect(len(bodies) * per_request, math.fsum(v for _, v in batch),
                                  f"{shape}, pass {round_index}")
        result.add_pass(measured, stats, len(bodies))
        print(f"{shape}, pass {round_index:2d}: connector {measured.us_per_sample:6.1f} us/sample, "
              f"{stats['calls'] / len(bodies):.1f} calls/request", flush=True)
    result.floor_units = round(floor_per_request([body for body, _ in load.round(1)]) * result.requests)
    bodies = [body for r in range(1, passes + 1) for body, _ in load.round(r)]
    bodies = [bodies[i % len(bodies)] for i in range(latency_requests + 2)]
    result.latency_ms, _ = measure_latency(session, url, timestream, bodies, per_request, delay_ms,
                                           f"{shape}, latency")
    return result


def shape_rows(results: dict[str, ShapeResult], memory_mb: int, delay_ms: float,
               rows: list[tuple[str, str, str, str]]) -> None:
    """Per shape: calls per request, units per 1000 samples against the floor, CPU per sample,
    latency, dollars per million samples."""
    names = " / ".join(results)
    rows.append((f"7. both shapes of 2000-sample request: {names}", "", "", ""))
    values = list(results.values())

    def row(label: str, texts: list[str], target: str = "", result: str = "") -> None:
        rows.append((f"   {label}", " / ".join(texts), target, result))

    row("WriteRecords calls per request", [f"{r.calls / r.requests:.1f}" for r in values])
    row("write units per 1000 samples: billed (floor, ratio)",
        [f"{r.units * 1000 / r.samples:.1f} ({r.floor_units * 1000 / r.samples:.1f}, "
         f"{r.units / r.floor_units:.2f})" for r in values])
    cpu = [sum(p.cpu_seconds for p in r.passes) / r.samples * 1e6 for r in values]
    row("connector CPU per sample (chalice local)", [f"{us:.1f} us" for us in cpu])
    latencies = [statistics.median(r.latency_ms) for r in values]
    fast = all(ms <= TARGET_SHAPE_LATENCY_MS for ms in latencies)
    row(f"latency, {delay_ms:.0f} ms per Timestream call (median)", [f"{ms:.0f} ms" for ms in latencies],
        f"<= {TARGET_SHAPE_LATENCY_MS:.0f} ms", verdict(fast))
    dollars = [sum(cost.dollars_per_million_samples(r.units / r.samples, r.samples / r.requests, ms / 1000,
                                                    memory_mb).values())
               for r, ms in zip(values, latencies, strict=True)]
    row(f"$ per million samples (all four bills, Lambda {memory_mb} MB)", [f"${d:.4f}" for d in dollars])


def machine_info() -> list[str]:
    model = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        mem_kib = int(handle.readline().split()[1])
    try:
        prom_version = subprocess.run([PROMETHEUS, "--version"], capture_output=True, text=True,
                                      timeout=10).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        prom_version = "not found"
    import chalice

    return [
        f"CPU: {model}; {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable); "
        f"{mem_kib / MIB:.1f} GiB RAM; {platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({PYTHON}); chalice {chalice.__version__}; "
        f"{prom_version}",
    ]


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark of the /write path.")
    parser.add_argument("--sets", type=int, default=10, help="distinct requests per round (default 10)")
    parser.add_argument("--min-passes", type=int, default=4,
                        help="measured passes (one round of --sets requests each) after the warm-up")
    parser.add_argument("--max-passes", type=int, default=16,
                        help="rounds pre-built; Prometheus is measured on all of them")
    parser.add_argument("--pass-seconds", type=float, default=30.0,
                        help="after --min-passes, keep adding passes (up to --max-passes) while the "
                             "measured passes have taken less than this many seconds in all, so fast "
                             "code is measured over more samples")
    parser.add_argument("--series", type=int, default=2000, help="series (samples) per request")
    parser.add_argument("--shape-passes", type=int, default=4,
                        help="measured passes of the one-series-per-target requests")
    parser.add_argument("--latency-requests", type=int, default=10)
    parser.add_argument("--latency-delay-ms", type=float, default=20.0)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--skip-prometheus", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-cost", action="store_true", help="leave out the recorded workload's cost")
    parser.add_argument("--project", type=Path, default=ROOT,
                        help="the Chalice project to benchmark (default: this repository), e.g. a "
                             "`git worktree` of an older commit for a before/after comparison")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and say where")
    args = parser.parse_args()
    if not (1 <= args.sets <= 50 and 1 <= args.min_passes <= args.max_passes <= 40
            and 1 <= args.series <= 20000 and 1 <= args.latency_requests <= 100
            and 1 <= args.cold_runs <= 20 and 0 <= args.pass_seconds <= 120 and 1 <= args.shape_passes <= 40):
        parser.error("values out of range (sets 1-50, 1 <= min-passes <= max-passes <= 40, "
                     "series 1-20000, latency-requests 1-100, cold-runs 1-20, pass-seconds 0-120)")
    project = args.project.resolve()
    if not (project / "app.py").is_file():
        parser.error(f"{project} has no app.py")

    started = time.monotonic()
    print("== make bench: /write path ==", flush=True)
    for line in machine_info():
        print(line)
    print(f"load average at start: {load_average()}", flush=True)

    log_dir = Path(tempfile.mkdtemp(prefix="bench-write-"))
    servers: list[Server] = []
    rows: list[tuple[str, str, str, str]] = []
    notes: list[str] = []
    try:
        # -- requests, built before anything is timed
        t0 = time.perf_counter()
        now_ms = int(time.time() * 1000)
        load = workload.Workload(args.sets, args.max_passes + 1, args.series, now_ms)
        fleet = workload.Workload(args.sets, args.shape_passes + 1, args.series, now_ms,
                                  shape="one series per target")
        if args.skip_memory:
            large = None
        else:
            large = workload.large_request(MAX_DECOMPRESSED, now_ms)
        per_request = args.series
        print(f"built {args.sets * (args.max_passes + 1)} requests of {per_request} series "
              f"(~{load.raw_bytes / 1024:.0f} KiB protobuf, ~{len(load.request(0, 0)) / 1024:.0f} KiB snappy)"
              + (f" and one of {large[2]} series, {large[1]} bytes decompressed "
                 f"({MAX_DECOMPRESSED - large[1]} under 32 MiB), {len(large[0]) / MIB:.1f} MiB snappy"
                 if large else "")
              + f" in {time.perf_counter() - t0:.1f}s", flush=True)

        # -- servers
        standin_port = free_port()
        standin = Server("standin", [PYTHON, str(BENCH / "standin.py"), "--port", str(standin_port),
                                     "--database", DATABASE, "--table", TABLE], standin_port, log_dir)
        servers.append(standin)
        standin.start()
        timestream = StandInClient(standin_port)

        env = connector_env(standin_port)
        connector_port = free_port()
        # --no-autoreload: with autoreload chalice local serves from a child process whose
        # file-watcher thread stat()s the whole project (.venv included) every second, which
        # would be counted as the connector's CPU, and would restart the server whenever
        # someone edits a file in the tree during the run.
        connector = Server("connector", [str(Path(PYTHON).parent / "chalice"), "local", "--host", HOST,
                                         "--port", str(connector_port), "--stage", "local",
                                         "--no-autoreload"],
                           connector_port, log_dir, env=env, cwd=project)
        servers.append(connector)
        connector.start()
        connector_url = f"http://{HOST}:{connector_port}/write"
        print(f"project: {project}", flush=True)
        print(f"connector: chalice local pid {connector.pid} ({command_of(connector.pid)}), "
              f"spawned pid {connector.process.pid}, children {children_of(connector.pid) or 'none'}; "
              f"WRITE_CONCURRENCY={env.get('WRITE_CONCURRENCY', 'default')}; "
              f"stand-in pid {standin.pid}", flush=True)

        prometheus = None
        if not args.skip_prometheus:
            if not Path(PROMETHEUS).exists():
                raise BenchError(f"{PROMETHEUS} not found: apt-get install -y prometheus "
                                 "(or --skip-prometheus)")
            config = log_dir / "prometheus.yml"
            config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
            prometheus_port = free_port()
            prometheus = Server("prometheus", [PROMETHEUS, "--web.enable-remote-write-receiver",
                                               f"--config.file={config}",
                                               f"--storage.tsdb.path={log_dir / 'tsdb'}",
                                               f"--web.listen-address={HOST}:{prometheus_port}",
                                               "--log.level=warn"],
                                prometheus_port, log_dir)
            servers.append(prometheus)
            prometheus.start()
            wait_ready(f"http://{HOST}:{prometheus_port}/-/ready")
            prometheus_url = f"http://{HOST}:{prometheus_port}/api/v1/write"
            print(f"prometheus: pid {prometheus.pid} on {HOST}:{prometheus_port}", flush=True)

        session = requests.Session()

        # -- 1 & 2: warm-up round 0 (not measured), then interleaved passes
        warm = load.round(0)
        timestream.reset()
        for body, _ in warm:
            post(session, connector_url, body, "warm-up")
        timestream.expect(len(warm) * per_request, math.fsum(s for _, s in warm), "warm-up")
        if prometheus:
            before = prometheus_appended(prometheus.port)
            for body, _ in warm:
                post(session, prometheus_url, body, "prometheus warm-up")
            appended = prometheus_appended(prometheus.port) - before
            if appended != len(warm) * per_request:
                raise BenchError(f"prometheus warm-up appended {appended:.0f} samples, "
                                 f"expected {len(warm) * per_request}")
        print(f"warm-up: {len(warm)} requests to each server (not measured: client creation, "
              "first imports, Prometheus series creation)", flush=True)

        connector_passes: list[PassResult] = []
        grouped = ShapeResult()
        prometheus_passes: list[PassResult] = []
        standin_cpu = 0.0

        def prometheus_pass(round_index: int, bodies: list[bytes], samples: int) -> PassResult:
            before = prometheus_appended(prometheus.port)
            result = measure_pass(prometheus, prometheus_url, session, bodies, samples, "prometheus")
            appended = prometheus_appended(prometheus.port) - before
            if appended != samples:
                raise BenchError(f"prometheus pass {round_index} appended {appended:.0f} samples, "
                                 f"expected {samples}")
            prometheus_passes.append(result)
            return result

        measuring = time.monotonic()
        for round_index in range(1, args.max_passes + 1):
            if round_index > args.min_passes and time.monotonic() - measuring > args.pass_seconds:
                break
            batch = load.round(round_index)
            bodies = [body for body, _ in batch]
            samples = len(bodies) * per_request
            timestream.reset()
            standin_before = cpu_seconds(standin.pid)
            result = measure_pass(connector, connector_url, session, bodies, samples, "connector")
            standin_cpu += cpu_seconds(standin.pid) - standin_before
            stats = timestream.expect(samples, math.fsum(v for _, v in batch), f"pass {round_index}")
            connector_passes.append(result)
            grouped.add_pass(result, stats, len(bodies))
            line = (f"pass {round_index:2d}: connector {result.us_per_sample:6.1f} us/sample "
                    f"({result.cpu_seconds:.2f}s CPU, {statistics.median(result.wall_seconds) * 1000:.0f} ms "
                    "median wall/request)")
            if prometheus:
                presult = prometheus_pass(round_index, bodies, samples)
                line += (f" | prometheus {presult.us_per_sample:5.1f} us/sample "
                         f"({presult.cpu_seconds:.2f}s CPU, "
                         f"{statistics.median(presult.wall_seconds) * 1000:.0f} ms median wall/request)")
            print(line, flush=True)
        if prometheus and len(connector_passes) < args.max_passes:
            # Prometheus is cheap per request and its CPU per pass varies with Go's GC and TSDB
            # housekeeping, so it also gets the remaining pre-built rounds: more samples, same shape.
            for round_index in range(len(connector_passes) + 1, args.max_passes + 1):
                bodies = [body for body, _ in load.round(round_index)]
                prometheus_pass(round_index, bodies, len(bodies) * per_request)
            print(f"prometheus alone: passes {len(connector_passes) + 1}-{args.max_passes}: "
                  + " ".join(f"{r.us_per_sample:.1f}" for r in prometheus_passes[len(connector_passes):])
                  + " us/sample", flush=True)

        c = summary(connector_passes)
        spread = f"{len(c['per_pass'])} passes: {min(c['per_pass']):.1f}-{max(c['per_pass']):.1f}"
        if prometheus:
            p = summary(prometheus_passes)
            ratio = c["us_per_sample"] / p["us_per_sample"] if p["us_per_sample"] else math.inf
            rows.append(("1. connector CPU per sample (HTTP, chalice local)",
                         f"{c['us_per_sample']:.1f} us ({spread})",
                         f"<= Prometheus ({p['us_per_sample']:.1f} us)",
                         verdict(c["us_per_sample"] <= p["us_per_sample"])))
        else:
            rows.append(("1. connector CPU per sample (HTTP, chalice local)",
                         f"{c['us_per_sample']:.1f} us ({spread})", "<= Prometheus (skipped)", "-"))
        rows.append(("   connector per 2000-sample request: CPU / wall (median)",
                     f"{c['cpu_ms_per_request']:.0f} ms / {c['wall_ms_median']:.0f} ms", "", ""))
        sys_share = sum(r.sys_seconds for r in connector_passes) / c["samples"] * 1e6
        rows.append(("   of which kernel (sys) / user",
                     f"{sys_share:.1f} us / {c['us_per_sample'] - sys_share:.1f} us", "", ""))
        rows.append(("   stand-in CPU per sample (not counted above)",
                     f"{standin_cpu / c['samples'] * 1e6:.1f} us", "", ""))
        if prometheus:
            rows.append(("2. Prometheus 2.42 receiver CPU per sample",
                         f"{p['us_per_sample']:.1f} us ({len(p['per_pass'])} passes: "
                         f"{min(p['per_pass']):.1f}-{max(p['per_pass']):.1f})", "", ""))
            rows.append(("   Prometheus per request: CPU / wall (median)",
                         f"{p['cpu_ms_per_request']:.0f} ms / {p['wall_ms_median']:.0f} ms", "", ""))
            prometheus_sys = sum(r.sys_seconds for r in prometheus_passes) / p["samples"] * 1e6
            rows.append(("   of which kernel (sys) / user",
                         f"{prometheus_sys:.1f} us / {p['us_per_sample'] - prometheus_sys:.1f} us", "", ""))
            rows.append(("   ratio connector / Prometheus", f"{ratio:.1f}x", "<= 1.0x",
                         verdict(ratio <= 1.0)))
            prometheus.stop()

        # -- 3: latency with a slow Timestream
        latency_bodies = [body for round_index in range(1, len(connector_passes) + 1)
                          for body, _ in load.round(round_index)]
        latency_bodies = [latency_bodies[i % len(latency_bodies)] for i in range(args.latency_requests + 2)]
        walls, stats = measure_latency(session, connector_url, timestream, latency_bodies, per_request,
                                       args.latency_delay_ms, "latency")
        grouped.latency_ms = walls
        grouped.floor_units = round(floor_per_request([body for body, _ in load.round(1)]) * grouped.requests)
        latency = statistics.median(walls)
        calls_per_request = stats["calls"] / args.latency_requests
        rows.append((f"3. latency, {per_request} samples, {args.latency_delay_ms:.0f} ms per Timestream call",
                     f"{latency:.0f} ms median (min {min(walls):.0f}, max {max(walls):.0f})",
                     f"<= {TARGET_LATENCY_MS:.0f} ms", verdict(latency <= TARGET_LATENCY_MS)))
        rows.append(("   WriteRecords calls per request / most in flight at once",
                     f"{calls_per_request:.0f} / {stats['max_in_flight']}", "", ""))
        # -- 6 (needs the connector still running): what the recorded workload costs
        if not args.skip_cost:
            measure_cost(session, connector_url, timestream, args.latency_delay_ms, connector, rows, notes,
                         project)
        # -- 7: the other shape of request, one series per target, next to the first
        shapes = {"grouped by target": grouped,
                  "one series per target": measure_shape(fleet, args.shape_passes, args.latency_requests,
                                                         args.latency_delay_ms, connector, connector_url,
                                                         session, timestream, "one series per target")}
        shape_rows(shapes, lambda_memory_mb(project), args.latency_delay_ms, rows)
        connector.stop()

        # -- 4: cold start
        probe_env = {**env, "PYTHONUNBUFFERED": "1"}
        cold_body = log_dir / "cold.bin"
        cold_body.write_bytes(load.request(0, 1))
        totals, imports, firsts, cpus = [], [], [], []
        for run in range(args.cold_runs + 1):
            timestream.reset()
            spawned = time.monotonic()
            result = run_probe(["cold", str(cold_body)], project, probe_env, "cold start")
            timestream.expect(per_request, load.value_sums[(0, 1)], "cold start")
            if run == 0:
                continue  # primes the page cache and __pycache__; not counted
            totals.append((result["answered"] - spawned) * 1000)
            imports.append((result["imported"] - spawned) * 1000)
            firsts.append((result["answered"] - result["before_call"]) * 1000)
            cpus.append(result["cpu_seconds"] * 1000)
        cold = statistics.median(totals)
        rows.append(("4. cold start: spawn python -> import app -> first /write 2xx",
                     f"{cold:.0f} ms median of {len(totals)} (min {min(totals):.0f})",
                     f"<= {TARGET_COLD_START_MS:.0f} ms",
                     verdict(cold <= TARGET_COLD_START_MS)))
        rows.append(("   of which: interpreter start + import app / first request",
                     f"{statistics.median(imports):.0f} ms / {statistics.median(firsts):.0f} ms", "", ""))
        rows.append(("   CPU time of that process until the response (user+sys)",
                     f"{statistics.median(cpus):.0f} ms median", "", ""))

        # -- 5: peak memory for a 32 MiB request
        if large is not None:
            body, raw_size, series_count, value_sum = large
            large_file = log_dir / "large.bin"
            large_file.write_bytes(body)
            timestream.reset()
            result = run_probe(["memory", str(large_file), str(cold_body)], project, probe_env, "peak memory",
                               timeout=300)
            timestream.expect(series_count + per_request, value_sum + load.value_sums[(0, 1)], "peak memory")
            peak = result["vm_hwm_kib"] / 1024
            rows.append((f"5. peak memory (VmHWM), {raw_size / MIB:.2f} MiB request, {series_count} series",
                         f"{peak:.0f} MiB", f"<= {TARGET_PEAK_MIB:.0f} MiB",
                         verdict(peak <= TARGET_PEAK_MIB)))
            rows.append(("   RSS after import app / after a first small request",
                         f"{result['rss_after_import_kib'] / 1024:.0f} MiB / "
                         f"{result['rss_after_warmup_kib'] / 1024:.0f} MiB", "", ""))
            rows.append(("   time to handle the 32 MiB request (fast stand-in)",
                         f"{result['seconds'] * 1000:.0f} ms", "", ""))
            if len(body) > 4.5 * MIB:
                notes.append(f"the 32 MiB request is {len(body) / MIB:.1f} MiB snappy-compressed: over what "
                             "a synchronous Lambda invocation accepts once base64-encoded (6 MB payload)")
    except BenchError as error:
        print(f"\nBENCH BROKEN: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        for server in reversed(servers):
            server.stop()
        if args.keep_logs:
            print(f"logs: {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)

    width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    target_width = max(len(row[2]) for row in rows)
    print()
    print(f"{'measurement':<{width}}  {'value':<{value_width}}  {'target':<{target_width}}  result")
    print("-" * (width + value_width + target_width + 12))
    for name, value, target, result in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {target:<{target_width}}  {result}")
    print()
    print("CPU = user+sys of the serving process from /proc/PID/stat (all threads), warm-up excluded; "
          "cold start and memory invoke app(event, context) like the Lambda runtime.")
    for note in notes:
        print(f"note: {note}")
    print(f"load average at end: {load_average()}; whole bench {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
