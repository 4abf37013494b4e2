"""The influxdb engine against the real InfluxDB (Debian's influxd 1.6.7, auth on), through the
app (chalice.test.Client, STORAGE_ENGINE=influxdb): what is written reads back exactly through
/read, matchers keep PromQL's semantics, and InfluxDB's refusals reach the sender as statuses."""

from __future__ import annotations

import base64
import importlib
import math
import os
import struct
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import snappy
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.matchers import Matcher
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.prompb import remote_write_v2_pb2 as v2
from local_influxdb.server import LocalInfluxDB, start
from tests.helpers import (
    RequestV2,
    encode,
    read_headers,
    read_request,
    v2_headers,
    write_headers,
    write_request,
)

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "prometheus"
USER, PASSWORD = "writer", "w-secret"
APP_VARIABLES = ("STORAGE_ENGINE", "INFLUXDB_URL", "DEFAULT_DATABASE", "DEFAULT_TABLE", "AUTH_MODE",
                 "METRICS_NAMESPACE", "LOG_LEVEL", "WRITE_BUDGET_SECONDS", "INFLUXDB_BATCH_LINES")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


AUTH = basic(USER, PASSWORD)


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalInfluxDB]:
    """influxd with auth on: an admin, and `writer` with ALL on `prometheus`, `reader` with READ."""
    server = start(tmp_path_factory.mktemp("influxd"), auth=True, databases=(DATABASE,))
    try:
        server.query(f"CREATE USER {USER} WITH PASSWORD '{PASSWORD}'")
        server.query(f'GRANT ALL ON "{DATABASE}" TO {USER}')
        server.query("CREATE USER reader WITH PASSWORD 'r-secret'")
        server.query(f'GRANT READ ON "{DATABASE}" TO reader')
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http(influxdb: LocalInfluxDB) -> Iterator[object]:
    """The app, imported fresh with STORAGE_ENGINE=influxdb against `influxdb`."""
    saved = {name: os.environ.get(name) for name in APP_VARIABLES}
    env = {"STORAGE_ENGINE": "influxdb", "INFLUXDB_URL": influxdb.url, "DEFAULT_DATABASE": DATABASE,
           "METRICS_NAMESPACE": "", "LOG_LEVEL": "WARNING", "WRITE_BUDGET_SECONDS": "3"}
    for name in APP_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(env)
    sys.modules.pop("app", None)
    try:
        app = importlib.import_module("app")
        with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
            yield client.http
    finally:
        sys.modules.pop("app", None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def now_ms() -> int:
    return int(time.time() * 1000)


def read_back(http, *queries, auth: str = AUTH) -> list[pb.QueryResult]:
    response = http.post("/read", body=read_request(*queries), headers=read_headers(Authorization=auth))
    assert response.status_code == 200, response.body
    return list(pb.ReadResponse.FromString(snappy.uncompress(response.body)).results)


def labelled(result: pb.QueryResult) -> dict[tuple[tuple[str, str], ...], list[tuple[int, bytes]]]:
    return {tuple((lb.name, lb.value) for lb in s.labels): [(x.timestamp, struct.pack("<d", x.value)) for x in s.samples]
            for s in result.timeseries}


def test_samples_written_through_the_connector_read_back_exactly_nan_and_inf_dropped(http):
    t = now_ms()
    values = [0.1, -0.0, 5e-324, 1e300, 1.0, 2.0**53 + 2, -1.7976931348623157e308]
    labels = [("__name__", "e2e_exact"), ("job", 'a b,c=d"e\\f#é'), ("x", "\\,"), ("prometheusTableLabel", "t")]
    request = write_request([(labels, [(v, t + i) for i, v in enumerate(values)] + [(math.nan, t + 50),
                                                                                    (math.inf, t + 51)])])
    response = http.post("/write", body=encode(request), headers=write_headers(Authorization=AUTH))
    assert response.status_code == 204, response.body
    (result,) = read_back(http, (t - 1, t + 100, [("__name__", "=", "e2e_exact")]))
    assert labelled(result) == {
        (("__name__", "e2e_exact"), ("job", 'a b,c=d"e\\f#é'), ("x", "\\,")):
            [(t + i, struct.pack("<d", v)) for i, v in enumerate(values)]
    }


def test_the_stored_layout_is_the_prometheus_endpoints(http, influxdb):
    t = now_ms()
    body = encode(write_request([([("__name__", "e2e_layout"), ("job", "api"), ("empty", "")], [(3.5, t)])]))
    assert http.post("/write", body=body, headers=write_headers(Authorization=AUTH)).status_code == 204
    answer = influxdb.query('SHOW SERIES FROM "e2e_layout"', DATABASE)
    assert answer["results"][0]["series"][0]["values"] == [["e2e_layout,__name__=e2e_layout,job=api"]]
    fields = influxdb.query('SHOW FIELD KEYS FROM "e2e_layout"', DATABASE)
    assert fields["results"][0]["series"][0]["values"] == [["value", "float"]]


def test_native_histograms_read_back_bit_for_bit_beside_float_samples_and_exemplars(http):
    t = now_ms()
    builder = RequestV2()
    series = builder.series([("__name__", "e2e_hist"), ("job", "api")], [(1.5, t)])
    sent = v2.Histogram(schema=-53, count_float=3.5, sum=-0.0, custom_values=[0.1, 1.0], timestamp=t + 1,
                        reset_hint=v2.Histogram.RESET_HINT_GAUGE)
    sent.positive_spans.add(offset=0, length=2)
    sent.positive_counts.extend([1.5, 2.0])
    series.histograms.append(sent)
    series.exemplars.add(value=0.25, timestamp=t + 2, labels_refs=builder.refs([("trace_id", "abc")]))
    response = http.post("/write", body=builder.encode(), headers=v2_headers(Authorization=AUTH))
    assert response.status_code == 204, response.body
    assert (response.headers["X-Prometheus-Remote-Write-Samples-Written"],
            response.headers["X-Prometheus-Remote-Write-Histograms-Written"],
            response.headers["X-Prometheus-Remote-Write-Exemplars-Written"]) == ("1", "1", "1")
    (result,) = read_back(http, (t - 1, t + 100, [("__name__", "=", "e2e_hist")]))
    (timeseries,) = result.timeseries
    assert [(s.timestamp, s.value) for s in timeseries.samples] == [(t, 1.5)]
    expected = pb.Histogram.FromString(sent.SerializeToString())
    assert [h.SerializeToString(deterministic=True) for h in timeseries.histograms] == [
        expected.SerializeToString(deterministic=True)]


LABEL_TEXT = st.text(alphabet=st.sampled_from(list(',= "\\#\t:a_zé😀\r\x00/\'.*')), min_size=1, max_size=6)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,5}", fullmatch=True), LABEL_TEXT,
                              min_size=1, max_size=4),
       name=st.text(alphabet=st.sampled_from(list("ab:_é😀 ,=\r.")), min_size=1, max_size=6),
       value=st.floats(allow_nan=False, allow_infinity=False))
