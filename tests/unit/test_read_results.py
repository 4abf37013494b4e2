"""Unit tests of chalicelib.liveanalytics.read_results: rows -> series, timestamps, and the response size budget."""

import pytest
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.errors import PayloadTooLarge
from chalicelib.liveanalytics.query_client import fetch_pages
from chalicelib.liveanalytics.read_results import ResponseBudget, parse_timestamp_ms, series_from_pages
from chalicelib.prompb import prometheus_remote_pb2 as pb
from tests.unit.timestream_answers import COLUMNS, page, query_client, stamp

DB_LABEL = Settings().database_label


# ------------------------------------------------------------------------------------------
# Rows -> series


def test_pages_are_followed_to_the_end_and_grouped_into_series():
    client = query_client()
    first = page(COLUMNS, [
        ["api", None, "up", "1970-01-01 00:00:02.000000000", "1.0", None],
        ["api", "b", "up", "1970-01-01 00:00:01.500000000", "0.1", None],
        ["api", None, "up", "1970-01-01 00:00:01.000000000", "2.5", None],
    ], token="t1")
    second = page(COLUMNS, [
        ["api", "b", "up", "1970-01-01 00:00:01.000000000", "1.7976931348623157E308", None],
        ["api", "b", "up", "1970-01-01 00:00:03.000000000", None, "7"],  # not a double: skipped
    ])
    with Stubber(client) as stub:
        stub.add_response("query", first, {"QueryString": "SELECT 1"})
        stub.add_response("query", second, {"QueryString": "SELECT 1", "NextToken": "t1"})
        series = series_from_pages(fetch_pages(client, "SELECT 1"), echo=((DB_LABEL, "prod"),))
        stub.assert_no_pending_responses()
    assert [[(label.name, label.value) for label in s.labels] for s in series] == [
        [("__name__", "up"), ("instance", "b"), ("job", "api"), (DB_LABEL, "prod")],
        [("__name__", "up"), ("job", "api"), (DB_LABEL, "prod")],
    ]
    assert [(s.timestamp, s.value) for s in series[0].samples] == [(1000, 1.7976931348623157e308), (1500, 0.1)]
    assert [(s.timestamp, s.value) for s in series[1].samples] == [(1000, 2.5), (2000, 1.0)]


def test_empty_dimension_values_are_left_out():
    answer = page(COLUMNS, [["", None, "up", "1970-01-01 00:00:01.000000000", "1", None]])
    [series] = series_from_pages([answer])
    assert [(label.name, label.value) for label in series.labels] == [("__name__", "up")]


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1970-01-01 00:00:00.000000000", 0), ("2024-02-29 23:59:59.999999999", 1709251199999),
     ("2001-09-09 01:46:40.123", 1000000000123), ("2001-09-09 01:46:40", 1000000000000)],
)
def test_timestamps_are_read_to_the_millisecond(text, ms):
    assert parse_timestamp_ms(text) == ms


# ------------------------------------------------------------------------------------------
# Size cap


def test_an_answer_over_the_budget_is_refused_with_advice():
    rows = [["api", None, "up", f"1970-01-01 00:00:{i:02d}.000000000", "1", None] for i in range(60)]
    with pytest.raises(PayloadTooLarge, match="narrow the query"):
        series_from_pages([page(COLUMNS, rows)], budget=ResponseBudget(500))


def test_the_cap_stops_paging_early():
    client = query_client()
    rows = [["api", None, "up", f"1970-01-01 00:00:{i:02d}.000000000", "1", None] for i in range(60)]
    with Stubber(client) as stub:
        stub.add_response("query", page(COLUMNS, rows, token="more"), {"QueryString": "SELECT 1"})
        with pytest.raises(PayloadTooLarge):
            series_from_pages(fetch_pages(client, "SELECT 1"), budget=ResponseBudget(500))
        # The second page was never requested.
        stub.assert_no_pending_responses()


