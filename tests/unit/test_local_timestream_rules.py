"""The local Timestream's rules at their boundaries, its signature check against botocore's own
signer, and its table store, without a server (local_timestream/rules.py, signature.py, store.py)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local_timestream import rules
from local_timestream.signature import check_signature
from local_timestream.store import TableStore

NOW = 1_800_000_000_000
KEY_ID, SECRET = "AKIAUNITTEST00000000", "unit/test+secret"


def record(value: str = "1.0", ms: int = NOW, name: str = "up", **dims: str) -> dict[str, Any]:
    return {"MeasureName": name, "MeasureValue": value, "Time": str(ms), "MeasureValueType": "DOUBLE",
            "Dimensions": [{"Name": k, "Value": v} for k, v in (dims or {"job": "x"}).items()]}


def refused(database: str = "prometheus", table: str = "metrics", records: Any = None,
            common: Any = None) -> rules.TimestreamError:
    with pytest.raises(rules.TimestreamError) as error:
        rules.check_request(database, table, common, [record()] if records is None else records)
    return error.value


# -- rules at their boundaries -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["abc", "a" * 256, "A.b-c_9"])
def test_names_of_3_to_256_allowed_characters_pass(name):
    assert rules.check_request(name, name, None, [record()])


@pytest.mark.parametrize("name", ["ab", "a" * 257, "a b", "a/b", "a:b", "", None])
def test_other_names_are_a_validation_exception(name):
    error = refused(database=name)
    assert (error.code, error.status) == ("ValidationException", 400)
    assert "databaseName" in error.message
    assert "tableName" in refused(table=name).message


def test_100_records_pass_and_101_or_none_do_not():
    assert len(rules.check_request("db1", "t01", None, [record(ms=NOW + i) for i in range(100)])) == 100
    assert "less than or equal to 100" in refused(records=[record()] * 101).message
    assert "greater than or equal to 1" in refused(records=[]).message


def test_a_record_of_exactly_2048_bytes_passes_and_one_byte_more_does_not():
    # time 8 + "up" 2 + double 8 + "a" 1 + value: 2048 bytes with a 2029-byte value.
    rules.check_record(record(a="x" * 2029), "r")
    with pytest.raises(rules.TimestreamError, match="2049 bytes exceeds"):
        rules.check_record(record(a="x" * 2030), "r")


def test_dimension_names_count_bytes_not_characters():
    rules.check_record(record(**{"é" * 30: "v"}), "r")  # 60 bytes
    with pytest.raises(rules.TimestreamError, match="less than or equal to 60"):
        rules.check_record(record(**{"é" * 30 + "x": "v"}), "r")


@pytest.mark.parametrize("name", ["time", "measure_name", "measure_value", "ts_x", "measure_value::double",
                                  "measure_valuex", "a:b"])
def test_reserved_names_prefixes_and_colons_are_refused(name):
    with pytest.raises(rules.TimestreamError) as error:
        rules.check_record(record(**{name: "v"}), "r")
    assert name in error.value.message


@pytest.mark.parametrize("name", ["times", "measure_names", "measure_name_x", "tsx", "job"])
def test_names_that_only_resemble_reserved_ones_pass(name):
    rules.check_record(record(**{name: "v"}), "r")


def test_common_attributes_are_merged_and_may_not_repeat_a_dimension():
    common = {"MeasureValueType": "DOUBLE", "Dimensions": [{"Name": "region", "Value": "eu"}]}
    (merged,) = rules.check_request("db1", "t01", common, [{**record(), "MeasureValueType": None}])
    assert [d["Name"] for d in merged["Dimensions"]] == ["region", "job"]
    error = refused(common={"Dimensions": [{"Name": "job", "Value": "other"}]})
    assert "Duplicate dimension name 'job'" in error.message


def test_multi_measure_records_are_checked_member_by_member():
    multi = {**record(), "MeasureValueType": "MULTI", "MeasureValues": [
        {"Name": "a", "Value": "1.5", "Type": "DOUBLE"}, {"Name": "b", "Value": "7", "Type": "BIGINT"}]}
    del multi["MeasureValue"]
    rules.check_record(multi, "r")
    multi["MeasureValues"][1]["Value"] = "7.5"
    with pytest.raises(rules.TimestreamError, match="not a valid BIGINT"):
        rules.check_record(multi, "r")


@pytest.mark.parametrize("time", ["", "1.5", "-1", "soon", None])
def test_a_time_that_is_no_integer_is_refused(time):
    with pytest.raises(rules.TimestreamError, match="not a valid timestamp"):
        rules.check_record({**record(), "Time": time}, "r")


def test_the_writable_range_follows_the_tables_settings():
    assert rules.writable_range_ms(None, None, NOW) == (NOW - 6 * 3_600_000, NOW + 900_000, "memory")
    retention = {"MemoryStoreRetentionPeriodInHours": 2, "MagneticStoreRetentionPeriodInDays": 10}
    assert rules.writable_range_ms(retention, {}, NOW)[0] == NOW - 2 * 3_600_000
    assert rules.writable_range_ms(retention, {"EnableMagneticStoreWrites": True}, NOW) == (
        NOW - 10 * 86_400_000, NOW + 900_000, "magnetic")


def test_rejection_texts_are_timestreams():
    assert rules.outside_time_range(0, 1_500, "memory") == (
        "The record timestamp is outside the time range [1970-01-01T00:00:00.000Z, 1970-01-01T00:00:01.500Z) "
        "of the memory store.")
    assert "version" in rules.SAME_VERSION and "version" in rules.lower_version(1, 2)


# -- signatures ----------------------------------------------------------------------------------

def signed(body: bytes = b'{"MaxResults": 5}', key_id: str = KEY_ID, secret: str = SECRET,
           service: str = "timestream", url: str = "http://127.0.0.1:9202/") -> tuple[str, dict[str, str], bytes]:
    request = AWSRequest("POST", url, data=body, headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "Timestream_20181101.ListDatabases",
        "Host": "127.0.0.1:9202"})
    SigV4Auth(Credentials(key_id, secret), service, "eu-west-1").add_auth(request)
    return url, dict(request.headers), body


def check(url: str, headers: dict[str, str], body: bytes) -> None:
    check_signature("POST", url, headers, body, {KEY_ID: SECRET})


def test_a_request_signed_by_botocore_with_the_known_pair_passes():
    check(*signed())


def test_an_unknown_key_a_wrong_secret_or_a_changed_request_are_refused_as_aws_does():
    cases = {
        "UnrecognizedClientException": signed(key_id="AKIAOTHER00000000000"),
        "InvalidSignatureException": signed(secret="wrong"),
    }
    url, headers, body = signed()
    cases["changed body"] = (url, headers, body + b" ")
    cases["changed header"] = (url, {**headers, "X-Amz-Target": "Timestream_20181101.DeleteDatabase"}, body)
    cases["changed path"] = (url + "x", headers, body)
    cases["other service"] = signed(service="s3")
    cases["content hash"] = (url, {**headers, "X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()}, body)
    for case, request in cases.items():
        with pytest.raises(rules.TimestreamError) as error:
            check(*request)
        expected = case if case.endswith("Exception") else "InvalidSignatureException"
        assert (error.value.code, error.value.status) == (expected, 403), case


def test_a_request_without_sigv4_is_missing_its_token():
    url, headers, body = signed()
    for broken in ({k: v for k, v in headers.items() if k != "Authorization"}, {**headers, "Authorization": "Basic x"}):
        with pytest.raises(rules.TimestreamError) as error:
            check(url, broken, body)
        assert error.value.code == "MissingAuthenticationTokenException"


# -- the table store -----------------------------------------------------------------------------

def store_with(*records: dict[str, Any]) -> TableStore:
    store = TableStore("prom", "metrics", [])
    outcome = store.write(list(records), NOW - 3_600_000, NOW + 900_000, "memory", NOW - 3_600_000)
    assert outcome.rejected == []
    return store


def test_a_point_is_kept_once_and_an_upsert_replaces_its_row():
    store = store_with(record("1.0", job="a"), record("1.0", job="a"))
    assert len(store.records) == 1
    store.write([{**record("2.0", job="a"), "Version": 2}], 0, NOW + 1, "memory", 0)
    assert store.records == [{**record("2.0", job="a"), "Version": 2}]
    assert store.select('SELECT "measure_value::double" FROM "prom"."metrics"')[1] == [(2.0,)]


def test_points_differ_by_dimensions_measure_name_and_nanoseconds():
    ns = {**record(job="a"), "Time": str(NOW * 1_000_000 + 1), "TimeUnit": "NANOSECONDS"}
    store = store_with(record(job="a"), record(job="b"), record(name="down", job="a"), ns)
    assert len(store.records) == 4
    assert store.select('SELECT count(*) FROM "prom"."metrics" WHERE time = ' + str(NOW))[1] == [(4,)]


def test_queries_use_the_time_index():
    store = store_with(record())
    plan = store._db.execute('EXPLAIN QUERY PLAN SELECT * FROM "prom"."metrics" WHERE time >= 1 AND time < 2 '
                             "AND job = 'x'").fetchall()
    assert "USING INDEX" in str(plan)
