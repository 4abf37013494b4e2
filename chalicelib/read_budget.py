"""The size budget of a remote read answer, for any engine.

An answer is capped below Lambda's response limit: an upper bound of the encoded protobuf size
is counted as rows arrive, so an oversized answer fails early with 413 and a hint to narrow the
query, instead of failing opaquely after everything was read.
"""

from __future__ import annotations

from chalicelib.errors import PayloadTooLarge


def varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def field_size(payload: int) -> int:
    """Bytes of a length-delimited protobuf field (one-byte tag) carrying `payload` bytes."""
    return 1 + varint_size(payload) + payload


def label_size(name: str, value: str) -> int:
    inner = field_size(len(name.encode())) + field_size(len(value.encode()))
    return field_size(inner)


def sample_size(timestamp_ms: int) -> int:
    # Tag + length, the double (tag + 8) and the timestamp (tag + varint); an upper bound,
    # since proto3 leaves out zero values.
    return 2 + 9 + 1 + varint_size(timestamp_ms if timestamp_ms >= 0 else 1 << 63)


# Length prefixes of a TimeSeries and of a QueryResult: at most 5 bytes each below 2**35 bytes.
SERIES_OVERHEAD = 1 + 5
RESULT_OVERHEAD = 1 + 5


class ResponseBudget:
    """Counts an upper bound of the encoded ReadResponse size; PayloadTooLarge past the limit."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.used = 0

    def charge(self, size: int) -> None:
        """Count `size` more bytes; PayloadTooLarge once the total passes the limit."""
        self.used += size
        if self.used > self.limit:
            raise PayloadTooLarge(
                f"the answer exceeds {self.limit} bytes, the most a response can carry: narrow the "
                "query (a shorter time range or more specific label matchers)"
            )

    def charge_result(self) -> None:
        """Count one QueryResult's own bytes (its series are charged as they are decoded)."""
        self.charge(RESULT_OVERHEAD)
