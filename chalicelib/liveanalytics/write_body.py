"""WriteRecords request bodies.

botocore's generic JSON serializer and parameter validation cost ~120 µs per record, more than
everything else on the write path together. The records are already checked against every
Timestream limit (records.py), so the body is written here directly as JSON text, with what all
records of a call share (dimensions, and the measure name when there is only one) moved to
`CommonAttributes`: Timestream bills those once per call instead of once per record.

Dimensions are written without `DimensionValueType`: VARCHAR is its only value and the default,
and leaving it out makes the body a quarter smaller, which is CPU saved on every byte that is
hashed for the signature and sent.
"""

from __future__ import annotations

from json.encoder import encode_basestring as _json_string

from chalicelib.liveanalytics.records import MappedSeries, MultiRecord, Record, holds_multi_records

# Marks a series rendered once, with nothing kept (see write_records_body).
_SEEN_ONCE: tuple[None, str] = (None, "")
# Stands, in the key of a series' rendered prefix, for "the measure name is in CommonAttributes":
# no dimension has an empty name, so it cannot be mistaken for a shared dimension.
_MEASURE_NAME_SHARED = ("", "")
# Shared sets seen recently (a few per scrape target): one frozenset object each, and the
# CommonAttributes JSON of its dimensions.
_MAX_COMMON_SETS = 4096
_common_sets: dict[tuple[tuple[str, str], ...], tuple[frozenset[tuple[str, str]], str]] = {}
_MEASURE_VALUE_TYPE = "DOUBLE"
_TIME_UNIT = "MILLISECONDS"
_VALUE_TO_TIME = '","Time":"'
_BETWEEN_RECORDS = '"},'
_LAST_RECORD_END = '"}'


def _dimension_json(name: str, value: str) -> str:
    return f'{{"Name":{_json_string(name)},"Value":{_json_string(value)}}}'


def shared_attributes(records: list[Record]) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """(the (name, value) pairs every record has, in the first record's order; the measure name
    if every record has the same one, else None).

    Calls formed by batching carry the pairs their group shares (`Call.shared`): only the
    first record's other pairs are then looked for in the others, once per call (the answer is
    kept in `Call.attributes` for the call's metering)."""
    first = records[0][0]
    known = getattr(records, "shared", None)
    if known:
        found = records.attributes  # type: ignore[attr-defined]
        if found is None:
            found = records.attributes = _shared_beyond(records, known)  # type: ignore[attr-defined]
        return found
    shared = set(first.dimensions)
    measure_name: str | None = first.measure_name
    previous = first
    for series, _, _ in records:
        # Consecutive records usually share a series; skip the set work for those.
        if series is not previous:
            previous = series
            if shared:
                shared.intersection_update(series.dimensions)
            if measure_name is not None and series.measure_name != measure_name:
                measure_name = None
            if not shared and measure_name is None:
                break
    return tuple(pair for pair in first.dimensions if pair in shared), measure_name


def _shared_beyond(
    records: list[Record], known: frozenset[tuple[str, str]]
) -> tuple[tuple[tuple[str, str], ...], str | None]:
    first = records[0][0]
    last = records[-1][0]
    # A few pairs at most (a metric's own labels). Records of one metric are next to each other,
    # so most of them are gone at the last record already: look there first.
    extra = [pair for pair in first.dimensions if pair not in known and pair in last.dimensions]
    measure_name: str | None = first.measure_name if last.measure_name == first.measure_name else None
    if not extra and measure_name is None:
        return tuple(pair for pair in first.dimensions if pair in known), None
    previous = first
    for series, _, _ in records:
        if series is not previous:
            previous = series
            if extra:
                dimensions = series.dimensions
                extra = [pair for pair in extra if pair in dimensions]
            if measure_name is not None and series.measure_name != measure_name:
                measure_name = None
            if not extra and measure_name is None:
                break
    return tuple(pair for pair in first.dimensions if pair in known or pair in extra), measure_name


