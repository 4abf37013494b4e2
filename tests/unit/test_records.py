import math
import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import series as ps
from chalicelib.config import Settings
from chalicelib.errors import BadRequest
from chalicelib.liveanalytics import records as r
from chalicelib.prompb.prometheus_remote_pb2 import Label, TimeSeries
from tests.botocore_reference import write_records_params
from tests.helpers import label_bytes_view, make_series

NOW = 1_800_000_000_000
SETTINGS = Settings(default_database="prometheus", default_table="metrics")
STALE = struct.unpack("<d", struct.pack("<Q", ps.STALE_NAN_BITS))[0]


def build(*series: TimeSeries, settings: Settings = SETTINGS) -> r.RecordBatch:
    return r.build_records(label_bytes_view(series), settings, NOW)


def as_dicts(records: list[r.Record]) -> list[dict]:
    return write_records_params("prometheus", "metrics", records)["Records"]


def only_records(batch: r.RecordBatch) -> list[dict]:
    assert list(batch.records) == [("prometheus", "metrics")]
    return as_dicts(batch.records[("prometheus", "metrics")])


def test_sample_maps_to_one_record_with_name_dimensions_value_and_time():
    series = make_series([("__name__", "up"), ("instance", "a:9100"), ("job", "node")], [(1.0, NOW)])
    (record,) = only_records(build(series))
    assert record == {
        "Dimensions": [
            {"Name": "instance", "Value": "a:9100", "DimensionValueType": "VARCHAR"},
            {"Name": "job", "Value": "node", "DimensionValueType": "VARCHAR"},
        ],
        "MeasureName": "up",
        "MeasureValue": "1.0",
        "Time": str(NOW),
    }


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_exactly(value):
    series = make_series([("__name__", "m"), ("job", "x")], [(value, NOW)])
    (record,) = only_records(build(series))
    parsed = float(record["MeasureValue"])
    assert struct.pack("<d", parsed) == struct.pack("<d", value)  # also keeps the sign of -0.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [(float("nan"), ps.DROP_NAN), (STALE, ps.DROP_STALE), (math.inf, ps.DROP_INF), (-math.inf, ps.DROP_INF)],
)
def test_unstorable_values_are_dropped_and_counted_not_refused(value, reason):
    series = make_series([("__name__", "m"), ("job", "x")], [(value, NOW), (2.0, NOW + 1)])
    batch = build(series)
    assert batch.dropped == {reason: 1}
    assert not batch.refused
    assert [rec["MeasureValue"] for rec in only_records(batch)] == ["2.0"]


def test_stale_marker_is_told_apart_from_other_nans():
    assert ps.unstorable_value_reason(STALE) == ps.DROP_STALE
    assert ps.unstorable_value_reason(float("nan")) == ps.DROP_NAN
    assert ps.unstorable_value_reason(-0.0) is None


def test_empty_label_values_are_not_stored():
    series = make_series([("__name__", "m"), ("empty", ""), ("job", "x")], [(1.0, NOW)])
    (record,) = only_records(build(series))
    assert [d["Name"] for d in record["Dimensions"]] == ["job"]


def test_routing_labels_are_not_dimensions():
    series = make_series(
        [("__name__", "m"), ("prometheusDatabaseLabel", "other_db"), ("prometheusTableLabel", "nodes"),
         ("job", "x")],
        [(1.0, NOW)],
    )
    batch = build(series)
    ((destination, records),) = batch.records.items()
    assert destination == ("other_db", "nodes")
    (record,) = as_dicts(records)
    assert [d["Name"] for d in record["Dimensions"]] == ["job"]


