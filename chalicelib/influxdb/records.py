"""Series and samples -> InfluxDB line protocol, with everything line protocol cannot carry
refused per series with a counted reason (the series beside it are written).

The layout is InfluxDB 1.x's own Prometheus endpoint's (`/api/v1/prom/write`): measurement =
metric name, every label with a non-empty value as a tag (`__name__` included; the routing
labels never), one float field `value`, millisecond timestamps (`precision=ms`):

    http_requests_total,__name__=http_requests_total,code=200,job=api value=1027 1700000000123

Escaping is exactly what InfluxDB unescapes and no more: in measurements, tag keys and tag values
a comma, a space and `=` get a backslash; InfluxDB 1.x unescapes only those three, so any other
backslash is stored as written. What no escaping can carry is refused, never mangled (each case
checked against Debian's InfluxDB 1.6.7):

* a newline anywhere in a name or value: it ends the line;
* a tag key or value ending in a backslash: InfluxDB takes a delimiter after a backslash as
  escaped, so the tag never ends (a backslash before an escaped delimiter inside the text is
  fine: the text x\\,y is written `x\\\\,y` and stored as it was sent);
* a metric name with a backslash before a comma, space or `=`, or at its end: InfluxDB 1.x
  unescapes measurements differently from tags and drops such backslashes;
* a metric name starting with `#`: the line is a comment, skipped without an error;
* the tag key `time` (InfluxDB drops the point), `_field` and `_measurement` (InfluxDB 2's own
  columns), and the connector's field names (`value`, ...): a tag and a field of one name clash
  in queries and, on InfluxDB 3, in the table's columns;
* a series key (measurement and tags, escaped) over 65535 bytes, InfluxDB's limit;
* a timestamp outside InfluxDB's nanosecond range (1677-09-21 .. 2262-04-11).

Values NaN, +-Inf and stale markers cannot be stored as a float field: dropped and counted, as
on every engine. Native histograms and exemplars are written as other fields of the same point
(see histograms.py).

Both remote write messages go through one loop (`build_lines` for 1.0, `build_lines_v2` for
2.0); they differ only in how a series' labels are found (series_cache.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from chalicelib.config import Settings
from chalicelib.destinations import Labels, route
from chalicelib.errors import BadRequest
from chalicelib.influxdb.histograms import (
    FIELD_NAMES,
    MAX_STRING_FIELD_BYTES,
    exemplar_fields,
    histogram_fields,
)
from chalicelib.native_histograms import is_stale
from chalicelib.prompb.remote_write_v2_pb2 import Histogram
from chalicelib.series import (
    DROP_STALE_HISTOGRAM,
    DUPLICATE_LABEL,
    EMPTY_LABEL_NAME,
    EXEMPLAR_DUPLICATE_LABEL,
    EXEMPLAR_NOT_FINITE,
    METRIC_NAME_LABEL,
    NO_DESTINATION,
    NO_METRIC_NAME,
    Accounting,
    describe_series,
    unstorable_value_reason,
)
from chalicelib.series_cache import Exemplar, SeriesCache, SeriesReader

_INF = float("inf")

# Refusal reasons of this engine, as counted and logged.
NEWLINE = "newline_in_label"
TRAILING_BACKSLASH = "label_ends_with_backslash"
NAME_BACKSLASH = "metric_name_backslash_before_delimiter"
HASH_METRIC_NAME = "metric_name_starts_with_hash"
RESERVED_LABEL = "reserved_label_name"
CONNECTOR_LABEL = "label_reserved_by_connector"
SERIES_KEY_TOO_LONG = "series_key_too_long"
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
HISTOGRAM_TOO_LARGE = "histogram_too_large"
EXEMPLAR_TOO_LARGE = "exemplar_too_large"

# Tag keys InfluxDB refuses (1.x drops a point with a `time` tag) or owns (2.x's columns).
RESERVED_TAG_KEYS = frozenset({"time", "_field", "_measurement"})
# InfluxDB's longest series key (measurement and tags as written).
MAX_SERIES_KEY_BYTES = 65535
# InfluxDB keeps nanoseconds in an int64 (models.MinNanoTime, MaxNanoTime).
MIN_TIME_MS = -9_223_372_036_854
MAX_TIME_MS = 9_223_372_036_854

_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "=": "\\="})
# In a measurement, a backslash InfluxDB 1.x drops (before a delimiter) or takes as escaping the
# delimiter after the measurement (at its end).
_MEASUREMENT_BACKSLASH = re.compile(r"\\(?:[, =]|\Z)")


def escape(text: str) -> str:
    """A measurement, tag key or tag value as line protocol writes it."""
    return text.translate(_ESCAPES)


def unrepresentable(text: str, measurement: bool = False) -> str | None:
    """Why `text` cannot be a tag key or tag value (or, with `measurement`, a measurement) in
    line protocol, or None."""
    if "\n" in text:
        return NEWLINE
    if measurement:
        if "\\" in text and _MEASUREMENT_BACKSLASH.search(text):
            return NAME_BACKSLASH
    elif text.endswith("\\"):
        return TRAILING_BACKSLASH
    return None


@dataclass(eq=False, slots=True)
class LineSeries:
    """What a series' labels decide, independent of its samples (and so cached per series)."""

    database: str | None
    refusal: str | None
    # The line up to its fields: `measurement,tag=value,... ` (escaped, tags sorted, with the
    # separating space).
    key: str = ""
    # For a refused series only: how it reads in messages and logs.
    example: str = field(default="", repr=False)

    def describe(self) -> str:
        return self.example or self.key.rstrip(" ")


