"""The Remote-Write 2.0 specification's receiver rules, case by case, against POST /write
(chalice.test.Client + the local Timestream; a few over real HTTP under `chalice local`).

Written from the specification (prometheus/docs, docs/specs/prw/remote_write_spec_2_0.md) with
this project's own encoder (tests.helpers.RequestV2): no Prometheus that sends 2.0 can be
installed here. Each test names the rule it checks. The compliance suite's basic cases
(prometheus/compliance, remotewrite/receiver) are among them: `{__name__="up"}`, special float
values, names with dots and spaces, newlines in values, metadata of every type.
"""

import math
import struct

import pytest
import requests
import snappy
from chalice.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.liveanalytics.records import NAME_ONLY_DIMENSION, is_reserved
from chalicelib.prompb import remote_write_v2_pb2 as v2
from tests.helpers import (
    V2_CONTENT_TYPE,
    RequestV2,
    decode_read_response,
    encode,
    now_ms,
    read_headers,
    read_request,
    v2_headers,
    write_headers,
    write_request,
    write_request_v2,
)
from tests.integration.conftest import ROOT, stored

STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
WRITTEN = ("Samples", "Histograms", "Exemplars")
UP = [("__name__", "up"), ("instance", "localhost:9090"), ("job", "test")]
DB, TABLE = "prometheusDatabaseLabel", "prometheusTableLabel"
OWNED_LABEL = NAME_ONLY_DIMENSION[0]


def post(client, body: bytes, headers: dict) -> object:
    return client.post("/write", headers=headers, body=body)


def written(response) -> tuple[int, int, int] | None:
    """(samples, histograms, exemplars) from the X-Prometheus-Remote-Write-*-Written headers;
    None when there are none. Each value must be a single 64-bit integer."""
    headers = {name.lower(): value for name, value in response.headers.items()}
    values = [headers.get(f"x-prometheus-remote-write-{kind.lower()}-written") for kind in WRITTEN]
    if values == [None, None, None]:
        return None
    assert None not in values, f"some written headers are missing: {values}"
    assert all(value.isdigit() and int(value) < 2**63 for value in values), values
    return tuple(int(value) for value in values)


def read_back(client, start_ms: int, end_ms: int, metric: str) -> list[dict]:
    response = client.post("/read", headers=read_headers(), body=read_request((start_ms, end_ms, [("__name__", "=", metric)])))
    assert response.status_code == 200, response.body
    return decode_read_response(response.body)


def send(client, *series, **headers):
    return post(client, snappy.compress(write_request_v2(series).SerializeToString()), v2_headers(**headers))


# -- Content-Type: "Receivers MUST use the content type header to identify the Protobuf Message" --

def test_a_2_0_request_is_stored_and_answered_204_with_the_written_counts(http, timestream):
    ts = now_ms()
    response = send(http, (UP, [(1.0, ts), (2.0, ts + 1)]), ([("__name__", "other"), ("job", "x")], [(3.0, ts)]))
    # "the status code SHOULD be 204 HTTP No Content", the body empty.
    assert (response.status_code, response.body) == (204, b"")
    assert written(response) == (3, 0, 0)
    assert sorted(float(record["MeasureValue"]) for record in stored(timestream)) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "content_type",
    ["application/x-protobuf", "application/x-protobuf;proto=prometheus.WriteRequest", None],
    ids=["no-proto", "proto-1.0", "no-content-type"],
)
def test_1_0_requests_to_the_same_endpoint_are_stored_and_answered_without_written_headers(
    http, timestream, content_type
):
    # "Senders MUST NOT assume the same [missing header = 0] when using prometheus.WriteRequest":
    # a 1.0 answer carries none, so no sender reads 1.0 counts as 2.0's.
    body = encode(write_request([(UP, [(1.0, now_ms())])]))
    response = post(http, body, write_headers(**{"Content-Type": content_type}))
    assert response.status_code == 204, response.body
    assert written(response) is None
    assert len(stored(timestream)) == 1


