"""Timestream query answers -> Prometheus series, within a response size budget.

Rows of a `SELECT *` are grouped into prompb TimeSeries: `measure_name` is `__name__`, every
other column except time, measure_value::* and the dimension the connector adds to series that
have no label besides their name (records.NAME_ONLY_DIMENSION) and the MULTI measures the
connector writes (histograms.MEASURE_COLUMNS) is a label (left out when NULL or empty), and
`measure_value::double` is the sample's value. A row with `histogram_proto` is a native
histogram sample, decoded back into `TimeSeries.histograms`; exemplar rows (neither value) are
skipped, as remote read has no place for exemplars. Labels come out sorted by name, series by
labels, samples and histograms by time, as Prometheus expects.

The answer is capped (ResponseBudget) below Lambda's response limit: an upper bound of the
encoded protobuf size is counted as rows arrive, so an oversized answer fails early with 413 and
a hint to narrow the query, instead of failing opaquely after every page was read.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from chalicelib.errors import ConnectorError
from chalicelib.liveanalytics.histograms import HISTOGRAM_PROTO, MEASURE_COLUMNS, decode_histogram
from chalicelib.liveanalytics.query_sql import (
    MEASURE_NAME_COLUMN,
    MEASURE_VALUE_PREFIX,
    TIME_COLUMN,
    VALUE_COLUMN,
)
from chalicelib.liveanalytics.records import NAME_ONLY_DIMENSION
from chalicelib.matchers import METRIC_NAME_LABEL
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.read_budget import SERIES_OVERHEAD as _SERIES_OVERHEAD
from chalicelib.read_budget import ResponseBudget
from chalicelib.read_budget import field_size as _field_size
from chalicelib.read_budget import label_size as _label_size
from chalicelib.read_budget import sample_size as _sample_size

__all__ = ["ResponseBudget", "column_names", "parse_timestamp_ms", "scalar", "series_from_pages"]

# Columns that are never labels: Timestream's own, and the one the connector owns.
_NOT_LABELS = frozenset({TIME_COLUMN, MEASURE_NAME_COLUMN, NAME_ONLY_DIMENSION[0], *MEASURE_COLUMNS})

# A series' labels, sorted: the key rows are grouped by.
_Key = tuple[tuple[str, str], ...]


def column_names(page: Mapping[str, Any]) -> list[str]:
    """The column names of one result page, in column order."""
    return [column.get("Name", "") for column in page.get("ColumnInfo", [])]


def scalar(data: Sequence[Mapping[str, Any]], index: int) -> str | None:
    """The text of one row's column `index`; None when it is NULL or missing."""
    if index >= len(data):
        return None
    datum = data[index]
    if datum.get("NullValue"):
        return None
    return datum.get("ScalarValue")


# --------------------------------------------------------------------------------------------
# Rows -> series

_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")


def parse_timestamp_ms(text: str) -> int:
    """Milliseconds since the epoch of a Timestream timestamp ("2024-01-02 03:04:05.678000000"),
    truncating below the millisecond as Prometheus timestamps do."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ConnectorError(f"unexpected time value from Timestream: {text!r}")
    fields = [int(part) for part in match.groups()[:6]]
    seconds = calendar.timegm((*fields, 0, 0, 0))
    fraction = (match.group(7) or "").ljust(3, "0")[:3]
    return seconds * 1000 + int(fraction)


def _is_label_column(name: str) -> bool:
    return name not in _NOT_LABELS and not name.startswith(MEASURE_VALUE_PREFIX)


def series_from_pages(
    pages: Iterable[Mapping[str, Any]],
    echo: Sequence[tuple[str, str]] = (),
    budget: ResponseBudget | None = None,
) -> list[Any]:
    """Group `SELECT *` result rows into prompb TimeSeries.

    Columns other than time, measure_name, measure_value::* and the connector's own dimension
    are labels; NULL or empty values are left out; `echo` labels are added to every series.
    Labels are sorted by name, series by labels, samples by time; rows without a double value
    are skipped. `budget` is charged as series and samples appear, so an oversized answer stops
    before reading every page."""
    series: dict[_Key, list[tuple[int, float]]] = {}
    histograms: dict[_Key, list[tuple[int, str]]] = {}
    echo_names = {name for name, _ in echo}
    for page in pages:
        names = column_names(page)
        try:
            time_index = names.index(TIME_COLUMN)
            name_index = names.index(MEASURE_NAME_COLUMN)
        except ValueError:
            raise ConnectorError("Timestream answer lacks the time or measure_name column") from None
        value_index = names.index(VALUE_COLUMN) if VALUE_COLUMN in names else -1
        histogram_index = names.index(HISTOGRAM_PROTO) if HISTOGRAM_PROTO in names else -1
        label_indexes = [
            (i, name) for i, name in enumerate(names) if _is_label_column(name) and name not in echo_names
        ]
        # Rows of one series repeat the same label values: build each label key once per page.
        keys: dict[tuple[Any, ...], _Key] = {}
        for row in page.get("Rows", []):
            data = row.get("Data", [])
            raw_value = scalar(data, value_index) if value_index >= 0 else None
            blob = None
            if raw_value is None:
                blob = scalar(data, histogram_index) if histogram_index >= 0 else None
                if blob is None:
                    continue
            metric = scalar(data, name_index)
            stamp = scalar(data, time_index)
            if not metric or stamp is None:
                continue
            raw = (metric, *(scalar(data, i) for i, _ in label_indexes))
            key = keys.get(raw)
            if key is None:
                labels = [(METRIC_NAME_LABEL, metric), *echo]
                pairs = zip(label_indexes, raw[1:], strict=True)
                labels.extend((name, value) for (_, name), value in pairs if value)
                key = tuple(sorted(labels))
                keys[raw] = key
            samples = series.get(key)
            if samples is None:
                samples = series[key] = []
                if budget is not None:
                    budget.charge(_SERIES_OVERHEAD + sum(_label_size(n, v) for n, v in key))
            timestamp = parse_timestamp_ms(stamp)
            if blob is not None:
                if budget is not None:
                    # The decoded message is at most 3/4 of its base64; tag, length, timestamp.
                    budget.charge(_field_size(len(blob) * 3 // 4 + 11))
                histograms.setdefault(key, []).append((timestamp, blob))
                continue
            if budget is not None:
                budget.charge(_sample_size(timestamp))
            try:
                samples.append((timestamp, float(raw_value)))
            except ValueError:
                raise ConnectorError(f"unexpected value from Timestream: {raw_value!r}") from None
    result = []
    for key in sorted(series):
        timeseries = pb.TimeSeries()
        timeseries.labels.extend(pb.Label(name=name, value=value) for name, value in key)
        timeseries.samples.extend(
            pb.Sample(timestamp=timestamp, value=value)
            for timestamp, value in sorted(series[key], key=lambda sample: sample[0])
        )
        for timestamp, blob in sorted(histograms.get(key, ()), key=lambda entry: entry[0]):
            try:
                decode_histogram(blob, timestamp, timeseries.histograms.add())
            except (ValueError, DecodeError):
                raise ConnectorError(f"unexpected histogram value from Timestream: {blob[:64]!r}") from None
        result.append(timeseries)
    return result