def test_any_label_values_and_names_round_trip_through_influxdb_or_are_refused_by_name(http, labels, name, value):
    for reserved in ("__name__", "time", "value", "histogram", "prometheusDatabaseLabel", "prometheusTableLabel"):
        labels.pop(reserved, None)
    t = now_ms()
    metric = "e2e_rt_" + name
    pairs = [("__name__", metric), *sorted(labels.items())]
    response = http.post("/write", body=encode(write_request([(pairs, [(value, t)])])),
                         headers=write_headers(Authorization=AUTH))
    if any(v.endswith("\\") for v in labels.values()):
        assert response.status_code == 400 and b"label_ends_with_backslash" in response.body
        return
    assert response.status_code == 204, response.body
    (result,) = read_back(http, (t, t, [(n, "=", v) for n, v in pairs]))
    assert labelled(result) == {tuple(sorted(pairs)): [(t, struct.pack("<d", value))]}


# A fixed data set for matcher semantics: series with and without labels.
SEMANTICS = [
    {"__name__": "e2e_sem_a", "job": "api", "env": "prod"},
    {"__name__": "e2e_sem_a", "job": "api-v2"},
    {"__name__": "e2e_sem_b", "job": "db", "env": ""},
    {"__name__": "e2e_sem_ab", "env": "dev/x"},
    {"__name__": "e2e_sem_b", "job": "x\\y"},
]
QUERIES = [
    [("__name__", "=~", "e2e_sem_a")],                     # anchored: not e2e_sem_ab
    [("__name__", "=~", "e2e_sem_.*"), ("env", "=", "")],  # absent label equals ""
    [("__name__", "=~", "e2e_sem_.*"), ("env", "!=", "prod")],
    [("__name__", "=~", "e2e_sem_.*"), ("env", "=~", "")],
    [("__name__", "=~", "e2e_sem_.*"), ("env", "!~", "p.*|")],
    [("__name__", "=~", "e2e_sem_.*"), ("job", "=~", "api")],  # anchored: not api-v2
    [("__name__", "=~", "e2e_sem_.*"), ("job", "=~", "api.*"), ("__name__", "!=", "e2e_sem_b")],
    [("__name__", "!=", "e2e_sem_a"), ("__name__", "=~", "e2e_sem.*")],
    [("__name__", "!~", "e2e_sem_(a|ab)"), ("job", "!=", "nope"), ("__name__", "=~", "e2e.*")],
    [("__name__", "=~", "e2e_sem_.*"), ("env", "=~", "dev/x")],   # a slash in a regex
    [("__name__", "=~", "e2e_sem_.*"), ("job", "=~", "x\\\\y")],  # an escaped backslash
    [("__name__", "=~", "e2e_sem_.*"), ("job", "=", "x\\y")],
    [("__name__", "=~", "e2e_sem_.*"), ("nosuchlabel", "=", "")],
    [("__name__", "=~", "e2e_sem_.*"), ("nosuchlabel", "!=", "")],
]


