"""WriteRecords request bodies.

botocore's generic JSON serializer and parameter validation cost ~120 µs per record, more than
everything else on the write path together. The records are already checked against every
Timestream limit (records.py), so the body is written here directly as JSON text, with the
dimensions that all records of a call share moved to `CommonAttributes`.
"""

from __future__ import annotations

from json.encoder import encode_basestring as _json_string

from chalicelib.records import MappedSeries, Record

# Marks a series rendered once, with nothing kept (see write_records_body).
_SEEN_ONCE: tuple[None, str] = (None, "")
_MEASURE_VALUE_TYPE = "DOUBLE"
_TIME_UNIT = "MILLISECONDS"


def _dimension_json(name: str, value: str) -> str:
    return f'{{"Name":{_json_string(name)},"Value":{_json_string(value)},"DimensionValueType":"VARCHAR"}}'


def shared_dimensions(records: list[Record]) -> tuple[tuple[str, str], ...]:
    """The (name, value) pairs every record has, in the first record's order."""
    first = records[0][0]
    shared = set(first.dimensions)
    previous = first
    for series, _, _ in records:
        # Consecutive records usually share a series; skip the set work for those.
        if series is not previous:
            previous = series
            shared.intersection_update(series.dimensions)
            if not shared:
                return ()
    return tuple(pair for pair in first.dimensions if pair in shared)


def _record_prefix(series: MappedSeries, common: frozenset[tuple[str, str]]) -> str:
    """Everything of a record's JSON before its value, without the dimensions in `common`."""
    own = ",".join(
        _dimension_json(name, value) for name, value in series.dimensions if (name, value) not in common
    )
    dimensions = f'"Dimensions":[{own}],' if own else ""
    return f'{{{dimensions}"MeasureName":{_json_string(series.measure_name)},"MeasureValue":"'


def write_records_body(database: str, table: str, records: list[Record]) -> bytes:
    """The JSON body of one WriteRecords call (at most 100 records, checked by the caller)."""
    common = shared_dimensions(records)
    common_set = frozenset(common)
    parts = []
    append = parts.append
    for series, value, time in records:
        # Prefixes are memoised on the series for the set of shared dimensions it was last
        # sent with, which is stable across requests for a steady scrape.
        rendered = series.rendered
        if rendered is None or rendered[0] != common_set:
            prefix = _record_prefix(series, common_set)
            # Kept only from a series' second call on: a one-off request of many series (the
            # largest use the most memory) would otherwise hold a prefix per series for nothing.
            series.rendered = _SEEN_ONCE if rendered is None else (common_set, prefix)
        else:
            prefix = rendered[1]
        append(f'{prefix}{value}","Time":"{time}"}}')
    common_json = ",".join(_dimension_json(name, value) for name, value in common)
    common_dimensions = f'"Dimensions":[{common_json}],' if common_json else ""
    body = (
        f'{{"DatabaseName":{_json_string(database)},"TableName":{_json_string(table)},'
        f'"CommonAttributes":{{{common_dimensions}"MeasureValueType":"{_MEASURE_VALUE_TYPE}",'
        f'"TimeUnit":"{_TIME_UNIT}"}},"Records":[{",".join(parts)}]}}'
    )
    return body.encode()
