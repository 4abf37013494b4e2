"""A request sent to the other endpoint is refused with a 400 naming the right one, never a 2xx.

A remote write body POSTed to /read parses as a ReadRequest (protobuf skips the fields whose wire
type does not match): each series becomes a query without matchers, or with matchers without a
name when it carries exemplars. Answered, that ran one billed Timestream query per series and
said 200, and Prometheus counted the samples as sent. The mirror case, a ReadRequest POSTed to
/write, parses as a WriteRequest of series without labels or samples.

Prometheus marks its requests (X-Prometheus-Remote-Write-Version on writes,
X-Prometheus-Remote-Read-Version on reads); other senders may not, so the bodies are checked too.
"""

from __future__ import annotations

import pytest
import requests
import snappy

from chalicelib.prompb import prometheus_remote_pb2 as pb
from local_timestream import emulator
from tests.helpers import (
    RequestV2,
    encode,
    now_ms,
    read_headers,
    read_request,
    v2_headers,
    write_headers,
    write_request,
)
from tests.integration.conftest import stored


@pytest.fixture
def queries_run(monkeypatch) -> list[str]:
    """Every query (SELECT or DESCRIBE) that reaches the local Timestream, in order."""
    seen: list[str] = []
    original = emulator.EMULATOR.query

    def query(query_string, next_token, tables_of):
        seen.append(query_string)
        return original(query_string, next_token, tables_of)

    monkeypatch.setattr(emulator.EMULATOR, "query", query)
    return seen


def prometheus_write(ts: int, series: int = 3) -> bytes:
    """What Prometheus's remote write sends: labelled series with samples."""
    return encode(write_request(
        [([("__name__", "up"), ("instance", f"host{i}:9100"), ("job", "node")], [(1.0, ts)]) for i in range(series)]
    ))


def write_with_exemplars(ts: int) -> bytes:
    """A write whose series carry exemplars: on /read, each becomes a query with a matcher whose
    label name is empty."""
    request = pb.WriteRequest()
    series = request.timeseries.add()
    series.labels.add(name="__name__", value="http_requests_total")
    series.labels.add(name="job", value="api")
    series.samples.add(value=1.0, timestamp=ts)
    exemplar = series.exemplars.add(value=0.5, timestamp=ts)
    exemplar.labels.add(name="trace_id", value="4bf92f35")
    return snappy.compress(request.SerializeToString())


def metadata_only_write() -> bytes:
    """Prometheus's minutely metadata-only request: on /read, a ReadRequest without queries."""
    request = pb.WriteRequest()
    request.metadata.add(type=pb.MetricMetadata.COUNTER, metric_family_name="up", help="Up.", unit="")
    return snappy.compress(request.SerializeToString())


def assert_refused_naming_write(response, queries_run: list[str]) -> None:
    assert response.status_code == 400, response.body
    line = response.body.decode()
    assert line.count("\n") == 1 and line.endswith("\n")
    assert "POST /write" in line, line
    assert queries_run == []


# -- a remote write request sent to /read ------------------------------------------------------------

def test_a_prometheus_write_sent_to_read_is_refused_naming_write_and_runs_no_query(http, timestream, queries_run):
    # Exactly what Prometheus 2.42 sends to a remote_write URL, which here ends in /read.
    response = http.post("/read", headers=write_headers(), body=prometheus_write(now_ms()))
    assert_refused_naming_write(response, queries_run)
    assert "X-Prometheus-Remote-Write-Version" in response.body.decode()


def test_a_misrouted_write_is_told_where_to_go_before_being_asked_for_credentials(http, timestream, queries_run):
    # A 401 would send the user looking at the credentials while the URL is what is wrong.
    response = http.post("/read", headers=write_headers(Authorization=None), body=prometheus_write(now_ms()))
    assert_refused_naming_write(response, queries_run)


def test_a_write_marked_as_remote_write_is_refused_on_read_whatever_its_body(http, timestream, queries_run):
    # Even a body that is a valid ReadRequest: the sender says it is writing.
    body = read_request((0, 1, [("__name__", "=", "up")]))
    response = http.post("/read", headers=read_headers(**{"X-Prometheus-Remote-Write-Version": "0.1.0"}), body=body)
    assert_refused_naming_write(response, queries_run)


def test_a_remote_write_2_0_request_sent_to_read_is_refused_naming_write(http, timestream, queries_run):
    builder = RequestV2()
    builder.series([("__name__", "up"), ("job", "node")], [(1.0, now_ms())])
    response = http.post("/read", headers=v2_headers(), body=builder.encode())
    assert_refused_naming_write(response, queries_run)


@pytest.mark.parametrize("body", [
    pytest.param(lambda ts: prometheus_write(ts), id="samples"),
    pytest.param(write_with_exemplars, id="exemplars"),
    pytest.param(lambda ts: metadata_only_write(), id="metadata-only"),
])
def test_a_write_body_without_any_version_header_is_refused_on_read(http, timestream, queries_run, body):
    # Senders other than Prometheus may mark neither kind of request: the body gives it away.
    headers = write_headers(**{"X-Prometheus-Remote-Write-Version": None})
    response = http.post("/read", headers=headers, body=body(now_ms()))
    assert_refused_naming_write(response, queries_run)


