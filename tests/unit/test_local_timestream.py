"""The local Timestream's Query emulation (local_timestream/emulator.py): DESCRIBE and SELECT
answered from the records moto stored, in Timestream's response shape, through a real botocore
timestream-query client (so the answer is also checked against the service model)."""


import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.timestreamquery.models import timestreamquery_backends

from chalicelib.config import Settings
from chalicelib.errors import BadRequest, NotFound, classify
from chalicelib.liveanalytics.query_client import ColumnsCache, fetch_pages, parse_describe
from chalicelib.liveanalytics.query_sql import build_query, describe_query
from chalicelib.liveanalytics.read_results import parse_timestamp_ms
from chalicelib.liveanalytics.reader import read
from chalicelib.matchers import EQ, NEQ, NRE, RE, Matcher
from chalicelib.prompb import prometheus_remote_pb2 as pb
from local_timestream import emulator

REGION = "us-east-1"
COMMON = {"MeasureValueType": "DOUBLE", "TimeUnit": "MILLISECONDS"}
HISTORIC = {
    "RetentionProperties": {"MemoryStoreRetentionPeriodInHours": 6, "MagneticStoreRetentionPeriodInDays": 73000},
    "MagneticStoreWriteProperties": {"EnableMagneticStoreWrites": True},
}


@pytest.fixture
def aws():
    emulator.install_patches()
    # mock_aws signs with its own fake keys: whatever pair a running suite requires is not it.
    required = emulator.require_credentials(None)
    try:
        with mock_aws():
            write = boto3.client("timestream-write", region_name=REGION)
            query = boto3.client("timestream-query", region_name=REGION)
            write.create_database(DatabaseName="prom")
            # Magnetic-store writes let these tests write times near the epoch (the 200 years of
            # magnetic retention reach back to 1826); the memory store alone keeps 6 hours.
            write.create_table(DatabaseName="prom", TableName="metrics", **HISTORIC)
            yield write, query
    finally:
        emulator.require_credentials(required)


def record(name, value, ms, **dims):
    return {
        "MeasureName": name,
        "MeasureValue": repr(value),
        "Time": str(ms),
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
    }


def put(write, records, table="metrics", common=COMMON):
    for start in range(0, len(records), 100):
        write.write_records(DatabaseName="prom", TableName=table, CommonAttributes=common,
                            Records=records[start:start + 100])


def rows(page):
    names = [column["Name"] for column in page["ColumnInfo"]]
    return [
        {name: None if datum.get("NullValue") else datum["ScalarValue"] for name, datum in zip(names, row["Data"], strict=True)}
        for row in page["Rows"]
    ]


def all_rows(query, sql):
    return [row for page in fetch_pages(query, sql, "prom", "metrics") for row in rows(page)]


# -- the translation ------------------------------------------------------------------------------

def test_regexp_like_reads_java_end_of_input_and_keeps_escaped_backslashes():
    assert emulator.regexp_like("ab", r"\A(?:ab)\z") is True
    assert emulator.regexp_like("ab\n", r"\A(?:ab)\z") is False  # \z is the very end, unlike $
    assert emulator.regexp_like("a'b", r"\A(?:a\x27b)\z") is True
    assert emulator.regexp_like("x\\z", r"x\\z") is True  # an escaped backslash, then a plain z
    assert emulator.regexp_like("xab", "ab") is True  # unanchored: found anywhere, as in Timestream
    assert emulator.regexp_like(None, "a") is None


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "1970-01-01 00:00:00.000000000"), (1_700_000_000_123, "2023-11-14 22:13:20.123000000"),
     (9_223_372_036_853, "2262-04-11 23:47:16.853000000")],
)
def test_timestamps_are_printed_as_timestream_does_and_read_back_by_the_reader(ms, text):
    assert emulator.timestream_time(ms) == text
    assert parse_timestamp_ms(text) == ms


@pytest.mark.parametrize(
    ("unit", "time", "ms"),
    [(None, "1500", 1500), ("MILLISECONDS", "1500", 1500), ("SECONDS", "2", 2000),
     ("MICROSECONDS", "1500999", 1500), ("NANOSECONDS", "1500999999", 1500)],
)
def test_record_times_are_milliseconds_whatever_the_unit(unit, time, ms):
    assert emulator.record_time_ms({"Time": time, **({"TimeUnit": unit} if unit else {})}) == ms


def test_merge_common_attributes_is_unchanged():
    common = {"MeasureValueType": "DOUBLE", "Dimensions": [{"Name": "job", "Value": "a"}]}
    merged = emulator.merge_common_attributes(common, {"MeasureName": "up", "Dimensions": [{"Name": "i", "Value": "b"}]})
    assert merged == {"MeasureValueType": "DOUBLE", "MeasureName": "up",
                      "Dimensions": [{"Name": "job", "Value": "a"}, {"Name": "i", "Value": "b"}]}


# -- DESCRIBE -------------------------------------------------------------------------------------

