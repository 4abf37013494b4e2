"""Native histograms and exemplars: written with POST /write (1.0 and 2.0), stored in the local
Timestream as MULTI measure records, histograms read back bit for bit with POST /read."""

import itertools
import json
import struct

import boto3
import pytest
import snappy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.liveanalytics.histograms import EXEMPLAR_SUFFIX
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.prompb import remote_write_v2_pb2 as v2
from tests.helpers import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    RequestV2,
    encode,
    now_ms,
    read_headers,
    read_request,
    v2_headers,
    write_headers,
)
from tests.integration.conftest import stored

STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
_names = itertools.count()


def post(http, body, headers):
    return http.post("/write", headers=headers, body=body)


def read_series(http, start, end, name, op="="):
    response = http.post("/read", headers=read_headers(), body=read_request((start, end, [("__name__", op, name)])))
    assert response.status_code == 200, response.body
    answer = pb.ReadResponse.FromString(snappy.uncompress(response.body))
    (result,) = answer.results
    return list(result.timeseries)


def v1_request(labels, samples=(), histograms=(), exemplars=()):
    request = pb.WriteRequest()
    series = request.timeseries.add()
    series.labels.extend(pb.Label(name=n, value=v) for n, v in labels)
    series.samples.extend(pb.Sample(value=v, timestamp=t) for v, t in samples)
    series.histograms.extend(histograms)
    series.exemplars.extend(exemplars)
    return request


def as_v1(histogram: v2.Histogram) -> pb.Histogram:
    return pb.Histogram.FromString(histogram.SerializeToString())


def query(timestream, sql):
    client = boto3.client("timestream-query", region_name="us-east-1", endpoint_url=timestream.endpoint,
                          aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
    page = client.query(QueryString=sql)
    names = [column["Name"] for column in page["ColumnInfo"]]
    return [dict(zip(names, [d.get("ScalarValue") for d in row["Data"]], strict=True)) for row in page["Rows"]]


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


# -- strategies: valid native histograms of every kind ---------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
spans = st.lists(st.tuples(st.integers(-2**31, 2**31 - 1), st.integers(0, 4)), max_size=4)


@st.composite
def histograms(draw, timestamp):
    floats = draw(st.booleans())
    custom = draw(st.booleans())
    histogram = v2.Histogram(
        sum=draw(finite), schema=-53 if custom else draw(st.integers(-4, 8)),
        reset_hint=draw(st.sampled_from([0, 1, 2, 3])), timestamp=timestamp,
    )
    if not custom:
        histogram.zero_threshold = draw(st.floats(0, 1e-3))
    for side in ("positive",) if custom else ("positive", "negative"):
        side_spans = draw(spans)
        getattr(histogram, f"{side}_spans").extend(v2.BucketSpan(offset=o, length=n) for o, n in side_spans)
        buckets = sum(n for _, n in side_spans)
        if floats:
            getattr(histogram, f"{side}_counts").extend(draw(st.lists(finite, min_size=buckets, max_size=buckets)))
        else:
            deltas = st.integers(-2**63, 2**63 - 1)
            getattr(histogram, f"{side}_deltas").extend(draw(st.lists(deltas, min_size=buckets, max_size=buckets)))
    if custom:
        histogram.custom_values.extend(draw(st.lists(finite, max_size=8)))
    if floats:
        histogram.count_float = draw(finite)
        if not custom:
            histogram.zero_count_float = draw(finite)
    else:
        histogram.count_int = draw(st.integers(0, 2**64 - 1))
        if not custom:
            histogram.zero_count_int = draw(st.integers(0, 2**64 - 1))
    return histogram


def assert_bit_equal(read: pb.Histogram, sent: v2.Histogram) -> None:
    expected = as_v1(sent)
    assert read.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    assert bits(read.sum) == bits(sent.sum)


# -- round trips --------------------------------------------------------------------------------------

@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), version=st.sampled_from(["1.0", "2.0"]))
def test_random_histograms_round_trip_bit_for_bit(http, timestream, data, version):
    t0 = now_ms() - 600_000
    sent = data.draw(st.lists(histograms(0), min_size=1, max_size=3))
    for i, histogram in enumerate(sent):
        histogram.timestamp = t0 + i
    name = f"h{next(_names)}"
    labels = [("__name__", name), ("job", "x")]
    if version == "1.0":
        body, headers = encode(v1_request(labels, histograms=[as_v1(h) for h in sent])), write_headers()
    else:
        builder = RequestV2()
        builder.series(labels).histograms.extend(sent)
        body, headers = builder.encode(), v2_headers()
    response = post(http, body, headers)
    assert response.status_code == 204, response.body
    if version == "2.0":
        assert response.headers["X-Prometheus-Remote-Write-Histograms-Written"] == str(len(sent))
    (series,) = read_series(http, t0, t0 + 10, name)
    assert [(label.name, label.value) for label in series.labels] == sorted(labels)
    assert not series.samples
    assert len(series.histograms) == len(sent)
    for read, histogram in zip(series.histograms, sent, strict=True):
        assert_bit_equal(read, histogram)


