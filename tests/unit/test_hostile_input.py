"""Nothing a client sends can crash the write path: every body either decodes into records or is
refused with a ConnectorError (a status code), whatever its bytes."""

import contextlib

import pytest
import snappy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.codec import WRITE_V1, WRITE_V2, decode_write_request
from chalicelib.config import Settings
from chalicelib.errors import ConnectorError
from chalicelib.liveanalytics.records import build_records, build_records_v2, series_cache
from chalicelib.prompb import remote_write_v2_pb2 as v2
from tests.helpers import RequestV2, encode, now_ms, write_request

SETTINGS = Settings(default_database="prometheus", default_table="metrics")
LIMIT = 1024 * 1024
VALID = encode(write_request([
    ([("__name__", "node_load1"), ("instance", "a:9100"), ("job", "node")], [(0.5, now_ms())]),
    ([("__name__", "up"), ("prometheusTableLabel", "other")], [(1.0, now_ms()), (float("nan"), now_ms())]),
]))
RAW = snappy.uncompress(VALID)


def _v2_body() -> bytes:
    builder = RequestV2()
    builder.series([("__name__", "node_load1"), ("instance", "a:9100"), ("job", "node")], [(0.5, now_ms())],
                   start_timestamp=now_ms() - 1000, metadata=(2, "1m load average.", ""))
    series = builder.series([("__name__", "up"), ("prometheusTableLabel", "other")],
                            [(1.0, now_ms()), (float("nan"), now_ms())])
    series.exemplars.add(labels_refs=builder.refs([("trace_id", "t1")]), value=1.0, timestamp=now_ms())
    builder.series([("__name__", "h")]).histograms.add(count_int=1, sum=2.0, timestamp=now_ms())
    return builder.encode()


VALID_V2 = _v2_body()
RAW_V2 = snappy.uncompress(VALID_V2)


def decode_and_map(body: bytes, message: str = WRITE_V1) -> None:
    """Decode and map `body`; a refusal must be a one-line 4xx, and is re-raised."""
    try:
        request = decode_write_request(body, message, LIMIT)
        if message == WRITE_V2:
            build_records_v2(request, SETTINGS, now_ms(), series_cache(SETTINGS))
        else:
            build_records(request.timeseries, SETTINGS, now_ms(), series_cache(SETTINGS))
    except ConnectorError as refused:
        assert 400 <= refused.status < 500
        assert "\n" not in refused.message
        raise


def refused_or_mapped(body: bytes, message: str = WRITE_V1) -> None:
    with contextlib.suppress(ConnectorError):
        decode_and_map(body, message)


MESSAGES = pytest.mark.parametrize("message", [WRITE_V1, WRITE_V2], ids=["1.0", "2.0"])


@MESSAGES
@given(body=st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_or_mapped_never_a_crash(message, body):
    refused_or_mapped(body, message)


@MESSAGES
@given(payload=st.binary(max_size=512))
def test_arbitrary_snappy_wrapped_payloads_are_refused_or_mapped(message, payload):
    refused_or_mapped(snappy.compress(payload), message)


@pytest.mark.parametrize(("message", "raw"), [(WRITE_V1, RAW), (WRITE_V2, RAW_V2)], ids=["1.0", "2.0"])
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_valid_requests_are_refused_or_mapped(message, raw, data):
    damaged = bytearray(raw)
    for position, byte in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)),
                                             min_size=1, max_size=8)):
        damaged[position] = byte
    refused_or_mapped(snappy.compress(bytes(damaged)), message)


@pytest.mark.parametrize(("message", "valid"), [(WRITE_V1, VALID), (WRITE_V2, VALID_V2)], ids=["1.0", "2.0"])
def test_every_truncation_of_a_body_is_refused_and_nothing_is_mapped(message, valid):
    # A cut-off body must never be stored in part: snappy's declared length gives the cut away.
    for length in range(len(valid)):
        with pytest.raises(ConnectorError) as refused:
            decode_and_map(valid[:length], message)
        assert refused.value.status == 400, f"cut at {length} of {len(valid)} bytes"


# Structurally random 2.0 requests: references anywhere (in range or not, odd counts), symbols of
# any text, metadata and exemplars pointing anywhere.
refs = st.lists(st.integers(0, 12), max_size=7)
v2_requests = st.builds(
    v2.Request,
    symbols=st.lists(st.text(max_size=6), max_size=10),
    timeseries=st.lists(st.builds(
        v2.TimeSeries,
        labels_refs=refs,
        samples=st.lists(st.builds(v2.Sample, value=st.floats(), timestamp=st.integers(-(2**63), 2**63 - 1),
                                   start_timestamp=st.integers(-(2**63), 2**63 - 1)), max_size=3),
        exemplars=st.lists(st.builds(v2.Exemplar, labels_refs=refs, value=st.floats()), max_size=2),
        metadata=st.builds(v2.Metadata, type=st.integers(0, 7), help_ref=st.integers(0, 12),
                           unit_ref=st.integers(0, 12)),
    ), max_size=5),
)


@given(v2_requests)
def test_any_2_0_request_is_mapped_or_refused_with_a_400(request):
    refused_or_mapped(snappy.compress(request.SerializeToString()), WRITE_V2)


class EmptyTimestream:
    """A timestream-query stand-in with no rows and no dimension columns."""

    def query(self, QueryString, NextToken=None):  # noqa: N803 (botocore's parameter names)
        if QueryString.startswith("DESCRIBE"):
            return {"Rows": [], "ColumnInfo": [{"Name": "Column"}, {"Name": "Type"}, {"Name": "Column Category"}]}
        columns = ("time", "measure_name", "measure_value::double")
        return {"Rows": [], "ColumnInfo": [{"Name": name} for name in columns]}


matcher_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
queries = st.lists(
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1),
              st.lists(st.tuples(st.integers(0, 3), matcher_text, matcher_text), max_size=4)),
    max_size=3,
)


@settings(deadline=None)
@given(queries)
def test_any_read_request_is_answered_or_refused_never_a_crash(specs):
    from chalicelib.liveanalytics.query_client import ColumnsCache
    from chalicelib.liveanalytics.reader import read
    from chalicelib.prompb.prometheus_remote_pb2 import ReadRequest

    request = ReadRequest()
    for start, end, matchers in specs:
        query = request.queries.add(start_timestamp_ms=start, end_timestamp_ms=end)
        for kind, name, value in matchers:
            query.matchers.add(type=kind, name=name, value=value)
    try:
        response = read(request, SETTINGS, EmptyTimestream(), ColumnsCache())
    except ConnectorError as refused:
        assert 400 <= refused.status < 500
    else:
        assert len(response.results) == len(specs)
