"""A Prometheus series as the remote write protocol defines it, whatever engine stores it.

What every engine decides the same way: a series' metric name, the labels of a serialised 1.0
series and exemplar, the symbol references of a 2.0 request, which sample values no engine can
store (NaN, +-Inf, stale markers), the reasons they are counted under, and how a refused series
is described in answers and logs.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.message import DecodeError

from chalicelib.destinations import Labels
from chalicelib.errors import BadRequest
from chalicelib.prompb.prometheus_remote_pb2 import Exemplar as ExemplarV1
from chalicelib.prompb.prometheus_remote_pb2 import Label

METRIC_NAME_LABEL = "__name__"

# Prometheus marks a series stale with this specific NaN bit pattern.
STALE_NAN_BITS = 0x7FF0000000000002
_STALE_BYTES = struct.pack("<Q", STALE_NAN_BITS)
_INF = float("inf")

# Reasons, as they appear in counts and logs. Dropped: normal traffic (2xx).
DROP_STALE = "stale_marker"
DROP_NAN = "nan"
DROP_INF = "infinite"
# A stale histogram (sum = the stale NaN) is dropped like a stale float sample, and counted
# apart so that the written counts can tell histograms from samples.
DROP_STALE_HISTOGRAM = "stale_histogram"
HISTOGRAM_DROPS = frozenset({DROP_STALE_HISTOGRAM})
# Refused: the sender must fix something (4xx after the rest is written).
NO_METRIC_NAME = "missing_metric_name"
NO_DESTINATION = "no_destination"
INVALID_DESTINATION = "invalid_destination"
EMPTY_LABEL_NAME = "empty_label_name"
DUPLICATE_LABEL = "duplicate_label_name"
EXEMPLAR_NOT_FINITE = "exemplar_value_not_finite"
EXEMPLAR_DUPLICATE_LABEL = "exemplar_duplicate_label_name"
TOO_FAR_IN_FUTURE = "timestamp_too_far_in_future"
OLDER_THAN_RETENTION = "timestamp_older_than_retention"

# Refused series named per reason in the answer and the log: enough to find the culprit, few
# enough that a request of 10,000 refused series still logs one short line.
MAX_EXAMPLES_PER_REASON = 3
_EXAMPLE_CHARS = 240
_EXAMPLE_VALUE_CHARS = 64


def cut(text: str, limit: int) -> str:
    """`text`, shortened to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_series(labels: Labels) -> str:
    """`name{label="value",...}` for messages and logs, values and the whole truncated."""
    name = next((value for label, value in labels if label == METRIC_NAME_LABEL), "")
    inner = ",".join(
        f"{label}={json.dumps(cut(value, _EXAMPLE_VALUE_CHARS), ensure_ascii=False)}"
        for label, value in labels
        if label != METRIC_NAME_LABEL
    )
    return cut(f"{name}{{{inner}}}", _EXAMPLE_CHARS)


class Described(Protocol):
    def describe(self) -> str: ...


@dataclass
class Accounting:
    """What one request left out, by reason: dropped samples (normal traffic) and refused ones
    (the sender must fix something), with the first few refused series of each reason."""

    dropped: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refused_examples: dict[str, list[str]] = field(default_factory=dict)

    def refuse(self, reason: str, count: int, series: Described, detail: str = "") -> None:
        self.refused[reason] += count
        examples = self.refused_examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES_PER_REASON:
            examples.append(series.describe() + detail)


def parse_labels(serialized: tuple[bytes, ...]) -> Labels:
    """Serialised Label messages -> (name, value) pairs; BadRequest if one is not a Label."""
    labels = []
    for raw in serialized:
        try:
            label = Label.FromString(raw)
        except DecodeError:
            raise BadRequest("body is not a valid protobuf WriteRequest: a label does not parse") from None
        labels.append((label.name, label.value))
    return labels


def exemplar_v1(raw: bytes) -> tuple[float, int, list[tuple[str, str]]]:
    """A serialised 1.0 Exemplar -> (value, timestamp, labels)."""
    try:
        exemplar = ExemplarV1.FromString(raw)
    except DecodeError:
        raise BadRequest("body is not a valid protobuf WriteRequest: an exemplar does not parse") from None
    return exemplar.value, exemplar.timestamp, [(label.name, label.value) for label in exemplar.labels]


def _malformed_v2(detail: str) -> str:
    return f"body is not a valid remote write 2.0 request: {detail}"


def odd_references(field: str, count: int) -> BadRequest:
    return BadRequest(_malformed_v2(f"{field} has an odd number of entries ({count})"))


def bad_reference(field: str, refs: Iterable[int], size: int) -> BadRequest:
    bad = next(ref for ref in refs if ref >= size)
    return BadRequest(_malformed_v2(f"{field} refers to symbol {bad}; the symbols table has {size} entries"))


def check_exemplar_refs(symbols: list[str]) -> Callable[[Any], None]:
    """A function checking the label references of a 2.0 series' exemplars against `symbols`."""
    size = len(symbols)

    def check(exemplars: Iterable[Any]) -> None:
        for exemplar in exemplars:
            refs = exemplar.labels_refs
            if len(refs) % 2:
                raise odd_references("exemplar labels_refs", len(refs))
            if refs and max(refs) >= size:
                raise bad_reference("exemplar labels_refs", refs, size)

    return check


def exemplar_v2(symbols: list[str]) -> Callable[[Any], tuple[float, int, list[tuple[str, str]]]]:
    """A function turning a 2.0 Exemplar of a request whose table is `symbols` into (value,
    timestamp, labels); its references are checked by `check_exemplar_refs` first."""

    def exemplar_of(exemplar: Any) -> tuple[float, int, list[tuple[str, str]]]:
        refs = exemplar.labels_refs
        return exemplar.value, exemplar.timestamp, [
            (symbols[refs[i]], symbols[refs[i + 1]]) for i in range(0, len(refs), 2)
        ]

    return exemplar_of


def request_symbols(request: Any) -> list[str]:
    """The symbols table of a 2.0 Request, checked: it starts with "" (index 0 stands for an
    unset string). An empty table is only valid if nothing refers to it, which the series'
    references then show."""
    symbols = list(request.symbols)
    if symbols and symbols[0] != "":
        raise BadRequest(_malformed_v2(f'symbols[0] must be the empty string, got {cut(symbols[0], 40)!r}'))
    return symbols


def unstorable_value_reason(value: float) -> str | None:
    """Why a sample value cannot be stored as a float by any engine, or None if it can."""
    if value != value:
        return DROP_STALE if struct.pack("<d", value) == _STALE_BYTES else DROP_NAN
    if value == _INF or value == -_INF:
        return DROP_INF
    return None
