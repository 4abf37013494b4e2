"""What the recorded workload costs: Timestream write units and dollars per sample.

The workload (bench/workload/recorded.bin, made by record_workload.py) is remote-write requests
as Debian's Prometheus sent them. It is replayed in two orders:

- as recorded: one queue shard, so a request mostly holds one scrape target's series;
- shuffled: the same series (one TimeSeries each, as Prometheus sends them) shuffled across
  requests of the recorded sizes, which is what a Prometheus with many shards (up to 50 by
  default) sends at scale: every request mixes targets.

For each order this module computes, from the records the connector makes of each request
(records.build_records, the connector's own code):

- billed: write units of the calls the connector forms (batching.CallPlanner) with the bodies
  it sends (write_body), as Timestream meters them (metering);
- request order: the same with calls cut in request order, 100 records each (before grouping);
- without CommonAttributes: request order, every record carrying all its dimensions (the
  layout of the older Go connector);
- floor: request order as if every dimension were shared, so that a call costs only the
  records' timestamps, values and measure names, each call rounded up to whole KiB.

The benchmark also sends both orders to the connector over HTTP and takes the units the
stand-in metered on the bodies it received, which must equal `billed`.
"""

from __future__ import annotations

import math
import random
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import snappy

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The prices are the connector's own (its batching weighs write units against Lambda time with
# them): one source of truth.
from chalicelib.config import Settings  # noqa: E402
from chalicelib.liveanalytics import metering  # noqa: E402
from chalicelib.liveanalytics.batching import CallPlanner, chunks  # noqa: E402
from chalicelib.liveanalytics.call_cost import (  # noqa: E402, F401
    API_GATEWAY_HTTP_USD_PER_MILLION_REQUESTS,
    API_GATEWAY_REST_USD_PER_MILLION_REQUESTS,
    LAMBDA_USD_PER_GB_SECOND,
    LAMBDA_USD_PER_MILLION_REQUESTS,
    PRICES_READ,
    TIMESTREAM_USD_PER_MILLION_WRITE_UNITS,
)
from chalicelib.liveanalytics.records import Record, build_records, series_cache  # noqa: E402
from chalicelib.liveanalytics.write_body import shared_attributes  # noqa: E402
from chalicelib.prompb.prometheus_remote_pb2 import WriteRequest, WriteRequestLabelBytes  # noqa: E402

RECORDED = BENCH / "workload" / "recorded.bin"
SHUFFLE_SEED = 20261201
# Far enough in the future that no recorded timestamp is refused as too far ahead.
_NOW_MS = 2**62

# An HTTP API front (the advanced templates' ApiType=HTTP) is priced beside the REST API that
# Chalice deploys: requests are metered in 512 KB increments, and a remote-write request of the
# recorded workload, 8 KB on average, is one.
API_GATEWAY_USD_PER_MILLION_REQUESTS = {
    "REST": API_GATEWAY_REST_USD_PER_MILLION_REQUESTS,
    "HTTP": API_GATEWAY_HTTP_USD_PER_MILLION_REQUESTS,
}


def read_bodies(path: Path = RECORDED) -> list[bytes]:
    """The recorded request bodies (snappy-compressed), in the order they were received."""
    data = path.read_bytes()
    bodies = []
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        offset += 4
        bodies.append(data[offset:offset + length])
        offset += length
    return bodies


def shuffled(bodies: list[bytes], seed: int = SHUFFLE_SEED) -> list[bytes]:
    """The same TimeSeries shuffled across requests of the same sizes."""
    requests = [WriteRequest.FromString(snappy.uncompress(body)) for body in bodies]
    series = [item for request in requests for item in request.timeseries]
    random.Random(seed).shuffle(series)
    out = []
    start = 0
    for request in requests:
        count = len(request.timeseries)
        out.append(snappy.compress(WriteRequest(timeseries=series[start:start + count]).SerializeToString()))
        start += count
    return out


def orders(bodies: list[bytes]) -> dict[str, list[bytes]]:
    return {"as recorded": bodies, "shuffled": shuffled(bodies)}


@dataclass
class Account:
    """Write units of one order of the workload, in each layout."""

    requests: int = 0
    samples: int = 0  # records written (NaN and stale markers are dropped before)
    value_sum: float = 0.0
    billed: int = 0
    calls: int = 0
    request_order: int = 0
    request_order_calls: int = 0
    without_common: int = 0
    floor: int = 0

    def per_thousand(self, units: int) -> float:
        return units * 1000 / self.samples

    @property
    def ratio(self) -> float:
        return self.billed / self.floor

    def ratio_of(self, layout: str) -> float:
        """Units of a layout ("billed", "request_order", "without_common") over the floor's."""
        return getattr(self, layout) / self.floor


def _units(call: list[Record]) -> int:
    common, measure_name = shared_attributes(call)
    return metering.write_units(call, common, common_measure_name=measure_name is not None)


def _floor_units(call: list[Record]) -> int:
    fixed = metering.FIXED_RECORD_BYTES
    return metering.units(sum(fixed + metering.text_bytes(series.measure_name) for series, _, _ in call))