def refusal(labels, settings=SETTINGS):
    batch = build(make_series(labels, [(1.0, NOW), (2.0, NOW + 1)]), settings=settings)
    assert batch.record_count == 0
    assert sum(batch.refused.values()) == 2, "every sample of a refused series is counted"
    (reason,) = batch.refused
    return reason


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([("job", "x")], ps.NO_METRIC_NAME),
        ([("__name__", ""), ("job", "x")], ps.NO_METRIC_NAME),
        ([("__name__", "m"), ("", "x")], ps.EMPTY_LABEL_NAME),
        ([("__name__", "m"), ("job", "a"), ("job", "b")], ps.DUPLICATE_LABEL),
        ([("__name__", "m" * 257), ("job", "x")], r.LONG_MEASURE_NAME),
        ([("__name__", "m"), ("n" * 61, "x")], r.LONG_LABEL_NAME),
        ([("__name__", "m"), ("job", "v" * 2049)], r.LONG_LABEL_VALUE),
        ([("__name__", "m"), ("time", "x")], r.RESERVED_LABEL),
        ([("__name__", "m"), ("measure_value", "x")], r.RESERVED_LABEL),
        ([("__name__", "m"), ("measure_name_x", "x")], r.RESERVED_LABEL),
        ([("__name__", "m"), ("ts_anything", "x")], r.RESERVED_LABEL),
        ([("__name__", "m"), ("a:b", "x")], r.COLON_IN_LABEL_NAME),
        ([("__name__", "m"), (":", "x")], r.COLON_IN_LABEL_NAME),
        ([("__name__", "m"), ("__prometheus_timestream_series__", "x")], r.CONNECTOR_LABEL),
        ([("__name__", "m"), ("job", "x"), ("__prometheus_timestream_series__", "name_only")], r.CONNECTOR_LABEL),
        ([("__name__", "m"), ("job", "x")] + [(f"l{i}", "v") for i in range(129)], r.TOO_MANY_LABELS),
        ([("__name__", "m"), ("job", "x")] + [(f"l{i}", "v" * 200) for i in range(11)], r.RECORD_TOO_LARGE),
        ([("__name__", "m"), ("prometheusTableLabel", "bad name")], ps.INVALID_DESTINATION),
    ],
)
def test_series_breaking_a_timestream_limit_is_refused_with_a_reason(labels, reason):
    assert refusal(labels) == reason


OWNED = {"Name": "__prometheus_timestream_series__", "Value": "name_only", "DimensionValueType": "VARCHAR"}


@pytest.mark.parametrize(
    "labels",
    [[("__name__", "sum_up")], [("__name__", "sum_up"), ("empty", "")],
     [("__name__", "sum_up"), ("prometheusDatabaseLabel", "prometheus"), ("prometheusTableLabel", "metrics")],
     [("__name__", "job:up:sum"), ("__prometheus_timestream_series__", "")]],
    ids=["name-only", "empty-label", "routing-labels-only", "empty-owned-label"],
)
def test_a_series_with_no_label_besides_its_name_is_stored_with_the_connectors_dimension(labels):
    # Timestream refuses a record without dimensions; the connector adds one it owns, and remote
    # read takes it off again (see test_read_results).
    (record,) = only_records(build(make_series(labels, [(1.0, NOW)])))
    assert record["Dimensions"] == [OWNED]
    assert record["MeasureName"] == labels[0][1]


def test_the_connectors_dimension_is_a_name_timestream_accepts_and_prometheus_reserves():
    name, value = r.NAME_ONLY_DIMENSION
    assert name.startswith("__") and ":" not in name and not r.is_reserved(name)
    assert 1 <= len(name.encode()) <= r.MAX_DIMENSION_NAME_BYTES and value


@pytest.mark.parametrize(
    "labels",
    [
        [("__name__", "resource.cpu.usage"), ("job.name", "testjob"), ("instance.name", "localhost:9090")],
        [("__name__", "resource cpu usage"), ("job name", "testjob"), ("instance name", "localhost:9090")],
        [("__name__", "température_°C"), ("zone", "日本"), ("emoji🚀", "test🚀")],
        [("__name__", "up"), ("job", "test\njob\n"), ("instance", "line\r\nbreak")],
        [("__name__", "job:up:sum_rate5m"), ("job", "x")],
    ],
    ids=["dots", "spaces", "non-ascii", "newlines-in-values", "colons-in-metric-name"],
)
def test_utf8_names_and_values_pass_through_unchanged(labels):
    (record,) = only_records(build(make_series(labels, [(1.0, NOW)])))
    assert record["MeasureName"] == labels[0][1]
    assert [(d["Name"], d["Value"]) for d in record["Dimensions"]] == labels[1:]


def test_limits_count_bytes_not_characters():
    assert refusal([("__name__", "m"), ("job", "é" * 1025)]) == r.LONG_LABEL_VALUE


def test_series_without_destination_is_refused_when_no_default_is_set():
    assert refusal([("__name__", "m"), ("job", "x")], settings=Settings()) == ps.NO_DESTINATION


def test_a_refused_series_does_not_stop_its_neighbours():
    good = make_series([("__name__", "ok"), ("job", "x")], [(1.0, NOW)])
    bad = make_series([("job", "no-name")], [(1.0, NOW)])
    batch = build(bad, good, bad)
    assert [rec["MeasureName"] for rec in only_records(batch)] == ["ok"]
    assert batch.refused == {ps.NO_METRIC_NAME: 2}


