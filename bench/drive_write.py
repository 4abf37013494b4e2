"""Sends requests of one shape through a project's app in this process, as Lambda invokes it, and
prints what the /write path cost: for timing a whole process from outside, two commits side by
side (e.g. `/usr/bin/time -v`, alternating the two commands).

    .venv/bin/python bench/standin.py --port 9300 &          # the Timestream stand-in, left running
    .venv/bin/python bench/drive_write.py dump --shape "one series per target" --out /tmp/fleet.bin
    .venv/bin/python bench/drive_write.py run --bodies /tmp/fleet.bin --standin http://127.0.0.1:9300 \
        [--project DIR]

`dump` builds the requests (bench/workload.py: 10 of 2000 series, then the same series in later
rounds) into one file, so that `run` imports nothing but the measured project's code (the
workload's protobuf classes come from this checkout). `run` imports `app.py` of `--project`,
sends the first round (10 requests, every series once) to warm it up, then the others one
after another. The process's whole CPU then holds the import and the warm-up too, the same for
any commit; the loop's own figures are printed as one JSON line: CPU per sample, WriteRecords
calls per request, write units per 1000 samples.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path

import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from lambda_probe import _context, _event  # noqa: E402

SETS = 10


def dump(shape: str, rounds: int, series: int, out: Path) -> None:
    import workload

    load = workload.Workload(SETS, rounds, series, int(time.time() * 1000), shape=shape)
    with open(out, "wb") as handle:
        handle.write(struct.pack(">I", series))
        for round_index in range(rounds):
            for body, _ in load.round(round_index):
                handle.write(struct.pack(">I", len(body)) + body)


def read(path: Path) -> tuple[int, list[bytes]]:
    data = path.read_bytes()
    (series,) = struct.unpack_from(">I", data)
    offset, bodies = 4, []
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        bodies.append(data[offset + 4:offset + 4 + length])
        offset += 4 + length
    return series, bodies


def run(bodies_file: Path, standin: str, project: Path) -> None:
    series, bodies = read(bodies_file)
    warm, measured = bodies[:SETS], bodies[SETS:]
    os.environ.update({
        "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        "TIMESTREAM_WRITE_ENDPOINT": standin.rstrip("/"),
        "DEFAULT_DATABASE": "bench", "DEFAULT_TABLE": "metrics", "LOG_LEVEL": "WARNING",
        "METRICS_NAMESPACE": "",
    })
    project = project.resolve()
    os.chdir(project)
    sys.path.insert(0, str(project))
    import app as module

    control = requests.Session()
    for body in warm:
        module.app(_event(body), _context())
    control.post(f"{standin}/_standin/reset", timeout=10).raise_for_status()
    events = [_event(body) for body in measured]
    started = time.process_time()
    for event in events:
        status = int(module.app(event, _context()).get("statusCode", 0))
        if not 200 <= status < 300:
            raise SystemExit(f"handler answered {status}")
    cpu = time.process_time() - started
    stats = control.get(f"{standin}/_standin/stats", timeout=10).json()
    samples = len(measured) * series
    if stats["records"] != samples or stats["errors"]:
        raise SystemExit(f"stand-in received {stats['records']} records of {samples}, "
                         f"errors {stats['error_examples']}")
    print(json.dumps({"us_per_sample": round(cpu / samples * 1e6, 2),
                      "calls_per_request": stats["calls"] / len(measured),
                      "units_per_1000_samples": round(stats["units"] * 1000 / samples, 1)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dumping = commands.add_parser("dump")
    dumping.add_argument("--shape", default="one series per target")
    dumping.add_argument("--rounds", type=int, default=7, help="the first is the warm-up")
    dumping.add_argument("--series", type=int, default=2000)
    dumping.add_argument("--out", type=Path, required=True)
    running = commands.add_parser("run")
    running.add_argument("--bodies", type=Path, required=True)
    running.add_argument("--standin", required=True, help="URL of a running bench/standin.py")
    running.add_argument("--project", type=Path, default=BENCH.parent)
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.shape, args.rounds, args.series, args.out)
    else:
        run(args.bodies, args.standin.rstrip("/"), args.project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
