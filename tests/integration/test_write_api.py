"""POST /write through chalice.test.Client against moto: one test per row of the HTTP contract."""

import json
import logging
import struct

import pytest
import snappy
from chalice.test import Client

from chalicelib.prompb.prometheus_remote_pb2 import WriteRequest
from tests.helpers import SECRET_ACCESS_KEY, basic_auth, encode, now_ms, write_headers, write_request
from tests.integration.conftest import ROOT, stored

STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def post(http, body, **headers):
    return http.post("/write", headers=write_headers(**headers), body=body)


def logged_write(caplog, client, body):
    """POST body; the response and the one log line it produced, duration_ms checked and removed."""
    with caplog.at_level(logging.INFO, logger="prometheus_timestream"):
        response = post(client, body)
    lines = [record.getMessage() for record in caplog.records if record.name == "prometheus_timestream"]
    assert len(lines) == 1, lines
    assert SECRET_ACCESS_KEY not in lines[0] and basic_auth().split()[1] not in lines[0]
    event = json.loads(lines[0])
    duration = event.pop("duration_ms")
    assert isinstance(duration, float) and 0 <= duration < 60_000
    request_id = event.pop("request_id")
    assert isinstance(request_id, str) and request_id, "the Lambda request id ties the line to the invocation"
    assert isinstance(event.pop("cold_start"), bool)
    return response, event


def node_series(ts, *, table=None, job="node", value=0.1):
    labels = [("__name__", "node_load1"), ("instance", "host:9100"), ("job", job)]
    if table:
        labels += [("prometheusDatabaseLabel", "prometheus"), ("prometheusTableLabel", table)]
    return (labels, [(value, ts)])


# -- 2xx: stored --------------------------------------------------------------------------------

def test_valid_write_is_stored_exactly_and_answered_with_204(http, timestream):
    ts = now_ms()
    body = encode(write_request([node_series(ts, value=0.1 + 0.2), node_series(ts + 1, value=-1e-300)]))
    response = post(http, body)
    assert response.status_code == 204 and response.body == b""
    records = stored(timestream)
    assert [(r["MeasureValue"], r["Time"]) for r in records] == [(repr(0.1 + 0.2), str(ts)), ("-1e-300", str(ts + 1))]
    assert records[0]["MeasureName"] == "node_load1"
    assert {d["Name"]: d["Value"] for d in records[0]["Dimensions"]} == {"instance": "host:9100", "job": "node"}
    assert (records[0]["MeasureValueType"], records[0]["TimeUnit"]) == ("DOUBLE", "MILLISECONDS")


def test_routing_labels_fan_one_request_out_to_several_tables(http, timestream):
    ts = now_ms()
    body = encode(write_request([node_series(ts, table="nodes"), node_series(ts, table="apps", job="app")]))
    assert post(http, body).status_code == 204
    nodes, apps = stored(timestream, "nodes"), stored(timestream, "apps")
    assert [d["Value"] for d in nodes[0]["Dimensions"] if d["Name"] == "job"] == ["node"]
    assert [d["Value"] for d in apps[0]["Dimensions"] if d["Name"] == "job"] == ["app"]
    for record in nodes + apps:
        assert not {d["Name"] for d in record["Dimensions"]} & {"prometheusDatabaseLabel", "prometheusTableLabel"}
    assert stored(timestream) == []


def test_metadata_only_request_succeeds(http, timestream):
    request = WriteRequest()
    request.metadata.add(type=1, metric_family_name="http_requests_total", help="Requests.", unit="")
    assert post(http, encode(request)).status_code == 204


def test_request_with_no_series_succeeds(http, timestream):
    assert post(http, encode(WriteRequest())).status_code == 204


def test_request_of_only_nan_and_stale_samples_succeeds_and_stores_nothing(http, timestream):
    ts = now_ms()
    body = encode(write_request([([("__name__", "up"), ("job", "x")], [(float("nan"), ts), (STALE, ts + 1)])]))
    assert post(http, body).status_code == 204
    assert stored(timestream) == []


# -- 400: bad body, refused series, rejected records ----------------------------------------------

@pytest.mark.parametrize(
    ("body", "message"),
    [(b"", "empty body"), (b"\xff\xff\xff\xff\xff\xff", "snappy"), (snappy.compress(b"\x0a\x05\x0a"), "protobuf")],
    ids=["empty", "not-snappy", "not-protobuf"],
)
def test_undecodable_bodies_are_400_with_one_line(http, timestream, body, message):
    response = post(http, body)
    assert response.status_code == 400
    text = response.body.decode()
    assert message in text and text.count("\n") == 1


