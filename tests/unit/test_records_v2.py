"""Remote-Write 2.0 requests -> records: symbols resolved, every reference checked, the same
records (and the same cached series) as the 1.0 message with the same labels."""

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import series as ps
from chalicelib.config import Settings
from chalicelib.errors import BadRequest
from chalicelib.liveanalytics import records as r
from chalicelib.prompb.remote_write_v2_pb2 import Request
from tests.botocore_reference import write_records_params
from tests.helpers import RequestV2, label_bytes_view, make_series, write_request_v2

NOW = 1_800_000_000_000
SETTINGS = Settings(default_database="prometheus", default_table="metrics")
DEST = ("prometheus", "metrics")
STALE = struct.unpack("<d", struct.pack("<Q", ps.STALE_NAN_BITS))[0]
UP = [("__name__", "up"), ("instance", "a:9100"), ("job", "node")]


def build_v2(request, cache=None) -> r.RecordBatch:
    return r.build_records_v2(request, SETTINGS, NOW, cache)


def as_dicts(batch: r.RecordBatch) -> list[dict]:
    return [record for records in batch.records.values() for record in write_records_params(*DEST, records)["Records"]]


def test_a_sample_maps_to_the_same_record_as_in_1_0():
    v2 = build_v2(write_request_v2([(UP, [(0.1 + 0.2, NOW)])]))
    v1 = r.build_records(label_bytes_view([make_series(UP, [(0.1 + 0.2, NOW)])]), SETTINGS, NOW)
    assert as_dicts(v2) == as_dicts(v1) and len(as_dicts(v2)) == 1


def test_the_same_series_is_one_cache_entry_whatever_the_symbol_order():
    cache = r.series_cache(SETTINGS)
    first = build_v2(write_request_v2([(UP, [(1.0, NOW)])]), cache).records[DEST][0][0]
    other = RequestV2()
    other.ref("job")  # shifts every index
    other.ref("zzz")
    other.series(UP, [(2.0, NOW + 1)])
    second = build_v2(other.build(), cache).records[DEST][0][0]
    assert first is second


def test_labels_in_any_order_map_to_the_same_dimensions():
    # Senders MUST sort labels; a receiver loses nothing by not relying on it.
    (record,) = as_dicts(build_v2(write_request_v2([(list(reversed(UP)), [(1.0, NOW)])])))
    assert record["MeasureName"] == "up"
    assert {d["Name"]: d["Value"] for d in record["Dimensions"]} == {"instance": "a:9100", "job": "node"}


@pytest.mark.parametrize(
    ("value", "reason"),
    [(float("nan"), ps.DROP_NAN), (STALE, ps.DROP_STALE), (math.inf, ps.DROP_INF), (-math.inf, ps.DROP_INF)],
)
def test_special_values_are_dropped_and_counted(value, reason):
    batch = build_v2(write_request_v2([(UP, [(value, NOW)])]))
    assert batch.dropped == {reason: 1} and batch.record_count == 0 and not batch.refused


def test_metadata_and_start_timestamps_are_accepted_and_not_stored():
    builder = RequestV2()
    builder.series(UP, [(5.0, NOW)], start_timestamp=NOW - 3_600_000,
                   metadata=(1, "Requests served.\nSecond line \"quoted\".", "requests"))
    builder.series([("__name__", "orphan")], metadata=(2, "metadata only", ""))  # no samples
    batch = build_v2(builder.build())
    (record,) = as_dicts(batch)
    assert record["MeasureValue"] == "5.0" and record["Time"] == str(NOW)
    assert not batch.refused and not batch.dropped


def test_a_series_with_only_its_name_is_stored_with_the_connectors_dimension():
    (record,) = as_dicts(build_v2(write_request_v2([([("__name__", "up")], [(1.0, NOW)])])))
    assert [(d["Name"], d["Value"]) for d in record["Dimensions"]] == [r.NAME_ONLY_DIMENSION]


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([], ps.NO_METRIC_NAME),
        ([("job", "x")], ps.NO_METRIC_NAME),
        ([("__name__", "")], ps.NO_METRIC_NAME),
        ([("__name__", "up"), ("", "x")], ps.EMPTY_LABEL_NAME),
        ([("__name__", "up"), ("job", "a"), ("job", "b")], ps.DUPLICATE_LABEL),
        ([("__name__", "up"), ("__name__", "down")], ps.DUPLICATE_LABEL),
        ([("__name__", "up"), ("a:b", "x")], r.COLON_IN_LABEL_NAME),
        ([("__name__", "up"), ("__prometheus_timestream_series__", "x")], r.CONNECTOR_LABEL),
    ],
)
def test_invalid_label_sets_are_refused_per_series_and_the_rest_written(labels, reason):
    batch = build_v2(write_request_v2([(labels, [(1.0, NOW), (2.0, NOW + 1)]), (UP, [(3.0, NOW)])]))
    assert batch.refused == {reason: 2}
    assert [record["MeasureValue"] for record in as_dicts(batch)] == ["3.0"]