def account(
    bodies: list[bytes], settings: Settings | None = None, planner: CallPlanner | None = None
) -> Account:
    """Write units of every request in `bodies`, through the connector's own record mapping."""
    settings = settings or Settings(default_database="bench", default_table="metrics")
    cache = series_cache(settings)
    planner = planner or CallPlanner()
    result = Account()
    for body in bodies:
        request = WriteRequestLabelBytes.FromString(snappy.uncompress(body))
        batch = build_records(request.timeseries, settings, _NOW_MS, cache)
        result.requests += 1
        result.samples += batch.record_count
        for destination, records in batch.records.items():
            result.value_sum += math.fsum(float(value) for _, value, _ in records)
            calls = planner.calls(destination, records)
            result.calls += len(calls)
            result.billed += sum(_units(call) for call in calls)
            for call in chunks(records):
                result.request_order_calls += 1
                result.request_order += _units(call)
                result.without_common += metering.write_units(call)
                result.floor += _floor_units(call)
    return result


def dollars_per_million_samples(units_per_sample: float, samples_per_request: float,
                                lambda_seconds_per_request: float, memory_mb: int,
                                api_type: str = "REST") -> dict[str, float]:
    """What a million samples cost, by what bills them, behind a REST or an HTTP API."""
    requests = 1e6 / samples_per_request
    gb_seconds = requests * lambda_seconds_per_request * memory_mb / 1024
    return {
        "Timestream writes": units_per_sample * TIMESTREAM_USD_PER_MILLION_WRITE_UNITS,
        "API Gateway requests": requests * API_GATEWAY_USD_PER_MILLION_REQUESTS[api_type] / 1e6,
        "Lambda GB-seconds": gb_seconds * LAMBDA_USD_PER_GB_SECOND,
        "Lambda requests": requests * LAMBDA_USD_PER_MILLION_REQUESTS / 1e6,
    }


# The reference deployment of the cost-by-front table: the prod stage's memory and a Lambda
# duration per request as `make bench` measured it for the recorded workload (median wall time
# with 20 ms per Timestream call, rounded; README "What Timestream bills").
REFERENCE_MEMORY_MB = 512
REFERENCE_LAMBDA_SECONDS_PER_REQUEST = 0.025
FRONT_DOOR_MARKERS = ("<!-- cost-by-front: made by `python bench/cost.py --front-door`; a test checks it -->",
                      "<!-- /cost-by-front -->")


def front_door_costs(result: Account | None = None) -> dict[str, dict[str, float]]:
    """Dollars per million samples of the recorded workload (as recorded) behind each API type."""
    result = result or account(read_bodies())
    return {
        api_type: dollars_per_million_samples(
            result.billed / result.samples, result.samples / result.requests,
            REFERENCE_LAMBDA_SECONDS_PER_REQUEST, REFERENCE_MEMORY_MB, api_type,
        )
        for api_type in API_GATEWAY_USD_PER_MILLION_REQUESTS
    }


def front_door_table(result: Account | None = None) -> str:
    """The README's and the deploy guide's cost-by-front table, from the constants above."""
    result = result or account(read_bodies())
    costs = front_door_costs(result)
    rest, http = costs["REST"], costs["HTTP"]
    labels = {
        "Timestream writes":
            f"Timestream writes ({result.per_thousand(result.billed):.1f} write units per 1000 samples)",
        "API Gateway requests":
            f"API Gateway requests ({result.samples / result.requests:.0f} samples a request)",
        "Lambda GB-seconds": (f"Lambda GB-seconds ({REFERENCE_MEMORY_MB} MB × "
                              f"{REFERENCE_LAMBDA_SECONDS_PER_REQUEST * 1000:.0f} ms a request)"),
        "Lambda requests": "Lambda requests",
    }
    lines = [
        f"| $ per million samples (us-east-1, prices of {PRICES_READ}) | REST API | HTTP API |",
        "|---|---|---|",
    ]
    lines += [f"| {labels[part]} | {rest[part]:.4f} | {http[part]:.4f} |" for part in rest]
    total_rest, total_http = sum(rest.values()), sum(http.values())
    lines.append(f"| **total** | **{total_rest:.4f}** | **{total_http:.4f}** |")
    lines.append(f"| API Gateway's share of the total | {rest['API Gateway requests'] / total_rest:.0%} "
                 f"| {http['API Gateway requests'] / total_http:.0%} |")
    return "\n".join(lines)


def main() -> int:
    """Print the write units of the committed workload (no servers: a quick look); with
    --front-door, the cost-by-front table of the README and the deploy guide."""
    if sys.argv[1:] == ["--front-door"]:
        print(front_door_table())
        return 0
    bodies = read_bodies()
    for name, ordered in orders(bodies).items():
        result = account(ordered)
        print(f"{name}: {result.requests} requests, {result.samples} samples; units per 1000 samples: "
              f"billed {result.per_thousand(result.billed):.1f} ({result.calls} calls), "
              f"floor {result.per_thousand(result.floor):.1f}, ratio {result.ratio:.3f}; "
              f"request order {result.per_thousand(result.request_order):.1f} "
              f"({result.request_order_calls} calls), "
              f"without CommonAttributes {result.per_thousand(result.without_common):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
