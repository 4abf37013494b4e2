"""Series and samples -> Timestream records, with every Timestream limit enforced locally.

A ValidationException from Timestream fails all records of a call, so anything Timestream
would refuse is caught here, per series, with a counted reason; the series beside it are
written. Samples that cannot be stored by nature (NaN, +-Inf, stale markers) are dropped and
counted: they are normal Prometheus traffic, not errors.

Both remote write messages go through one loop (`build_records` for 1.0, `build_records_v2`
for 2.0); they differ only in how a series' labels are found (series_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from chalicelib.config import Settings
from chalicelib.destinations import Destination, Labels, is_valid_destination, route
from chalicelib.errors import BadRequest
from chalicelib.liveanalytics.histograms import (
    EXEMPLAR_SUFFIX,
    MEASURE_COLUMNS,
    exemplar_measures,
    histogram_measures,
    is_stale,
)
from chalicelib.prompb.remote_write_v2_pb2 import Histogram
from chalicelib.series import (
    DROP_STALE_HISTOGRAM,
    DUPLICATE_LABEL,
    EMPTY_LABEL_NAME,
    EXEMPLAR_DUPLICATE_LABEL,
    EXEMPLAR_NOT_FINITE,
    INVALID_DESTINATION,
    METRIC_NAME_LABEL,
    NO_DESTINATION,
    NO_METRIC_NAME,
    OLDER_THAN_RETENTION,
    TOO_FAR_IN_FUTURE,
    Accounting,
    cut,
    describe_series,
    unstorable_value_reason,
)
from chalicelib.series_cache import Exemplar, SeriesCache, SeriesReader

_INF = float("inf")

# Timestream limits (https://docs.aws.amazon.com/timestream/latest/developerguide/ts-limits.html)
MAX_DIMENSION_NAME_BYTES = 60
MAX_DIMENSION_VALUE_BYTES = 2048
MAX_DIMENSIONS = 128
MAX_MEASURE_NAME_BYTES = 256
MAX_RECORD_BYTES = 2048
RESERVED_NAMES = frozenset({"time", "measure_name", "measure_value"})
RESERVED_PREFIXES = ("ts_", "measure_name", "measure_value")
# Timestream refuses a whole call when a dimension name contains one.
FORBIDDEN_IN_DIMENSION_NAME = ":"
# A DOUBLE measure and the timestamp each count 8 bytes towards the record size.
_FIXED_RECORD_BYTES = 16

LONG_MEASURE_NAME = "measure_name_too_long"
LONG_LABEL_NAME = "label_name_too_long"
LONG_LABEL_VALUE = "label_value_too_long"
RESERVED_LABEL = "reserved_label_name"
TOO_MANY_LABELS = "too_many_labels"
COLON_IN_LABEL_NAME = "label_name_has_colon"
CONNECTOR_LABEL = "label_reserved_by_connector"
RECORD_TOO_LARGE = "record_too_large"
HISTOGRAM_TOO_LARGE = "histogram_too_large"
EXEMPLAR_TOO_LARGE = "exemplar_too_large"
EXEMPLAR_NAME_TOO_LONG = "exemplar_measure_name_too_long"
# Timestream needs at least one dimension per record ("At least one dimension is required for a
# record"), and a series such as a recording rule's `sum(up)` has none: it is stored with this
# dimension, which the connector owns, and remote read takes it off again, so the series reads
# back exactly as sent. Prometheus reserves names starting with "__" for internal use, so no
# ordinary label has it; a series that brings its own is refused (CONNECTOR_LABEL).
NAME_ONLY_DIMENSION = ("__prometheus_timestream_series__", "name_only")


@dataclass(eq=False, slots=True)
class MappedSeries:
    """What a series' labels decide, independent of its samples (and so cached per series)."""

    destination: Destination | None
    refusal: str | None
    measure_name: str = ""
    dimensions: tuple[tuple[str, str], ...] = ()
    # Owned by write_body: (shared dimensions left out, this series' record JSON up to its
    # value). One slot, not a dict: a series meets the same neighbours in every scrape, and the
    # cache holds tens of thousands of these. One tuple, replaced whole, so concurrent requests
    # never see a prefix paired with the wrong set.
    rendered: tuple[frozenset[tuple[str, str]] | None, str] | None = field(default=None, repr=False)
    # For a refused series only: how it reads in messages and logs, with what would fix it.
    example: str = field(default="", repr=False)
    # Bytes of a record of this series before its measures (time, measure name, dimensions);
    # -1 until a histogram or exemplar of it needs it.
    base_bytes: int = field(default=-1, repr=False)

    def record_base_bytes(self) -> int:
        if self.base_bytes < 0:
            self.base_bytes = 8 + len(self.measure_name.encode()) + sum(
                len(name.encode()) + len(value.encode()) for name, value in self.dimensions
            )
        return self.base_bytes

    def describe(self) -> str:
        """The series as `name{labels}` (truncated) for messages: never routing labels' secrets
        (there are none), never credentials (labels are the sender's data, not its headers)."""
        return self.example or describe_series([(METRIC_NAME_LABEL, self.measure_name), *self.dimensions])


