"""POST /read: data written with POST /write is read back through the local Timestream (moto with
the emulator's Query patch), through chalice.test.Client and over real HTTP under `chalice local`.

Every request is sent without an Accept header, as Prometheus sends it.
"""

import http.client

import pytest
import requests
from chalice.test import Client

from tests.helpers import (
    RequestV2,
    basic_auth,
    decode_read_response,
    encode,
    now_ms,
    read_headers,
    read_request,
    v2_headers,
    write_headers,
    write_request,
)
from tests.integration.conftest import ROOT

PROTOBUF = "application/x-protobuf"
DB, TABLE = "prometheusDatabaseLabel", "prometheusTableLabel"


def post_write(http, series):
    response = http.post("/write", headers=write_headers(), body=encode(write_request(series)))
    assert response.status_code == 204, response.body


def post_read(http, *queries, **headers):
    return http.post("/read", headers=read_headers(**headers), body=read_request(*queries))


def read_ok(http, *queries):
    response = post_read(http, *queries)
    assert response.status_code == 200, response.body
    return decode_read_response(response.body)


def labels(name, **pairs):
    return tuple(sorted([("__name__", name), *pairs.items()]))


@pytest.fixture
def t0():
    return now_ms() - 600_000


# -- what is read is what was written ------------------------------------------------------------

def test_written_samples_read_back_exactly_sorted_and_in_time_order(http, timestream, t0):
    values = [0.1 + 0.2, 5e-324, -1.7976931348623157e308, 123456789.12345679, 1e-300]
    web1 = [("__name__", "up"), ("job", "web"), ("instance", "web1")]
    # Later samples first, in a separate request: the answer must still be in time order.
    post_write(http, [(web1, [(values[i], t0 + i * 1000) for i in (3, 4)])])
    post_write(http, [(web1, [(values[i], t0 + i * 1000) for i in (0, 1, 2)]),
                      ([("__name__", "up"), ("job", "web"), ("instance", "web2")], [(1.0, t0)]),
                      ([("__name__", "cpu"), ("job", "web"), ("instance", "web1")], [(2.0, t0)])])

    (result,) = read_ok(http, (t0, t0 + 4000, [("__name__", "=", "up")]))

    assert list(result) == [labels("up", instance="web1", job="web"), labels("up", instance="web2", job="web")]
    assert result[labels("up", instance="web1", job="web")] == [(t0 + i * 1000, v) for i, v in enumerate(values)]
    assert result[labels("up", instance="web2", job="web")] == [(t0, 1.0)]
    # Bounds are inclusive to the millisecond.
    (inner,) = read_ok(http, (t0 + 1000, t0 + 3000, [("__name__", "=", "up"), ("instance", "=", "web1")]))
    assert [t for t, _ in inner[labels("up", instance="web1", job="web")]] == [t0 + 1000, t0 + 2000, t0 + 3000]


def test_response_is_snappy_protobuf_with_its_headers_though_no_accept_was_sent(http, timestream, t0):
    post_write(http, [([("__name__", "up"), ("job", "x")], [(1.0, t0)])])
    headers = read_headers()
    assert "Accept" not in headers
    response = http.post("/read", headers=headers, body=read_request((t0, t0, [("__name__", "=", "up")])))
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == PROTOBUF
    assert response.headers["Content-Encoding"] == "snappy"
    assert decode_read_response(response.body) == [{labels("up", job="x"): [(t0, 1.0)]}]


def test_routing_labels_choose_the_table_and_are_echoed_on_every_series(http, timestream, t0):
    routed = [("__name__", "node_load1"), ("job", "node"), (DB, "prometheus"), (TABLE, "nodes")]
    post_write(http, [(routed, [(0.5, t0)]), ([("__name__", "node_load1"), ("job", "default")], [(9.0, t0)])])

    (nodes,) = read_ok(http, (t0, t0, [("__name__", "=", "node_load1"), (DB, "=", "prometheus"), (TABLE, "=", "nodes")]))
    assert nodes == {labels("node_load1", job="node", **{DB: "prometheus", TABLE: "nodes"}): [(t0, 0.5)]}
    (default,) = read_ok(http, (t0, t0, [("__name__", "=", "node_load1")]))
    assert default == {labels("node_load1", job="default"): [(t0, 9.0)]}


