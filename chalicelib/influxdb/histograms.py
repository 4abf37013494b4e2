"""Native histograms and exemplars <-> fields of InfluxDB points.

A histogram sample is one point of the series (same measurement and tags as its float samples)
with the fields `histogram` (string: the base64 of the histogram's own protobuf encoding, see
native_histograms.py), and `histogram_count` and `histogram_sum` (floats, left out when not
finite, which a float field cannot hold) for InfluxQL's own use:

    rpc_seconds,__name__=rpc_seconds histogram="CAES...",histogram_count=12,histogram_sum=3.5 1700000000123

An exemplar is one point of the series with the fields `exemplar_value` (float) and
`exemplar_labels` (string: a JSON object of the exemplar's labels, e.g. {"trace_id":"..."}).

A point of the same series and time as a float sample is merged with it by InfluxDB (fields of
one point are kept per name), so a float sample, a histogram and an exemplar at one instant
coexist. Remote read selects `value` and `histogram`: exemplar-only points are skipped, as
remote read has no place for exemplars.
"""

from __future__ import annotations

import json

from chalicelib.native_histograms import encode_histogram
from chalicelib.prompb.remote_write_v2_pb2 import Histogram

VALUE = "value"
HISTOGRAM = "histogram"
HISTOGRAM_COUNT = "histogram_count"
HISTOGRAM_SUM = "histogram_sum"
EXEMPLAR_VALUE = "exemplar_value"
EXEMPLAR_LABELS = "exemplar_labels"
# The fields the connector writes: no label may be a tag of one of these names.
FIELD_NAMES = frozenset({VALUE, HISTOGRAM, HISTOGRAM_COUNT, HISTOGRAM_SUM, EXEMPLAR_VALUE, EXEMPLAR_LABELS})
# InfluxDB's documented limit of a string field value.
MAX_STRING_FIELD_BYTES = 64 * 1024
_INF = float("inf")
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"'})


def string_field(text: str) -> str:
    """A string field value as line protocol writes it: quoted, `"` and `\\` escaped."""
    return '"' + text.translate(_STRING_ESCAPES) + '"'


def histogram_fields(histogram: Histogram) -> tuple[str, int]:
    """(the field set of a histogram's line, the bytes of its string field). `histogram` is
    changed (its timestamps cleared)."""
    blob, count, total = encode_histogram(histogram)
    fields = f"{HISTOGRAM}={string_field(blob)}"
    if -_INF < count < _INF:
        fields += f",{HISTOGRAM_COUNT}={count!r}"
    if -_INF < total < _INF:
        fields += f",{HISTOGRAM_SUM}={total!r}"
    # base64 is ASCII: characters are bytes.
    return fields, len(blob)


def exemplar_fields(value: float, labels: list[tuple[str, str]]) -> tuple[str, int]:
    """(the field set of an exemplar's line, the bytes of its string field); `value` is finite."""
    text = json.dumps(dict(labels), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return f"{EXEMPLAR_VALUE}={value!r},{EXEMPLAR_LABELS}={string_field(text)}", len(text.encode())