# One record per sample: (series, value as text, time in ms as text). Plain tuples keep the
# per-sample cost to one allocation; writer bodies are built from these.
Record = tuple[MappedSeries, str, str]
# A MULTI measure record (histogram or exemplar): (series, measure name, MeasureValues JSON,
# time in ms as text, bytes its measures count towards the record size and the bill).
MultiRecord = tuple[MappedSeries, str, str, str, int]
_MULTI_RECORD_FIELDS = 5


def holds_multi_records(call: list[Record] | list[MultiRecord]) -> bool:
    """Whether a call (never mixed) carries MULTI records rather than float records."""
    return len(call[0]) == _MULTI_RECORD_FIELDS


@dataclass
class RecordBatch(Accounting):
    """Everything one request turns into: records per destination and what was left out."""

    records: dict[Destination, list[Record]] = field(default_factory=dict)
    # Histogram and exemplar records, apart: they go in calls of their own (MULTI measures).
    histograms: dict[Destination, list[MultiRecord]] = field(default_factory=dict)
    exemplars: dict[Destination, list[MultiRecord]] = field(default_factory=dict)

    @property
    def record_count(self) -> int:
        """Records of every kind: float samples, histograms, exemplars."""
        kinds = (self.records, self.histograms, self.exemplars)
        return sum(len(records) for kind in kinds for records in kind.values())


def is_reserved(name: str) -> bool:
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def check_labels(labels: Labels) -> tuple[str | None, str, tuple[tuple[str, str], ...]]:
    """Labels (routing labels already removed) -> (refusal reason or None, measure name, dimensions).

    Empty values mean "absent" in Prometheus and are not stored. Names are UTF-8 of any kind
    (dots, spaces, non-ASCII, as Prometheus 3 allows) except what Timestream refuses. A series
    with no dimension gets NAME_ONLY_DIMENSION.
    """
    measure_name = ""
    dimensions: list[tuple[str, str]] = []
    seen: set[str] = set()
    size = _FIXED_RECORD_BYTES
    for name, value in labels:
        if not name:
            return EMPTY_LABEL_NAME, "", ()
        if name in seen:
            return DUPLICATE_LABEL, "", ()
        seen.add(name)
        if name == METRIC_NAME_LABEL:
            measure_name = value
            size += len(value.encode())
            continue
        if not value:
            continue
        name_bytes = len(name.encode())
        value_bytes = len(value.encode())
        if name_bytes > MAX_DIMENSION_NAME_BYTES:
            return LONG_LABEL_NAME, "", ()
        if value_bytes > MAX_DIMENSION_VALUE_BYTES:
            return LONG_LABEL_VALUE, "", ()
        if is_reserved(name):
            return RESERVED_LABEL, "", ()
        if FORBIDDEN_IN_DIMENSION_NAME in name:
            return COLON_IN_LABEL_NAME, "", ()
        if name == NAME_ONLY_DIMENSION[0] or name in MEASURE_COLUMNS:
            return CONNECTOR_LABEL, "", ()
        size += name_bytes + value_bytes
        dimensions.append((name, value))
    if not measure_name:
        return NO_METRIC_NAME, "", ()
    if not dimensions:
        dimensions.append(NAME_ONLY_DIMENSION)
        size += len(NAME_ONLY_DIMENSION[0]) + len(NAME_ONLY_DIMENSION[1])
    if len(measure_name.encode()) > MAX_MEASURE_NAME_BYTES:
        return LONG_MEASURE_NAME, "", ()
    if len(dimensions) > MAX_DIMENSIONS:
        return TOO_MANY_LABELS, "", ()
    if size > MAX_RECORD_BYTES:
        return RECORD_TOO_LARGE, "", ()
    return None, measure_name, tuple(dimensions)