def test_series_without_name_or_destination_are_400_after_the_rest_is_written(load_app, timestream):
    app = load_app(DEFAULT_DATABASE=None, DEFAULT_TABLE=None)
    ts = now_ms()
    body = encode(write_request([
        node_series(ts, table="nodes"),
        ([("job", "no-name"), ("prometheusDatabaseLabel", "prometheus"), ("prometheusTableLabel", "nodes")],
         [(1.0, ts)]),
        ([("__name__", "no_destination"), ("job", "x")], [(1.0, ts), (2.0, ts + 1)]),
    ]))
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response = post(client.http, body)
    assert response.status_code == 400
    assert "missing_metric_name=1" in response.body.decode()
    assert "no_destination=2" in response.body.decode()
    assert len(stored(timestream, "nodes")) == 1


@pytest.mark.parametrize(
    ("reason", "counted_as"),
    [("A record with the same dimensions and time but a different version exists.", "conflicting_value"),
     ("The record timestamp is outside the time range of the data ingestion window (memory store retention).",
      "outside_retention"),
     ("Measure value type is not supported for this record.", "other")],
    ids=["version-conflict", "retention", "any-other-reason"],
)
def test_records_timestream_rejects_are_400_with_the_reason(http, timestream, fail_writes, reason, counted_as):
    fail_writes("RejectedRecordsException", 419, RejectedRecords=[{"RecordIndex": 0, "Reason": reason}])
    response = post(http, encode(write_request([node_series(now_ms()), node_series(now_ms() + 1)])))
    assert response.status_code == 400
    assert f"rejected by Timestream: {counted_as}=1 " in response.body.decode()
    assert "1 records written" in response.body.decode()


def test_a_rejection_that_lists_no_records_counts_them_all_rejected_and_none_written(
    http, timestream, fail_writes, caplog
):
    # Nothing says which records stood: reporting them written would turn a loss into a 204.
    fail_writes("RejectedRecordsException", 419, "One or more records have been rejected.")
    response, event = logged_write(caplog, http, encode(write_request([node_series(now_ms()), node_series(now_ms() + 1)])))
    assert response.status_code == 400
    assert "rejected by Timestream: other=2 " in response.body.decode()
    assert response.body.decode().endswith("; 0 records written\n")
    assert (event["written"], event["rejected"], event["destinations"]) == (0, {"other": 2}, {"prometheus.metrics": 0})


# -- 404, 403, 5xx from Timestream --------------------------------------------------------------

@pytest.mark.parametrize(("database", "table"), [("prometheus", "absent"), ("absentdb", "metrics")],
                         ids=["missing-table", "missing-database"])
def test_missing_table_or_database_is_404_naming_it(http, timestream, database, table):
    labels = [("__name__", "up"), ("job", "x"), ("prometheusDatabaseLabel", database), ("prometheusTableLabel", table)]
    response = post(http, encode(write_request([(labels, [(1.0, now_ms())])])))
    assert response.status_code == 404
    assert f"{database}.{table} does not exist (ResourceNotFoundException" in response.body.decode()


@pytest.mark.parametrize(("code", "status"), [("AccessDeniedException", 403), ("UnrecognizedClientException", 400)])
def test_credentials_or_actions_aws_refuses_are_403(http, timestream, fail_writes, code, status):
    fail_writes(code, status)
    response = post(http, encode(write_request([node_series(now_ms())])))
    assert response.status_code == 403
    assert code in response.body.decode()


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalServerException", 500)])
def test_transient_timestream_failures_are_5xx_so_prometheus_retries(load_app, timestream, fail_writes, code, status):
    app = load_app(WRITE_BUDGET_SECONDS="0.5")
    fail_writes(code, status)
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response = post(client.http, encode(write_request([node_series(now_ms())])))
    assert response.status_code == 503
    assert code in response.body.decode()


# -- 415, 413, 401 ------------------------------------------------------------------------------

def test_other_content_encoding_is_415(http, timestream):
    response = post(http, encode(write_request([node_series(now_ms())])), **{"Content-Encoding": "gzip"})
    assert response.status_code == 415
    assert "Content-Encoding" in response.body.decode()


def test_other_content_type_is_415(http, timestream):
    response = post(http, b"{}", **{"Content-Type": "application/json"})
    assert response.status_code == 415


def test_declared_size_over_the_limit_is_413(load_app, timestream):
    app = load_app(MAX_DECOMPRESSED_BYTES="2048")
    body = encode(write_request([([("__name__", "m"), ("big", "x" * 3000)], [(1.0, now_ms())])]))
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response = post(client.http, body)
    assert response.status_code == 413
    assert stored(timestream) == []


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic bm9wZQ==", "Bearer token", pytest.param("Basic QUtJQé==", id="non-ascii")],
)
def test_missing_or_malformed_credentials_are_401_with_a_basic_challenge(http, timestream, authorization):
    response = post(http, encode(write_request([node_series(now_ms())])), Authorization=authorization)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert stored(timestream) == []