def test_describe_lists_every_dimension_ever_written_in_timestreams_shape(aws):
    write, query = aws
    put(write, [record("up", 1.0, 1000, job="a"), record("up", 1.0, 2000, inst="x")],
        common={**COMMON, "Dimensions": [{"Name": "region", "Value": "eu"}]})
    page = query.query(QueryString=describe_query("prom", "metrics"))
    assert [column["Name"] for column in page["ColumnInfo"]] == ["Column", "Type", "Timestream attribute type"]
    assert rows(page) == [
        {"Column": "region", "Type": "varchar", "Timestream attribute type": "DIMENSION"},
        {"Column": "job", "Type": "varchar", "Timestream attribute type": "DIMENSION"},
        {"Column": "inst", "Type": "varchar", "Timestream attribute type": "DIMENSION"},
        {"Column": "measure_name", "Type": "varchar", "Timestream attribute type": "MEASURE_NAME"},
        {"Column": "time", "Type": "timestamp", "Timestream attribute type": "TIMESTAMP"},
        {"Column": "measure_value::double", "Type": "double", "Timestream attribute type": "MEASURE_VALUE"},
    ]
    assert parse_describe([page]) == {"region", "job", "inst"}


def test_describe_of_an_empty_table_has_no_dimensions(aws):
    _, query = aws
    assert parse_describe([query.query(QueryString='DESCRIBE "prom"."metrics"')]) == frozenset()


# -- SELECT ---------------------------------------------------------------------------------------

def test_select_answers_the_readers_sql_from_the_stored_records(aws):
    write, query = aws
    put(write, [
        record("up", 0.1 + 0.2, 1000, job="web", inst="web1"),
        record("up", 5e-324, 2000, job="web", inst="web12"),
        record("up", -1.7976931348623157e308, 3000, job="api"),
        record("up", 4.0, 4000, inst="web2"),
        record("cpu", 5.0, 2000, job="web", inst="web1"),
    ])
    matchers = [Matcher(EQ, "__name__", "up"), Matcher(NEQ, "job", "api"), Matcher(RE, "inst", "web[0-9]")]
    sql = build_query("prom", "metrics", matchers, 1000, 4000, {"job", "inst"})
    page = query.query(QueryString=sql)
    types = {column["Name"]: column["Type"]["ScalarType"] for column in page["ColumnInfo"]}
    assert types == {"time": "TIMESTAMP", "measure_name": "VARCHAR", "measure_value::double": "DOUBLE",
                     "job": "VARCHAR", "inst": "VARCHAR"}
    assert sorted(rows(page), key=lambda row: row["time"]) == [
        {"time": "1970-01-01 00:00:01.000000000", "measure_name": "up", "measure_value::double": repr(0.1 + 0.2),
         "job": "web", "inst": "web1"},
        {"time": "1970-01-01 00:00:04.000000000", "measure_name": "up", "measure_value::double": "4.0",
         "job": None, "inst": "web2"},  # absent job: NULL, and "" != "api" keeps it
    ]
    assert "NextToken" not in page


def test_time_bounds_and_absent_labels_follow_the_sql(aws):
    write, query = aws
    put(write, [record("up", float(ms), ms, job="a") for ms in (999, 1000, 2000, 2001)] + [record("up", 7.0, 1500, inst="x")])
    sql = build_query("prom", "metrics", [Matcher(EQ, "job", "")], 1000, 2000, {"job"})
    assert [row["measure_value::double"] for row in all_rows(query, sql)] == ["7.0"]
    sql = build_query("prom", "metrics", [Matcher(NRE, "job", "b|c")], 1000, 2000, {"job"})
    assert sorted(float(row["measure_value::double"]) for row in all_rows(query, sql)) == [7.0, 1000.0, 2000.0]


def test_a_record_written_twice_is_answered_once(aws):
    write, query = aws
    put(write, [record("up", 1.0, 1000, job="a")])
    put(write, [record("up", 1.0, 1000, job="a"), record("up", 2.0, 1001, job="a")])
    sql = build_query("prom", "metrics", [], 0, 5000, ())
    assert [row["time"][-12:] for row in all_rows(query, sql)] == ["01.000000000", "01.001000000"]


def test_other_select_statements_get_typed_columns(aws):
    write, query = aws
    put(write, [record("up", 1.5, 1000, job="a"), record("up", 2.5, 2000, inst="y")])
    page = query.query(QueryString='SELECT count(*) AS n, max("measure_value::double") AS top, '
                                   'min(job) AS j FROM "prom"."metrics"')
    assert [(c["Name"], c["Type"]["ScalarType"]) for c in page["ColumnInfo"]] == [
        ("n", "BIGINT"), ("top", "DOUBLE"), ("j", "VARCHAR")]
    assert rows(page) == [{"n": "2", "top": "2.5", "j": "a"}]