def test_one_query_result_per_query_in_order(http, timestream, t0):
    post_write(http, [([("__name__", "a"), ("job", "x")], [(1.0, t0)]), ([("__name__", "b"), ("job", "x")], [(2.0, t0)])])
    results = read_ok(
        http,
        (t0, t0, [("__name__", "=", "b")]),
        (t0, t0, [("__name__", "=", "nothing_here")]),
        (t0 - 10, t0 - 1, [("__name__", "=", "a")]),
        (t0, t0, [("__name__", "=", "a")]),
    )
    assert results == [{labels("b", job="x"): [(t0, 2.0)]}, {}, {}, {labels("a", job="x"): [(t0, 1.0)]}]


def test_all_pages_of_a_long_answer_are_read(http, timestream, t0):
    samples = [(float(i), t0 + i) for i in range(2500)]  # 2500 rows: three pages of the emulator's 1000
    post_write(http, [([("__name__", "many"), ("job", "x")], samples)])
    (result,) = read_ok(http, (t0, t0 + 5000, [("__name__", "=", "many")]))
    assert result == {labels("many", job="x"): [(t, v) for v, t in samples]}


# -- PromQL matcher semantics --------------------------------------------------------------------

@pytest.fixture
def zoned(http, timestream, t0):
    post_write(http, [
        ([("__name__", "m"), ("job", "a")], [(1.0, t0)]),
        ([("__name__", "m"), ("job", "a"), ("zone", "x")], [(2.0, t0)]),
        ([("__name__", "m"), ("job", "a"), ("zone", "y")], [(3.0, t0)]),
    ])
    return {None: labels("m", job="a"), "x": labels("m", job="a", zone="x"), "y": labels("m", job="a", zone="y")}


@pytest.mark.parametrize(
    ("matcher", "selected"),
    [(("zone", "=", ""), [None]), (("zone", "!=", "x"), [None, "y"]), (("zone", "!=", ""), ["x", "y"]),
     (("zone", "=~", ""), [None]), (("zone", "=~", "x|"), [None, "x"]), (("zone", "!~", "x"), [None, "y"]),
     (("zone", "!~", ".*"), [])],
)
def test_an_absent_label_compares_as_the_empty_string(http, zoned, t0, matcher, selected):
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "m"), matcher]))
    assert sorted(result) == sorted(zoned[key] for key in selected)


@pytest.mark.parametrize(
    ("matcher", "everything"),
    [(("never_stored", "=", ""), True), (("never_stored", "!=", "v"), True), (("never_stored", "=~", "v|"), True),
     (("never_stored", "!~", ".+"), True), (("never_stored", "=", "v"), False), (("never_stored", "=~", ".+"), False)],
)
def test_a_matcher_on_a_label_never_stored_is_not_an_error(http, zoned, t0, matcher, everything):
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "m"), matcher]))
    assert sorted(result) == (sorted(zoned.values()) if everything else [])


@pytest.mark.parametrize(("refresh_seconds", "found"), [("0", True), ("3600", False)])
def test_a_label_written_after_the_columns_were_learnt_follows_the_cache_settings(
    load_app, timestream, t0, refresh_seconds, found
):
    app = load_app(READ_COLUMNS_TTL_SECONDS="3600", READ_COLUMNS_REFRESH_SECONDS=refresh_seconds)
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        post_write(client.http, [([("__name__", "m"), ("job", "a")], [(1.0, t0)])])
        # The table has no "zone" column yet: the cache learns {job}, the query is provably empty.
        assert read_ok(client.http, (t0, t0 + 1, [("zone", "=", "x")])) == [{}]
        post_write(client.http, [([("__name__", "m"), ("job", "a"), ("zone", "x")], [(2.0, t0 + 1)])])
        answer = read_ok(client.http, (t0, t0 + 1, [("zone", "=", "x")]))
    # Refreshing at once finds the new column; with an hour's TTL and refresh interval it stays unknown.
    assert answer == ([{labels("m", job="a", zone="x"): [(t0 + 1, 2.0)]}] if found else [{}])