def test_a_1_0_answer_that_fails_has_no_written_headers_either(http, timestream):
    body = encode(write_request([([("job", "no-name")], [(1.0, now_ms())])]))
    response = post(http, body, write_headers())
    assert response.status_code == 400 and written(response) is None


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "image/png", "text/plain; charset=utf-8", "application/octet-stream",
     "application/x-protobuf;proto=io.prometheus.write.v3.Request",
     "application/x-protobuf;proto=prometheus.ReadRequest", "application/x-protobuf;proto"],
)
def test_an_unsupported_content_type_is_415_naming_what_is_supported(http, timestream, content_type):
    # "Receivers MUST return 415 HTTP Unsupported Media Type status code if they don't support a
    # given content type or encoding" - before looking at the body (here also corrupt).
    body = bytearray(write_request_v2([(UP, [(1.0, now_ms())])]).SerializeToString())
    body[0] = ord("0")
    response = post(http, bytes(body), v2_headers(**{"Content-Type": content_type}))
    assert response.status_code == 415
    text = response.body.decode()
    assert f"{V2_CONTENT_TYPE} (remote write 2.0)" in text and text.count("\n") == 1
    assert written(response) is None, "the message was not negotiated: nothing to count"
    assert stored(timestream) == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd", "identity"])
def test_an_unsupported_content_encoding_is_415(http, timestream, encoding):
    # "Receivers MUST support snappy compression"; any other encoding: 415.
    response = send(http, (UP, [(1.0, now_ms())]), **{"Content-Encoding": encoding})
    assert response.status_code == 415
    assert "Content-Encoding must be snappy" in response.body.decode()


def test_a_snappy_body_without_content_encoding_is_accepted(http, timestream):
    # Some clients leave the header out; Prometheus's own receiver decodes snappy regardless.
    response = send(http, (UP, [(1.0, now_ms())]), **{"Content-Encoding": None})
    assert response.status_code == 204 and written(response) == (1, 0, 0)


def test_a_body_that_is_not_snappy_without_content_encoding_is_400(http, timestream):
    raw = write_request_v2([(UP, [(1.0, now_ms())])]).SerializeToString()
    response = post(http, raw, v2_headers(**{"Content-Encoding": None}))
    assert response.status_code == 400 and "snappy" in response.body.decode()
    assert written(response) == (0, 0, 0)


def test_the_version_header_is_not_needed_to_negotiate(http, timestream):
    response = send(http, (UP, [(1.0, now_ms())]), **{"X-Prometheus-Remote-Write-Version": None})
    assert response.status_code == 204 and written(response) == (1, 0, 0)


# -- corrupt bodies: 4xx, never 5xx, with written counts of 0 --------------------------------------

def _corrupt_first_byte() -> bytes:
    body = bytearray(snappy.compress(write_request_v2([(UP, [(1.0, now_ms())])]).SerializeToString()))
    body[0] = ord("0")
    return bytes(body)


def _with_symbols(symbols, refs) -> bytes:
    request = v2.Request(symbols=symbols)
    request.timeseries.add(labels_refs=refs).samples.add(value=1.0, timestamp=now_ms())
    return snappy.compress(request.SerializeToString())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (_corrupt_first_byte(), "snappy"),
        (b"\xff\xff\xff\xff\xff\xff", "snappy"),
        (snappy.compress(b"\x2a\x05\x0a"), "not a valid protobuf io.prometheus.write.v2.Request"),
        (snappy.compress(b"\x22\x02\xc3\x28"), "not a valid protobuf"),  # a symbol that is not UTF-8
        (_with_symbols(["", "__name__", "up"], [1, 9]), "labels_refs refers to symbol 9; the symbols table has 3"),
        (_with_symbols(["", "__name__", "up"], [1, 2, 1]), "labels_refs has an odd number of entries (3)"),
        (_with_symbols(["__name__", "up"], [0, 1]), "symbols[0] must be the empty string, got '__name__'"),
    ],
    ids=["empty", "corrupt-snappy", "not-snappy", "not-protobuf", "not-utf8", "reference-out-of-range",
         "odd-references", "symbols-not-starting-empty"],
)
def test_a_malformed_request_is_400_saying_what_is_wrong(http, timestream, body, message):
    response = post(http, body, v2_headers())
    assert response.status_code == 400
    text = response.body.decode()
    assert message in text and text.count("\n") == 1
    assert written(response) == (0, 0, 0)
    assert stored(timestream) == []


