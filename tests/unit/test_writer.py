import threading

import botocore.session
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from chalicelib.records import MappedSeries, RecordBatch
from chalicelib.write_body import send_with_botocore_serializer, write_records_params
from chalicelib.writer import FORBIDDEN, INVALID, NOT_FOUND, TRANSIENT, Writer

DEST = ("prometheus", "metrics")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def records(count, name="m"):
    series = MappedSeries(DEST, None, name, (("job", "x"),))
    return [(series, str(float(i)), str(1_800_000_000_000 + i)) for i in range(count)]


def batch_of(**by_table):
    return RecordBatch(records={("prometheus", table): recs for table, recs in by_table.items()})


@pytest.fixture
def client():
    session = botocore.session.get_session()
    return session.create_client(
        "timestream-write", region_name="us-east-1", endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="AKIATESTEXAMPLE00001", aws_secret_access_key="secret",
    )


@pytest.fixture
def clock():
    return FakeClock()


def make_writer(clock, concurrency=1, budget=10.0):
    # Stubber checks parameters, so these tests use botocore's own serializer; the prebuilt
    # body is tested in test_write_body.py.
    return Writer(concurrency=concurrency, budget_seconds=budget, attempt_seconds=1.0,
                  clock=clock, sleep=clock.sleep, send=send_with_botocore_serializer)


def ok(count):
    return {"RecordsIngested": {"Total": count, "MemoryStore": count, "MagneticStore": 0}}


def expect_write(stubber, recs, table="metrics"):
    stubber.add_response("write_records", ok(len(recs)), write_records_params("prometheus", table, recs))


def test_records_are_sent_in_calls_of_at_most_100_per_table(client, clock):
    recs = records(250)
    with Stubber(client) as stubber:
        for start in (0, 100, 200):
            expect_write(stubber, recs[start:start + 100])
        result = make_writer(clock).write(client, batch_of(metrics=recs))
        stubber.assert_no_pending_responses()
    assert (result.written, result.calls, result.status()) == (250, 3, 204)
    assert result.destinations == {"prometheus.metrics": 250}


def test_one_request_fans_out_to_several_tables(client, clock):
    first, second = records(3, "a"), records(2, "b")
    with Stubber(client) as stubber:
        expect_write(stubber, first, "one")
        expect_write(stubber, second, "two")
        result = make_writer(clock).write(client, batch_of(one=first, two=second))
    assert result.destinations == {"prometheus.one": 3, "prometheus.two": 2}
    assert result.status() == 204


@pytest.mark.parametrize(
    ("code", "http_status"),
    [("ThrottlingException", 400), ("InternalServerException", 500), ("ServiceUnavailable", 503)],
)
def test_transient_errors_are_retried_then_succeed(client, clock, code, http_status):
    recs = records(5)
    with Stubber(client) as stubber:
        stubber.add_client_error("write_records", code, "slow down", http_status)
        stubber.add_client_error("write_records", code, "slow down", http_status)
        expect_write(stubber, recs)
        result = make_writer(clock).write(client, batch_of(metrics=recs))
    assert (result.written, result.retries, result.status()) == (5, 2, 204)


def test_throttling_past_the_time_budget_is_a_5xx_so_prometheus_retries(client, clock):
    recs = records(5)
    with Stubber(client) as stubber:
        for _ in range(200):
            stubber.add_client_error("write_records", "ThrottlingException", "Rate exceeded", 400)
        result = make_writer(clock, budget=5.0).write(client, batch_of(metrics=recs))
    assert result.status() == 503
    assert result.failures[0].kind == TRANSIENT
    assert "ThrottlingException" in result.error_message()
    assert result.written == 0 and result.retries > 0
    assert clock.now <= 5.0, "no attempt may start that cannot finish within the budget"


def test_rejected_records_are_counted_and_the_rest_of_the_call_stands(client, clock):
    recs = records(10)
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "write_records", "RejectedRecordsException", "One or more records have been rejected.", 419,
            response_meta={},
            modeled_fields={"RejectedRecords": [
                {"RecordIndex": 3, "Reason": "A record with the same time and dimensions but a different "
                                               "measure value already exists (version conflict).",
                 "ExistingVersion": 1},
                {"RecordIndex": 7, "Reason": "The record timestamp is outside the time range of the "
                                               "data ingestion window (memory store retention)."},
            ]},
        )
        result = make_writer(clock).write(client, batch_of(metrics=recs))
    assert result.written == 8
    assert result.rejected == {"conflicting_value": 1, "outside_retention": 1}
    assert result.status() == 400
    assert "record 3" in result.error_message() and "8 records written" in result.error_message()


@pytest.mark.parametrize(
    ("code", "http_status", "kind", "status"),
    [
        ("AccessDeniedException", 403, FORBIDDEN, 403),
        ("UnrecognizedClientException", 400, FORBIDDEN, 403),
        ("InvalidSignatureException", 400, FORBIDDEN, 403),
        ("ResourceNotFoundException", 404, NOT_FOUND, 404),
        ("ValidationException", 400, INVALID, 400),
    ],
)
def test_permanent_errors_are_not_retried_and_map_to_4xx(client, clock, code, http_status, kind, status):
    with Stubber(client) as stubber:
        stubber.add_client_error("write_records", code, "the message from AWS", http_status)
        result = make_writer(clock).write(client, batch_of(metrics=records(3)))
        stubber.assert_no_pending_responses()
    assert result.retries == 0
    assert result.failures[0].kind == kind
    assert result.status() == status
    assert "prometheus.metrics: " + code in result.error_message()


def test_transient_failure_wins_over_permanent_so_the_request_is_retried(client, clock):
    with Stubber(client) as stubber:
        stubber.add_client_error("write_records", "ResourceNotFoundException", "no table", 404)
        for _ in range(100):
            stubber.add_client_error("write_records", "InternalServerException", "oops", 500)
        result = make_writer(clock, budget=2.0).write(client, batch_of(gone=records(1), metrics=records(1)))
    assert result.status() == 503


class FlakyClient:
    """Raises a connection error on the first call, then succeeds."""

    def __init__(self):
        self.calls = 0

    def write_records(self, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise EndpointConnectionError(endpoint_url="http://timestream")
        return ok(len(kwargs["Records"]))


def test_connection_errors_are_retried(clock):
    result = make_writer(clock).write(FlakyClient(), batch_of(metrics=records(4)))
    assert (result.written, result.retries, result.status()) == (4, 1, 204)


class BarrierClient:
    """Every call waits until `parties` calls are in flight at once."""

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties, timeout=5)

    def write_records(self, **kwargs):
        self.barrier.wait()
        return ok(len(kwargs["Records"]))


def test_calls_of_one_request_run_concurrently():
    writer = Writer(concurrency=4, budget_seconds=10, attempt_seconds=1, send=send_with_botocore_serializer)
    result = writer.write(BarrierClient(4), batch_of(metrics=records(400)))
    assert (result.written, result.calls) == (400, 4)


class BrokenClient:
    def write_records(self, **kwargs):
        raise KeyError("a bug, not an AWS error")


def test_unexpected_exceptions_propagate_instead_of_being_counted_as_written(clock):
    with pytest.raises(KeyError):
        make_writer(clock).write(BrokenClient(), batch_of(metrics=records(1)))
