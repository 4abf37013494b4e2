"""Native histograms as every engine stores them: the histogram's own protobuf encoding.

A histogram sample is stored as the base64 of its deterministic protobuf encoding with its
timestamps cleared (the stored point's time holds the timestamp), next to its count and sum as
plain numbers for the engine's own queries. Remote read decodes the blob, so every field
(schema, custom bucket bounds, spans, deltas or counts, reset hint, zero bucket) comes back bit
for bit, and a retried request writes an identical value.

The 1.0 and 2.0 Histogram messages have the same fields (2.0 adds start_timestamp, which is
not stored), so both are read with the 2.0 message and stored in one encoding.
"""

from __future__ import annotations

import base64
import struct

from chalicelib.prompb.remote_write_v2_pb2 import Histogram

_STALE_BYTES = struct.pack("<Q", 0x7FF0000000000002)


def is_stale(histogram: Histogram) -> bool:
    """A stale marker: Prometheus sends a histogram whose sum is the stale NaN."""
    return struct.pack("<d", histogram.sum) == _STALE_BYTES


def encode_histogram(histogram: Histogram) -> tuple[str, float, float]:
    """(base64 blob, count, sum) of `histogram`, which is changed (its timestamps cleared)."""
    histogram.timestamp = 0
    histogram.start_timestamp = 0
    blob = base64.b64encode(histogram.SerializeToString(deterministic=True)).decode()
    floats = histogram.WhichOneof("count") == "count_float"
    count = float(histogram.count_float if floats else histogram.count_int)
    return blob, count, histogram.sum


def decode_histogram(blob: str, timestamp_ms: int, into: object) -> None:
    """Fill `into` (a 1.0 prompb Histogram) from a stored blob."""
    into.ParseFromString(base64.b64decode(blob))  # type: ignore[attr-defined]
    into.timestamp = timestamp_ms  # type: ignore[attr-defined]