def test_histograms_and_exemplars_become_multi_records_and_samples_beside_them_kept():
    builder = RequestV2()
    series = builder.series(UP, [(1.0, NOW)])
    series.exemplars.add(labels_refs=builder.refs([("trace_id", "abc")]), value=1.0, timestamp=NOW)
    series.exemplars.add(value=2.0, timestamp=NOW)
    histogram = builder.series([("__name__", "latency"), ("job", "x")])
    histogram.histograms.add(count_int=3, sum=1.5, schema=0, timestamp=NOW)
    batch = build_v2(builder.build())
    assert not batch.refused
    assert len(as_dicts(batch)) == 1
    exemplars = batch.exemplars[("prometheus", "metrics")]
    assert [(name, measures) for _, name, measures, _, _ in exemplars] == [
        ("up@exemplar", '[{"Name":"exemplar_value","Value":"1.0","Type":"DOUBLE"},'
                        '{"Name":"exemplar_labels","Value":"{\\"trace_id\\":\\"abc\\"}","Type":"VARCHAR"}]'),
        ("up@exemplar", '[{"Name":"exemplar_value","Value":"2.0","Type":"DOUBLE"},'
                        '{"Name":"exemplar_labels","Value":"{}","Type":"VARCHAR"}]'),
    ]
    assert len(batch.histograms[("prometheus", "metrics")]) == 1


# -- malformed requests: a 400 for the whole request, before anything is written ------------------

def malformed(request) -> str:
    with pytest.raises(BadRequest) as refused:
        build_v2(request)
    assert refused.value.status == 400 and "\n" not in refused.value.message
    return refused.value.message


def with_good_series(change) -> object:
    """A request with one valid series first (so a failure proves nothing is half-built), then
    `change(builder)` applied."""
    builder = RequestV2()
    builder.series(UP, [(1.0, NOW)])
    change(builder)
    return builder.build()


def test_symbols_must_start_with_the_empty_string():
    request = write_request_v2([(UP, [(1.0, NOW)])])
    request.symbols[0] = "x"
    assert "symbols[0] must be the empty string, got 'x'" in malformed(request)


def test_an_empty_symbols_table_is_only_fine_when_nothing_refers_to_it():
    request = Request()
    assert build_v2(request).record_count == 0
    request.timeseries.add(labels_refs=[1, 2]).samples.add(value=1.0, timestamp=NOW)
    assert "labels_refs refers to symbol 1; the symbols table has 0 entries" in malformed(request)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: b.message.timeseries.add(labels_refs=[1, 999]).samples.add(value=1.0, timestamp=NOW),
         "labels_refs refers to symbol 999"),
        (lambda b: b.message.timeseries.add(labels_refs=[1, 2, 1]).samples.add(value=1.0, timestamp=NOW),
         "labels_refs has an odd number of entries (3)"),
        # a series without samples still has its references checked
        (lambda b: b.message.timeseries.add(labels_refs=[4096, 1]), "labels_refs refers to symbol 4096"),
        (lambda b: setattr(b.message.timeseries[0].metadata, "help_ref", 77), "metadata refers to symbol 77"),
        (lambda b: setattr(b.message.timeseries[0].metadata, "unit_ref", 78), "metadata refers to symbol 78"),
        (lambda b: b.message.timeseries[0].exemplars.add(labels_refs=[1, 500], value=1.0, timestamp=NOW),
         "exemplar labels_refs refers to symbol 500"),
        (lambda b: b.message.timeseries[0].exemplars.add(labels_refs=[1], value=1.0, timestamp=NOW),
         "exemplar labels_refs has an odd number of entries (1)"),
    ],
    ids=["label-out-of-range", "label-odd", "label-no-samples", "help", "unit", "exemplar-out-of-range",
         "exemplar-odd"],
)
def test_a_reference_that_does_not_resolve_is_a_400_naming_it(change, expected):
    message = malformed(with_good_series(change))
    assert message.startswith("body is not a valid remote write 2.0 request: ")
    assert expected in message


# -- any valid request: the same records as 1.0 ----------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_characters=":"), min_size=1, max_size=12).filter(
    lambda n: n not in ("__name__", r.NAME_ONLY_DIMENSION[0]) and not r.is_reserved(n)
)
series_specs = st.lists(
    st.tuples(
        st.tuples(st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
                  st.dictionaries(names, st.text(max_size=20), max_size=6)),
        st.lists(st.tuples(st.floats(), st.integers(NOW - 10_000, NOW)), max_size=3),
    ),
    max_size=8,
)


@given(series_specs, st.randoms(use_true_random=False))
def test_any_valid_request_maps_to_what_1_0_maps_it_to(specs, random):
    series = []
    for (metric, labels), samples in specs:
        pairs = [("__name__", metric), *labels.items()]
        random.shuffle(pairs)
        series.append((pairs, samples))
    builder = RequestV2()
    # Senders order their symbols as they like.
    texts = sorted({text for pairs, _ in series for pair in pairs for text in pair} - {""})
    random.shuffle(texts)
    for text in texts:
        builder.ref(text)
    for pairs, samples in series:
        builder.series(pairs, samples)
    v2 = build_v2(builder.build())
    v1 = r.build_records(label_bytes_view([make_series(p, s) for p, s in series]), SETTINGS, NOW)
    assert as_dicts(v2) == as_dicts(v1)
    assert (v2.dropped, v2.refused) == (v1.dropped, v1.refused)


def test_an_exemplar_with_a_repeated_label_name_is_refused_not_cut():
    builder = RequestV2()
    series = builder.series(UP, [(1.0, NOW)])
    series.exemplars.add(labels_refs=builder.refs([("trace_id", "a"), ("trace_id", "b")]), value=1.0, timestamp=NOW)
    batch = build_v2(builder.build())
    assert batch.refused == {ps.EXEMPLAR_DUPLICATE_LABEL: 1}
    assert batch.exemplars[("prometheus", "metrics")] == []
