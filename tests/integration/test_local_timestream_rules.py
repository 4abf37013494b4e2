"""Each Timestream rule the local Timestream enforces: what it answers (as Timestream does), and
what the connector answers a remote write that breaks it, with the rest of the request stored.

Every connector request below carries a valid series beside the one that breaks the rule; the
tests check it was stored. Where the connector does not yet catch a rule before Timestream does,
the test is marked xfail (strict) with the reason: the local Timestream shows the gap.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
import snappy
from botocore.exceptions import ClientError
from chalice.test import Client

from chalicelib.prompb import prometheus_remote_pb2 as pb
from local_timestream import rules
from tests.helpers import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    basic_auth,
    encode,
    now_ms,
    write_headers,
    write_request,
)
from tests.integration.conftest import ROOT, stored

COMMON = {"MeasureValueType": "DOUBLE", "TimeUnit": "MILLISECONDS"}
HOUR_MS = 3_600_000


def record(value: str = "1.0", ms: int | None = None, name: str = "up", **dims: str) -> dict[str, Any]:
    return {"MeasureName": name, "MeasureValue": value, "Time": str(now_ms() if ms is None else ms),
            "Dimensions": [{"Name": k, "Value": v} for k, v in (dims or {"job": "x"}).items()]}


def refusal(call: Any) -> dict[str, Any]:
    """The local Timestream's error answer to `call()`: code, status, message, RejectedRecords."""
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return {"code": response["Error"]["Code"], "status": response["ResponseMetadata"]["HTTPStatusCode"],
            "message": response["Error"]["Message"], "rejected": response.get("RejectedRecords")}


def write(timestream: Any, records: list[dict[str, Any]], table: str = "metrics", database: str = "prometheus",
          common: dict[str, Any] | None = None) -> Any:
    return timestream.write_records(DatabaseName=database, TableName=table, Records=records,
                                    CommonAttributes=COMMON if common is None else common)


def post(http: Any, *series: Any, **headers: str) -> Any:
    return http.post("/write", headers=write_headers(**headers), body=encode(write_request(series)))


def good(ts: int | None = None) -> Any:
    """The valid series sent beside the one under test."""
    return ([("__name__", "good_metric"), ("job", "beside")], [(1.25, now_ms() if ts is None else ts)])


def good_stored(timestream: Any, table: str = "metrics") -> bool:
    return any(r["MeasureName"] == "good_metric" for r in stored(timestream, table))


def names(timestream: Any, table: str = "metrics") -> list[str]:
    return [r["MeasureName"] for r in stored(timestream, table)]


# -- database and table names ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ab", "x" * 257, "has space", "semi;colon", "ünï"])
def test_database_and_table_names_outside_timestreams_pattern_fail_the_call(timestream, name):
    for database, table in ((name, "metrics"), ("prometheus", name)):
        answer = refusal(lambda d=database, t=table: write(timestream, [record()], t, d))
        assert (answer["code"], answer["status"]) == ("ValidationException", 400), answer
        assert "failed to satisfy constraint" in answer["message"]
    answer = refusal(lambda: timestream.create_table(DatabaseName="prometheus", TableName=name))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400)
    assert stored(timestream) == []


def test_connector_refuses_an_invalid_destination_and_writes_the_rest(http, timestream):
    response = post(http, good(), ([("__name__", "m"), ("job", "x"), ("prometheusTableLabel", "has space")],
                                   [(1.0, now_ms())]))
    assert response.status_code == 400
    assert "invalid_destination=1" in response.body.decode()
    assert names(timestream) == ["good_metric"]


def test_a_missing_table_is_404_and_the_other_destinations_are_written(http, timestream):
    answer = refusal(lambda: write(timestream, [record()], table="absent"))
    assert (answer["code"], answer["status"]) == ("ResourceNotFoundException", 404)
    response = post(http, good(), ([("__name__", "m"), ("job", "x"), ("prometheusTableLabel", "absent")],
                                   [(1.0, now_ms())]))
    assert response.status_code == 404
    assert "prometheus.absent" in response.body.decode()
    assert names(timestream) == ["good_metric"]


# -- dimensions ----------------------------------------------------------------------------------------

