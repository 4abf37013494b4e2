"""POST /write and /read with STORAGE_ENGINE=influxdb, through chalice.test.Client, against a
stand-in InfluxDB v1 API over real HTTP: what is sent to InfluxDB, and what each of its answers
means for the sender (statuses, written counts, retries, splits), with credentials forwarded and
never logged or echoed. AUTH_MODE=iam reads the token from a local Secrets Manager (moto)."""

from __future__ import annotations

import base64
import importlib
import io
import json
import socket
import sys

import boto3
import pytest
from chalice.test import Client
from moto.server import ThreadedMotoServer

from chalicelib import logs
from tests.helpers import (
    RequestV2,
    decode_read_response,
    encode,
    read_headers,
    read_request,
    v2_headers,
    write_headers,
    write_request,
)
from tests.influxdb_standin import Answer, StandIn
from tests.integration.conftest import CONFIG_VARIABLES, ROOT

T = 1_700_000_000_123
PASSWORD = "influx-Secret-Pa55"
AUTH = "Basic " + base64.b64encode(f"prom:{PASSWORD}".encode()).decode()
UP = [("__name__", "up"), ("job", "api")]
ENGINE_VARIABLES = ("STORAGE_ENGINE", "INFLUXDB_URL", "INFLUXDB_BATCH_LINES", "INFLUXDB_TOKEN_SECRET_ARN",
                    "WRITE_BUDGET_SECONDS", "AWS_ENDPOINT_URL_SECRETS_MANAGER")


@pytest.fixture
def standin():
    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture
def log_buffer(monkeypatch) -> io.StringIO:
    """What the connector logs, in this test (its handler exists before the app is loaded)."""
    buffer = io.StringIO()
    logs.configure("INFO")
    for handler in logs.logger.handlers:
        monkeypatch.setattr(handler, "stream", buffer)
    return buffer


@pytest.fixture
def influx_app(monkeypatch, standin, log_buffer):
    """Import app.py fresh with STORAGE_ENGINE=influxdb against the stand-in (or `INFLUXDB_URL`)."""

    def load(**env: str):
        for name in CONFIG_VARIABLES + ENGINE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        settings = {"STORAGE_ENGINE": "influxdb", "INFLUXDB_URL": standin.url, "DEFAULT_DATABASE": "prom",
                    "WRITE_BUDGET_SECONDS": "1", "METRICS_NAMESPACE": "Test", "AWS_REGION": "us-east-1",
                    "LOG_LEVEL": "INFO", **env}
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop("app", None)
        return importlib.import_module("app")

    yield load
    sys.modules.pop("app", None)


@pytest.fixture
def client(influx_app):
    def make(**env: str):
        app = influx_app(**env)
        return Client(app.app, project_dir=str(ROOT), stage_name="local")

    return make


def post_write(client, body=None, **headers):
    body = body if body is not None else encode(write_request([(UP, [(1.0, T), (2.0, T + 1)])]))
    return client.http.post("/write", body=body, headers=write_headers(**{"Authorization": AUTH, **headers}))


