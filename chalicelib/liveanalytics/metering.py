"""What Timestream bills for a WriteRecords call, computed from the records before sending.

Timestream meters writes in units of 1 KiB per call. A record's size is its time (8 bytes),
the UTF-8 bytes of each dimension's name and value, of its measure name, and its measure value
(8 bytes for a DOUBLE). What a call puts in `CommonAttributes` (dimensions, and the measure
name when every record has the same one) is counted once for the call, not once per record.
Value types, time units and the JSON around them are not counted. The call is rounded up to
whole KiB.
(https://docs.aws.amazon.com/timestream/latest/developerguide/metering-and-pricing.writes.html)

Everything here is per series, cached, so metering a call costs one dictionary lookup per
record: cheap enough to run for every call a request makes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chalicelib.liveanalytics.records import MappedSeries, MultiRecord, Record

WRITE_UNIT_BYTES = 1024
TIME_BYTES = 8
DOUBLE_BYTES = 8
# Bytes of a record that are always its own: time and DOUBLE value.
FIXED_RECORD_BYTES = TIME_BYTES + DOUBLE_BYTES

# Series seen recently -> their metered bytes. Keyed by the object (MappedSeries compares by
# identity): the series cache hands out one object per series, so a lookup is a pointer hash.
# Bounded like the series cache: cleared when full.
_MAX_CACHED_SERIES = 65_536
_series_bytes: dict[MappedSeries, int] = {}


def text_bytes(text: str) -> int:
    """UTF-8 length, without encoding ASCII text (nearly all label text)."""
    return len(text) if text.isascii() else len(text.encode())


def dimensions_bytes(dimensions: Iterable[tuple[str, str]]) -> int:
    return sum(text_bytes(name) + text_bytes(value) for name, value in dimensions)


def series_bytes(series: MappedSeries) -> int:
    """Metered size of one record of this series with nothing in CommonAttributes."""
    size = _series_bytes.get(series)
    if size is None:
        size = FIXED_RECORD_BYTES + text_bytes(series.measure_name) + dimensions_bytes(series.dimensions)
        if len(_series_bytes) >= _MAX_CACHED_SERIES:
            _series_bytes.clear()
        _series_bytes[series] = size
    return size


def records_bytes(records: Sequence[Record]) -> list[int]:
    """Metered size of each record with nothing in CommonAttributes."""
    sizes = list(map(_series_bytes.get, [series for series, _, _ in records]))
    if None in sizes:
        sizes = [size or series_bytes(series) for size, (series, _, _) in zip(sizes, records, strict=True)]
    return sizes


def units(size: int) -> int:
    """Billed write units for a call of `size` metered bytes."""
    return -(-size // WRITE_UNIT_BYTES)


def call_bytes(
    records: Sequence[Record],
    common: Sequence[tuple[str, str]] = (),
    common_measure_name: bool = False,
) -> int:
    """Metered bytes of one call whose `CommonAttributes` hold `common` (dimensions every record
    has) and, if `common_measure_name`, the measure name every record has."""
    if not records:
        return 0
    # One lookup per record, the loops in C: this runs for every call a request makes.
    total = sum(records_bytes(records))
    shared = dimensions_bytes(common)
    if common_measure_name:
        shared += text_bytes(records[0][0].measure_name)
    # Every record's full size counts the shared part once each; the call counts it once.
    return total - (len(records) - 1) * shared


def write_units(
    records: Sequence[Record],
    common: Sequence[tuple[str, str]] = (),
    common_measure_name: bool = False,
) -> int:
    """Write units Timestream bills for one WriteRecords call (see call_bytes)."""
    return units(call_bytes(records, common, common_measure_name))


def multi_write_units(records: Sequence[MultiRecord]) -> int:
    """Write units of one call of MULTI measure records (histograms, exemplars): each record's
    time, dimensions and measure name, and its measures' names and values (DOUBLE 8 bytes,
    VARCHAR its UTF-8 length). These calls put nothing in CommonAttributes but the types."""
    return units(sum(
        series.record_base_bytes() - len(series.measure_name.encode()) + len(measure_name.encode()) + size
        for series, measure_name, _, _, size in records
    ))
