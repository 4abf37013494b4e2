"""Unit tests of chalicelib.liveanalytics.reader: whole ReadRequests answered through a stubbed Timestream."""

from dataclasses import replace

import pytest
from botocore.stub import Stubber

from chalicelib.config import Settings
from chalicelib.errors import BadRequest, NotFound, PayloadTooLarge
from chalicelib.liveanalytics.query_client import ColumnsCache
from chalicelib.liveanalytics.reader import read
from chalicelib.prompb import prometheus_remote_pb2 as pb
from tests.unit.timestream_answers import COLUMNS, RecordingClient, describe_page, page, query_client

SETTINGS = Settings(default_database="mydb", default_table="mytable")
TABLE_LABEL = SETTINGS.table_label


def _matcher(kind, name, value):
    return pb.LabelMatcher(type=kind, name=name, value=value)


def test_read_answers_each_query_in_order():
    client = query_client()
    describe = describe_page("job")
    rows = page(["job", "measure_name", "time", "measure_value::double"],
                [["api", "up", "1970-01-01 00:00:01.000000000", "1"]])
    request = pb.ReadRequest(queries=[
        pb.Query(start_timestamp_ms=0, end_timestamp_ms=5000, matchers=[
            _matcher(pb.LabelMatcher.EQ, "__name__", "up"), _matcher(pb.LabelMatcher.EQ, "zone", "x")]),
        pb.Query(start_timestamp_ms=0, end_timestamp_ms=5000, matchers=[
            _matcher(pb.LabelMatcher.EQ, "__name__", "up"), _matcher(pb.LabelMatcher.NEQ, "job", "web"),
            _matcher(pb.LabelMatcher.EQ, TABLE_LABEL, "other")]),
        pb.Query(start_timestamp_ms=0, end_timestamp_ms=5000, matchers=[
            _matcher(pb.LabelMatcher.EQ, "__name__", "up")]),
    ], accepted_response_types=[pb.ReadRequest.SAMPLES])
    with Stubber(client) as stub:
        # Query 1 asks about "zone", unknown to db.tbl: DESCRIBE, then provably empty.
        stub.add_response("query", describe, {"QueryString": 'DESCRIBE "mydb"."mytable"'})
        stub.add_response("query", describe, {"QueryString": 'DESCRIBE "mydb"."other"'})
        stub.add_response("query", rows, {"QueryString": (
            'SELECT * FROM "mydb"."other" WHERE time >= from_milliseconds(0) AND time < from_milliseconds(5001)'
            " AND measure_name = 'up' AND (\"job\" IS NULL OR \"job\" <> 'web')")})
        # Query 3 has no dimension matcher: no DESCRIBE.
        stub.add_response("query", rows, {"QueryString": (
            'SELECT * FROM "mydb"."mytable" WHERE time >= from_milliseconds(0) AND time < from_milliseconds(5001)'
            " AND measure_name = 'up'")})
        response = read(request, SETTINGS, client, ColumnsCache(), cache_scope="AKIDEXAMPLE")
        stub.assert_no_pending_responses()
    assert len(response.results) == 3
    assert list(response.results[0].timeseries) == []
    assert [(label.name, label.value) for label in response.results[1].timeseries[0].labels] == [
        ("__name__", "up"), ("job", "api"), (TABLE_LABEL, "other")]
    assert [(label.name, label.value) for label in response.results[2].timeseries[0].labels] == [
        ("__name__", "up"), ("job", "api")]


DESCRIBE_MYTABLE = 'DESCRIBE "mydb"."mytable"'
SELECT_JOB_API = (
    'SELECT * FROM "mydb"."mytable" WHERE time >= from_milliseconds(0) AND time < from_milliseconds(2)'
    " AND \"job\" = 'api'"
)
JOB_API = pb.ReadRequest(queries=[pb.Query(start_timestamp_ms=0, end_timestamp_ms=1, matchers=[
    _matcher(pb.LabelMatcher.EQ, "job", "api")])])


def _recording_client():
    return RecordingClient(describe_page("job"), page(["job", "measure_name", "time", "measure_value::double"], []))


def test_read_uses_the_columns_cache_across_requests():
    client = _recording_client()
    cache = ColumnsCache()
    read(JOB_API, SETTINGS, client, cache)
    read(JOB_API, SETTINGS, client, cache)
    # One DESCRIBE for both requests: the second found the columns in the cache.
    assert client.sent == [DESCRIBE_MYTABLE, SELECT_JOB_API, SELECT_JOB_API]
    assert client.describes() == 1