def test_a_retried_request_is_an_identical_rewrite(http, timestream):
    t0 = now_ms() - 60_000
    histogram = v2.Histogram(count_float=2.5, sum=0.1, schema=3, timestamp=t0, positive_counts=[1.0, 1.5],
                             positive_spans=[v2.BucketSpan(offset=-2, length=2)])
    body = encode(v1_request([("__name__", "retry"), ("job", "x")], histograms=[as_v1(histogram)]))
    assert post(http, body, write_headers()).status_code == 204
    assert post(http, body, write_headers()).status_code == 204
    assert len(stored(timestream)) == 1


def test_floats_and_histograms_in_one_answer_and_sql_reads_count_and_sum(http, timestream):
    t0 = now_ms() - 60_000
    histogram = v2.Histogram(count_int=7, sum=12.5, schema=0, zero_threshold=1e-128, zero_count_int=1,
                             positive_spans=[v2.BucketSpan(offset=0, length=2)], positive_deltas=[3, 0],
                             reset_hint=v2.Histogram.RESET_HINT_NO, timestamp=t0)
    request = v1_request([("__name__", "lat"), ("job", "h")], histograms=[as_v1(histogram)])
    floats = request.timeseries.add()
    # A measure name has one type per table: floats of another metric, read in the same answer.
    floats.labels.extend([pb.Label(name="__name__", value="lat_floats"), pb.Label(name="job", value="f")])
    floats.samples.add(value=1.25, timestamp=t0)
    assert post(http, encode(request), write_headers()).status_code == 204
    first, second = read_series(http, t0, t0, "lat.*", op="=~")
    assert [(s.timestamp, s.value) for s in second.samples] == [(t0, 1.25)] and not second.histograms
    assert not first.samples
    assert_bit_equal(first.histograms[0], histogram)
    rows = query(timestream, 'SELECT job, histogram_count, histogram_sum FROM "prometheus"."metrics" '
                             "WHERE measure_name = 'lat' AND histogram_count IS NOT NULL")
    assert rows == [{"job": "h", "histogram_count": "7.0", "histogram_sum": "12.5"}]


def test_a_stale_histogram_is_dropped_and_counted_as_written(http, timestream):
    builder = RequestV2()
    builder.series([("__name__", "gone"), ("job", "x")]).histograms.add(count_int=0, sum=STALE, timestamp=now_ms())
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 204
    assert response.headers["X-Prometheus-Remote-Write-Histograms-Written"] == "1"
    assert stored(timestream) == []


# -- exemplars ----------------------------------------------------------------------------------------

def test_exemplars_are_stored_queryable_by_series_and_time_and_never_read_as_samples(http, timestream):
    t0 = now_ms() - 60_000
    exemplars = [pb.Exemplar(labels=[pb.Label(name="trace_id", value="4bf92f3577b34da6")], value=0.25, timestamp=t0),
                 pb.Exemplar(value=0.5, timestamp=t0 + 1)]
    labels = [("__name__", "req_total"), ("job", "api")]
    assert post(http, encode(v1_request(labels, [(3.0, t0)], exemplars=exemplars)), write_headers()).status_code == 204
    rows = query(timestream, 'SELECT time, exemplar_value, exemplar_labels FROM "prometheus"."metrics" '
                             f"WHERE measure_name = 'req_total{EXEMPLAR_SUFFIX}' AND job = 'api' ORDER BY time")
    assert [(r["exemplar_value"], json.loads(r["exemplar_labels"])) for r in rows] == [
        ("0.25", {"trace_id": "4bf92f3577b34da6"}), ("0.5", {})]
    (series,) = read_series(http, t0, t0 + 1, "req_total")
    assert [(s.timestamp, s.value) for s in series.samples] == [(t0, 3.0)] and not series.histograms


def test_exemplars_of_2_0_are_counted(http, timestream):
    builder = RequestV2()
    series = builder.series([("__name__", "up"), ("job", "x")], [(1.0, now_ms())])
    series.exemplars.add(labels_refs=builder.refs([("trace_id", "abc")]), value=1.0, timestamp=now_ms())
    series.exemplars.add(value=float("nan"), timestamp=now_ms())
    response = post(http, builder.encode(), v2_headers())
    assert response.status_code == 400 and "exemplar_value_not_finite=1" in response.body.decode()
    assert response.headers["X-Prometheus-Remote-Write-Exemplars-Written"] == "1"


# -- boundaries ---------------------------------------------------------------------------------------

def _histogram_of_size(buckets: int, t: int) -> v2.Histogram:
    return v2.Histogram(count_float=1.0, sum=1.0, schema=0, timestamp=t,
                        positive_spans=[v2.BucketSpan(offset=0, length=buckets)], positive_counts=[0.5] * buckets)


