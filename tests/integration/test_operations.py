"""What an operator sees: EMF metrics per request, JSON log lines, refusals that name the
culprit, and no echo of credentials on paths the connector does not serve."""

from __future__ import annotations

import io
import json

import pytest
import requests
from chalice.test import Client

from chalicelib import logs
from tests.helpers import SECRET_ACCESS_KEY, basic_auth, encode, now_ms, write_headers, write_request
from tests.integration.conftest import ROOT, stored

TOKEN = basic_auth().split()[1]


@pytest.fixture
def log_output(monkeypatch):
    """Everything the connector writes to its log stream, as parsed JSON lines."""
    buffer = io.StringIO()
    logs.configure("INFO")  # the handler exists before the app is loaded, so its stream can be swapped
    for handler in logs.logger.handlers:
        monkeypatch.setattr(handler, "stream", buffer)

    def lines():
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    return lines


def client_of(app):
    return Client(app.app, project_dir=str(ROOT), stage_name="local")


def emf(lines, **match):
    return [line for line in lines if "_aws" in line and all(line.get(k) == v for k, v in match.items())]


def metric_values(document):
    return {metric["Name"]: document[metric["Name"]] for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def series(name, ts, table="metrics", value=1.0, **labels):
    return ([("__name__", name), ("job", "ops"), *labels.items(), ("prometheusDatabaseLabel", "prometheus"),
             ("prometheusTableLabel", table)], [(value, ts)])


def test_every_write_metric_counts_what_happened_to_the_request(load_app, timestream, fail_writes_to, log_output):
    app = load_app(WRITE_BUDGET_SECONDS="10", AWS_LAMBDA_FUNCTION_NAME="prom-ts-test")
    fail_writes_to("metrics", "ThrottlingException", 400, times=1)
    fail_writes_to("nodes", "RejectedRecordsException", 419,
                   RejectedRecords=[{"RecordIndex": 0, "Reason": "The record timestamp is outside the time range "
                                                                "of the data ingestion window."}])
    ts = now_ms()
    body = encode(write_request([
        series("a", ts), series("b", ts), series("c", ts),       # metrics: throttled once, then 3 written
        series("d", ts, table="nodes"), series("e", ts, table="nodes"),  # nodes: 1 written, 1 rejected
        series("f", ts, value=float("nan")),                     # dropped
        ([("job", "no-name")], [(1.0, ts), (2.0, ts + 1)]),      # refused: 2 samples
    ]))
    with client_of(app) as client:
        response = client.http.post("/write", headers=write_headers(), body=body)
    assert response.status_code == 400
    lines = log_output()
    (totals,) = emf(lines, Function="prom-ts-test", Reason=None)
    values = metric_values(totals)
    duration = values.pop("RequestDuration")
    assert isinstance(duration, float) and duration > 0
    assert values.pop("TimestreamWriteUnits") == 2  # each accepted call is one KiB unit at most
    assert values == {
        "SamplesWritten": 4, "HistogramsWritten": 0, "ExemplarsWritten": 0, "SamplesDropped": 1, "SamplesRefused": 2, "RecordsRejected": 1,
        "TimestreamCalls": 2, "TimestreamRetries": 1, "TimestreamThrottles": 1,
    }
    by_reason = {(document["Reason"], *metric_values(document).items()) for document in emf(lines) if "Reason" in document}
    assert by_reason == {
        ("nan", ("SamplesDropped", 1)), ("missing_metric_name", ("SamplesRefused", 2)),
        ("outside_retention", ("RecordsRejected", 1)),
    }
    assert totals["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "PrometheusTimestream"
    assert len(stored(timestream)) == 4 - 1  # d was rejected by the injected fault: only a, b, c


def test_read_requests_have_their_own_metrics(load_app, timestream, log_output):
    from tests.integration.test_read_api import read_headers, read_request  # the read tests' own encoder

    app = load_app()
    ts = now_ms()
    query = (ts - 1000, ts + 1000, [("__name__", "=", "up"), ("prometheusDatabaseLabel", "=", "prometheus"),
                                    ("prometheusTableLabel", "=", "metrics")])
    with client_of(app) as client:
        client.http.post("/write", headers=write_headers(), body=encode(write_request([series("up", ts)])))
        response = client.http.post("/read", headers=read_headers(), body=read_request(query))
    assert response.status_code == 200
    (read_totals,) = [document for document in emf(log_output()) if "ReadQueries" in document]
    values = metric_values(read_totals)
    assert (values["ReadQueries"], values["ReadSeries"]) == (1, 1)
    assert values["ReadBytes"] > 0 and values["ReadDuration"] > 0


def test_an_empty_metrics_namespace_turns_metrics_off(load_app, timestream, log_output):
    app = load_app(METRICS_NAMESPACE="")
    with client_of(app) as client:
        client.http.post("/write", headers=write_headers(), body=encode(write_request([series("up", now_ms())])))
    lines = log_output()
    assert lines and not emf(lines)


def test_metrics_are_written_whatever_the_log_level(load_app, timestream, log_output):
    app = load_app(LOG_LEVEL="ERROR")
    with client_of(app) as client:
        client.http.post("/write", headers=write_headers(), body=encode(write_request([series("up", now_ms())])))
    lines = log_output()
    assert [line for line in lines if "_aws" not in line] == []
    assert metric_values(emf(lines)[0])["SamplesWritten"] == 1


def test_each_request_line_carries_the_request_id_and_whether_it_was_a_cold_start(load_app, timestream, log_output):
    app = load_app()
    with client_of(app) as client:
        for _ in range(2):
            client.http.post("/write", headers=write_headers(), body=encode(write_request([series("up", now_ms())])))
    requests_logged = [line for line in log_output() if line.get("event") == "write"]
    assert [line["cold_start"] for line in requests_logged] == [True, False]
    ids = [line["request_id"] for line in requests_logged]
    assert all(ids) and ids[0] != ids[1]


def test_an_unexpected_exception_is_one_json_line_with_its_traceback(load_app, timestream, log_output, monkeypatch):
    app = load_app()

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(app, "handle_write", broken)
    with client_of(app) as client:
        assert client.http.post("/write", headers=write_headers(), body=b"x").status_code == 500
    (error,) = [line for line in log_output() if line.get("level") == "ERROR"]
    assert "unexpected error in /write" in error["message"]
    assert "RuntimeError: simulated bug" in error["traceback"] and "broken" in error["traceback"]


# -- refusals that name the culprit ---------------------------------------------------------------

def test_a_series_without_a_destination_is_named_with_the_fix(load_app, timestream, log_output):
    app = load_app(DEFAULT_DATABASE=None, DEFAULT_TABLE=None)
    body = encode(write_request([([("__name__", "orphan_metric"), ("job", "lost")], [(1.0, now_ms())])]))
    with client_of(app) as client:
        response = client.http.post("/write", headers=write_headers(), body=body)
    assert response.status_code == 400
    text = response.body.decode()
    assert text.count("\n") == 1
    assert 'no_destination=1 (first: orphan_metric{job="lost"}' in text
    assert "prometheusDatabaseLabel" in text and "DEFAULT_DATABASE" in text and "write_relabel_configs" in text
    (line,) = [line for line in log_output() if line.get("event") == "write"]
    assert line["refused_examples"]["no_destination"][0].startswith('orphan_metric{job="lost"}')


def test_an_invalid_destination_names_the_database_and_table_values(http, timestream):
    labels = [("__name__", "up"), ("job", "x"), ("prometheusDatabaseLabel", "no"), ("prometheusTableLabel", "bad/table")]
    response = http.post("/write", headers=write_headers(), body=encode(write_request([(labels, [(1.0, now_ms())])])))
    assert response.status_code == 400
    assert "database 'no' table 'bad/table'" in response.body.decode()


def test_examples_are_few_per_reason_and_truncated(http, timestream, log_output):
    ts = now_ms()
    refused = [([("job", f"nameless-{i}"), ("payload", "v" * 1000)], [(1.0, ts)]) for i in range(10)]
    response = http.post("/write", headers=write_headers(), body=encode(write_request(refused)))
    assert response.status_code == 400
    assert len(response.body) < 1000
    (line,) = [line for line in log_output() if line.get("event") == "write"]
    examples = line["refused_examples"]["missing_metric_name"]
    assert len(examples) == 3 and all(len(example) <= 240 for example in examples)
    assert examples[0].startswith('{job="nameless-0",payload="vvv')


def test_samples_outside_the_time_window_are_named_with_their_timestamp(http, timestream):
    future = now_ms() + 3_600_000
    response = http.post("/write", headers=write_headers(), body=encode(write_request([series("up", future)])))
    assert response.status_code == 400
    assert f'timestamp_too_far_in_future=1 (first: up{{job="ops"}} @{future})' in response.body.decode()


# -- no echo of credentials ----------------------------------------------------------------------

UNKNOWN = [("POST", "/"), ("GET", "/"), ("POST", "/api/v1/write"), ("POST", "/api/v1/push"),
           ("PUT", "/write/extra"), ("DELETE", "/a/b/c/d"), ("PATCH", "/prometheus"), ("HEAD", "/x")]


@pytest.mark.parametrize(("method", "path"), UNKNOWN)
def test_unknown_paths_are_404_naming_write_and_read_without_repeating_credentials(http, method, path):
    response = http.request(method, path, headers=write_headers(), body=b"\x00\x01")
    assert response.status_code == 404
    text = response.body.decode()
    assert TOKEN not in text and SECRET_ACCESS_KEY not in text
    if method != "HEAD":
        assert "/write" in text and "/read" in text


@pytest.mark.parametrize(("method", "path"), UNKNOWN)
def test_unknown_paths_over_http_under_chalice_local_never_echo_the_credentials(local_run, method, path):
    response = requests.request(method, f"http://127.0.0.1:{local_run.port}{path}", data=b"\x00",
                                headers=write_headers(), timeout=30)
    assert response.status_code == 404, response.text
    assert TOKEN not in response.text and SECRET_ACCESS_KEY not in response.text
    assert all(TOKEN not in value for value in response.headers.values())


# Every method but POST on the two routes: 405 naming both, with the Allow header, the same under
# chalice test, chalice local and API Gateway (test_package: the routes reach the function).
OTHER_METHODS = [(method, path) for path in ("/write", "/read") for method in ("GET", "PUT", "PATCH", "DELETE", "HEAD")]


def assert_method_not_allowed(status: int, headers, text: str, method: str) -> None:
    assert status == 405, text
    assert headers["Allow"] == "POST"
    assert TOKEN not in text and SECRET_ACCESS_KEY not in text
    assert all(TOKEN not in value for value in headers.values())
    if method != "HEAD":
        assert text.endswith("\n") and text.count("\n") == 1, text
        assert "POST /write" in text and "POST /read" in text, text


@pytest.mark.parametrize(("method", "path"), OTHER_METHODS)
def test_other_methods_on_write_and_read_are_405_allowing_post_and_naming_both_routes(http, method, path):
    response = http.request(method, path, headers=write_headers(), body=b"")
    assert_method_not_allowed(response.status_code, response.headers, response.body.decode(), method)


@pytest.mark.parametrize(("method", "path"), OTHER_METHODS)
def test_other_methods_on_write_and_read_over_http_under_chalice_local_are_405_allowing_post(local_run, method,
                                                                                               path):
    response = requests.request(method, f"http://127.0.0.1:{local_run.port}{path}", headers=write_headers(),
                                timeout=30)
    assert_method_not_allowed(response.status_code, response.headers, response.text, method)


def _billed_units(body: dict) -> int:
    """Timestream's write metering, computed here from a WriteRecords body as sent: per record
    the time (8 bytes), dimension names and values, measure name and a DOUBLE (8 bytes); what
    CommonAttributes holds counted once; the call rounded up to whole KiB."""
    common = body.get("CommonAttributes", {})
    size = sum(len(d["Name"].encode()) + len(d["Value"].encode()) for d in common.get("Dimensions", []))
    size += len(common.get("MeasureName", "").encode())
    for record in body["Records"]:
        size += 8 + 8 + len(record.get("MeasureName", "").encode())
        size += sum(len(d["Name"].encode()) + len(d["Value"].encode()) for d in record.get("Dimensions", []))
    return -(-size // 1024)


def test_timestream_write_units_are_what_timestream_bills_for_the_bodies_sent(load_app, timestream, log_output,
                                                                              monkeypatch):
    from chalicelib.liveanalytics.http_client import _Connection

    bodies = []
    original = _Connection.send

    def recording(self, path, host, headers, body):
        if headers.get("X-Amz-Target", "").endswith("WriteRecords"):
            bodies.append(json.loads(body))
        return original(self, path, host, headers, body)

    # Every call's bytes go out through one connection's send, whichever way they are sent.
    monkeypatch.setattr(_Connection, "send", recording)
    app = load_app()
    ts = now_ms()
    many = [series(f"metric_{i % 7}", ts + i, instance=f"host-{i % 13}", path="/" + "x" * (i % 50))
            for i in range(450)]
    with client_of(app) as client:
        response = client.http.post("/write", headers=write_headers(), body=encode(write_request(many)))
    assert response.status_code == 204, response.body
    (totals,) = emf(log_output(), Reason=None)
    assert len(bodies) == metric_values(totals)["TimestreamCalls"] >= 5
    assert metric_values(totals)["TimestreamWriteUnits"] == sum(_billed_units(body) for body in bodies) > 5