def test_the_columns_cache_is_not_shared_between_callers():
    client = _recording_client()
    cache = ColumnsCache()
    read(JOB_API, SETTINGS, client, cache, cache_scope="AKIDALICE")
    assert client.describes() == 1
    # Another access key may see other tables (or none): its own DESCRIBE decides its query.
    read(JOB_API, SETTINGS, client, cache, cache_scope="AKIDBOB")
    assert client.describes() == 2
    # Each caller's entry is kept for that caller.
    read(JOB_API, SETTINGS, client, cache, cache_scope="AKIDALICE")
    read(JOB_API, SETTINGS, client, cache, cache_scope="AKIDBOB")
    assert client.describes() == 2
    assert client.sent.count(SELECT_JOB_API) == 4


def test_read_maps_a_missing_table_from_describe_to_not_found():
    client = query_client()
    request = pb.ReadRequest(queries=[pb.Query(matchers=[_matcher(pb.LabelMatcher.EQ, "job", "api")])])
    with Stubber(client) as stub:
        stub.add_client_error("query", service_error_code="ValidationException",
                              service_message="Requested database 'mydb' not found for identifier 'mydb.mytable'")
        with pytest.raises(NotFound, match="mydb.mytable"):
            read(request, SETTINGS, client, ColumnsCache())


def test_read_refuses_streamed_only_requests():
    request = pb.ReadRequest(accepted_response_types=[pb.ReadRequest.STREAMED_XOR_CHUNKS])
    with pytest.raises(BadRequest, match="SAMPLES"):
        read(request, SETTINGS, query_client(), ColumnsCache())


def test_read_caps_the_answer_at_the_size_setting():
    rows = [["api", None, "up", f"1970-01-01 00:00:{i:02d}.000000000", "1", None] for i in range(60)]
    request = pb.ReadRequest(queries=[pb.Query(start_timestamp_ms=0, end_timestamp_ms=10**6)])
    client = query_client()
    with Stubber(client) as stub:
        stub.add_response("query", page(COLUMNS, rows))
        stub.add_response("query", page(COLUMNS, rows))
        # Well under the default limit...
        [result] = read(request, SETTINGS, client, ColumnsCache()).results
        assert len(result.timeseries[0].samples) == 60
        # ...and over a 500-byte one.
        with pytest.raises(PayloadTooLarge, match="500 bytes"):
            read(request, replace(SETTINGS, max_read_response_bytes=500), client, ColumnsCache())


def test_unknown_matcher_types_are_refused():
    request = pb.ReadRequest(queries=[pb.Query(matchers=[pb.LabelMatcher(type=7, name="a", value="b")])])
    with pytest.raises(BadRequest, match="matcher type"):
        read(request, replace(SETTINGS), query_client(), ColumnsCache())


@pytest.mark.parametrize(
    ("kind", "value", "selects"),
    [(pb.LabelMatcher.EQ, "name_only", False), (pb.LabelMatcher.NEQ, "", False), (pb.LabelMatcher.RE, ".+", False),
     (pb.LabelMatcher.EQ, "", True), (pb.LabelMatcher.NRE, "name_only", True)],
    ids=["eq-its-value", "neq-empty", "re-non-empty", "eq-empty", "nre-its-value"],
)
def test_a_matcher_on_the_connectors_dimension_is_decided_as_on_a_label_never_stored(kind, value, selects):
    # The table has the column (name-only series were written), yet no series has the label.
    client = RecordingClient(describe_page("job", "__prometheus_timestream_series__"),
                             page(["job", "measure_name", "time", "measure_value::double"], []))
    request = pb.ReadRequest(queries=[pb.Query(start_timestamp_ms=0, end_timestamp_ms=1, matchers=[
        _matcher(pb.LabelMatcher.EQ, "__name__", "sum_up"),
        _matcher(kind, "__prometheus_timestream_series__", value)])])
    read(request, SETTINGS, client, ColumnsCache())
    selects_sent = [sql for sql in client.sent if sql.startswith("SELECT")]
    assert "__prometheus_timestream_series__" not in " ".join(selects_sent)
    assert len(selects_sent) == (1 if selects else 0)