def test_a_record_without_a_dimension_fails_the_call(timestream, http):
    answer = refusal(lambda: write(timestream, [record(), {**record(), "Dimensions": []}]))
    assert answer == {"code": "ValidationException", "status": 400, "rejected": None,
                      "message": "At least one dimension is required for a record."}
    assert stored(timestream) == []  # the valid record of the same call is not written either
    # The connector gives a name-only series a dimension it owns, so Timestream takes it.
    response = post(http, good(), ([("__name__", "lonely")], [(1.0, now_ms())]))
    assert response.status_code == 204, response.body
    assert sorted(names(timestream)) == ["good_metric", "lonely"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("n" * 61, "label_name_too_long"), ("time", "reserved_label_name"), ("measure_name", "reserved_label_name"),
     ("measure_value", "reserved_label_name"), ("ts_shard", "reserved_label_name")],
)
def test_dimension_names_timestream_refuses_fail_the_call_and_the_connector_refuses_the_series(
        timestream, http, name, reason):
    answer = refusal(lambda: write(timestream, [record(), record(**{name: "v"})]))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400), answer
    assert stored(timestream) == []
    response = post(http, good(), ([("__name__", "m"), (name, "v")], [(1.0, now_ms())]))
    assert response.status_code == 400
    assert f"{reason}=1" in response.body.decode()
    assert names(timestream) == ["good_metric"]


def test_a_sixty_byte_dimension_name_is_accepted(timestream):
    write(timestream, [record(**{"é" * 30: "v"})])  # 30 two-byte characters: 60 bytes
    assert len(stored(timestream)) == 1


@pytest.mark.parametrize("name", ["a:b", "measure_value_kind"])
def test_colons_and_the_measure_value_prefix_fail_the_call_in_timestream(timestream, name):
    answer = refusal(lambda: write(timestream, [record(), record(**{name: "v"})]))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400), answer
    assert name in answer["message"]
    assert stored(timestream) == []


@pytest.mark.parametrize("name", [
    "a:b",
    "measure_value_kind",
])
def test_connector_refuses_colons_and_the_measure_value_prefix_and_writes_the_rest(timestream, http, name):
    response = post(http, good(), ([("__name__", "m"), (name, "v")], [(1.0, now_ms())]))
    assert response.status_code == 400
    assert names(timestream) == ["good_metric"]


def test_more_than_128_dimensions_fail_the_call(timestream, http):
    many = {f"d{i}": "v" for i in range(129)}
    answer = refusal(lambda: write(timestream, [record(**many)]))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400)
    assert "less than or equal to 128" in answer["message"]
    response = post(http, good(), ([("__name__", "m"), *many.items()], [(1.0, now_ms())]))
    assert response.status_code == 400
    assert "too_many_labels=1" in response.body.decode()
    assert names(timestream) == ["good_metric"]


def test_a_dimension_name_in_both_common_attributes_and_the_record_fails_the_call(timestream):
    common = {**COMMON, "Dimensions": [{"Name": "job", "Value": "shared"}]}
    answer = refusal(lambda: write(timestream, [record(job="own")], common=common))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400)
    assert "job" in answer["message"]


