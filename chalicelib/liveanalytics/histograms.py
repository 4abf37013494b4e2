"""Native histograms and exemplars <-> Timestream MULTI measure records.

A histogram sample is one record: measure name = the metric name, dimensions as for float
samples, and the measures `histogram_count` and `histogram_sum` (DOUBLE, so Timestream SQL can
read them as numbers; left out when not finite, which a DOUBLE cannot hold) and
`histogram_proto` (VARCHAR: the base64 of the histogram's own protobuf encoding, timestamps
cleared since the record's time holds it). The encoding is deterministic, so a retried request
writes an identical record, which Timestream accepts. Remote read decodes `histogram_proto`,
so every field (schema, custom bucket bounds, spans, deltas or counts, reset hint, zero bucket)
comes back bit for bit.

An exemplar is one record: measure name = the metric name + EXEMPLAR_SUFFIX (a measure name
has one type per table, and the metric's own is DOUBLE or the histogram's MULTI), the series'
dimensions, and the measures `exemplar_value` (DOUBLE) and `exemplar_labels` (VARCHAR: a JSON
object of the exemplar's labels, e.g. {"trace_id": "..."}).

The encoding itself (and the stale marker) is the protocol side's: native_histograms.py.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _json_string

from chalicelib.native_histograms import decode_histogram, encode_histogram, is_stale
from chalicelib.prompb.remote_write_v2_pb2 import Histogram

__all__ = ["decode_histogram", "exemplar_measures", "histogram_measures", "is_stale"]

HISTOGRAM_COUNT = "histogram_count"
HISTOGRAM_SUM = "histogram_sum"
HISTOGRAM_PROTO = "histogram_proto"
EXEMPLAR_VALUE = "exemplar_value"
EXEMPLAR_LABELS = "exemplar_labels"
# The measure columns the connector writes: no label may have one of these names (a table's
# dimension and measure names share one namespace).
MEASURE_COLUMNS = frozenset(
    {HISTOGRAM_COUNT, HISTOGRAM_SUM, HISTOGRAM_PROTO, EXEMPLAR_VALUE, EXEMPLAR_LABELS}
)
# '@' is not allowed in a classic Prometheus metric name, so no ordinary metric has it.
EXEMPLAR_SUFFIX = "@exemplar"

# Timestream: a VARCHAR measure value is at most 2 KiB.
MAX_VARCHAR_CHARACTERS = 2048
DOUBLE_BYTES = 8
_INF = float("inf")


def _double_measure(name: str, value: float) -> str:
    return f'{{"Name":"{name}","Value":"{value!r}","Type":"DOUBLE"}}'


def _varchar_measure(name: str, value: str) -> str:
    return f'{{"Name":"{name}","Value":{_json_string(value)},"Type":"VARCHAR"}}'


def histogram_measures(histogram: Histogram) -> tuple[str, int]:
    """(the MeasureValues JSON of `histogram`, the bytes its measures count towards the record
    size: names and values). `histogram` is changed (its timestamps cleared)."""
    blob, count, _sum = encode_histogram(histogram)
    measures = []
    size = 0
    if -_INF < count < _INF:
        measures.append(_double_measure(HISTOGRAM_COUNT, count))
        size += len(HISTOGRAM_COUNT) + DOUBLE_BYTES
    if -_INF < histogram.sum < _INF:
        measures.append(_double_measure(HISTOGRAM_SUM, histogram.sum))
        size += len(HISTOGRAM_SUM) + DOUBLE_BYTES
    # base64 is ASCII: characters are bytes.
    if len(blob) > MAX_VARCHAR_CHARACTERS:
        return "", MAX_VARCHAR_CHARACTERS + 1 + size
    measures.append(_varchar_measure(HISTOGRAM_PROTO, blob))
    size += len(HISTOGRAM_PROTO) + len(blob)
    return "[" + ",".join(measures) + "]", size


def exemplar_measures(value: float, labels: list[tuple[str, str]]) -> tuple[str, int]:
    """(MeasureValues JSON, bytes towards the record size) of an exemplar; the size is over the
    VARCHAR limit when its labels' JSON is."""
    text = json.dumps(dict(labels), ensure_ascii=False, separators=(",", ":"))
    text_bytes = len(text.encode())
    measures = f"[{_double_measure(EXEMPLAR_VALUE, value)},{_varchar_measure(EXEMPLAR_LABELS, text)}]"
    size = len(EXEMPLAR_VALUE) + DOUBLE_BYTES + len(EXEMPLAR_LABELS) + text_bytes
    if len(text) > MAX_VARCHAR_CHARACTERS:
        size = max(size, MAX_VARCHAR_CHARACTERS + 1)
    return measures, size