def test_a_read_query_without_matchers_is_refused_and_no_query_runs(http, timestream, queries_run):
    # The first query is valid: nothing may run before the whole request is checked.
    body = read_request((0, 1, [("__name__", "=", "up")]), (0, 1, []))
    response = http.post("/read", headers=read_headers(), body=body)
    assert response.status_code == 400, response.body
    assert "query 2 of 2 has no label matchers" in response.body.decode()
    assert queries_run == []


def test_a_read_matcher_without_a_label_name_is_refused(http, timestream, queries_run):
    body = read_request((0, 1, [("__name__", "=", "up"), ("", "=", "")]))
    response = http.post("/read", headers=read_headers(), body=body)
    assert response.status_code == 400, response.body
    assert "without a label name" in response.body.decode()
    assert queries_run == []


def test_a_genuine_read_without_the_read_version_header_is_still_answered(http, timestream, queries_run):
    # Remote read clients other than Prometheus may not send X-Prometheus-Remote-Read-Version.
    ts = now_ms() - 60_000
    assert http.post("/write", headers=write_headers(), body=prometheus_write(ts, series=1)).status_code == 204
    headers = read_headers(**{"X-Prometheus-Remote-Read-Version": None})
    response = http.post("/read", headers=headers, body=read_request((ts, ts, [("__name__", "=", "up")])))
    assert response.status_code == 200, response.body
    assert len(queries_run) == 1


# -- a remote read request sent to /write ------------------------------------------------------------

def test_a_prometheus_read_sent_to_write_is_refused_naming_read_and_stores_nothing(http, timestream):
    body = read_request((0, now_ms(), [("__name__", "=", "up"), ("job", "=~", "node|api")]))
    response = http.post("/write", headers=read_headers(), body=body)
    assert response.status_code == 400, response.body
    line = response.body.decode()
    assert "POST /read" in line and "X-Prometheus-Remote-Read-Version" in line, line
    assert stored(timestream) == []


@pytest.mark.parametrize("matchers", [
    pytest.param([("__name__", "=", "up"), ("job", "=~", "node|api")], id="with-matchers"),
    pytest.param([], id="without-matchers"),
])
def test_a_read_body_without_any_version_header_is_refused_on_write(http, timestream, matchers):
    # A ReadRequest parses as a WriteRequest of series without labels and samples (its matchers
    # as label-less exemplars): nothing that could be stored, and no sender writes that.
    headers = read_headers(**{"X-Prometheus-Remote-Read-Version": None})
    response = http.post("/write", headers=headers, body=read_request((0, now_ms(), matchers)))
    assert response.status_code == 400, response.body
    assert "POST /read" in response.body.decode()
    assert stored(timestream) == []


def test_a_write_with_a_series_without_labels_is_still_a_write(http, timestream):
    # ... but a real write whose series lack a name is refused for that reason, as before.
    body = encode(write_request([([], [(1.0, now_ms())]), ([("__name__", "up"), ("job", "x")], [(1.0, now_ms())])]))
    response = http.post("/write", headers=write_headers(), body=body)
    assert response.status_code == 400 and "missing_metric_name" in response.body.decode()
    assert len(stored(timestream)) == 1


# -- over real HTTP, under chalice local ------------------------------------------------------------

def test_misrouted_requests_over_http_get_a_400_naming_the_right_path(local_run):
    port = local_run.port
    write = requests.post(f"http://127.0.0.1:{port}/read", data=prometheus_write(now_ms()),
                          headers=write_headers(), timeout=30)
    assert write.status_code == 400 and "POST /write" in write.text, write.text
    read = requests.post(f"http://127.0.0.1:{port}/write", data=read_request((0, 1, [("__name__", "=", "up")])),
                         headers=read_headers(), timeout=30)
    assert read.status_code == 400 and "POST /read" in read.text, read.text


# -- a body of the other remote write version ---------------------------------------------------------

def test_a_2_0_body_sent_as_1_0_is_refused_not_answered_204(http, timestream):
    # Every field of a 2.0 Request has a number 1.0's WriteRequest does not use: parsed as 1.0 it
    # reads as an empty request, which was answered 204 with nothing stored.
    builder = RequestV2()
    builder.series([("__name__", "up"), ("job", "node")], [(1.0, now_ms())])
    response = http.post("/write", headers=write_headers(), body=builder.encode())
    assert response.status_code == 400, response.body
    assert "proto=io.prometheus.write.v2.Request" in response.body.decode()
    assert stored(timestream) == []


def test_a_1_0_body_sent_as_2_0_is_refused_not_answered_204(http, timestream):
    response = http.post("/write", headers=v2_headers(), body=prometheus_write(now_ms()))
    assert response.status_code == 400, response.body
    assert "1.0" in response.body.decode()
    assert stored(timestream) == []


def test_an_empty_request_is_still_stored_as_nothing(http, timestream):
    # An empty message (no series, no metadata) is valid in both versions: 204, as before.
    assert http.post("/write", headers=write_headers(), body=snappy.compress(b"")).status_code == 204
    assert http.post("/write", headers=v2_headers(), body=snappy.compress(b"")).status_code == 204
