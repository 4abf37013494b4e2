"""Unit tests of chalicelib.liveanalytics.query_client: DESCRIBE answers, the columns cache, error mapping,
and one caller's QueryClient."""

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from chalicelib.config import Settings
from chalicelib.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable, classify
from chalicelib.liveanalytics.query_client import ColumnsCache, QueryClient, fetch_pages, parse_describe
from tests.unit.timestream_answers import FakeClock, RecordingClient, describe_page, page, query_client

# ------------------------------------------------------------------------------------------
# DESCRIBE and the columns cache


def test_describe_keeps_only_dimensions():
    rows = [["job", "varchar", "DIMENSION"], ["measure_value::double", "double", "MEASURE_VALUE"],
            ["measure_name", "varchar", "MEASURE_NAME"], ["time", "timestamp", "TIMESTAMP"],
            ["instance", "varchar", "DIMENSION"]]
    as_answered = page(["Column", "Type", "Column Category"], rows[:3])
    as_documented = page(["Column", "Type", "Timestream attribute type"], rows[3:])
    assert parse_describe([as_answered, as_documented]) == {"job", "instance"}


def test_cache_keeps_columns_for_the_ttl():
    clock = FakeClock()
    cache = ColumnsCache(ttl_seconds=60, clock=clock)
    loads = []

    def load():
        loads.append(clock.now)
        return frozenset({"job"})

    assert cache.columns("k", load) == {"job"}
    clock.now += 59
    assert cache.columns("k", load) == {"job"} and cache.get("k") == {"job"}
    clock.now += 1
    assert cache.get("k") is None
    cache.columns("k", load)
    assert loads == [100.0, 160.0]


def test_cache_reloads_early_for_an_unknown_label_but_not_too_often():
    clock = FakeClock()
    cache = ColumnsCache(ttl_seconds=60, refresh_unknown_after_seconds=5, clock=clock)
    versions = iter([frozenset({"job"}), frozenset({"job", "zone"})])
    cache.columns("k", lambda: next(versions))
    clock.now += 4
    assert cache.columns("k", lambda: next(versions), wanted={"zone"}) == {"job"}
    clock.now += 1
    assert cache.columns("k", lambda: next(versions), wanted={"zone"}) == {"job", "zone"}


def test_the_configured_ttl_and_refresh_interval_hold_to_the_boundary():
    clock = FakeClock(1000.0)
    configured = Settings(read_columns_ttl_seconds=30, read_columns_refresh_seconds=2)
    cache = ColumnsCache.from_settings(configured, clock)
    loads = []

    def load():
        loads.append(clock.now)
        return frozenset({"job"})

    cache.columns("k", load, wanted={"job"})
    # A wanted label the entry lacks reloads it only once the entry is refresh-interval old.
    clock.now = 1001.75
    assert cache.columns("k", load, wanted={"zone"}) == {"job"}
    assert loads == [1000.0]
    clock.now = 1002.0
    cache.columns("k", load, wanted={"job"})
    assert loads == [1000.0]  # known labels never reload early
    cache.columns("k", load, wanted={"zone"})
    assert loads == [1000.0, 1002.0]
    # Known labels keep the (reloaded) entry until it is exactly TTL old.
    clock.now = 1031.75
    cache.columns("k", load, wanted={"job"})
    assert cache.get("k") == {"job"} and loads == [1000.0, 1002.0]
    clock.now = 1032.0
    assert cache.get("k") is None
    cache.columns("k", load, wanted={"job"})
    assert loads == [1000.0, 1002.0, 1032.0]


def test_the_configured_size_bounds_the_cache():
    cache = ColumnsCache.from_settings(Settings(read_columns_cache_size=1), FakeClock())
    cache.put("a", frozenset({"a"}))
    cache.put("b", frozenset({"b"}))
    assert cache.get("a") is None and cache.get("b") == {"b"}


def test_cache_is_bounded():
    cache = ColumnsCache(max_entries=2, clock=FakeClock())
    for key in "abc":
        cache.put(key, frozenset({key}))
    assert cache.get("a") is None and cache.get("c") == {"c"}


# ------------------------------------------------------------------------------------------
# Error mapping


@pytest.mark.parametrize(
    ("code", "status", "message", "error"),
    [
        ("ThrottlingException", 400, "slow down", ServiceUnavailable),
        ("InternalServerException", 500, "oops", ServiceUnavailable),
        ("SomethingNew", 503, "later", ServiceUnavailable),
        ("AccessDeniedException", 400, "no", Forbidden),
        ("UnrecognizedClientException", 400, "who", Forbidden),
        ("InvalidSignatureException", 400, "sig", Forbidden),
        ("ResourceNotFoundException", 400, "gone", NotFound),
        ("ValidationException", 400, "Requested database 'abc' not found for identifier 'abc.t' at line 1:15",
         NotFound),
        ("ValidationException", 400, "line 1:20: mismatched input", BadRequest),
        ("QueryExecutionException", 400, "too much", BadRequest),
    ],
)
def test_aws_errors_map_to_statuses(code, status, message, error):
    client = query_client()
    with Stubber(client) as stub:
        stub.add_client_error("query", service_error_code=code, service_message=message,
                              http_status_code=status)
        with pytest.raises(error) as caught:
            list(fetch_pages(client, "SELECT 1", "db", "tbl"))
    assert "\n" not in caught.value.message
    if error is Forbidden:
        assert message not in caught.value.message  # AWS's text is not echoed for auth failures


@pytest.mark.parametrize("error", [
    ReadTimeoutError(endpoint_url="https://x"), ConnectTimeoutError(endpoint_url="https://x"),
    EndpointConnectionError(endpoint_url="https://x"),
])
def test_timeouts_are_transient(error):
    assert isinstance(classify(error), ServiceUnavailable)


def test_other_exceptions_are_not_mapped():
    assert classify(KeyError("bug")) is None


# ------------------------------------------------------------------------------------------
# QueryClient


def test_dimensions_are_described_once_per_caller_and_table():
    cache = ColumnsCache()
    alice_timestream = RecordingClient(describe_page("job"), page([], []))
    bob_timestream = RecordingClient(describe_page("job", "zone"), page([], []))
    alice = QueryClient(alice_timestream, cache, cache_scope="AKIDALICE")
    bob = QueryClient(bob_timestream, cache, cache_scope="AKIDBOB")
    assert alice.dimensions("db1", "tbl") == {"job"}
    # Bob's DESCRIBE answers Bob, though Alice's entry for the same table is fresh.
    assert bob.dimensions("db1", "tbl") == {"job", "zone"}
    assert alice.dimensions("db1", "tbl") == {"job"}
    assert alice.dimensions("db1", "other", wanted={"job"}) == {"job"}
    assert alice_timestream.sent == ['DESCRIBE "db1"."tbl"', 'DESCRIBE "db1"."other"']
    assert bob_timestream.sent == ['DESCRIBE "db1"."tbl"']


def test_pages_name_the_table_in_errors():
    client = query_client()
    with Stubber(client) as stub:
        stub.add_client_error("query", service_error_code="ValidationException",
                              service_message="Requested table 'tbl' not found for identifier 'db1.tbl'")
        with pytest.raises(NotFound, match=r"db1\.tbl"):
            list(QueryClient(client, ColumnsCache()).pages('SELECT * FROM "db1"."tbl"', "db1", "tbl"))