def test_retention_is_checked_only_when_configured():
    old = NOW - 3 * 3_600_000
    series = make_series([("__name__", "m"), ("job", "x")], [(1.0, old)])
    assert only_records(build(series))
    batch = build(series, settings=replace(SETTINGS, memory_retention_hours=2))
    assert batch.refused == {ps.OLDER_THAN_RETENTION: 1}


def test_native_histograms_become_multi_records_beside_the_float_samples():
    series = make_series([("__name__", "m"), ("job", "x")], [(1.0, NOW)])
    series.histograms.add(count_int=3, sum=1.0, timestamp=NOW)
    batch = build(series)
    assert len(only_records(batch)) == 1
    assert not batch.refused
    ((mapped, name, measures, time, _),) = batch.histograms[("prometheus", "metrics")]
    assert (mapped.measure_name, name, time) == ("m", "m", str(NOW))
    assert '"Name":"histogram_count","Value":"3.0","Type":"DOUBLE"' in measures


def test_series_without_samples_produce_nothing():
    batch = build(make_series([("__name__", "m"), ("job", "x")], []))
    assert batch.record_count == 0 and not batch.refused and not batch.dropped


# Label names as Prometheus 3 allows them (any UTF-8) minus what Timestream refuses, and values
# of any text (including empty).
label_names = st.text(st.characters(codec="utf-8", exclude_characters=":"), min_size=1, max_size=15).filter(
    lambda n: n not in ("__name__", r.NAME_ONLY_DIMENSION[0], *r.MEASURE_COLUMNS) and not r.is_reserved(n)
)


@given(
    metric=st.text(st.characters(codec="utf-8"), min_size=1, max_size=30),
    labels=st.dictionaries(label_names, st.text(max_size=30), max_size=8),  # within 2 KiB
)
def test_label_mapping_keeps_every_nonempty_label_as_a_dimension(metric, labels):
    routing = {SETTINGS.database_label, SETTINGS.table_label}
    series = make_series([("__name__", metric), *labels.items()], [(1.0, NOW)])
    (record,) = only_records(build(series))
    assert record["MeasureName"] == metric
    expected = {name: value for name, value in labels.items() if value and name not in routing}
    assert {d["Name"]: d["Value"] for d in record["Dimensions"]} == (expected or dict([r.NAME_ONLY_DIMENSION]))


def test_the_series_cache_maps_a_label_set_once_and_reuses_it():
    cache = r.series_cache(SETTINGS)
    series = make_series([("__name__", "m"), ("job", "x")], [(1.0, NOW)])
    first = r.build_records(label_bytes_view([series]), SETTINGS, NOW, cache).records[("prometheus", "metrics")][0][0]
    second = r.build_records(label_bytes_view([series]), SETTINGS, NOW + 1, cache).records[("prometheus", "metrics")][0][0]
    assert first is second


def test_the_series_cache_is_bounded():
    cache = r.series_cache(SETTINGS, max_entries=3)
    def key(name):
        return tuple(Label(name=n, value=v).SerializeToString() for n, v in (("__name__", name), ("job", "x")))

    for i in range(10):
        cache.lookup(key(f"m{i}"))
    assert len(cache._entries) <= 3
    assert cache.lookup(key("m9")).measure_name == "m9"


def test_a_label_that_is_not_a_label_message_is_a_bad_request():
    with pytest.raises(BadRequest, match="label"):
        r.series_cache(SETTINGS).lookup((b"\x0a\xff",))


# -- every limit at its exact bound: accepted there, refused one byte (or one label, one ms) over --

def record_of(total_bytes, measure="m", dims=()):
    """Labels whose record is exactly `total_bytes` as Timestream counts it: 8-byte time, 8-byte
    double, the measure name and each dimension's name and value, in UTF-8 bytes. A `fill`
    dimension of ASCII makes up the difference."""
    used = 16 + len(measure.encode()) + sum(len(n.encode()) + len(v.encode()) for n, v in dims) + len("fill")
    return [("__name__", measure), *dims, ("fill", "f" * (total_bytes - used))]


def stored_or_refused(labels, settings=SETTINGS):
    """None if the series is stored as one record, else its refusal reason."""
    batch = build(make_series(labels, [(1.0, NOW)]), settings=settings)
    if batch.record_count:
        assert not batch.refused
        return None
    (reason,) = batch.refused
    return reason


