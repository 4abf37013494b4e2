"""Where the /write path's CPU goes: the connector under py-spy, serving the benchmark's requests.

    .venv/bin/pip install py-spy      # not a project dependency: for exploration only
    .venv/bin/python bench/profile_write.py [--requests 30] [--project DIR] [--top 25]

Starts the Timestream stand-in and `chalice local` (as bench_write.py does) with the connector
launched by `py-spy record --gil` (only threads holding the GIL are sampled, so waiting on
sockets and idle pool threads do not show), sends a few warm-up requests and then `--requests`
requests of 2000 samples, stops the connector and prints the functions with the most samples
of their own, then the most inclusive ones. Start-up is in the profile too (its share is
small); the raw stacks are kept for flame graphs (`--keep`).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bench_write as bench  # noqa: E402
import workload  # noqa: E402


def frame_name(frame: str, project: Path) -> str:
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    function, path = match.groups()
    path = re.sub(r".*site-packages/", "", path)
    path = re.sub(r".*/lib/python3\.\d+/", "", path)
    path = path.replace(f"{project}/", "")
    return f"{function} ({path})"


def report(raw: Path, project: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        names = [frame_name(f, project) for f in stack.split(";")
                 if "(" in f and not f.startswith(("process ", "thread "))]
        if not names:
            continue
        own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples
    if not total:
        raise SystemExit("py-spy recorded nothing")
    print(f"\n{total} samples (threads holding the GIL)\n-- own time")
    for name, samples in own.most_common(top):
        print(f"{samples / total * 100:5.1f}%  {name}")
    print("-- inclusive")
    for name, samples in inclusive.most_common(top):
        print(f"{samples / total * 100:5.1f}%  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Profile the connector's /write path with py-spy.")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--project", type=Path, default=bench.ROOT)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", action="store_true", help="keep the raw stacks and say where")
    args = parser.parse_args()
    if not 1 <= args.requests <= 200:
        parser.error("--requests must be 1-200")
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    project = args.project.resolve()
    rounds = -(-args.requests // 10) + 1
    load = workload.Workload(10, rounds, 2000, int(time.time() * 1000))
    bodies = [body for r in range(1, rounds) for body, _ in load.round(r)][:args.requests]
    work = Path(tempfile.mkdtemp(prefix="profile-write-"))
    raw = work / "stacks.txt"
    standin_port, connector_port = bench.free_port(), bench.free_port()
    standin = bench.Server("standin", [bench.PYTHON, str(BENCH / "standin.py"), "--port", str(standin_port),
                                       "--database", bench.DATABASE, "--table", bench.TABLE],
                           standin_port, work)
    chalice = [bench.PYTHON, str(Path(bench.PYTHON).parent / "chalice"), "local", "--host", bench.HOST,
               "--port", str(connector_port), "--stage", "local", "--no-autoreload"]
    # py-spy stops sampling (and ends the connector) after --duration: give it ample time.
    spy = bench.Server("connector", [py_spy, "record", "--gil", "-r", str(args.rate), "--duration", "300",
                                     "-f", "raw", "-o", str(raw), "--", *chalice],
                       connector_port, work, env=bench.connector_env(standin_port), cwd=project)
    try:
        standin.start()
        spy.start()
        session = requests.Session()
        url = f"http://{bench.HOST}:{connector_port}/write"
        for body, _ in load.round(0):  # every set once, so the series cache is warm
            bench.post(session, url, body, "warm-up")
        started = time.perf_counter()
        for body in bodies:
            bench.post(session, url, body, "profile")
        print(f"connector pid {spy.pid}: {len(bodies)} requests of 2000 samples in "
              f"{time.perf_counter() - started:.1f}s (under py-spy)")
        # Stop the connector itself: py-spy then writes its output and exits.
        os.kill(spy.pid, signal.SIGTERM)
        spy.process.wait(timeout=60)
        report(raw, project, args.top)
    except bench.BenchError as error:
        print(f"profile broken: {error}", file=sys.stderr)
        return 1
    finally:
        spy.stop()
        standin.stop()
        if args.keep:
            print(f"raw stacks: {raw}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