@settings(max_examples=100, deadline=None)
@given(st.lists(
    st.tuples(st.sampled_from(["a", "bb", "ccc", None]), st.sampled_from(["x", "é", None]),
              st.integers(0, 2**42), st.floats(allow_nan=False, allow_infinity=False)),
    max_size=30,
))
def test_the_budget_never_underestimates_the_encoded_size(rows):
    answer = page(["job", "zone", "measure_name", "time", "measure_value::double"], [
        [job, zone, "m", stamp(ms), repr(value)] for job, zone, ms, value in rows
    ])
    budget = ResponseBudget(10**9)
    budget.charge_result()  # one QueryResult, as read() charges it
    response = pb.ReadResponse()
    response.results.add().timeseries.extend(series_from_pages([answer], budget=budget))
    assert budget.used >= response.ByteSize()


def test_the_connectors_own_dimension_is_never_a_label():
    # A name-only series (`sum(up)`) is stored with the connector's dimension; it reads back as
    # sent. Its neighbour with a real label is unaffected.
    columns = ["__prometheus_timestream_series__", "job", "measure_name", "time", "measure_value::double"]
    answer = page(columns, [
        ["name_only", None, "sum_up", "1970-01-01 00:00:01.000000000", "3"],
        [None, "api", "sum_up", "1970-01-01 00:00:01.000000000", "1"],
    ])
    series = series_from_pages([answer], echo=((DB_LABEL, "prod"),))
    assert sorted([(label.name, label.value) for label in s.labels] for s in series) == [
        [("__name__", "sum_up"), ("job", "api"), (DB_LABEL, "prod")],
        [("__name__", "sum_up"), (DB_LABEL, "prod")],
    ]


# ------------------------------------------------------------------------------------------
# Native histograms and exemplars


def _multi_page(rows):
    columns = ["job", "measure_name", "time", "measure_value::double", "histogram_count", "histogram_sum",
               "histogram_proto", "exemplar_value", "exemplar_labels"]
    return {"ColumnInfo": [{"Name": name} for name in columns],
            "Rows": [{"Data": [{"NullValue": True} if v is None else {"ScalarValue": v} for v in row]}
                     for row in rows]}


def test_histogram_rows_become_histograms_and_exemplar_rows_are_skipped():
    import base64

    histogram = pb.Histogram(count_int=4, sum=0.5, schema=1, positive_spans=[pb.BucketSpan(offset=1, length=1)],
                             positive_deltas=[4])
    blob = base64.b64encode(histogram.SerializeToString(deterministic=True)).decode()
    rows = [
        ["h", "lat", "1970-01-01 00:00:02.000000000", None, "4.0", "0.5", blob, None, None],
        ["h", "lat", "1970-01-01 00:00:01.000000000", None, "4.0", "0.5", blob, None, None],
        ["h", "lat@exemplar", "1970-01-01 00:00:01.000000000", None, None, None, None, "0.5", '{"trace_id":"a"}'],
        ["f", "lat_f", "1970-01-01 00:00:01.000000000", "1.5", None, None, None, None, None],
    ]
    budget = ResponseBudget(10_000)
    histograms, floats = series_from_pages([_multi_page(rows)], budget=budget)
    assert [(label.name, label.value) for label in histograms.labels] == [("__name__", "lat"), ("job", "h")]
    assert [h.timestamp for h in histograms.histograms] == [1000, 2000] and not histograms.samples
    histogram.timestamp = 1000
    assert histograms.histograms[0] == histogram
    assert [(s.timestamp, s.value) for s in floats.samples] == [(1000, 1.5)] and not floats.histograms
    answer = pb.QueryResult(timeseries=[histograms, floats]).ByteSize()
    assert answer <= budget.used
    with pytest.raises(PayloadTooLarge):
        series_from_pages([_multi_page(rows)], budget=ResponseBudget(answer - 30))