def test_one_bad_reference_refuses_the_whole_request_before_anything_is_written(http, timestream):
    builder = RequestV2()
    builder.series(UP, [(1.0, now_ms())])
    builder.series([("__name__", "later"), ("job", "x")], [(2.0, now_ms())]).metadata.help_ref = 1000
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 400 and "metadata refers to symbol 1000" in response.body.decode()
    assert written(response) == (0, 0, 0) and stored(timestream) == []


@pytest.mark.parametrize("field", ["help_ref", "unit_ref"])
def test_a_metadata_reference_just_past_the_symbols_is_refused(http, timestream, field):
    builder = RequestV2()
    series = builder.series(UP, [(1.0, now_ms())])
    request = builder.build()
    setattr(series.metadata, field, len(request.symbols))  # one past the last symbol
    response = post(http, snappy.compress(request.SerializeToString()), v2_headers())
    assert response.status_code == 400, response.body
    assert written(response) == (0, 0, 0) and stored(timestream) == []


# -- invalid samples and partial writes: "MUST NOT return a 2xx ... if any ... were NOT written" ----

def test_series_without_a_name_are_400_and_the_rest_is_written_and_counted(http, timestream):
    ts = now_ms()
    nameless = [("instance", "localhost:9090"), ("job", "test")]
    response = send(http, (nameless, [(1.0, ts)]),
                    *[([("__name__", "up"), ("instance", f"localhost:909{i}"), ("job", "test")], [(1.0, ts)])
                      for i in (1, 2, 3)])
    assert response.status_code == 400
    # "The Receiver's error SHOULD contain information about the amount of the samples being
    # rejected and for what reasons."
    assert 'missing_metric_name=1 (first: {instance="localhost:9090",job="test"})' in response.body.decode()
    assert written(response) == (3, 0, 0)
    assert len(stored(timestream)) == 3


@pytest.mark.parametrize("labels", [[], [("job", "x")], [("__name__", "")]], ids=["empty", "no-name", "empty-name"])
def test_a_request_whose_only_series_has_no_name_is_400_with_nothing_written(http, timestream, labels):
    response = send(http, (labels, [(1.0, now_ms())]))
    assert response.status_code == 400 and written(response) == (0, 0, 0)


def test_records_timestream_rejects_are_not_counted_as_written(http, timestream, fail_writes_to):
    conflict = "A record with the same dimensions and time but a different version exists."
    fail_writes_to("nodes", "RejectedRecordsException", 419, RejectedRecords=[{"RecordIndex": 0, "Reason": conflict}])
    ts = now_ms()
    nodes = [("__name__", "up"), ("job", "x"), (DB, "prometheus"), (TABLE, "nodes")]
    response = send(http, (nodes, [(1.0, ts), (2.0, ts + 1)]), (UP, [(3.0, ts), (float("nan"), ts + 1)]))
    assert response.status_code == 400 and "conflicting_value=1" in response.body.decode()
    # one of two to nodes, one to metrics, one NaN accepted and dropped
    assert written(response) == (3, 0, 0)