@dataclass
class LineBatch(Accounting):
    """Everything one request turns into: lines per database and what was left out. Each line
    ends with a newline, so a request body is a plain concatenation."""

    samples: dict[str, list[str]] = field(default_factory=dict)
    histograms: dict[str, list[str]] = field(default_factory=dict)
    exemplars: dict[str, list[str]] = field(default_factory=dict)

    @property
    def line_count(self) -> int:
        kinds = (self.samples, self.histograms, self.exemplars)
        return sum(len(lines) for kind in kinds for lines in kind.values())


def series_key(labels: Labels) -> tuple[str | None, str]:
    """Labels (routing labels already removed) -> (refusal reason or None, `key` of the lines).

    Empty values mean "absent" in Prometheus and are not stored (as InfluxDB's own endpoint)."""
    name = ""
    tags: list[tuple[str, str]] = []
    seen: set[str] = set()
    for label, value in labels:
        if not label:
            return EMPTY_LABEL_NAME, ""
        if label in seen:
            return DUPLICATE_LABEL, ""
        seen.add(label)
        if label == METRIC_NAME_LABEL:
            name = value
            # The name is the measurement too, whose rules are stricter than a tag's.
            reason = unrepresentable(value, measurement=True)
            if reason is not None:
                return reason, ""
        if not value:
            continue
        reason = unrepresentable(label) or unrepresentable(value)
        if reason is not None:
            return reason, ""
        if label in RESERVED_TAG_KEYS:
            return RESERVED_LABEL, ""
        if label in FIELD_NAMES:
            return CONNECTOR_LABEL, ""
        tags.append((label, value))
    if not name:
        return NO_METRIC_NAME, ""
    if name.startswith("#"):
        return HASH_METRIC_NAME, ""
    # Sorted by key (as bytes, InfluxDB's order): InfluxDB sorts them otherwise, per line.
    tags.sort(key=lambda tag: tag[0].encode())
    key = escape(name) + "".join(f",{escape(label)}={escape(value)}" for label, value in tags)
    if len(key.encode()) > MAX_SERIES_KEY_BYTES:
        return SERIES_KEY_TOO_LONG, ""
    return None, key + " "


def map_series(labels: Labels, settings: Settings) -> LineSeries:
    """Route and check one series' labels. The table label is taken off and not stored: the
    database alone is an InfluxDB destination."""
    destination, kept = route(labels, settings, table_required=False)
    if destination is None:
        return LineSeries(None, NO_DESTINATION, example=(
            f"{describe_series(labels)}: no {settings.database_label} label "
            "(add it with write_relabel_configs) and no DEFAULT_DATABASE set"
        ))
    reason, key = series_key(kept)
    if reason is not None:
        return LineSeries(None, reason, example=describe_series(labels))
    return LineSeries(destination.database, None, key)


def series_cache(settings: Settings, max_entries: int | None = None) -> SeriesCache[LineSeries]:
    """The cache of LineSeries for one process."""
    return SeriesCache(lambda labels: map_series(labels, settings), max_entries or settings.series_cache_size)


def build_lines(
    timeseries: Iterable[Any], settings: Settings, cache: SeriesCache[LineSeries] | None = None
) -> LineBatch:
    """Turn 1.0 TimeSeriesLabelBytes (labels as serialised bytes, see codec) into lines."""
    return _build((cache or series_cache(settings)).reader_v1(timeseries))


def build_lines_v2(
    request: Any, settings: Settings, cache: SeriesCache[LineSeries] | None = None
) -> LineBatch:
    """Turn a 2.0 Request into lines. Metadata and start timestamps are accepted and not
    stored; a reference outside the symbols table is a BadRequest for the whole request."""
    return _build((cache or series_cache(settings)).reader_v2(request))