@pytest.mark.parametrize(
    ("matcher", "selected"),
    [(("instance", "=~", "web1"), ["web1"]), (("instance", "=~", "web1.*"), ["web1", "web12"]),
     (("instance", "=~", "eb1"), []), (("instance", "!~", "web1"), ["aweb1", "web12"]),
     (("instance", "=~", "(?i)WEB1|aweb1"), ["aweb1", "web1"]), (("instance", "=~", "web1|web12"), ["web1", "web12"])],
)
def test_regexes_are_fully_anchored(http, timestream, t0, matcher, selected):
    post_write(http, [([("__name__", "r"), ("instance", name)], [(1.0, t0)]) for name in ("web1", "web12", "aweb1")])
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "r"), matcher]))
    assert sorted(dict(key)["instance"] for key in result) == selected


def test_quotes_in_values_and_names_are_data_not_sql(http, timestream, t0):
    post_write(http, [([("__name__", "q"), ("path", "it's \"quoted\"")], [(1.0, t0)]), ([("__name__", "q"), ("job", "x")], [(2.0, t0)])])
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "q"), ("path", "=", "it's \"quoted\"")]))
    assert result == {labels("q", path="it's \"quoted\""): [(t0, 1.0)]}
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "q"), ("path", "=", "x' OR '1'='1")]))
    assert result == {}


def test_utf8_names_and_newlines_in_values_read_back_exactly(http, timestream, t0):
    written = [("__name__", "resource.cpu usage°"), ("job name", "test\njob\n"), ("zone.名", "東京")]
    post_write(http, [(written, [(1.5, t0)])])
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "resource.cpu usage°"), ("zone.名", "=~", "東.*")]))
    assert result == {tuple(sorted(written)): [(t0, 1.5)]}


# -- series with no label besides their name ------------------------------------------------------

OWNED = "__prometheus_timestream_series__"


@pytest.fixture
def name_only(http, timestream, t0):
    """`sum(up)`-like series (only __name__, as 1.0 and as 2.0) beside a labelled one."""
    post_write(http, [([("__name__", "sum_up")], [(3.0, t0)]), ([("__name__", "sum_up"), ("job", "x")], [(1.0, t0)])])
    v2 = RequestV2()
    v2.series([("__name__", "count_up")], [(7.0, t0)])
    response = http.post("/write", headers=v2_headers(), body=v2.encode())
    assert response.status_code == 204, response.body
    return t0


def test_a_series_with_only_its_name_reads_back_as_sent_with_nothing_added(http, name_only):
    t0 = name_only
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "sum_up")]))
    assert result == {labels("sum_up"): [(t0, 3.0)], labels("sum_up", job="x"): [(t0, 1.0)]}
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "count_up")]))
    assert result == {labels("count_up"): [(t0, 7.0)]}
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "sum_up"), ("job", "=", "")]))
    assert result == {labels("sum_up"): [(t0, 3.0)]}


@pytest.mark.parametrize(
    ("matcher", "everything"),
    [((OWNED, "=", ""), True), ((OWNED, "!~", "name_only"), True), ((OWNED, "=", "name_only"), False),
     ((OWNED, "!=", ""), False), ((OWNED, "=~", ".+"), False)],
    ids=["eq-empty", "nre-its-value", "eq-its-value", "neq-empty", "re-non-empty"],
)
def test_a_matcher_on_the_connectors_dimension_acts_as_on_a_label_nobody_stored(http, name_only, matcher, everything):
    t0 = name_only
    (result,) = read_ok(http, (t0, t0, [("__name__", "=", "sum_up"), matcher]))
    assert result == ({labels("sum_up"): [(t0, 3.0)], labels("sum_up", job="x"): [(t0, 1.0)]} if everything else {})


# -- refusals ------------------------------------------------------------------------------------