def test_common_attributes_are_merged_into_every_record(timestream, http):
    ts = now_ms()
    common = {"MeasureValueType": "DOUBLE", "TimeUnit": "SECONDS", "Time": str(ts // 1000),
              "Dimensions": [{"Name": "region", "Value": "eu"}]}
    own_time = {**record(name="a", host="h1"), "Time": str(ts // 1000 - 1)}
    inherits_time = {"MeasureName": "b", "MeasureValue": "2", "Dimensions": [{"Name": "host", "Value": "h2"}]}
    write(timestream, [own_time, inherits_time], common=common)
    got = {r["MeasureName"]: r for r in stored(timestream)}
    assert {d["Name"]: d["Value"] for d in got["b"]["Dimensions"]} == {"region": "eu", "host": "h2"}
    assert (got["b"]["Time"], got["b"]["TimeUnit"], got["b"]["MeasureValueType"]) == (str(ts // 1000), "SECONDS",
                                                                                        "DOUBLE")
    assert (got["a"]["Time"], got["a"]["TimeUnit"]) == (str(ts // 1000 - 1), "SECONDS")  # its own Time wins
    # The connector moves the labels a call's records share to CommonAttributes: all are stored.
    shared = [("__name__", "shared_metric"), ("cluster", "c1"), ("job", "node")]
    assert post(http, (shared + [("instance", "a")], [(1.0, ts)]), (shared + [("instance", "b")], [(2.0, ts)])
                ).status_code == 204
    dims = [{d["Name"]: d["Value"] for d in r["Dimensions"]} for r in stored(timestream)
            if r["MeasureName"] == "shared_metric"]
    assert sorted(d["instance"] for d in dims) == ["a", "b"]
    assert all(d["cluster"] == "c1" and d["job"] == "node" for d in dims)


# -- sizes ---------------------------------------------------------------------------------------------

def test_a_record_over_2_kib_fails_the_call(timestream, http):
    big = {"a": "x" * 1000, "b": "y" * 1020}  # 2 + 2020 + 8 + 2 ("up") + 8 = 2040 bytes: still fits
    write(timestream, [record(**big)])
    bigger = {"a": "x" * 1000, "b": "y" * 1030}
    answer = refusal(lambda: write(timestream, [record(**bigger)]))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400)
    assert "2048" in answer["message"]
    response = post(http, good(), ([("__name__", "m"), *bigger.items()], [(1.0, now_ms())]))
    assert response.status_code == 400
    assert "record_too_large=1" in response.body.decode()
    assert sorted(names(timestream)) == ["good_metric", "up"]


def test_a_measure_name_over_256_bytes_fails_the_call(timestream, http):
    write(timestream, [record(name="m" * 256)])
    answer = refusal(lambda: write(timestream, [record(name="m" * 257)]))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400)
    assert "256" in answer["message"]
    response = post(http, good(), ([("__name__", "m" * 257), ("job", "x")], [(1.0, now_ms())]))
    assert response.status_code == 400
    assert "measure_name_too_long=1" in response.body.decode()
    assert "good_metric" in names(timestream)


def test_more_than_100_records_a_call_fail_the_call_and_the_connector_sends_at_most_100(timestream, http):
    answer = refusal(lambda: write(timestream, [record(ms=now_ms() - i) for i in range(101)]))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400)
    assert "less than or equal to 100" in answer["message"]
    assert stored(timestream) == []
    ts = now_ms() - 60_000
    response = post(http, good(), ([("__name__", "many"), ("job", "x")], [(float(i), ts + i) for i in range(250)]))
    assert response.status_code == 204, response.body
    assert names(timestream).count("many") == 250 and good_stored(timestream)


# -- values --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value_type", "value"),
    [("DOUBLE", "NaN"), ("DOUBLE", "Infinity"), ("DOUBLE", "-inf"), ("DOUBLE", "one"), ("BIGINT", "1.5"),
     ("BIGINT", str(2**63)), ("BOOLEAN", "yes"), ("FLOAT", "1.0")],
)
def test_a_value_that_is_not_its_type_or_not_finite_fails_the_call(timestream, value_type, value):
    answer = refusal(lambda: write(timestream, [record(), {**record(value), "MeasureValueType": value_type}]))
    assert (answer["code"], answer["status"]) == ("ValidationException", 400), answer
    assert stored(timestream) == []


@pytest.mark.parametrize(("value_type", "value"), [("BIGINT", "-42"), ("VARCHAR", "text"), ("BOOLEAN", "true"),
                                                   ("DOUBLE", "1e308")])
def test_values_of_every_scalar_type_are_accepted(timestream, value_type, value):
    write(timestream, [{**record(value), "MeasureValueType": value_type}])
    assert [r["MeasureValue"] for r in stored(timestream)] == [value]


def test_connector_drops_nan_and_infinities_and_writes_the_rest(timestream, http):
    ts = now_ms()
    response = post(http, good(ts), ([("__name__", "m"), ("job", "x")],
                                     [(float("nan"), ts), (float("inf"), ts + 1), (-float("inf"), ts + 2)]))
    assert response.status_code == 204
    assert names(timestream) == ["good_metric"]


# -- time ----------------------------------------------------------------------------------------------

def test_times_outside_the_memory_store_retention_or_15_minutes_ahead_are_rejected_records(timestream):
    now = now_ms()
    records = [record(ms=now - 7 * HOUR_MS, job="old"), record(ms=now, job="now"),
               record(ms=now + 16 * 60_000, job="ahead"), record(ms=now - 5 * HOUR_MS, job="recent")]
    answer = refusal(lambda: write(timestream, records))
    assert (answer["code"], answer["status"]) == ("RejectedRecordsException", 419)
    assert answer["message"] == rules.REJECTED_MESSAGE
    assert [r["RecordIndex"] for r in answer["rejected"]] == [0, 2]
    for rejected in answer["rejected"]:
        assert rejected["Reason"].startswith("The record timestamp is outside the time range [")
        assert rejected["Reason"].endswith(") of the memory store.")
    jobs = sorted(d["Value"] for r in stored(timestream) for d in r["Dimensions"])
    assert jobs == ["now", "recent"]  # the records beside the rejected ones are written


def test_the_tables_memory_store_retention_sets_the_limit(timestream):
    timestream.create_table(DatabaseName="prometheus", TableName="short",
                            RetentionProperties={"MemoryStoreRetentionPeriodInHours": 1,
                                                 "MagneticStoreRetentionPeriodInDays": 1})
    two_hours_ago = now_ms() - 2 * HOUR_MS
    answer = refusal(lambda: write(timestream, [record(ms=two_hours_ago)], table="short"))
    assert [r["RecordIndex"] for r in answer["rejected"]] == [0]
    write(timestream, [record(ms=two_hours_ago)])  # "metrics" keeps the default 6 hours


def test_magnetic_store_writes_accept_old_times_within_the_magnetic_retention(timestream, load_app):
    timestream.create_table(DatabaseName="prometheus", TableName="history",
                            RetentionProperties={"MemoryStoreRetentionPeriodInHours": 6,
                                                 "MagneticStoreRetentionPeriodInDays": 3650},
                            MagneticStoreWriteProperties={"EnableMagneticStoreWrites": True})
    in_2021 = int(time.mktime((2021, 6, 1, 0, 0, 0, 0, 0, 0)) * 1000)
    answer = write(timestream, [record(ms=in_2021, job="a"), record(job="b")], table="history")
    assert answer["RecordsIngested"] == {"Total": 2, "MemoryStore": 1, "MagneticStore": 1}
    too_old = now_ms() - 3651 * 24 * HOUR_MS
    rejected = refusal(lambda: write(timestream, [record(ms=too_old)], table="history"))["rejected"]
    assert rejected[0]["Reason"].endswith("of the magnetic store.")
    app = load_app(DEFAULT_TABLE="history")
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response = post(client.http, ([("__name__", "old_metric"), ("job", "x")], [(2.0, in_2021 + 1)]))
    assert response.status_code == 204, response.body
    assert "old_metric" in names(timestream, "history")


def test_connector_counts_a_sample_outside_the_retention_and_writes_the_rest(timestream, http):
    response = post(http, good(), ([("__name__", "m"), ("job", "x")], [(1.0, now_ms() - 7 * HOUR_MS)]))
    assert response.status_code == 400
    body = response.body.decode()
    assert "records rejected by Timestream" in body and "=1" in body and "outside the time range" in body
    assert names(timestream) == ["good_metric"]


def test_connector_names_the_reason_outside_retention(timestream, http):
    response = post(http, good(), ([("__name__", "m"), ("job", "x")], [(1.0, now_ms() - 7 * HOUR_MS)]))
    assert "outside_retention=1" in response.body.decode()


def test_connector_refuses_samples_more_than_15_minutes_ahead_and_writes_the_rest(timestream, http):
    response = post(http, good(), ([("__name__", "m"), ("job", "x")], [(1.0, now_ms() + 16 * 60_000)]))
    assert response.status_code == 400
    assert "timestamp_too_far_in_future=1" in response.body.decode()
    assert names(timestream) == ["good_metric"]


# -- an existing point -----------------------------------------------------------------------------

def test_an_identical_rewrite_is_accepted_and_a_different_value_rejected_with_the_existing_version(timestream):
    ts = now_ms()
    write(timestream, [record("1.5", ts, job="a")])
    write(timestream, [record("1.5", ts, job="a")])  # a retried call: accepted, kept once
    answer = refusal(lambda: write(timestream, [record("2.5", ts, job="a"), record("3.5", ts, job="b")]))
    assert (answer["code"], answer["status"]) == ("RejectedRecordsException", 419)
    assert answer["rejected"] == [{"RecordIndex": 0, "Reason": rules.SAME_VERSION, "ExistingVersion": 1}]
    assert sorted((r["MeasureValue"], r["Dimensions"][0]["Value"]) for r in stored(timestream)) == [
        ("1.5", "a"), ("3.5", "b")]


def test_a_higher_version_updates_a_point_and_a_lower_one_is_rejected(timestream):
    ts = now_ms()
    write(timestream, [{**record("1.0", ts), "Version": 5}])
    answer = refusal(lambda: write(timestream, [{**record("2.0", ts), "Version": 3}]))
    assert answer["rejected"] == [{"RecordIndex": 0, "Reason": rules.lower_version(3, 5), "ExistingVersion": 5}]
    write(timestream, [{**record("2.0", ts), "Version": 6}])
    assert [(r["MeasureValue"], r["Version"]) for r in stored(timestream)] == [("2.0", 6)]


def test_connector_counts_a_conflicting_value_and_writes_the_rest(timestream, http):
    ts = now_ms()
    series = [("__name__", "m"), ("job", "x")]
    assert post(http, (series, [(1.0, ts)])).status_code == 204
    assert post(http, (series, [(1.0, ts)])).status_code == 204  # Prometheus retrying: no duplicate
    response = post(http, good(ts), (series, [(2.0, ts)]))
    assert response.status_code == 400
    assert "conflicting_value=1" in response.body.decode()
    assert sorted(names(timestream)) == ["good_metric", "m"]
    assert [r["MeasureValue"] for r in stored(timestream) if r["MeasureName"] == "m"] == ["1.0"]


# -- credentials ---------------------------------------------------------------------------------------

def client_with(endpoint: str, key_id: str, secret: str) -> Any:
    return boto3.client("timestream-write", region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id=key_id, aws_secret_access_key=secret)


def test_only_calls_signed_with_the_known_key_pair_are_answered(timestream):
    endpoint = timestream.endpoint
    unknown = refusal(lambda: client_with(endpoint, "AKIAUNKNOWN000000000", SECRET_ACCESS_KEY).list_databases())
    assert unknown == {"code": "UnrecognizedClientException", "status": 403, "rejected": None,
                       "message": "The security token included in the request is invalid."}
    wrong = refusal(lambda: client_with(endpoint, ACCESS_KEY_ID, "not-the-secret").list_databases())
    assert (wrong["code"], wrong["status"]) == ("InvalidSignatureException", 403)
    assert wrong["message"].startswith("The request signature we calculated does not match")
    wrong_write = refusal(lambda: write(client_with(endpoint, ACCESS_KEY_ID, "not-the-secret"), [record()]))
    assert wrong_write["code"] == "InvalidSignatureException"
    assert stored(timestream) == []
    assert client_with(endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY).list_databases()["Databases"]


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(basic_auth("AKIAUNKNOWN000000000", SECRET_ACCESS_KEY), "UnrecognizedClientException"),
     (basic_auth(ACCESS_KEY_ID, "not-the-secret"), "InvalidSignatureException")],
)
def test_connector_answers_403_to_credentials_timestream_refuses_on_write_and_read(
        timestream, http, authorization, code):
    response = post(http, good(), Authorization=authorization)
    assert response.status_code == 403
    assert code in response.body.decode() and "not-the-secret" not in response.body.decode()
    assert stored(timestream) == []
    request = pb.ReadRequest()
    query = request.queries.add(start_timestamp_ms=now_ms() - 60_000, end_timestamp_ms=now_ms())
    query.matchers.add(type=pb.LabelMatcher.EQ, name="__name__", value="up")
    read = http.post("/read", body=snappy.compress(request.SerializeToString()),
                     headers=write_headers(Authorization=authorization, **{"X-Prometheus-Remote-Write-Version": None,
                                                                           "X-Prometheus-Remote-Read-Version": "0.1.0"}))
    assert read.status_code == 403, read.body
    assert code in read.body.decode()
