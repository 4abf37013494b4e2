"""Comparisons between what a sender holds and what Timestream (moto) stored."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from .procs import wait_until
from .senders import Labels, Prometheus
from .stack import MotoTimestream, StoredRecord

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]  # (measure name, sorted dimensions)


def series_key(labels: Labels) -> SeriesKey:
    """Where a Prometheus series must land: __name__ -> measure name, the rest -> dimensions."""
    name = dict(labels).get("__name__", "")
    return name, tuple((k, v) for k, v in labels if k != "__name__")


@dataclass
class Comparison:
    expected: int = 0  # finite samples Prometheus holds in the window
    stored_distinct: int = 0  # distinct (series, time) moto holds for those series in the window
    identical_copies: int = 0  # extra identical copies (a retried write; Timestream keeps one)
    missing: list = field(default_factory=list)
    wrong_value: list = field(default_factory=list)
    conflicting: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)

    def problems(self) -> str:
        lines = []
        for title, items in (
            ("missing from Timestream", self.missing),
            ("stored with a different value", self.wrong_value),
            ("stored twice with different values", self.conflicting),
            ("stored but not in Prometheus", self.unexpected),
        ):
            if items:
                lines.append(f"{len(items)} {title}, e.g. {items[:5]}")
        return "; ".join(lines)

    def summary(self) -> str:
        return (
            f"{self.expected} samples expected, {self.stored_distinct} stored, "
            f"{self.identical_copies} identical rewrites absorbed"
        )


def compare(
    prometheus: dict[Labels, dict[int, str]],
    stored: list[StoredRecord],
    start_ms: int,
    end_ms: int,
) -> Comparison:
    """Every finite sample Prometheus holds in [start_ms, end_ms] must be stored exactly once
    with the identical float64 value; nothing else may be stored for those series in the window.

    An identical copy of a record (same series, time and value) is what a retried request
    writes again; Timestream accepts such a rewrite as a no-op and keeps one record, moto keeps
    both, so identical copies are counted, not failed. Two different values for one series and
    time would be two different stored samples and fail.
    """
    result = Comparison()
    expected: dict[SeriesKey, dict[int, float]] = {}
    for labels, points in prometheus.items():
        finite = {t: float(v) for t, v in points.items() if math.isfinite(float(v))}
        if finite:
            expected[series_key(labels)] = finite
            result.expected += len(finite)

    seen: dict[tuple[SeriesKey, int], list[str]] = defaultdict(list)
    for record in stored:
        if start_ms <= record.time_ms <= end_ms and record.series in expected:
            seen[(record.series, record.time_ms)].append(record.value)

    for (series, t), values in seen.items():
        if len(set(values)) > 1:
            result.conflicting.append((series, t, values))
        result.identical_copies += len(values) - 1
        want = expected[series].get(t)
        if want is None:
            result.unexpected.append((series, t, values[0]))
        elif float(values[0]) != want:
            result.wrong_value.append((series, t, values[0], repr(want)))
    result.stored_distinct = len(seen)

    for series, points in expected.items():
        for t in points:
            if (series, t) not in seen:
                result.missing.append((series, t, points[t]))
    return result


def settled(
    prometheus: Prometheus,
    moto: MotoTimestream,
    selector: str,
    database: str,
    table: str,
    start_ms: int,
    end_ms: int,
    timeout: float = 45,
) -> tuple[Comparison, dict[Labels, dict[int, str]], list[StoredRecord]]:
    """Compare once the window has been delivered: nothing missing any more, or the deadline.

    Prometheus's highest-sent timestamp can pass the end of the window while another shard is
    still retrying an older batch, so the test waits for the data itself (bounded), then
    returns the final comparison for the caller to assert on.
    """
    state: dict = {}

    def complete() -> bool:
        prom = prometheus.raw_samples(selector, start_ms, end_ms)
        stored = moto.records(database, table)
        state["result"] = (compare(prom, stored, start_ms, end_ms), prom, stored)
        return not state["result"][0].missing

    try:
        wait_until(f"every sample of {selector} to reach {database}.{table}", complete, timeout, interval=1.0)
    except TimeoutError:
        if "result" not in state:
            raise
    return state["result"]