def test_a_transient_failure_is_5xx_and_counts_exactly_what_was_written_before(load_app, timestream, fail_writes_to):
    # "Receivers MAY return a 5xx ... on partial write ... when it expects Senders to retry the
    # whole request. In that case, the Receiver MUST support idempotency": Timestream accepts
    # an identical rewrite of what was written.
    app = load_app(WRITE_BUDGET_SECONDS="0.5")
    fail_writes_to("apps", "ThrottlingException", 400)
    ts = now_ms()
    apps = [("__name__", "up"), ("job", "app"), (DB, "prometheus"), (TABLE, "apps")]
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response = send(client.http, (apps, [(1.0, ts)]), (UP, [(2.0, ts), (3.0, ts + 1)]))
        assert response.status_code == 503 and written(response) == (2, 0, 0)
        # Resent as Prometheus would once Timestream recovers: the same records again (moto keeps
        # both copies; Timestream keeps one identical record).
        fail_writes_to("apps", "ThrottlingException", 400, times=0)
        again = send(client.http, (apps, [(1.0, ts)]), (UP, [(2.0, ts), (3.0, ts + 1)]))
    assert again.status_code == 204 and written(again) == (3, 0, 0)
    assert {(r["MeasureValue"], r["Time"]) for r in stored(timestream)} == {("2.0", str(ts)), ("3.0", str(ts + 1))}
    assert [(r["MeasureValue"], r["Time"]) for r in stored(timestream, "apps")] == [("1.0", str(ts))]


def test_a_5xx_before_any_write_counts_zero(load_app, timestream, fail_writes):
    app = load_app(WRITE_BUDGET_SECONDS="0.5")
    fail_writes("InternalServerException", 500)
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response = send(client.http, (UP, [(1.0, now_ms())]))
    assert response.status_code == 503 and written(response) == (0, 0, 0)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Authorization": None}, 401), ({"Authorization": "Bearer x"}, 401)],
    ids=["no-credentials", "not-basic"],
)
def test_refusals_before_any_write_carry_written_counts_of_zero(http, timestream, headers, status):
    response = send(http, (UP, [(1.0, now_ms())]), **headers)
    assert response.status_code == status and written(response) == (0, 0, 0)


def test_an_oversize_request_is_413_with_written_counts_of_zero(load_app, timestream):
    app = load_app(MAX_DECOMPRESSED_BYTES="1024")
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        response = send(client.http, ([("__name__", "m"), ("big", "x" * 2000)], [(1.0, now_ms())]))
    assert response.status_code == 413 and written(response) == (0, 0, 0)


# -- samples: special values, start timestamps, names ------------------------------------------------

@pytest.mark.parametrize("value", [1.0, STALE, float("nan"), math.inf, -math.inf],
                         ids=["1.0", "StaleNaN", "NaN", "Inf", "-Inf"])
@pytest.mark.parametrize("labels", [[("__name__", "up")], UP], ids=["name-only", "with-labels"])
def test_special_float_values_are_accepted_and_counted_written(http, timestream, value, labels):
    # "Written" is what the receiver accepts: NaN, +-Inf and stale markers are accepted (Timestream
    # cannot hold them, so they are dropped on purpose, as Prometheus's own traffic expects).
    response = send(http, (labels, [(value, now_ms())]))
    assert response.status_code == 204 and written(response) == (1, 0, 0)
    assert len(stored(timestream)) == (1 if value == 1.0 else 0)


def test_a_series_with_only_a_name_is_stored(http, timestream):
    # The compliance suite's most basic case: {__name__="up"}.
    ts = now_ms()
    response = send(http, ([("__name__", "up")], [(1.0, ts)]))
    assert response.status_code == 204 and written(response) == (1, 0, 0)
    (record,) = stored(timestream)
    assert (record["MeasureName"], record["Time"]) == ("up", str(ts))


