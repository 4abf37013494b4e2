"""Series -> InfluxDB line protocol: the layout of InfluxDB's own Prometheus endpoint, escaping
that round-trips through a line-protocol reader written from the spec, and every refusal."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.influxdb import records
from chalicelib.influxdb.records import build_lines, build_lines_v2, escape, series_key, unrepresentable
from chalicelib.native_histograms import decode_histogram
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.prompb import remote_write_v2_pb2 as v2
from chalicelib.series import DROP_INF, DROP_NAN, DROP_STALE, DROP_STALE_HISTOGRAM, NO_DESTINATION
from tests.helpers import RequestV2, label_bytes_view, make_series
from tests.line_protocol import LineError, parse_line, parse_lines

SETTINGS = Settings(storage_engine="influxdb", influxdb_url="http://127.0.0.1:1", default_database="prom")
STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
T = 1_700_000_000_123


def lines_of(series_specs, settings=SETTINGS):
    batch = build_lines(label_bytes_view(make_series(labels, samples) for labels, samples in series_specs), settings)
    return batch


def points(batch, database="prom", kind="samples"):
    return parse_lines("".join(getattr(batch, kind).get(database, [])))


def test_the_layout_is_the_prometheus_endpoints_measurement_tags_value_milliseconds():
    batch = lines_of([([("__name__", "http_requests_total"), ("job", "api"), ("code", "200")], [(1027.0, T)])])
    assert batch.samples["prom"] == [
        f"http_requests_total,__name__=http_requests_total,code=200,job=api value=1027.0 {T}\n"
    ]
    assert points(batch) == [("http_requests_total", {"__name__": "http_requests_total", "code": "200", "job": "api"},
                              {"value": 1027.0}, T)]


def test_empty_label_values_are_not_tags_and_routing_labels_are_never_stored():
    labels = [("__name__", "up"), ("empty", ""), ("prometheusDatabaseLabel", "other"),
              ("prometheusTableLabel", "anything")]
    batch = lines_of([(labels, [(1.0, T)])])
    assert list(batch.samples) == ["other"]
    assert points(batch, "other") == [("up", {"__name__": "up"}, {"value": 1.0}, T)]


def test_default_database_alone_is_a_destination_and_without_it_the_series_is_refused():
    assert list(lines_of([([("__name__", "up")], [(1.0, T)])]).samples) == ["prom"]
    bare = Settings(storage_engine="influxdb", influxdb_url="http://127.0.0.1:1")
    batch = lines_of([([("__name__", "up")], [(1.0, T)]), ([("__name__", "a"), ("prometheusDatabaseLabel", "d")],
                                                            [(2.0, T)])], bare)
    assert batch.refused == {NO_DESTINATION: 1}
    assert "DEFAULT_DATABASE" in batch.refused_examples[NO_DESTINATION][0]
    assert points(batch, "d") == [("a", {"__name__": "a"}, {"value": 2.0}, T)]


@pytest.mark.parametrize("value", [0.1, -0.0, 5e-324, 1e300, -1.7976931348623157e308, 1.0, 123456789.123456789,
                                   2.0**53 + 2])
def test_values_are_written_as_text_that_parses_back_to_the_identical_float(value):
    (_, _, fields, _), = points(lines_of([([("__name__", "m")], [(value, T)])]))
    assert struct.pack("<d", fields["value"]) == struct.pack("<d", value)


def test_nan_infinities_and_stale_markers_are_dropped_and_counted_the_rest_written():
    batch = lines_of([([("__name__", "m")], [(math.nan, T), (math.inf, T + 1), (-math.inf, T + 2), (STALE, T + 3),
                                             (2.5, T + 4)])])
    assert batch.dropped == {DROP_NAN: 1, DROP_INF: 2, DROP_STALE: 1}
    assert [p[3] for p in points(batch)] == [T + 4]
    assert not batch.refused


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([("__name__", "m"), ("a", "x\ny")], records.NEWLINE),
        ([("__name__", "m\n")], records.NEWLINE),
        ([("__name__", "m"), ("a\nb", "x")], records.NEWLINE),
        ([("__name__", "m"), ("a", "ends\\")], records.TRAILING_BACKSLASH),
        ([("__name__", "m"), ("k\\", "v")], records.TRAILING_BACKSLASH),
        ([("__name__", "m\\")], records.NAME_BACKSLASH),
        ([("__name__", "m\\,x")], records.NAME_BACKSLASH),
        ([("__name__", "m\\ x")], records.NAME_BACKSLASH),
        ([("__name__", "m\\=x")], records.NAME_BACKSLASH),
        ([("__name__", "#comment")], records.HASH_METRIC_NAME),
        ([("__name__", "m"), ("time", "1")], records.RESERVED_LABEL),
        ([("__name__", "m"), ("_field", "f")], records.RESERVED_LABEL),
        ([("__name__", "m"), ("_measurement", "f")], records.RESERVED_LABEL),
        ([("__name__", "m"), ("value", "v")], records.CONNECTOR_LABEL),
        ([("__name__", "m"), ("histogram", "v")], records.CONNECTOR_LABEL),
        ([("__name__", "m"), ("a", "x" * 70_000)], records.SERIES_KEY_TOO_LONG),
        ([("job", "a")], "missing_metric_name"),
        ([("__name__", "m"), ("", "x")], "empty_label_name"),
        ([("__name__", "m"), ("a", "1"), ("a", "2")], "duplicate_label_name"),
    ],
)
def test_what_line_protocol_cannot_carry_is_refused_by_name_and_the_series_beside_it_written(labels, reason):
    batch = lines_of([(labels, [(1.0, T), (2.0, T + 1)]), ([("__name__", "ok")], [(3.0, T)])])
    assert batch.refused == {reason: 2}
    assert len(batch.refused_examples[reason]) == 1
    assert points(batch) == [("ok", {"__name__": "ok"}, {"value": 3.0}, T)]


def test_a_trailing_backslash_is_what_a_tag_cannot_carry_and_a_backslash_inside_it_can():
    # A delimiter after a backslash is escaped, so a tag ending in one never ends.
    with pytest.raises(LineError):
        parse_line(f"m,a={escape('ends' + chr(92))} value=1 1")
    for text in ("x\\,y", "x\\ y", "x\\=y", "\\\\,", "a\\b"):
        assert parse_line(f"m,{escape(text)}={escape(text)} value=1 1")[1] == {text: text}


def test_timestamps_outside_influxdbs_nanosecond_range_are_refused():
    batch = lines_of([([("__name__", "m")], [(1.0, records.MAX_TIME_MS + 1), (1.0, records.MIN_TIME_MS - 1),
                                             (1.0, records.MAX_TIME_MS), (1.0, -1000)])])
    assert batch.refused == {records.TIMESTAMP_OUT_OF_RANGE: 2}
    assert [p[3] for p in points(batch)] == [records.MAX_TIME_MS, -1000]


LABEL_TEXT = st.text(alphabet=st.sampled_from(list(',= "\\#\n\t:a_zé😀\x00\r')) | st.characters(exclude_categories=("Cs",)), max_size=8)


@given(name=LABEL_TEXT.filter(bool), labels=st.dictionaries(LABEL_TEXT.filter(bool), LABEL_TEXT, max_size=5),
       value=st.floats(allow_nan=False, allow_infinity=False))
def test_escaping_round_trips_every_representable_label_set_and_refuses_the_rest(name, labels, value):
    labels.pop("__name__", None)
    pairs = [("__name__", name), *sorted(labels.items())]
    batch = lines_of([(pairs, [(value, T)])])
    kept = {k: v for k, v in pairs if v}
    unstorable = (
        any(unrepresentable(t) for pair in kept.items() for t in pair)
        or unrepresentable(name, measurement=True) or name.startswith("#")
        or any(k in records.RESERVED_TAG_KEYS or k in records.FIELD_NAMES for k in kept)
    )
    if unstorable:
        assert sum(batch.refused.values()) == 1 and not batch.samples
        return
    (measurement, tags, fields, timestamp), = points(batch)
    assert (measurement, tags, timestamp) == (name, kept, T)
    assert struct.pack("<d", fields["value"]) == struct.pack("<d", value)


@given(st.text(max_size=12))
def test_escape_adds_a_backslash_only_before_the_three_delimiters(text):
    assume("\\" not in text)
    assert escape(text).replace("\\,", ",").replace("\\ ", " ").replace("\\=", "=") == text


def test_tags_are_sorted_by_key_bytes_whatever_order_the_sender_used():
    reason, key = series_key([("__name__", "m"), ("b", "1"), ("B", "2"), ("a", "3")])
    assert reason is None and key == "m,B=2,__name__=m,a=3,b=1 "


def test_remote_write_2_series_give_the_same_lines_as_1_0():
    builder = RequestV2()
    builder.series([("__name__", "up"), ("job", "a b")], [(1.0, T)])
    v2_batch = build_lines_v2(builder.build(), SETTINGS)
    v1_batch = lines_of([([("__name__", "up"), ("job", "a b")], [(1.0, T)])])
    assert v2_batch.samples == v1_batch.samples == {"prom": [f"up,__name__=up,job=a\\ b value=1.0 {T}\n"]}


def histogram(**fields) -> v2.Histogram:
    h = v2.Histogram(schema=3, zero_threshold=1e-128, sum=12.5, timestamp=T, **fields)
    h.positive_spans.add(offset=-2, length=2)
    h.positive_deltas.extend([3, -1])
    return h


def test_a_native_histogram_is_one_point_whose_fields_decode_back_bit_for_bit():
    builder = RequestV2()
    series = builder.series([("__name__", "rpc_seconds"), ("job", "api")])
    sent = histogram(count_int=5, zero_count_int=1, reset_hint=v2.Histogram.RESET_HINT_GAUGE)
    series.histograms.append(sent)
    batch = build_lines_v2(builder.build(), SETTINGS)
    (measurement, tags, fields, timestamp), = points(batch, kind="histograms")
    assert (measurement, tags, timestamp) == ("rpc_seconds", {"__name__": "rpc_seconds", "job": "api"}, T)
    assert (fields["histogram_count"], fields["histogram_sum"]) == (5.0, 12.5)
    decoded = pb.Histogram()
    decode_histogram(fields["histogram"], timestamp, decoded)
    assert decoded.SerializeToString(deterministic=True) == pb.Histogram.FromString(
        sent.SerializeToString()).SerializeToString(deterministic=True)
    # The request's own message is left as sent (the timestamps are cleared on a copy).
    assert series.histograms[0].timestamp == T


def test_stale_histograms_are_dropped_and_counted_non_finite_sums_left_out_of_the_fields():
    builder = RequestV2()
    series = builder.series([("__name__", "h")])
    series.histograms.append(histogram(count_float=2.0))
    series.histograms[0].sum = STALE
    series.histograms.append(histogram(count_float=math.inf))
    batch = build_lines_v2(builder.build(), SETTINGS)
    assert batch.dropped == {DROP_STALE_HISTOGRAM: 1}
    (_, _, fields, _), = points(batch, kind="histograms")
    assert set(fields) == {"histogram", "histogram_sum"}


def test_an_exemplar_is_a_point_with_its_value_and_labels_as_json():
    builder = RequestV2()
    series = builder.series([("__name__", "m"), ("job", "a")], [(1.0, T)])
    series.exemplars.add(value=0.25, timestamp=T + 5, labels_refs=builder.refs([("trace_id", 'a"b\\c\nd')]))
    series.exemplars.add(value=math.nan, timestamp=T + 6)
    batch = build_lines_v2(builder.build(), SETTINGS)
    (_, tags, fields, timestamp), = points(batch, kind="exemplars")
    assert (tags, timestamp, fields["exemplar_value"]) == ({"__name__": "m", "job": "a"}, T + 5, 0.25)
    assert __import__("json").loads(fields["exemplar_labels"]) == {"trace_id": 'a"b\\c\nd'}
    assert batch.refused == {"exemplar_value_not_finite": 1}


def test_oversized_histograms_are_refused_not_truncated():
    builder = RequestV2()
    series = builder.series([("__name__", "h")])
    big = histogram(count_int=1)
    big.positive_spans[0].length = 60_000
    big.positive_deltas.extend([1] * 60_000)
    series.histograms.append(big)
    batch = build_lines_v2(builder.build(), SETTINGS)
    assert batch.refused == {records.HISTOGRAM_TOO_LARGE: 1}
    assert not batch.histograms.get("prom")


def test_a_series_is_mapped_once_per_process_by_the_cache():
    cache = records.series_cache(SETTINGS)
    calls = []
    original = records.map_series

    def counting(labels, settings):
        calls.append(labels)
        return original(labels, settings)

    records.map_series, saved = counting, records.map_series
    try:
        for _ in range(3):
            build_lines(label_bytes_view([make_series([("__name__", "up")], [(1.0, T)])]), SETTINGS, cache)
    finally:
        records.map_series = saved
    assert len(calls) == 1


def test_remote_write_1_0_histograms_and_exemplars_are_written_as_2_0s_are():
    series = make_series([("__name__", "h"), ("job", "a")], [])
    series.histograms.append(pb.Histogram.FromString(histogram(count_int=5).SerializeToString()))
    series.exemplars.add(value=1.5, timestamp=T + 1).labels.add(name="trace_id", value="t1")
    batch = build_lines(label_bytes_view([series]), SETTINGS)
    builder = RequestV2()
    v2_series = builder.series([("__name__", "h"), ("job", "a")])
    v2_series.histograms.append(histogram(count_int=5))
    v2_series.exemplars.add(value=1.5, timestamp=T + 1, labels_refs=builder.refs([("trace_id", "t1")]))
    v2_batch = build_lines_v2(builder.build(), SETTINGS)
    assert batch.histograms == v2_batch.histograms and len(batch.histograms["prom"]) == 1
    assert batch.exemplars == v2_batch.exemplars and len(batch.exemplars["prom"]) == 1
