import math
import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import records as r
from chalicelib.config import Settings
from chalicelib.errors import BadRequest
from chalicelib.prompb.prometheus_remote_pb2 import Label, TimeSeries
from tests.botocore_reference import write_records_params
from tests.helpers import label_bytes_view, make_series

NOW = 1_800_000_000_000
SETTINGS = Settings(default_database="prometheus", default_table="metrics")
STALE = struct.unpack("<d", struct.pack("<Q", r.STALE_NAN_BITS))[0]


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
    [(float("nan"), r.DROP_NAN), (STALE, r.DROP_STALE), (math.inf, r.DROP_INF), (-math.inf, r.DROP_INF)],
)
def test_unstorable_values_are_dropped_and_counted_not_refused(value, reason):
    series = make_series([("__name__", "m"), ("job", "x")], [(value, NOW), (2.0, NOW + 1)])
    batch = build(series)
    assert batch.dropped == {reason: 1}
    assert not batch.refused
    assert [rec["MeasureValue"] for rec in only_records(batch)] == ["2.0"]


def test_stale_marker_is_told_apart_from_other_nans():
    assert r.unstorable_value_reason(STALE) == r.DROP_STALE
    assert r.unstorable_value_reason(float("nan")) == r.DROP_NAN
    assert r.unstorable_value_reason(-0.0) is None


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
        ([("job", "x")], r.NO_METRIC_NAME),
        ([("__name__", "m")], r.NO_DIMENSIONS),
        ([("__name__", "m"), ("empty", "")], r.NO_DIMENSIONS),
        ([("__name__", ""), ("job", "x")], r.NO_METRIC_NAME),
        ([("__name__", "m"), ("", "x")], r.EMPTY_LABEL_NAME),
        ([("__name__", "m"), ("job", "a"), ("job", "b")], r.DUPLICATE_LABEL),
        ([("__name__", "m" * 257), ("job", "x")], r.LONG_MEASURE_NAME),
        ([("__name__", "m"), ("n" * 61, "x")], r.LONG_LABEL_NAME),
        ([("__name__", "m"), ("job", "v" * 2049)], r.LONG_LABEL_VALUE),
        ([("__name__", "m"), ("time", "x")], r.RESERVED_LABEL),
        ([("__name__", "m"), ("measure_value", "x")], r.RESERVED_LABEL),
        ([("__name__", "m"), ("measure_name_x", "x")], r.RESERVED_LABEL),
        ([("__name__", "m"), ("ts_anything", "x")], r.RESERVED_LABEL),
        ([("__name__", "m"), ("job", "x")] + [(f"l{i}", "v") for i in range(129)], r.TOO_MANY_LABELS),
        ([("__name__", "m"), ("job", "x")] + [(f"l{i}", "v" * 200) for i in range(11)], r.RECORD_TOO_LARGE),
        ([("__name__", "m"), ("prometheusTableLabel", "bad name")], r.INVALID_DESTINATION),
    ],
)
def test_series_breaking_a_timestream_limit_is_refused_with_a_reason(labels, reason):
    assert refusal(labels) == reason


def test_limits_at_their_exact_bounds_are_accepted():
    labels = [("__name__", "m" * 256), ("n" * 60, "v" * 1500)]
    assert only_records(build(make_series(labels, [(1.0, NOW)])))
    labels = [("__name__", "m"), ("job", "x")] + [(f"l{i}", "v") for i in range(127)]
    assert only_records(build(make_series(labels, [(1.0, NOW)])))


def test_limits_count_bytes_not_characters():
    assert refusal([("__name__", "m"), ("job", "é" * 1025)]) == r.LONG_LABEL_VALUE


def test_series_without_destination_is_refused_when_no_default_is_set():
    assert refusal([("__name__", "m"), ("job", "x")], settings=Settings()) == r.NO_DESTINATION


def test_a_refused_series_does_not_stop_its_neighbours():
    good = make_series([("__name__", "ok"), ("job", "x")], [(1.0, NOW)])
    bad = make_series([("job", "no-name")], [(1.0, NOW)])
    batch = build(bad, good, bad)
    assert [rec["MeasureName"] for rec in only_records(batch)] == ["ok"]
    assert batch.refused == {r.NO_METRIC_NAME: 2}


def test_samples_too_far_in_the_future_are_refused():
    series = make_series([("__name__", "m"), ("job", "x")], [(1.0, NOW + 15 * 60_000), (2.0, NOW + 15 * 60_000 + 1)])
    batch = build(series)
    assert [rec["MeasureValue"] for rec in only_records(batch)] == ["1.0"]
    assert batch.refused == {r.TOO_FAR_IN_FUTURE: 1}


def test_retention_is_checked_only_when_configured():
    old = NOW - 3 * 3_600_000
    series = make_series([("__name__", "m"), ("job", "x")], [(1.0, old)])
    assert only_records(build(series))
    batch = build(series, settings=replace(SETTINGS, memory_retention_hours=2))
    assert batch.refused == {r.OLDER_THAN_RETENTION: 1}


def test_native_histograms_are_refused_and_float_samples_beside_them_kept():
    series = make_series([("__name__", "m"), ("job", "x")], [(1.0, NOW)])
    series.histograms.add(count_int=3, sum=1.0, timestamp=NOW)
    batch = build(series)
    assert len(only_records(batch)) == 1
    assert batch.refused == {r.NATIVE_HISTOGRAM: 1}


def test_series_without_samples_produce_nothing():
    batch = build(make_series([("__name__", "m"), ("job", "x")], []))
    assert batch.record_count == 0 and not batch.refused and not batch.dropped


# Label names as Prometheus allows them, and values of any text (including empty).
prom_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: n != "__name__" and not r.is_reserved(n)
)


@given(
    metric=st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True),
    labels=st.dictionaries(prom_names, st.text(max_size=30), max_size=20),
)
def test_label_mapping_keeps_every_nonempty_label_as_a_dimension(metric, labels):
    routing = {SETTINGS.database_label, SETTINGS.table_label}
    # One fixed label (a name the strategy cannot produce): Timestream needs a dimension.
    series = make_series([("__name__", metric), ("fixed_label_0", "1"), *labels.items()], [(1.0, NOW)])
    (record,) = only_records(build(series))
    assert record["MeasureName"] == metric
    expected = {name: value for name, value in labels.items() if value and name not in routing}
    expected["fixed_label_0"] = "1"
    assert {d["Name"]: d["Value"] for d in record["Dimensions"]} == expected


def test_the_series_cache_maps_a_label_set_once_and_reuses_it():
    cache = r.SeriesCache(SETTINGS)
    series = make_series([("__name__", "m"), ("job", "x")], [(1.0, NOW)])
    first = r.build_records(label_bytes_view([series]), SETTINGS, NOW, cache).records[("prometheus", "metrics")][0][0]
    second = r.build_records(label_bytes_view([series]), SETTINGS, NOW + 1, cache).records[("prometheus", "metrics")][0][0]
    assert first is second


def test_the_series_cache_is_bounded():
    cache = r.SeriesCache(SETTINGS, max_entries=3)
    def key(name):
        return tuple(Label(name=n, value=v).SerializeToString() for n, v in (("__name__", name), ("job", "x")))

    for i in range(10):
        cache.lookup(key(f"m{i}"))
    assert len(cache._entries) <= 3
    assert cache.lookup(key("m9")).measure_name == "m9"


def test_a_label_that_is_not_a_label_message_is_a_bad_request():
    with pytest.raises(BadRequest, match="label"):
        r.SeriesCache(SETTINGS).lookup((b"\x0a\xff",))