def test_start_timestamps_are_accepted(http, timestream):
    # "the 0 value MUST be treated by receivers as unset"; any value is accepted and not stored.
    builder = RequestV2()
    ts = now_ms()
    builder.series([("__name__", "http_requests_total"), ("job", "api")], [(100.0, ts)], start_timestamp=ts - 3_600_000)
    builder.series([("__name__", "unset_start"), ("job", "api")], [(1.0, ts)], start_timestamp=0)
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 204 and written(response) == (2, 0, 0)
    assert {record["Time"] for record in stored(timestream)} == {str(ts)}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def test_the_created_timestamp_of_older_senders_is_ignored_as_an_unknown_field(http, timestream):
    # Senders of the experimental period (and the compliance suite's generator) put a created
    # timestamp in TimeSeries field 6, now reserved: a receiver must not fail on it.
    ts = now_ms()
    request = write_request_v2([(UP, [(5.0, ts)])])
    series = request.timeseries[0].SerializeToString() + b"\x30" + _varint(ts - 3_600_000)  # field 6, varint
    body = b"".join(b"\x22" + _varint(len(s.encode())) + s.encode() for s in request.symbols)
    body += b"\x2a" + _varint(len(series)) + series
    response = post(http, snappy.compress(body), v2_headers())
    assert response.status_code == 204 and written(response) == (1, 0, 0)
    assert [record["MeasureValue"] for record in stored(timestream)] == ["5.0"]


@pytest.mark.parametrize(
    "labels",
    [
        [("__name__", "up"), ("instance", "localhost:9090"), ("job", "test\njob\n")],
        [("__name__", "resource.cpu.usage"), ("instance.name", "localhost:9090"), ("job.name", "testjob")],
        [("__name__", "resource cpu usage"), ("instance name", "localhost:9090"), ("job name", "testjob")],
        [("__name__", "test_metric"), ("environment", "test🚀"), ("job", "test-job_with.special@chars")],
        [("__name__", "température"), ("zone", "東京")],
    ],
    ids=["newlines", "dots", "spaces", "special-chars", "non-ascii"],
)
def test_utf8_names_and_values_are_stored_unchanged(http, timestream, labels):
    # "Metric names, label names, and label values MUST be any sequence of UTF-8 characters."
    response = send(http, (labels, [(1.0, now_ms())]))
    assert response.status_code == 204 and written(response) == (1, 0, 0)
    (record,) = stored(timestream)
    assert record["MeasureName"] == labels[0][1]
    assert {d["Name"]: d["Value"] for d in record["Dimensions"]} == dict(labels[1:])


def test_a_label_name_timestream_cannot_hold_is_refused_with_its_reason(http, timestream):
    response = send(http, ([("__name__", "up"), ("a:b", "x")], [(1.0, now_ms())]), (UP, [(1.0, now_ms())]))
    assert response.status_code == 400 and "label_name_has_colon=1" in response.body.decode()
    assert written(response) == (1, 0, 0)


# -- metadata -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(v2.Metadata.MetricType.values()),
                         ids=list(v2.Metadata.MetricType.keys()))
def test_metadata_of_every_type_is_accepted(http, timestream, kind):
    builder = RequestV2()
    builder.series(UP, [(1.0, now_ms())], metadata=(kind, "Help with\nnewlines and \"quotes\".", "bytes/sec"))
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 204 and written(response) == (1, 0, 0)


def test_metadata_without_samples_is_accepted_and_writes_nothing(http, timestream):
    builder = RequestV2()
    builder.series([("__name__", "orphan_metric")], metadata=(v2.Metadata.METRIC_TYPE_COUNTER, "Orphaned.", "count"))
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 204 and written(response) == (0, 0, 0)
    assert stored(timestream) == []


# -- histograms and exemplars: stored, and counted in the written headers ------------------------