def dimensions(count, value="v"):
    return [(f"l{i}", value) for i in range(count)]


RECORD_SHAPES = {
    "one-dimension": ("m", ()),
    "long-name-and-127-dimensions": ("m" * 256, tuple(dimensions(127, "v" * 5))),
    "multi-byte-name-and-values": ("é" * 100, (("zoné", "é" * 300), ("job", "日本語"))),
}


@pytest.mark.parametrize(("measure", "dims"), RECORD_SHAPES.values(), ids=RECORD_SHAPES.keys())
def test_a_record_of_exactly_2048_bytes_is_stored_and_one_of_2049_refused(measure, dims):
    assert stored_or_refused(record_of(2048, measure, dims)) is None
    assert stored_or_refused(record_of(2049, measure, dims)) == r.RECORD_TOO_LARGE


@pytest.mark.parametrize(
    ("at_bound", "over", "reason"),
    [
        ([("__name__", "m"), *dimensions(128)], [("__name__", "m"), *dimensions(129)], r.TOO_MANY_LABELS),
        ([("__name__", "m" * 256), ("job", "x")], [("__name__", "m" * 257), ("job", "x")], r.LONG_MEASURE_NAME),
        ([("__name__", "é" * 128), ("job", "x")], [("__name__", "é" * 128 + "m"), ("job", "x")], r.LONG_MEASURE_NAME),
        ([("__name__", "m"), ("n" * 60, "x")], [("__name__", "m"), ("n" * 61, "x")], r.LONG_LABEL_NAME),
        ([("__name__", "m"), ("é" * 30, "x")], [("__name__", "m"), ("é" * 30 + "n", "x")], r.LONG_LABEL_NAME),
    ],
    ids=["dimensions-128-129", "measure-name-256-257", "measure-name-utf8", "label-name-60-61",
         "label-name-utf8"],
)
def test_limits_hold_at_their_exact_bound_and_refuse_one_over(at_bound, over, reason):
    assert stored_or_refused(at_bound) is None
    assert stored_or_refused(over) == reason


@pytest.mark.parametrize(("at_bound", "over"), [("v" * 2048, "v" * 2049), ("é" * 1024, "é" * 1024 + "v")],
                         ids=["ascii", "utf8"])
def test_a_label_value_of_2048_bytes_passes_its_own_limit_and_2049_does_not(at_bound, over):
    # 2048 value bytes leave no room for the rest of a 2 KiB record, so that series is refused as
    # a whole record; the value limit itself lets it through.
    assert r.check_labels([("__name__", "m"), ("job", at_bound)])[0] == r.RECORD_TOO_LARGE
    assert r.check_labels([("__name__", "m"), ("job", over)])[0] == r.LONG_LABEL_VALUE


HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("settings", "oldest", "latest"),
    [
        (SETTINGS, None, NOW + 15 * 60_000),
        (replace(SETTINGS, memory_retention_hours=2), NOW - 2 * HOUR_MS, NOW + 15 * 60_000),
        (replace(SETTINGS, memory_retention_hours=8766), NOW - 8766 * HOUR_MS, NOW + 15 * 60_000),
        (replace(SETTINGS, max_future_ms=0), None, NOW),
        (replace(SETTINGS, max_future_ms=60_000, memory_retention_hours=1), NOW - HOUR_MS, NOW + 60_000),
    ],
    ids=["default-15min-ahead", "retention-2h", "retention-1y", "no-future", "future-1min-retention-1h"],
)
def test_the_time_window_is_inclusive_to_the_millisecond(settings, oldest, latest):
    edges = [(latest, latest + 1, ps.TOO_FAR_IN_FUTURE)]
    if oldest is not None:
        edges.append((oldest, oldest - 1, ps.OLDER_THAN_RETENTION))
    for inside, outside, reason in edges:
        batch = build(make_series([("__name__", "m"), ("job", "x")], [(1.0, inside), (2.0, outside)]), settings=settings)
        assert [rec["Time"] for rec in only_records(batch)] == [str(inside)]
        assert batch.refused == {reason: 1}


def test_the_series_cache_maps_a_label_set_once_and_hands_back_the_same_series():
    cache = r.series_cache(SETTINGS)
    labels = tuple(label.SerializeToString() for label in make_series([("__name__", "up"), ("job", "x")], []).labels)
    first = cache.lookup(labels)
    assert cache.lookup(labels) is first  # the memoised record prefixes live on this object
