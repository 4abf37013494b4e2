"""Where one WriteRecords call's CPU goes, the way the connector sends it now and the way it
did before (botocore's SigV4Auth on an AWSRequest, http.client), part by part.

    .venv/bin/python bench/standin.py --port 9300 &      # the Timestream stand-in, left running
    .venv/bin/python bench/call_cpu.py --standin http://127.0.0.1:9300 [--calls 2000]

The calls are those the connector forms for the benchmark's requests of each shape
(bench/workload.py), after a request of every series has been seen. Each part is repeated over
those calls, one after another in this thread, and timed with this process's user+sys CPU
(getrusage), so the kernel's share of sending and receiving counts; the stand-in answers from
another process. Prints microseconds per call for each part and shape, as a table.
"""

from __future__ import annotations

import argparse
import http.client
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import snappy

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import workload  # noqa: E402
from cost import ROOT  # noqa: E402, F401  (its import puts the project on sys.path)

from chalicelib.config import Settings  # noqa: E402
from chalicelib.liveanalytics.batching import CallPlanner  # noqa: E402
from chalicelib.liveanalytics.http_client import HttpClient  # noqa: E402
from chalicelib.liveanalytics.records import build_records, series_cache  # noqa: E402
from chalicelib.liveanalytics.sigv4 import SigV4Signer  # noqa: E402
from chalicelib.liveanalytics.transport import (  # noqa: E402
    _CONTENT_TYPE,
    _SIGNING_NAME,
    _TARGET_PREFIX,
    USER_AGENT,
    EndpointCache,
    WriteRecordsSender,
)
from chalicelib.liveanalytics.write_body import write_records_body  # noqa: E402
from chalicelib.prompb.prometheus_remote_pb2 import WriteRequestLabelBytes  # noqa: E402

REGION = "us-east-1"
ACCESS_KEY_ID = "AKIALOCALEXAMPLE0000"
SECRET_ACCESS_KEY = "local-secret-key"


def cpu_us_per_call(part: Callable[[object], object], calls: list, repeat: int) -> float:
    """user+sys CPU of running `part` on each call, `repeat` calls in all, per call."""
    done = 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    while done < repeat:
        for call in calls:
            part(call)
            done += 1
            if done == repeat:
                break
    after = resource.getrusage(resource.RUSAGE_SELF)
    seconds = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds / repeat * 1e6


def shape_calls(shape: str, sets: int = 10) -> list:
    """The calls the connector forms for the requests of one round of `shape` (as `make bench`
    sends them: 10 requests of 2000 series), once it has seen every series twice."""
    settings = Settings(default_database="bench", default_table="metrics")
    cache, planner = series_cache(settings), CallPlanner()
    load = workload.Workload(sets, 3, 2000, int(time.time() * 1000), shape=shape)
    calls: list = []
    for round_index in range(3):
        calls = []
        for body, _ in load.round(round_index):
            request = WriteRequestLabelBytes.FromString(snappy.uncompress(body))
            batch = build_records(request.timeseries, settings, int(time.time() * 1000) + 60_000, cache)
            calls += [call for destination, records in batch.records.items()
                      for call in planner.calls(destination, records)]
        for call in calls:  # the connector keeps each series' record text from its second call
            write_records_body("bench", "metrics", call)
    return calls


class Parts:
    """Each part of a call, the way it is done now and the way it was before, on these calls."""

    def __init__(self, endpoint: str, calls: list) -> None:
        from botocore.credentials import Credentials

        self.endpoint = endpoint
        self.credentials = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY).get_frozen_credentials()
        self.unsigned = {"Content-Type": _CONTENT_TYPE, "X-Amz-Target": _TARGET_PREFIX + "WriteRecords",
                         "User-Agent": USER_AGENT}
        self.signer = SigV4Signer(_SIGNING_NAME, REGION)
        self.client = HttpClient(2.0, 5.0, 1)
        self.sender = WriteRecordsSender(self.credentials, REGION, EndpointCache(endpoint), self.client)
        parts = urlsplit(endpoint)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port)
        self.bodies = {id(call): write_records_body("bench", "metrics", call) for call in calls}
        self.signed = {key: self.signer.headers(self.credentials, endpoint + "/", self.unsigned, body)
                       for key, body in self.bodies.items()}

    def body(self, call: object) -> None:
        write_records_body("bench", "metrics", call)  # type: ignore[arg-type]

    def sign_before(self, call: object) -> None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="POST", url=self.endpoint + "/", data=self.bodies[id(call)],
                             headers=dict(self.unsigned))
        SigV4Auth(self.credentials, _SIGNING_NAME, REGION).add_auth(request)

    def sign_now(self, call: object) -> None:
        self.signer.headers(self.credentials, self.endpoint + "/", self.unsigned, self.bodies[id(call)])

    def http_before(self, call: object) -> None:
        self.connection.request("POST", "/", body=self.bodies[id(call)], headers=self.signed[id(call)])
        response = self.connection.getresponse()
        dict(response.getheaders())
        response.read()

    def http_now(self, call: object) -> None:
        self.client.post(self.endpoint, self.signed[id(call)], self.bodies[id(call)])

    def whole_before(self, call: object) -> None:
        self.body(call)
        self.sign_before(call)
        self.http_before(call)

    def whole_now(self, call: object) -> None:
        self.sender.write_records("bench", "metrics", call)  # type: ignore[arg-type]

    def measure(self, calls: list, repeat: int) -> dict[str, float]:
        return {name: cpu_us_per_call(part, calls, repeat) for name, part in (
            ("JSON body", self.body), ("signing, before", self.sign_before), ("signing, now", self.sign_now),
            ("HTTP, before", self.http_before), ("HTTP, now", self.http_now),
            ("body + signing + HTTP, before", self.whole_before),
            ("body + signing + HTTP, now", self.whole_now))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standin", required=True, help="URL of a running bench/standin.py")
    parser.add_argument("--calls", type=int, default=2000, help="calls timed per part")
    args = parser.parse_args()
    rows = []
    for shape in workload.SHAPES:
        calls = shape_calls(shape)
        measured = Parts(args.standin.rstrip("/"), calls).measure(calls, args.calls)
        records = sum(len(call) for call in calls) / len(calls)
        rows.append((shape, f"calls of {records:.0f} records", measured))
    names = list(rows[0][2])
    print(f"{'us of CPU per call (user+sys)':<32}" + "".join(f"{shape:>26}" for shape, _, _ in rows))
    print(f"{'':<32}" + "".join(f"{what:>26}" for _, what, _ in rows))
    for name in names:
        print(f"{name:<32}" + "".join(f"{measured[name]:>26.0f}" for _, _, measured in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