def test_the_whole_read_path_gets_series_back(aws):
    write, query = aws
    put(write, [record("up", 1.0, 1000, job="b"), record("up", 2.0, 2000, job="b"), record("up", 3.0, 1500, job="a")])
    request = pb.ReadRequest()
    q = request.queries.add(start_timestamp_ms=0, end_timestamp_ms=5000)
    q.matchers.add(type=pb.LabelMatcher.RE, name="job", value="a|b")
    response = read(request, Settings(default_database="prom", default_table="metrics"), query, ColumnsCache())
    got = [([(label.name, label.value) for label in series.labels], [(s.timestamp, s.value) for s in series.samples])
           for series in response.results[0].timeseries]
    assert got == [([("__name__", "up"), ("job", "a")], [(1500, 3.0)]),
                   ([("__name__", "up"), ("job", "b")], [(1000, 1.0), (2000, 2.0)])]


# -- paging ---------------------------------------------------------------------------------------

def test_answers_are_paged_1000_rows_a_page_with_next_token(aws):
    write, query = aws
    put(write, [record("up", float(i), 1000 + i, job="a") for i in range(2500)])
    sql = build_query("prom", "metrics", [Matcher(EQ, "job", "a")], 0, 10_000, {"job"})
    pages = list(fetch_pages(query, sql, "prom", "metrics"))
    assert [len(page["Rows"]) for page in pages] == [1000, 1000, 500]
    assert ["NextToken" in page for page in pages] == [True, True, False]
    assert len({page["QueryId"] for page in pages}) == 1
    values = sorted(float(row["measure_value::double"]) for page in pages for row in rows(page))
    assert values == [float(i) for i in range(2500)]


def test_a_next_token_is_only_good_for_its_query_and_once(aws, monkeypatch):
    write, query = aws
    monkeypatch.setattr(emulator.EMULATOR, "page_rows", 2)
    put(write, [record("up", float(i), 1000 + i, job="a") for i in range(5)])
    sql = 'SELECT * FROM "prom"."metrics"'
    token = query.query(QueryString=sql)["NextToken"]
    with pytest.raises(ClientError) as other:
        query.query(QueryString=sql + " WHERE time > 0", NextToken=token)
    assert other.value.response["Error"]["Code"] == "ValidationException"
    token = query.query(QueryString=sql)["NextToken"]
    assert len(query.query(QueryString=sql, NextToken=token)["Rows"]) == 2
    with pytest.raises(ClientError, match="NextToken"):
        query.query(QueryString=sql, NextToken=token)


# -- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("sql", "message"),
    [('DESCRIBE "prom"."nope"', "Requested table 'nope' not found for identifier 'prom.nope' at line 1:10"),
     ('SELECT *\nFROM "prom"."nope"', "Requested table 'nope' not found for identifier 'prom.nope' at line 2:6"),
     ('SELECT * FROM "nodb"."metrics"', "Requested database 'nodb' not found for identifier 'nodb.metrics' at line 1:15")],
)
def test_a_missing_table_or_database_is_answered_as_timestream_does(aws, sql, message):
    # The emulator must answer as Timestream does, for example "ValidationException ... Requested
    # database 'abc' not found for identifier 'abc.sampleDB' at line 1:36": the reader maps it to 404.
    _, query = aws
    with pytest.raises(ClientError) as error:
        query.query(QueryString=sql)
    assert error.value.response["Error"] == {"Code": "ValidationException", "Message": message}
    assert isinstance(classify(error.value, "prom.nope"), NotFound)


def test_a_column_never_written_fails_the_query_as_in_timestream(aws):
    write, query = aws
    put(write, [record("up", 1.0, 1000, job="a")])
    for sql in ('SELECT * FROM "prom"."metrics" WHERE "zone" = \'x\'', 'SELECT * FROM "prom"."metrics" WHERE zone = \'x\''):
        with pytest.raises(ClientError) as error:
            query.query(QueryString=sql)
        assert error.value.response["Error"]["Code"] == "ValidationException"
        assert "zone" in error.value.response["Error"]["Message"]
        assert isinstance(classify(error.value, "prom.metrics"), BadRequest)
    # ...but a quoted alias or a quoted name inside a literal is fine.
    page = query.query(QueryString='SELECT "job" AS "the job" FROM "prom"."metrics" WHERE job <> \'"zone"\'')
    assert rows(page) == [{"the job": "a"}]


def test_statements_other_than_describe_and_select_are_refused(aws):
    _, query = aws
    with pytest.raises(ClientError, match="DESCRIBE and SELECT"):
        query.query(QueryString='DELETE FROM "prom"."metrics"')


def test_results_queued_through_the_moto_api_still_win(aws):
    _, query = aws
    queued = {"QueryId": "queued", "Rows": [], "ColumnInfo": [{"Name": "x", "Type": {"ScalarType": "VARCHAR"}}]}
    timestreamquery_backends[DEFAULT_ACCOUNT_ID][REGION].query_result_queue["SELECT 1"] = [queued]
    assert query.query(QueryString="SELECT 1")["QueryId"] == "queued"