def _build(reader: SeriesReader[LineSeries]) -> LineBatch:
    """The lines of either message's series, read as `reader` says. This loop runs once per
    sample of every request: locals instead of attribute lookups, one comparison chain per
    value, one string per line."""
    mapped_of, histogram_of = reader.mapped_of, reader.histogram_of
    exemplar_of, check_exemplars = reader.exemplar_of, reader.check_exemplars
    batch = LineBatch()
    samples_of = batch.samples
    dropped = batch.dropped
    refuse = batch.refuse
    database = append = None
    for series in reader.timeseries:
        mapped = mapped_of(series)
        if series.histograms:
            _histograms(batch, mapped, series.histograms, histogram_of)
        series_exemplars = series.exemplars
        if series_exemplars:
            if check_exemplars is not None:
                check_exemplars(series_exemplars)
            _exemplars(batch, mapped, series_exemplars, exemplar_of)
        samples = series.samples
        if not samples:
            continue
        if mapped.refusal is not None:
            refuse(mapped.refusal, len(samples), mapped)
            continue
        if mapped.database != database:
            database = mapped.database
            append = samples_of.setdefault(database, []).append  # type: ignore[arg-type]
        key = mapped.key + "value="
        for sample in samples:
            value = sample.value
            timestamp = sample.timestamp
            # False for NaN (every comparison with NaN is) and for both infinities.
            if not -_INF < value < _INF:
                dropped[unstorable_value_reason(value)] += 1
            elif MIN_TIME_MS <= timestamp <= MAX_TIME_MS:
                # repr: the shortest text that parses back to the identical float64.
                append(f"{key}{value!r} {timestamp}\n")  # type: ignore[misc]
            else:
                refuse(TIMESTAMP_OUT_OF_RANGE, 1, mapped, f" @{timestamp}")
    return batch


def _in_range(batch: LineBatch, mapped: LineSeries, timestamp: int) -> bool:
    if MIN_TIME_MS <= timestamp <= MAX_TIME_MS:
        return True
    batch.refuse(TIMESTAMP_OUT_OF_RANGE, 1, mapped, f" @{timestamp}")
    return False


def _histograms(
    batch: LineBatch, mapped: LineSeries, entries: Any, histogram_of: Callable[[Any], Any]
) -> None:
    """One line per histogram sample, its fields beside the series' `value` (histograms.py)."""
    if mapped.refusal is not None:
        batch.refuse(mapped.refusal, len(entries), mapped)
        return
    lines = batch.histograms.setdefault(mapped.database, [])  # type: ignore[arg-type]
    for entry in entries:
        try:
            histogram = histogram_of(entry)
        except DecodeError:
            raise BadRequest("body is not a valid protobuf message: a histogram does not parse") from None
        timestamp = histogram.timestamp
        if is_stale(histogram):
            batch.dropped[DROP_STALE_HISTOGRAM] += 1
            continue
        if not _in_range(batch, mapped, timestamp):
            continue
        if histogram is entry:  # a 2.0 message, part of the request: do not change it
            histogram = Histogram()
            histogram.CopyFrom(entry)
        fields, size = histogram_fields(histogram)
        if size > MAX_STRING_FIELD_BYTES:
            batch.refuse(HISTOGRAM_TOO_LARGE, 1, mapped, f" @{timestamp}: {size} bytes")
            continue
        lines.append(f"{mapped.key}{fields} {timestamp}\n")


def _exemplars(
    batch: LineBatch, mapped: LineSeries, entries: Any,
    exemplar_of: Callable[[Any], Exemplar],
) -> None:
    """One line per exemplar, its fields beside the series' `value` (histograms.py)."""
    if mapped.refusal is not None:
        batch.refuse(mapped.refusal, len(entries), mapped)
        return
    lines = batch.exemplars.setdefault(mapped.database, [])  # type: ignore[arg-type]
    for entry in entries:
        value, timestamp, labels = exemplar_of(entry)
        if not -_INF < value < _INF:
            batch.refuse(EXEMPLAR_NOT_FINITE, 1, mapped, f" @{timestamp}")
            continue
        if not _in_range(batch, mapped, timestamp):
            continue
        if len({name for name, _ in labels}) != len(labels):
            # Stored as a JSON object, which has one value per name: refused rather than cut.
            batch.refuse(EXEMPLAR_DUPLICATE_LABEL, 1, mapped, f" @{timestamp}")
            continue
        fields, size = exemplar_fields(value, labels)
        if size > MAX_STRING_FIELD_BYTES:
            batch.refuse(EXEMPLAR_TOO_LARGE, 1, mapped, f" @{timestamp}: {size} bytes")
            continue
        lines.append(f"{mapped.key}{fields} {timestamp}\n")
