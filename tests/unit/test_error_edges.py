"""Edges of the error model and caches that mutation testing showed untested."""

import botocore.session
import pytest
from botocore.stub import Stubber

from chalicelib.errors import (
    BadRequest,
    NotFound,
    ServiceUnavailable,
    TimestreamError,
    classify,
    from_botocore,
)
from chalicelib.liveanalytics.query_client import ColumnsCache, parse_describe


def test_a_timestream_error_reads_as_its_code_and_message():
    assert str(TimestreamError("ThrottlingException", "Rate exceeded", 400)) == "ThrottlingException: Rate exceeded"


@pytest.mark.parametrize(("status", "expected"), [(499, BadRequest), (500, ServiceUnavailable), (503, ServiceUnavailable)])
def test_any_5xx_is_transient_whatever_its_code(status, expected):
    assert isinstance(classify(TimestreamError("SomethingNew", "x", status)), expected)


def test_an_error_without_a_place_names_timestream():
    error = classify(TimestreamError("ResourceNotFoundException", "gone", 404))
    assert isinstance(error, NotFound) and "Timestream does not exist" in error.message


def test_a_botocore_rejected_record_without_an_index_keeps_its_reason():
    client = botocore.session.get_session().create_client(
        "timestream-write", region_name="us-east-1", endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="AKIATESTEXAMPLE00001", aws_secret_access_key="secret",
    )
    with Stubber(client) as stubber:
        stubber.add_client_error("write_records", "RejectedRecordsException", "rejected", 419, response_meta={},
                                 modeled_fields={"RejectedRecords": [{"Reason": "no index given"}]})
        with pytest.raises(Exception) as raised:
            client.write_records(DatabaseName="d", TableName="t", Records=[{"MeasureName": "m"}])
    typed = from_botocore(raised.value)
    assert [(r.index, r.reason) for r in typed.rejected_records] == [(-1, "no index given")]


def test_describe_without_a_named_category_column_reads_the_third_column():
    page = {
        "ColumnInfo": [{"Name": "Column"}, {"Name": "Type"}, {"Name": "Kind"}],
        "Rows": [{"Data": [{"ScalarValue": "job"}, {"ScalarValue": "varchar"}, {"ScalarValue": "DIMENSION"}]},
                 {"Data": [{"ScalarValue": "time"}, {"ScalarValue": "timestamp"}, {"ScalarValue": "TIMESTAMP"}]}],
    }
    assert parse_describe([page]) == frozenset({"job"})


def test_putting_a_table_again_makes_it_the_most_recent_so_another_is_evicted_first():
    cache = ColumnsCache(max_entries=2)
    cache.put("a", frozenset({"x"}))
    cache.put("b", frozenset({"y"}))
    cache.put("a", frozenset({"x", "z"}))
    cache.put("c", frozenset())
    assert cache.get("a") == frozenset({"x", "z"}) and cache.get("b") is None