def test_no_destination_is_400_naming_what_is_missing(load_app, timestream, t0):
    app = load_app(DEFAULT_DATABASE=None, DEFAULT_TABLE=None)
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        post_write(client.http, [([("__name__", "up"), ("job", "x"), (DB, "prometheus"), (TABLE, "apps")], [(1.0, t0)])])
        response = post_read(client.http, (t0, t0, [("__name__", "=", "up")]))
        assert response.status_code == 400
        assert DB in response.body.decode() and "DEFAULT_DATABASE" in response.body.decode()
        # With the routing matchers the same query needs no default.
        routed = read_ok(client.http, (t0, t0, [("__name__", "=", "up"), (DB, "=", "prometheus"), (TABLE, "=", "apps")]))
        assert routed == [{labels("up", job="x", **{DB: "prometheus", TABLE: "apps"}): [(t0, 1.0)]}]


@pytest.mark.parametrize("regex", [r"\p{Greek}", "(?m)^a$", "a("])
def test_a_regex_timestream_cannot_run_as_re2_does_is_400(http, timestream, t0, regex):
    response = post_read(http, (t0, t0, [("__name__", "=", "up"), ("job", "=~", regex)]))
    assert response.status_code == 400
    assert regex in response.body.decode()


def test_a_missing_table_is_404(http, timestream, t0):
    response = post_read(http, (t0, t0, [("__name__", "=", "up"), (TABLE, "=", "no_such_table")]))
    assert response.status_code == 404
    assert "no_such_table" in response.body.decode()


@pytest.mark.parametrize(
    ("code", "aws_status", "status"),
    [("AccessDeniedException", 403, 403), ("UnrecognizedClientException", 400, 403),
     ("ThrottlingException", 400, 503), ("InternalServerException", 500, 503)],
)
def test_credentials_aws_refuses_are_403_and_what_a_retry_can_fix_is_503(
    http, timestream, fail_queries, t0, code, aws_status, status
):
    fail_queries(code, aws_status)
    response = post_read(http, (t0, t0, [("__name__", "=", "up"), ("job", "=", "x")]))
    assert response.status_code == status, response.body
    body = response.body.decode()
    assert code in body and body.count("\n") == 1
    assert basic_auth().split()[1] not in body


@pytest.mark.parametrize("authorization", [None, "Basic bm9wZQ==", "Bearer token"])
def test_missing_or_malformed_credentials_are_401_with_a_basic_challenge(http, timestream, authorization, t0):
    response = post_read(http, (t0, t0, [("__name__", "=", "up")]), Authorization=authorization)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_other_content_encoding_or_type_is_415(http, timestream, t0):
    query = (t0, t0, [("__name__", "=", "up")])
    gzip = post_read(http, query, **{"Content-Encoding": "gzip"})
    assert gzip.status_code == 415 and "Content-Encoding" in gzip.body.decode()
    assert post_read(http, query, **{"Content-Type": "application/json"}).status_code == 415


def test_an_answer_over_the_cap_is_413_with_advice(load_app, timestream, t0):
    app = load_app(MAX_READ_RESPONSE_BYTES="2048")
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        post_write(client.http, [([("__name__", "big"), ("job", "x" * 40)], [(float(i), t0 + i) for i in range(300)])])
        small = read_ok(client.http, (t0, t0 + 9, [("__name__", "=", "big")]))
        assert len(small[0][labels("big", job="x" * 40)]) == 10
        response = post_read(client.http, (t0, t0 + 299, [("__name__", "=", "big")]))
    assert response.status_code == 413
    assert "narrow" in response.body.decode()


# -- over real HTTP: `make run` (emulator + chalice local) ---------------------------------------

def test_remote_read_over_http_without_accept_gets_snappy_protobuf_bytes(local_run):
    port = local_run.port
    ts = now_ms()
    body = encode(write_request([([("__name__", "http_read_metric"), ("job", "e2e")], [(0.1 + 0.2, ts)])]))
    written = requests.post(f"http://127.0.0.1:{port}/write", data=body, headers=write_headers(), timeout=30)
    assert written.status_code == 204, written.text

    # http.client sends exactly these headers (requests would add Accept: */*).
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/read", body=read_request((ts, ts, [("__name__", "=", "http_read_metric")])),
                           headers=read_headers())
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    assert response.status == 200, raw[:300]
    assert response.getheader("Content-Type") == PROTOBUF
    assert response.getheader("Content-Encoding") == "snappy"
    assert decode_read_response(raw) == [{labels("http_read_metric", job="e2e"): [(ts, 0.1 + 0.2)]}]
