"""Nothing a client sends can crash the write path: every body either decodes into records or is
refused with a ConnectorError (a status code), whatever its bytes."""

import contextlib

import pytest
import snappy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.codec import decode_write_request
from chalicelib.config import Settings
from chalicelib.errors import ConnectorError
from chalicelib.records import SeriesCache, build_records
from tests.helpers import encode, now_ms, write_request

SETTINGS = Settings(default_database="prometheus", default_table="metrics")
LIMIT = 1024 * 1024
VALID = encode(write_request([
    ([("__name__", "node_load1"), ("instance", "a:9100"), ("job", "node")], [(0.5, now_ms())]),
    ([("__name__", "up"), ("prometheusTableLabel", "other")], [(1.0, now_ms()), (float("nan"), now_ms())]),
]))
RAW = snappy.uncompress(VALID)


def decode_and_map(body: bytes) -> None:
    """Decode and map `body`; a refusal must be a one-line 4xx, and is re-raised."""
    try:
        request = decode_write_request(body, "application/x-protobuf", "snappy", LIMIT)
        build_records(request.timeseries, SETTINGS, now_ms(), SeriesCache(SETTINGS))
    except ConnectorError as refused:
        assert 400 <= refused.status < 500
        assert "\n" not in refused.message
        raise


def refused_or_mapped(body: bytes) -> None:
    with contextlib.suppress(ConnectorError):
        decode_and_map(body)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_are_refused_or_mapped_never_a_crash(body):
    refused_or_mapped(body)


@given(st.binary(max_size=512))
def test_arbitrary_snappy_wrapped_payloads_are_refused_or_mapped(payload):
    refused_or_mapped(snappy.compress(payload))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(RAW) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_valid_requests_are_refused_or_mapped(corruptions):
    damaged = bytearray(RAW)
    for position, byte in corruptions:
        damaged[position] = byte
    refused_or_mapped(snappy.compress(bytes(damaged)))


def test_every_truncation_of_a_body_is_refused_and_nothing_is_mapped():
    # A cut-off body must never be stored in part: snappy's declared length gives the cut away.
    for length in range(len(VALID)):
        with pytest.raises(ConnectorError) as refused:
            decode_and_map(VALID[:length])
        assert refused.value.status == 400, f"cut at {length} of {len(VALID)} bytes"


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
    from chalicelib.prompb.prometheus_remote_pb2 import ReadRequest
    from chalicelib.query_client import ColumnsCache
    from chalicelib.reader import read

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