def test_iam_mode_writes_with_the_function_role_and_needs_no_basic_auth(load_app, timestream):
    app = load_app(AUTH_MODE="iam")
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response = post(client.http, encode(write_request([node_series(now_ms())])), Authorization=None)
    assert response.status_code == 204
    assert len(stored(timestream)) == 1


# -- logging and robustness ---------------------------------------------------------------------

def test_one_json_log_line_per_stored_request_with_every_field(http, timestream, caplog):
    ts = now_ms()
    body = encode(write_request([node_series(ts), ([("__name__", "up"), ("job", "x")], [(float("nan"), ts)])]))
    response, event = logged_write(caplog, http, body)
    assert response.status_code == 204
    assert event == {
        "event": "write", "engine": "liveanalytics", "status": 204, "error": None, "written": 1, "histograms_written": 0, "exemplars_written": 0, "dropped": {"nan": 1}, "refused": {},
        "rejected": {}, "calls": 1, "retries": 0, "throttles": 0, "write_units": 1,
        "destinations": {"prometheus.metrics": 1},
        "request_bytes": len(body), "protocol": "1.0",
    }


def test_one_json_log_line_counts_every_outcome_of_a_mixed_request(load_app, timestream, fail_writes_to, caplog):
    # A budget that leaves room for one retry (an attempt may take 7 s).
    app = load_app(WRITE_BUDGET_SECONDS="10")
    fail_writes_to("metrics", "ThrottlingException", 400, times=1)
    conflict = "A record with the same dimensions and time but a different version exists."
    fail_writes_to("nodes", "RejectedRecordsException", 419, RejectedRecords=[{"RecordIndex": 0, "Reason": conflict}])
    ts = now_ms()
    body = encode(write_request([
        node_series(ts),                                                  # metrics: written after a retry
        node_series(ts, table="nodes"), node_series(ts + 1, table="nodes"),  # nodes: one of two rejected
        ([("__name__", "up"), ("job", "x")], [(float("nan"), ts)]),       # dropped
        ([("job", "no-name")], [(1.0, ts)]),                              # refused
    ]))
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response, event = logged_write(caplog, client.http, body)
    error = (f'samples refused: missing_metric_name=1 (first: {{job="no-name"}}); '
             f"records rejected by Timestream: conflicting_value=1 "
             f"(record 0: {conflict}); 2 records written")
    assert (response.status_code, response.body.decode()) == (400, error + "\n")
    assert event == {
        "event": "write", "engine": "liveanalytics", "status": 400, "error": error, "written": 2, "histograms_written": 0, "exemplars_written": 0, "dropped": {"nan": 1},
        "refused": {"missing_metric_name": 1}, "rejected": {"conflicting_value": 1}, "calls": 2, "retries": 1,
        "throttles": 1, "write_units": 2, "refused_examples": {"missing_metric_name": ['{job="no-name"}']},
        "destinations": {"prometheus.metrics": 1, "prometheus.nodes": 1}, "request_bytes": len(body),
        "protocol": "1.0",
    }
    assert len(stored(timestream)) == 1


def test_an_unexpected_bug_is_a_500_and_the_app_keeps_serving(load_app, timestream, monkeypatch):
    app = load_app()

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        monkeypatch.setattr(app, "handle_write", broken)
        assert post(client.http, encode(write_request([node_series(now_ms())]))).status_code == 500
        monkeypatch.undo()
        assert post(client.http, encode(write_request([node_series(now_ms())]))).status_code == 204


def test_iam_mode_puts_a_sigv4_authorizer_on_every_route(load_app):
    app = load_app(AUTH_MODE="iam")
    for path in ("/write", "/read"):
        route = app.app.routes[path]["POST"]
        assert type(route.authorizer).__name__ == "IAMAuthorizer", path
    basic = load_app(AUTH_MODE="basic")
    assert basic.app.routes["/write"]["POST"].authorizer is None


def test_error_bodies_are_one_line_whatever_aws_said(http, timestream, fail_writes):
    fail_writes("ValidationException", 400, "first line\nsecond line\r\n\tthird")
    response = post(http, encode(write_request([node_series(now_ms())])))
    assert response.status_code == 400
    body = response.body.decode()
    assert body.count("\n") == 1 and body.endswith("\n")
    assert "first line second line third" in body