def map_series(labels: Labels, settings: Settings) -> MappedSeries:
    """Route and check one series' labels. A refused series carries an example that says
    which series it is and, for destination errors, what would fix it."""
    destination, kept = route(labels, settings)
    if destination is None:
        return MappedSeries(None, NO_DESTINATION, example=(
            f"{describe_series(labels)}: no {settings.database_label} and {settings.table_label} labels "
            "(add them with write_relabel_configs) and no DEFAULT_DATABASE/DEFAULT_TABLE set"
        ))
    if not is_valid_destination(destination):
        return MappedSeries(None, INVALID_DESTINATION, example=(
            f"{describe_series(labels)}: database {cut(destination.database, 80)!r} table "
            f"{cut(destination.table, 80)!r} (names are 3-256 letters, digits, '_', '-' or '.')"
        ))
    reason, measure_name, dimensions = check_labels(kept)
    if reason is not None:
        return MappedSeries(None, reason, example=describe_series(labels))
    return MappedSeries(destination, None, measure_name, dimensions)


def series_cache(settings: Settings, max_entries: int | None = None) -> SeriesCache[MappedSeries]:
    """The cache of MappedSeries for one process. One shared object per distinct (name, value)
    pair: most pairs (job, env, cluster...) repeat across thousands of series, and these objects
    stay in memory as long as the cache."""
    pairs: dict[tuple[str, str], tuple[str, str]] = {}

    def map_interned(labels: Labels) -> MappedSeries:
        mapped = map_series(labels, settings)
        mapped.dimensions = tuple([pairs.setdefault(pair, pair) for pair in mapped.dimensions])
        return mapped

    return SeriesCache(map_interned, max_entries or settings.series_cache_size, on_clear=pairs.clear)


def build_records(
    timeseries: Iterable[Any], settings: Settings, now_ms: int, cache: SeriesCache[MappedSeries] | None = None
) -> RecordBatch:
    """Turn 1.0 TimeSeriesLabelBytes (labels as serialised bytes, see codec) into records."""
    return _build((cache or series_cache(settings)).reader_v1(timeseries), settings, now_ms)


def build_records_v2(
    request: Any, settings: Settings, now_ms: int, cache: SeriesCache[MappedSeries] | None = None
) -> RecordBatch:
    """Turn a 2.0 Request into records. Metadata (type, help, unit) and start timestamps are
    accepted and not stored. A reference outside the symbols table, or a symbols table that
    does not start with "", is a BadRequest for the whole request: it is raised before any
    record is written, since the other references of such a request cannot be trusted either."""
    return _build((cache or series_cache(settings)).reader_v2(request), settings, now_ms)


def _build(reader: SeriesReader[MappedSeries], settings: Settings, now_ms: int) -> RecordBatch:
    """The records of either message's series, read as `reader` says.

    This loop runs once per series and sample of every request, so it is written for the
    interpreter: locals instead of attribute lookups, one comparison chain for the value.
    Histograms and exemplars (rare next to float samples) are handed to `_histograms` and
    `_exemplars`, which make their MULTI records.
    """
    mapped_of, histogram_of = reader.mapped_of, reader.histogram_of
    exemplar_of, check_exemplars = reader.exemplar_of, reader.check_exemplars
    batch = RecordBatch()
    records = batch.records
    dropped = batch.dropped
    refuse = batch.refuse
    latest_ms = now_ms + settings.max_future_ms
    earliest_ms = (
        now_ms - settings.memory_retention_hours * 3_600_000
        if settings.memory_retention_hours is not None
        else -(2**63)
    )
    destination = append = None
    window = (earliest_ms, latest_ms)
    for series in reader.timeseries:
        mapped = mapped_of(series)
        if series.histograms:
            _histograms(batch, mapped, series.histograms, histogram_of, window)
        series_exemplars = series.exemplars
        if series_exemplars:
            if check_exemplars is not None:
                check_exemplars(series_exemplars)
            _exemplars(batch, mapped, series_exemplars, exemplar_of, window)
        samples = series.samples
        if not samples:
            continue
        if mapped.refusal is not None:
            refuse(mapped.refusal, len(samples), mapped)
            continue
        if mapped.destination != destination:
            destination = mapped.destination
            append = records.setdefault(destination, []).append
        for sample in samples:
            value = sample.value
            timestamp = sample.timestamp
            # False for NaN (every comparison with NaN is) and for both infinities.
            if not -_INF < value < _INF:
                dropped[unstorable_value_reason(value)] += 1
            elif earliest_ms <= timestamp <= latest_ms:
                append((mapped, repr(value), str(timestamp)))
            elif timestamp > latest_ms:
                refuse(TOO_FAR_IN_FUTURE, 1, mapped, f" @{timestamp}")
            else:
                refuse(OLDER_THAN_RETENTION, 1, mapped, f" @{timestamp}")
    return batch