def _record_prefix(series: MappedSeries, common: frozenset[tuple[str, str]]) -> str:
    """Everything of a record's JSON before its value, without what `common` holds."""
    own = ",".join(
        _dimension_json(name, value) for name, value in series.dimensions if (name, value) not in common
    )
    dimensions = f'"Dimensions":[{own}],' if own else ""
    if _MEASURE_NAME_SHARED in common:
        return f'{{{dimensions}"MeasureValue":"'
    return f'{{{dimensions}"MeasureName":{_json_string(series.measure_name)},"MeasureValue":"'


def write_records_body(database: str, table: str, records: list[Record]) -> bytes:
    """The JSON body of one WriteRecords call (at most 100 records, checked by the caller)."""
    common, measure_name = shared_attributes(records)
    common_key = common if measure_name is None else (*common, _MEASURE_NAME_SHARED)
    # One object per distinct set: the check against a series' memo below is then an identity
    # check, not a set comparison, for every record. Its JSON is kept with it.
    known = _common_sets.get(common_key)
    if known is None:
        if len(_common_sets) >= _MAX_COMMON_SETS:
            _common_sets.clear()
        common_json = ",".join(_dimension_json(name, value) for name, value in common)
        known = (frozenset(common_key), f'"Dimensions":[{common_json}],' if common_json else "")
        known = _common_sets.setdefault(common_key, known)
    common_set, common_attributes = known
    parts: list[str] = []
    extend = parts.extend
    for series, value, time in records:
        # Prefixes are memoised on the series for what it last shared with its call (the
        # common dimensions, and whether the measure name), which is stable across requests
        # for a steady scrape: calls are formed by group (see batching).
        rendered = series.rendered
        if rendered is None or (rendered[0] is not common_set and rendered[0] != common_set):
            prefix = _record_prefix(series, common_set)
            # Kept only from a series' second call on: a one-off request of many series (the
            # largest use the most memory) would otherwise hold a prefix per series for nothing.
            series.rendered = _SEEN_ONCE if rendered is None else (common_set, prefix)
        else:
            prefix = rendered[1]
        # Pieces joined once below: cheaper than a string per record.
        extend((prefix, value, _VALUE_TO_TIME, time, _BETWEEN_RECORDS))
    parts[-1] = _LAST_RECORD_END
    if measure_name is not None:
        common_attributes += f'"MeasureName":{_json_string(measure_name)},'
    body = (
        f'{{"DatabaseName":{_json_string(database)},"TableName":{_json_string(table)},'
        f'"CommonAttributes":{{{common_attributes}"MeasureValueType":"{_MEASURE_VALUE_TYPE}",'
        f'"TimeUnit":"{_TIME_UNIT}"}},"Records":[{"".join(parts)}]}}'
    )
    return body.encode()


def write_multi_records_body(database: str, table: str, records: list[MultiRecord]) -> bytes:
    """The JSON body of one WriteRecords call of MULTI measure records (histograms or
    exemplars, see histograms.py). Each record carries its own dimensions and measure name:
    these calls are few, and a plain body keeps them simple to check."""
    parts = []
    for series, measure_name, measures, time, _ in records:
        dimensions = ",".join(_dimension_json(name, value) for name, value in series.dimensions)
        parts.append(
            f'{{"Dimensions":[{dimensions}],"MeasureName":{_json_string(measure_name)},'
            f'"MeasureValues":{measures},"Time":"{time}"}}'
        )
    body = (
        f'{{"DatabaseName":{_json_string(database)},"TableName":{_json_string(table)},'
        f'"CommonAttributes":{{"MeasureValueType":"MULTI","TimeUnit":"{_TIME_UNIT}"}},'
        f'"Records":[{",".join(parts)}]}}'
    )
    return body.encode()


def write_any_records_body(database: str, table: str, records: list[Record] | list[MultiRecord]) -> bytes:
    """The body of a call of float records or of MULTI records (never both in one call)."""
    if holds_multi_records(records):
        return write_multi_records_body(database, table, records)  # type: ignore[arg-type]
    return write_records_body(database, table, records)  # type: ignore[arg-type]