def largest_fitting_buckets(labels) -> int:
    """The most float buckets of one span whose record still fits (found through the write path)."""
    from chalicelib.config import Settings
    from chalicelib.liveanalytics.records import build_records_v2

    settings = Settings(default_database="prometheus", default_table="metrics")

    def fits(n: int) -> bool:
        builder = RequestV2()
        builder.series(labels).histograms.append(_histogram_of_size(n, now_ms()))
        return not build_records_v2(builder.build(), settings, now_ms()).refused

    low, high = 1, 1000
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


@pytest.mark.parametrize("extra", [0, 1])
def test_the_largest_histogram_that_fits_round_trips_and_the_next_is_refused(http, timestream, extra):
    labels = [("__name__", "big"), ("job", "x" * 300)]
    buckets = largest_fitting_buckets(labels) + extra
    assert 150 < buckets < 250
    t0 = now_ms() - 60_000
    histogram = _histogram_of_size(buckets, t0)
    builder = RequestV2()
    builder.series(labels).histograms.append(histogram)
    builder.series([("__name__", "big_floats"), ("job", "x")], [(1.0, t0)])
    response = post(http, builder.encode(), v2_headers())
    if extra:
        assert response.status_code == 400 and "histogram_too_large=1" in response.body.decode()
        assert response.headers["X-Prometheus-Remote-Write-Histograms-Written"] == "0"
        assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "1"
    else:
        assert response.status_code == 204, response.body
        (series,) = read_series(http, t0, t0, "big")
        assert_bit_equal(series.histograms[0], histogram)


# -- exemplars: random ones round-trip through SQL; the largest that fits and the first that does not --

label_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
exemplar_labels = st.dictionaries(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1,
                                          max_size=12), label_text, max_size=3)


def exemplar_rows(timestream, name, job):
    return query(timestream, 'SELECT time, exemplar_value, exemplar_labels FROM "prometheus"."metrics" '
                             f"WHERE measure_name = '{name}{EXEMPLAR_SUFFIX}' AND job = '{job}' ORDER BY time")


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sent=st.lists(st.tuples(finite, exemplar_labels), min_size=1, max_size=4),
       version=st.sampled_from(["1.0", "2.0"]))
def test_random_exemplars_round_trip_through_sql(http, timestream, sent, version):
    t0 = now_ms() - 600_000
    name = f"e{next(_names)}"
    labels = [("__name__", name), ("job", "x")]
    if version == "1.0":
        exemplars = [pb.Exemplar(labels=[pb.Label(name=k, value=v) for k, v in pairs.items()], value=value,
                                 timestamp=t0 + i) for i, (value, pairs) in enumerate(sent)]
        body, headers = encode(v1_request(labels, exemplars=exemplars)), write_headers()
    else:
        builder = RequestV2()
        series = builder.series(labels)
        for i, (value, pairs) in enumerate(sent):
            series.exemplars.add(labels_refs=builder.refs(pairs.items()), value=value, timestamp=t0 + i)
        body, headers = builder.encode(), v2_headers()
    response = post(http, body, headers)
    assert response.status_code == 204, response.body
    if version == "2.0":
        assert response.headers["X-Prometheus-Remote-Write-Exemplars-Written"] == str(len(sent))
    rows = exemplar_rows(timestream, name, "x")
    # By bits, but for the sign of zero: the local Timestream's sqlite stores -0.0 as 0.
    assert [(bits(float(row["exemplar_value"]) or 0.0), json.loads(row["exemplar_labels"])) for row in rows] == [
        (bits(value or 0.0), pairs) for value, pairs in sent]
    assert read_series(http, t0, t0 + 10, name) == []  # remote read never returns exemplars


@pytest.mark.parametrize("extra", [0, 1])
def test_the_largest_exemplar_that_fits_is_stored_and_the_next_is_refused(http, timestream, extra):
    from chalicelib.config import Settings
    from chalicelib.liveanalytics.records import build_records_v2

    settings = Settings(default_database="prometheus", default_table="metrics")
    labels = [("__name__", "ex"), ("job", "y")]

    def request(size: int) -> RequestV2:
        builder = RequestV2()
        series = builder.series(labels)
        series.exemplars.add(labels_refs=builder.refs([("trace_id", "t" * size)]), value=1.0, timestamp=now_ms() - 1000)
        return builder

    size = 0
    while not build_records_v2(request(size + 1).build(), settings, now_ms()).refused:
        size += 1
    response = post(http, request(size + extra).encode(), v2_headers())
    if extra:
        assert response.status_code == 400 and "exemplar_too_large=1" in response.body.decode()
        assert response.headers["X-Prometheus-Remote-Write-Exemplars-Written"] == "0"
    else:
        assert response.status_code == 204, response.body
        (row,) = exemplar_rows(timestream, "ex", "y")
        assert json.loads(row["exemplar_labels"]) == {"trace_id": "t" * size}