def _in_window(batch: RecordBatch, mapped: MappedSeries, timestamp: int, window: tuple[int, int]) -> bool:
    """Whether `timestamp` may be written; refuses (and counts) it otherwise."""
    if timestamp > window[1]:
        batch.refuse(TOO_FAR_IN_FUTURE, 1, mapped, f" @{timestamp}")
        return False
    if timestamp < window[0]:
        batch.refuse(OLDER_THAN_RETENTION, 1, mapped, f" @{timestamp}")
        return False
    return True


def _histograms(
    batch: RecordBatch, mapped: MappedSeries, entries: Any, histogram_of: Callable[[Any], Any],
    window: tuple[int, int],
) -> None:
    """One MULTI record per histogram sample of a series (see histograms.py); a histogram whose
    record would pass Timestream's limits is refused whole, never truncated."""
    if mapped.refusal is not None:
        batch.refuse(mapped.refusal, len(entries), mapped)
        return
    records = batch.histograms.setdefault(mapped.destination, [])  # type: ignore[arg-type]
    base = mapped.record_base_bytes()
    for entry in entries:
        try:
            histogram = histogram_of(entry)
        except DecodeError:
            raise BadRequest("body is not a valid protobuf message: a histogram does not parse") from None
        timestamp = histogram.timestamp
        if is_stale(histogram):
            batch.dropped[DROP_STALE_HISTOGRAM] += 1
            continue
        if not _in_window(batch, mapped, timestamp, window):
            continue
        if histogram is entry:  # a 2.0 message, part of the request: do not change it
            histogram = Histogram()
            histogram.CopyFrom(entry)
        measures, size = histogram_measures(histogram)
        if not measures or base + size > MAX_RECORD_BYTES:
            batch.refuse(HISTOGRAM_TOO_LARGE, 1, mapped, f" @{timestamp}: {base + size} bytes")
            continue
        records.append((mapped, mapped.measure_name, measures, str(timestamp), size))


def _exemplars(
    batch: RecordBatch, mapped: MappedSeries, entries: Any,
    exemplar_of: Callable[[Any], Exemplar], window: tuple[int, int],
) -> None:
    """One MULTI record per exemplar, under the metric name + EXEMPLAR_SUFFIX."""
    if mapped.refusal is not None:
        batch.refuse(mapped.refusal, len(entries), mapped)
        return
    measure_name = mapped.measure_name + EXEMPLAR_SUFFIX
    name_bytes = len(measure_name.encode())
    records = batch.exemplars.setdefault(mapped.destination, [])  # type: ignore[arg-type]
    base = mapped.record_base_bytes() + len(EXEMPLAR_SUFFIX)
    for entry in entries:
        value, timestamp, labels = exemplar_of(entry)
        if name_bytes > MAX_MEASURE_NAME_BYTES:
            batch.refuse(EXEMPLAR_NAME_TOO_LONG, 1, mapped)
            continue
        if not -_INF < value < _INF:
            batch.refuse(EXEMPLAR_NOT_FINITE, 1, mapped, f" @{timestamp}")
            continue
        if not _in_window(batch, mapped, timestamp, window):
            continue
        if len({name for name, _ in labels}) != len(labels):
            # Stored as a JSON object, which has one value per name: refused rather than cut.
            batch.refuse(EXEMPLAR_DUPLICATE_LABEL, 1, mapped, f" @{timestamp}")
            continue
        measures, size = exemplar_measures(value, labels)
        if base + size > MAX_RECORD_BYTES:
            batch.refuse(EXEMPLAR_TOO_LARGE, 1, mapped, f" @{timestamp}: {base + size} bytes")
            continue
        records.append((mapped, measure_name, measures, str(timestamp), size))