def test_native_histograms_are_written_and_counted_beside_the_samples(http, timestream):
    builder = RequestV2()
    builder.series(UP, [(1.0, now_ms())])
    histogram = builder.series([("__name__", "request_duration_seconds"), ("job", "api")])
    histogram.histograms.add(count_int=3, sum=1.5, schema=0, zero_threshold=1e-128, timestamp=now_ms(),
                             positive_spans=[v2.BucketSpan(offset=0, length=2)], positive_deltas=[1, 1])
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 204, response.body
    assert written(response) == (1, 1, 0)
    assert len(stored(timestream)) == 2


def test_exemplars_are_written_and_counted(http, timestream):
    builder = RequestV2()
    series = builder.series(UP, [(1.0, now_ms())])
    series.exemplars.add(labels_refs=builder.refs([("trace_id", "abc123")]), value=1.0, timestamp=now_ms())
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 204, response.body
    assert written(response) == (1, 0, 1)
    assert len(stored(timestream)) == 2


# -- over real HTTP: `make run` (emulator + chalice local) ------------------------------------------

def test_over_http_2_0_and_a_request_without_content_type_are_both_stored(local_run):
    url = f"http://127.0.0.1:{local_run.port}/write"
    ts = now_ms()
    builder = RequestV2()
    builder.series([("__name__", "http_v2_metric")], [(1.5, ts)])
    response = requests.post(url, data=builder.encode(), headers=v2_headers(), timeout=30)
    assert response.status_code == 204, response.text
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "1"
    assert response.headers["X-Prometheus-Remote-Write-Histograms-Written"] == "0"
    assert response.headers["X-Prometheus-Remote-Write-Exemplars-Written"] == "0"

    body = encode(write_request([([("__name__", "http_untyped_metric"), ("job", "x")], [(2.5, ts)])]))
    headers = write_headers(**{"Content-Type": None, "Content-Encoding": None})
    # requests adds no Content-Type for bytes: the request carries neither header.
    prepared = requests.Request("POST", url, data=body, headers=headers).prepare()
    assert "Content-Type" not in prepared.headers and "Content-Encoding" not in prepared.headers
    with requests.Session() as session:
        response = session.send(prepared, timeout=30)
    assert response.status_code == 204, response.text
    assert "X-Prometheus-Remote-Write-Samples-Written" not in response.headers


def test_over_http_an_unsupported_type_is_415_from_the_connector(local_run):
    url = f"http://127.0.0.1:{local_run.port}/write"
    response = requests.post(url, data=b"{}", headers=write_headers(**{"Content-Type": "application/json"}), timeout=30)
    assert response.status_code == 415
    assert f"{V2_CONTENT_TYPE} (remote write 2.0)" in response.text


# -- any valid 2.0 request reads back as sent -------------------------------------------------------

_names = st.text(st.characters(codec="utf-8", exclude_characters=":\x00"), min_size=1, max_size=10).filter(
    lambda name: name not in ("__name__", OWNED_LABEL, DB, TABLE) and not is_reserved(name)
)
_series = st.lists(
    st.tuples(st.dictionaries(_names, st.text(st.characters(codec="utf-8"), min_size=1, max_size=12), max_size=4),
              st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=3)),
    min_size=1, max_size=4,
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_series, st.randoms(use_true_random=False))
def test_any_valid_2_0_request_reads_back_through_remote_read_as_sent(http, timestream, series, random):
    # A metric name of its own per example: examples share one table.
    metric = f"roundtrip_{random.getrandbits(64):x}"
    t0 = now_ms() - 60_000
    builder = RequestV2()
    expected = {}
    for index, (labels, values) in enumerate(series):
        pairs = [("__name__", metric), ("series", str(index)), *labels.items()]
        random.shuffle(pairs)  # order is the sender's business
        builder.series(pairs, [(value, t0 + i) for i, value in enumerate(values)])
        expected[tuple(sorted(pairs))] = [(t0 + i, value) for i, value in enumerate(values)]
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 204, response.body
    assert written(response) == (sum(len(values) for _, values in series), 0, 0)
    (result,) = read_back(http, t0, t0 + 10, metric)
    assert result == expected