@pytest.fixture(scope="module")
def semantics_data(http):
    t = now_ms()
    series = [(sorted(labels.items()), [(float(i), t)]) for i, labels in enumerate(SEMANTICS)]
    response = http.post("/write", body=encode(write_request(series)), headers=write_headers(Authorization=AUTH))
    assert response.status_code == 204, response.body
    return t


def test_several_queries_are_answered_in_order_with_promql_semantics(http, semantics_data):
    t = semantics_data
    results = read_back(http, *[(t - 1, t + 1, query) for query in QUERIES])
    assert len(results) == len(QUERIES)
    for query, result in zip(QUERIES, results, strict=True):
        matchers = [Matcher(op, name, value) for name, op, value in query]
        expected = {
            tuple(sorted((k, v) for k, v in labels.items() if v))
            for labels in SEMANTICS
            if all(m.matches(labels.get(m.name, "")) for m in matchers)
        }
        assert set(labelled(result)) == expected, query


def test_wrong_credentials_are_401_and_a_user_without_write_permission_403(http):
    body = encode(write_request([([("__name__", "e2e_auth")], [(1.0, now_ms())])]))
    wrong = http.post("/write", body=body, headers=write_headers(Authorization=basic(USER, "wrong-pass")))
    assert wrong.status_code == 401 and b"wrong-pass" not in wrong.body
    forbidden = http.post("/write", body=body, headers=write_headers(Authorization=basic("reader", "r-secret")))
    assert forbidden.status_code == 403 and b"r-secret" not in forbidden.body
    missing = http.post("/write", body=body, headers=write_headers(Authorization=None))
    assert missing.status_code == 401 and "WWW-Authenticate" in missing.headers
    read = http.post("/read", body=read_request((0, 1, [("__name__", "=", "x")])),
                     headers=read_headers(Authorization=basic(USER, "wrong-pass")))
    assert read.status_code == 401


def test_a_missing_database_is_404_naming_it(http, influxdb):
    body = encode(write_request([([("__name__", "e2e_nodb"), ("prometheusDatabaseLabel", "no_such_db")],
                                  [(1.0, now_ms())])]))
    response = http.post("/write", body=body, headers=write_headers(Authorization=AUTH))
    assert response.status_code == 404 and b"'no_such_db'" in response.body
    # Reading, InfluxDB 1.x tells a missing database only to an admin (others get 403).
    admin = basic(influxdb.username, influxdb.password)
    read = http.post("/read", body=read_request((0, 1, [("prometheusDatabaseLabel", "=", "no_such_db")])),
                     headers=read_headers(Authorization=admin))
    assert read.status_code == 404 and b"no_such_db" in read.body


def test_a_field_type_conflict_is_400_naming_the_culprit_and_the_other_series_are_written(http, influxdb):
    t = now_ms()
    influxdb.write(DATABASE, f"e2e_conflict,__name__=e2e_conflict value=1i {t - 10}\n")
    series = [([("__name__", "e2e_conflict")], [(2.0, t)]), ([("__name__", "e2e_fine")], [(3.0, t)])]
    response = http.post("/write", body=encode(write_request(series)), headers=write_headers(Authorization=AUTH))
    assert response.status_code == 400
    assert b"field type conflict" in response.body and b"e2e_conflict" in response.body
    (result,) = read_back(http, (t - 1, t + 1, [("__name__", "=", "e2e_fine")]))
    assert labelled(result) == {(("__name__", "e2e_fine"),): [(t, struct.pack("<d", 3.0))]}


def test_a_retried_request_rewrites_identical_points_without_duplicates(http):
    t = now_ms()
    body = encode(write_request([([("__name__", "e2e_retry")], [(1.0, t), (2.0, t + 1)])]))
    for _ in range(3):
        assert http.post("/write", body=body, headers=write_headers(Authorization=AUTH)).status_code == 204
    (result,) = read_back(http, (t - 1, t + 2, [("__name__", "=", "e2e_retry")]))
    assert [len(s.samples) for s in result.timeseries] == [2]


def test_influxdbs_own_prometheus_read_endpoint_leaves_regexes_unanchored_and_the_connector_does_not(
    http, influxdb, semantics_data
):
    t = semantics_data
    query = (t - 1, t + 1, [("__name__", "=~", "e2e_sem_a")])
    native = urllib.request.Request(
        f"{influxdb.url}/api/v1/prom/read?db={DATABASE}&u={USER}&p={PASSWORD}", data=read_request(query),
        method="POST", headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
    with urllib.request.urlopen(native, timeout=10) as answer:
        (theirs,) = pb.ReadResponse.FromString(snappy.uncompress(answer.read())).results
    names = {label.value for s in theirs.timeseries for label in s.labels if label.name == "__name__"}
    assert "e2e_sem_ab" in names  # 1.6.7 matches the regex anywhere in the name
    (ours,) = read_back(http, query)
    assert {dict(key)["__name__"] for key in labelled(ours)} == {"e2e_sem_a"}