def logged(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_write_becomes_one_line_protocol_request_with_the_senders_credentials(client, standin, log_buffer):
    with client() as c:
        response = post_write(c)
    out = log_buffer.getvalue()
    assert response.status_code == 204 and response.body == b""
    (request,) = standin.writes()
    assert (request.method, request.params) == ("POST", {"db": "prom", "precision": "ms"})
    assert request.headers["authorization"] == AUTH
    assert request.body == f"up,__name__=up,job=api value=1.0 {T}\nup,__name__=up,job=api value=2.0 {T + 1}\n".encode()
    events = [event for event in logged(out) if event.get("event") == "write"]
    assert events[0]["engine"] == "influxdb" and events[0]["written"] == 2
    documents = [event for event in logged(out) if "_aws" in event]
    assert documents and all(document["Engine"] == "influxdb" for document in documents)
    assert PASSWORD not in out and AUTH.split()[1] not in out


def test_remote_write_2_answers_carry_the_written_counts(client, standin):
    builder = RequestV2()
    builder.series(UP, [(1.0, T), (float("nan"), T + 1)])
    with client() as c:
        response = c.http.post("/write", body=builder.encode(), headers=v2_headers(Authorization=AUTH))
    assert response.status_code == 204
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "2"


def test_a_partial_write_is_400_naming_the_culprit_with_exact_2_0_counts(client, standin):
    standin.answer = lambda request: Answer.error(
        400, 'partial write: field type conflict: input field "value" on measurement "up" is type integer, '
             "already exists as type float dropped=1")
    builder = RequestV2()
    builder.series(UP, [(1.0, T), (2.0, T + 1), (3.0, T + 2)])
    with client() as c:
        response = c.http.post("/write", body=builder.encode(), headers=v2_headers(Authorization=AUTH))
    assert response.status_code == 400
    assert b'field type conflict: input field "value" on measurement "up"' in response.body
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "2"
    assert len(standin.writes()) == 1  # never retried


@pytest.mark.parametrize(("status", "message", "expected", "named"), [
    (401, "authorization failed", 401, b"InfluxDB refused the credentials"),
    (403, '"prom" user is not authorized to write to database "prom"', 403, b"may not write"),
    (404, 'database not found: "prom"', 404, b"database 'prom' does not exist"),
])
def test_influxdb_refusals_become_the_senders_statuses_without_echoing_anything_secret(
    client, standin, status, message, expected, named
):
    standin.answer = lambda request: Answer.error(status, message)
    with client() as c:
        response = post_write(c)
    assert response.status_code == expected and named in response.body
    assert PASSWORD.encode() not in response.body and len(response.body.splitlines()) == 1
    if expected == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert len(standin.writes()) == 1


def test_missing_or_malformed_credentials_are_401_before_influxdb_is_asked(client, standin):
    with client() as c:
        assert post_write(c, Authorization=None).status_code == 401
        assert post_write(c, Authorization="Basic bm9jb2xvbg==").status_code == 401
    assert standin.writes() == []


def test_a_5xx_is_retried_and_the_retry_rewrites_the_same_lines(client, standin):
    answers = iter([Answer.error(500, "timeout"), Answer.error(503, "busy")])
    standin.answer = lambda request: next(answers, Answer(204))
    with client(WRITE_BUDGET_SECONDS="5", CONNECT_TIMEOUT_SECONDS="0.5", WRITE_TIMEOUT_SECONDS="1") as c:
        response = post_write(c)
    assert response.status_code == 204
    bodies = [request.body for request in standin.writes()]
    assert len(bodies) == 3 and len(set(bodies)) == 1


@pytest.mark.parametrize("answer", [Answer.error(503, "busy"), Answer.error(429, "too many requests")])
def test_what_stays_transient_within_the_budget_is_503_so_prometheus_retries(client, standin, answer):
    standin.answer = lambda request: answer
    with client(WRITE_BUDGET_SECONDS="0.5", CONNECT_TIMEOUT_SECONDS="0.1", WRITE_TIMEOUT_SECONDS="0.1") as c:
        response = post_write(c)
    assert response.status_code == 503 and b"retry later" in response.body


def test_influxdb_not_listening_is_503(client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with client(INFLUXDB_URL=f"http://127.0.0.1:{closed}", WRITE_BUDGET_SECONDS="0.5",
                CONNECT_TIMEOUT_SECONDS="0.1", WRITE_TIMEOUT_SECONDS="0.1") as c:
        response = post_write(c)
    assert response.status_code == 503 and b"did not answer" in response.body


def test_large_requests_go_in_batches_and_a_413_splits_them_smaller(client, standin):
    def answer(request):
        return Answer.error(413, "Request Entity Too Large") if request.body.count(b"\n") > 3 else Answer(204)

    standin.answer = answer
    series = [([("__name__", "m"), ("i", str(i))], [(float(i), T)]) for i in range(25)]
    with client(INFLUXDB_BATCH_LINES="10") as c:
        response = post_write(c, body=encode(write_request(series)))
    assert response.status_code == 204
    stored = b"".join(r.body for r in standin.writes() if r.body.count(b"\n") <= 3)
    assert stored.count(b"\n") == 25 and len(set(stored.split(b"\n"))) == 26


def test_remote_read_sends_anchored_influxql_and_decodes_the_answer(client, standin):
    def answer(request):
        if request.path != "/query":
            return Answer(204)
        body = {"results": [{"statement_id": 0, "series": [
            {"name": "up", "columns": ["time", "value", "histogram", "__name__", "job"],
             "values": [[T, 1, None, "up", "api"], [T + 1, -0, None, "up", "api"]]}]}]}
        return Answer(200, json.dumps(body).encode())

    standin.answer = answer
    with client() as c:
        response = c.http.post("/read", body=read_request((T, T + 5, [("__name__", "=~", "up|down"),
                                                                       ("job", "!=", "x'y")]),
                                                          (T, T + 5, [("__name__", "=", "up")])),
                               headers=read_headers(Authorization=AUTH))
    assert response.status_code == 200
    results = decode_read_response(response.body)
    assert results[0] == results[1] == {(("__name__", "up"), ("job", "api")): [(T, 1.0), (T + 1, -0.0)]}
    first, second = [r for r in standin.requests if r.path == "/query"]
    assert first.params["db"] == "prom" and first.params["epoch"] == "ms"
    assert "FROM /^(?:up|down)$/" in first.params["q"] and "\"job\"::tag != 'x\\'y'" in first.params["q"]
    assert 'FROM "up"' in second.params["q"]
    assert first.headers["authorization"] == AUTH


def test_a_query_influxdb_cannot_run_is_400_with_its_reason(client, standin):
    standin.answer = lambda request: Answer.error(400, "error parsing query: bad regex")
    with client() as c:
        response = c.http.post("/read", body=read_request((T, T + 5, [("__name__", "=~", "(")])),
                               headers=read_headers(Authorization=AUTH))
    assert response.status_code == 400 and b"bad regex" in response.body


@pytest.fixture
def secrets_manager(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFUNCTIONROLE0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "function-role-secret")
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint)
    yield endpoint, client
    server.stop()


def test_iam_mode_reads_the_token_from_secrets_manager_once_and_sends_it(client, standin, secrets_manager):
    endpoint, secrets = secrets_manager
    arn = secrets.create_secret(Name="influx-token", SecretString='{"token": "fn-token-123"}')["ARN"]
    with client(AUTH_MODE="iam", INFLUXDB_TOKEN_SECRET_ARN=arn, AWS_ENDPOINT_URL_SECRETS_MANAGER=endpoint) as c:
        assert post_write(c, Authorization=None).status_code == 204
        # Kept for the container's life: the secret's removal changes nothing now.
        secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
        assert post_write(c, Authorization=None).status_code == 204
    assert [r.headers["authorization"] for r in standin.writes()] == ["Token fn-token-123"] * 2


def test_iam_mode_with_a_secret_it_cannot_read_is_403_and_tries_again_next_time(client, standin, secrets_manager):
    endpoint, secrets = secrets_manager
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
    with client(AUTH_MODE="iam", INFLUXDB_TOKEN_SECRET_ARN=arn, AWS_ENDPOINT_URL_SECRETS_MANAGER=endpoint) as c:
        response = post_write(c, Authorization=None)
        assert response.status_code == 403 and b"INFLUXDB_TOKEN_SECRET_ARN" in response.body
        secrets.create_secret(Name="missing", SecretString="plain-token")
    assert standin.writes() == []
