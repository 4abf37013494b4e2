import threading

import botocore.session
import pytest
from botocore.stub import Stubber

from chalicelib.errors import RejectedRecord, TimestreamError, TimestreamUnreachable
from chalicelib.liveanalytics.records import MappedSeries, RecordBatch
from chalicelib.liveanalytics.writer import Writer
from tests.botocore_reference import BotocoreSender, write_records_params

DEST = ("prometheus", "metrics")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class ScriptedSender:
    """A writer.Sender that answers each call with the next scripted error (or success), and
    remembers every call with the clock's time when it started."""

    def __init__(self, *errors, clock=None, attempt_seconds=0.0, default=None):
        self.script = list(errors)
        self.default = default
        self.calls = []
        self.clock = clock
        self.attempt_seconds = attempt_seconds

    def write_records(self, database, table, records):
        self.calls.append((self.clock() if self.clock else None, database, table, list(records)))
        if self.clock is not None:
            self.clock.now += self.attempt_seconds  # the attempt itself takes time
        error = self.script.pop(0) if self.script else self.default
        if error is not None:
            raise error


def records(count, name="m"):
    series = MappedSeries(DEST, None, name, (("job", "x"),))
    return [(series, str(float(i)), str(1_800_000_000_000 + i)) for i in range(count)]


def batch_of(**by_table):
    return RecordBatch(records={("prometheus", table): recs for table, recs in by_table.items()})


def throttled():
    return TimestreamError("ThrottlingException", "Rate exceeded", 400)


@pytest.fixture
def clock():
    return FakeClock()


def make_writer(clock, concurrency=1, budget=10.0, attempt_seconds=1.0):
    return Writer(concurrency=concurrency, budget_seconds=budget, attempt_seconds=attempt_seconds,
                  clock=clock, sleep=clock.sleep)


def test_records_are_sent_in_calls_of_at_most_100_per_table(clock):
    recs = records(250)
    sender = ScriptedSender()
    result = make_writer(clock).write(sender, batch_of(metrics=recs))
    sent = [call[3] for call in sender.calls]
    # Where calls end is batching's choice (see test_batching); one series keeps its order.
    assert all(1 <= len(call) <= 100 for call in sent)
    assert [record for call in sent for record in call] == recs
    assert (result.written, result.calls, result.status()) == (250, 3, 204)
    assert result.destinations == {"prometheus.metrics": 250}


def test_one_request_fans_out_to_several_tables(clock):
    first, second = records(3, "a"), records(2, "b")
    sender = ScriptedSender()
    result = make_writer(clock).write(sender, batch_of(one=first, two=second))
    assert sorted((table, len(recs)) for _, _, table, recs in sender.calls) == [("one", 3), ("two", 2)]
    assert result.destinations == {"prometheus.one": 3, "prometheus.two": 2}
    assert result.status() == 204


@pytest.mark.parametrize(
    ("code", "http_status"),
    [("ThrottlingException", 400), ("InternalServerException", 500), ("ServiceUnavailable", 503),
     ("SomethingNew", 502)],
)
def test_transient_errors_are_retried_then_succeed(clock, code, http_status):
    error = TimestreamError(code, "slow down", http_status)
    sender = ScriptedSender(error, error)
    result = make_writer(clock).write(sender, batch_of(metrics=records(5)))
    assert (result.written, result.retries, result.status(), len(sender.calls)) == (5, 2, 204, 3)


def test_no_attempt_starts_that_cannot_finish_within_the_budget(clock):
    # Each attempt takes the full attempt time; the writer must count it before starting one.
    sender = ScriptedSender(clock=clock, attempt_seconds=1.0, default=throttled())
    result = make_writer(clock, budget=5.0, attempt_seconds=1.0).write(sender, batch_of(metrics=records(5)))
    starts = [call[0] for call in sender.calls]
    assert len(starts) >= 3, "throttling within the budget is retried"
    assert all(start + 1.0 <= 5.0 for start in starts), starts
    assert result.status() == 503
    assert result.failures[0].error.reason == "throttled"
    assert "ThrottlingException" in result.error_message()
    assert f"gave up after {len(starts)} attempts" in result.error_message()
    assert result.written == 0 and result.retries == len(starts) - 1


def test_a_budget_shorter_than_one_attempt_still_makes_one_attempt(clock):
    sender = ScriptedSender(default=throttled())
    result = make_writer(clock, budget=0.5, attempt_seconds=1.0).write(sender, batch_of(metrics=records(2)))
    assert len(sender.calls) == 1
    assert (result.status(), result.retries) == (503, 0)


def test_a_budget_shorter_than_one_attempt_still_writes(clock):
    result = make_writer(clock, budget=0.5, attempt_seconds=1.0).write(ScriptedSender(), batch_of(metrics=records(2)))
    assert (result.status(), result.written) == (204, 2)


def test_timeouts_that_outlast_the_budget_are_503_so_prometheus_resends(clock):
    sender = ScriptedSender(default=TimestreamUnreachable("ReadTimeoutError: read timed out"))
    result = make_writer(clock, budget=3.0).write(sender, batch_of(metrics=records(2)))
    assert result.status() == 503
    assert result.failures[0].error.reason == "unreachable"
    assert "retry later" in result.error_message()


def test_rejected_records_are_counted_and_the_rest_of_the_call_stands(clock):
    error = TimestreamError("RejectedRecordsException", "One or more records have been rejected.", 419, (
        RejectedRecord(3, "A record with the same time and dimensions but a different measure value "
                          "already exists (version conflict)."),
        RejectedRecord(7, "The record timestamp is outside the time range of the data ingestion window "
                          "(memory store retention)."),
        RejectedRecord(8, "Something Timestream has not said before."),
    ))
    result = make_writer(clock).write(ScriptedSender(error), batch_of(metrics=records(10)))
    assert result.written == 7
    assert result.rejected == {"conflicting_value": 1, "outside_retention": 1, "other": 1}
    assert result.retries == 0
    assert result.status() == 400
    message = result.error_message()
    assert "record 3" in message and "7 records written" in message


def test_rejected_records_without_a_list_count_the_whole_call_rejected_never_written(clock):
    error = TimestreamError("RejectedRecordsException", "One or more records have been rejected.", 419)
    result = make_writer(clock).write(ScriptedSender(error), batch_of(metrics=records(10)))
    assert (result.written, result.rejected, result.status()) == (0, {"other": 10}, 400)
    assert result.destinations == {"prometheus.metrics": 0}
    assert "0 records written" in result.error_message()


@pytest.mark.parametrize(
    ("code", "http_status", "status", "reason"),
    [
        ("AccessDeniedException", 403, 403, "forbidden"),
        ("UnrecognizedClientException", 400, 403, "forbidden"),
        ("InvalidSignatureException", 400, 403, "forbidden"),
        ("ExpiredTokenException", 400, 403, "forbidden"),
        ("ResourceNotFoundException", 404, 404, "not_found"),
        ("ValidationException", 400, 400, "bad_request"),
    ],
)
def test_permanent_errors_are_not_retried_and_map_to_4xx(clock, code, http_status, status, reason):
    sender = ScriptedSender(TimestreamError(code, "the message from AWS", http_status))
    result = make_writer(clock).write(sender, batch_of(metrics=records(3)))
    assert (result.retries, len(sender.calls)) == (0, 1)
    assert result.failures[0].error.reason == reason
    assert result.status() == status
    assert "on prometheus.metrics" in result.error_message() or "prometheus.metrics does not" in result.error_message()
    assert code in result.error_message()


def test_refused_credentials_never_repeat_aws_text(clock):
    sender = ScriptedSender(TimestreamError("AccessDeniedException", "User arn:aws:iam::123:user/x is not", 403))
    message = make_writer(clock).write(sender, batch_of(metrics=records(1))).error_message()
    assert "arn:aws" not in message and "AccessDeniedException" in message


class PerTable:
    """A sender whose answer depends on the table, so mixed failures are deterministic."""

    def __init__(self, errors):
        self.errors = errors

    def write_records(self, database, table, records):
        error = self.errors.get(table)
        if error is not None:
            raise error


@pytest.mark.parametrize(
    ("tables", "status"),
    [
        ({"gone": TimestreamError("ResourceNotFoundException", "no table", 404),
          "busy": TimestreamError("InternalServerException", "oops", 500)}, 503),
        ({"gone": TimestreamError("ResourceNotFoundException", "no table", 404),
          "denied": TimestreamError("AccessDeniedException", "no", 403)}, 403),
        ({"gone": TimestreamError("ResourceNotFoundException", "no table", 404),
          "bad": TimestreamError("ValidationException", "no", 400)}, 404),
    ],
)
def test_the_status_that_lets_most_data_through_wins_when_failures_mix(clock, tables, status):
    batch = batch_of(ok=records(1), **{table: records(1) for table in tables})
    result = make_writer(clock, budget=2.0).write(PerTable(tables), batch)
    assert result.status() == status
    assert result.written == 1
    assert result.outcome().status == status


def test_a_refused_series_beside_a_missing_table_is_still_a_404(clock):
    batch = batch_of(gone=records(1))
    batch.refused["missing_metric_name"] = 2
    result = make_writer(clock).write(PerTable({"gone": TimestreamError("ResourceNotFoundException", "x", 404)}),
                                      batch)
    assert result.status() == 404
    assert "samples refused: missing_metric_name=2" in result.error_message()


def test_the_outcome_carries_status_message_and_log_fields(clock):
    batch = batch_of(metrics=records(2))
    batch.dropped["nan"] = 1
    outcome = make_writer(clock).write(ScriptedSender(), batch).outcome()
    assert (outcome.status, outcome.message) == (204, "")
    assert outcome.log_fields == {"written": 2, "histograms_written": 0, "exemplars_written": 0, "dropped": {"nan": 1}, "refused": {}, "rejected": {}, "retries": 0,
                                  "throttles": 0, "calls": 1, "write_units": 1, "destinations": {"prometheus.metrics": 2}}


class BarrierSender:
    """Every call waits until `parties` calls are in flight at once."""

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties, timeout=5)

    def write_records(self, database, table, records):
        self.barrier.wait()


def test_calls_of_one_request_run_concurrently():
    writer = Writer(concurrency=4, budget_seconds=10, attempt_seconds=1)
    result = writer.write(BarrierSender(4), batch_of(metrics=records(400)))
    assert (result.written, result.calls) == (400, 4)


def test_unexpected_exceptions_propagate_instead_of_being_counted_as_written(clock):
    with pytest.raises(KeyError):
        make_writer(clock).write(ScriptedSender(KeyError("a bug, not an AWS error")), batch_of(metrics=records(1)))


# botocore's client raises ClientError; through from_botocore the writer decides the same.

@pytest.fixture
def stubbed():
    client = botocore.session.get_session().create_client(
        "timestream-write", region_name="us-east-1", endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="AKIATESTEXAMPLE00001", aws_secret_access_key="secret",
    )
    with Stubber(client) as stubber:
        yield client, stubber


def test_botocore_client_errors_are_classified_like_the_connector_own(stubbed, clock):
    client, stubber = stubbed
    recs = records(3)
    stubber.add_client_error("write_records", "ThrottlingException", "Rate exceeded", 400)
    stubber.add_response("write_records", {"RecordsIngested": {"Total": 3}}, write_records_params(*DEST, recs))
    result = make_writer(clock).write(BotocoreSender(client), batch_of(metrics=recs))
    assert (result.written, result.retries, result.status()) == (3, 1, 204)


def test_botocore_rejected_records_are_counted_like_the_connector_own(stubbed, clock):
    client, stubber = stubbed
    stubber.add_client_error(
        "write_records", "RejectedRecordsException", "rejected", 419, response_meta={},
        modeled_fields={"RejectedRecords": [{"RecordIndex": 1, "Reason": "version conflict"}]},
    )
    result = make_writer(clock).write(BotocoreSender(client), batch_of(metrics=records(3)))
    assert (result.written, result.rejected) == (2, {"conflicting_value": 1})


def test_the_backoff_counts_against_the_budget_before_an_attempt_starts(clock, monkeypatch):
    # The longest backoff each time, so the budget check must include it to stay inside.
    monkeypatch.setattr("chalicelib.liveanalytics.writer.random.uniform", lambda low, high: high)
    sender = ScriptedSender(clock=clock, attempt_seconds=1.0, default=throttled())
    make_writer(clock, budget=4.0, attempt_seconds=1.0).write(sender, batch_of(metrics=records(1)))
    starts = [call[0] for call in sender.calls]
    assert len(starts) >= 2 and all(start + 1.0 <= 4.0 for start in starts), starts


class ManySender(ScriptedSender):
    """A sender that sends a request's calls together first (as transport.WriteRecordsSender
    does): `first` scripts the outcome of each call's first attempt, in call order."""

    def __init__(self, first, *errors):
        super().__init__(*errors)
        self.first = list(first)
        self.batches = []

    def write_records_many(self, calls, in_flight):
        self.batches.append((len(calls), in_flight))
        return [self.first.pop(0) for _ in calls]


def test_calls_sent_together_are_retried_one_by_one_only_where_they_failed(clock):
    sender = ManySender([None, throttled(), None])  # the retry (write_records) succeeds
    result = make_writer(clock, concurrency=8).write(sender, batch_of(a=records(10), b=records(10), c=records(10)))
    assert sender.batches == [(3, 8)]
    assert [call[2] for call in sender.calls] == ["b"]
    assert (result.written, result.calls, result.retries, result.throttles, result.status()) == (30, 3, 1, 1, 204)
    assert result.write_units > 0


def test_a_permanent_failure_of_a_call_sent_together_is_not_retried(clock):
    denied = TimestreamError("AccessDeniedException", "no", 400)
    sender = ManySender([None, denied])
    result = make_writer(clock, concurrency=8).write(sender, batch_of(a=records(10), b=records(10)))
    assert sender.calls == []
    assert (result.written, result.status()) == (10, 403)


def test_a_sender_that_cannot_send_together_gets_every_call_one_by_one(clock):
    class Proxied(ManySender):
        def write_records_many(self, calls, in_flight):
            return None  # e.g. behind a proxy

    sender = Proxied([])
    result = make_writer(clock, concurrency=8).write(sender, batch_of(a=records(10), b=records(10)))
    assert sorted(call[2] for call in sender.calls) == ["a", "b"]
    assert result.written == 20


def test_when_sending_together_fails_outright_every_call_finds_out_why_on_its_own(clock):
    class Undiscoverable(ManySender):
        def write_records_many(self, calls, in_flight):
            raise TimestreamUnreachable("DescribeEndpoints: could not reach")

    sender = Undiscoverable([], TimestreamUnreachable("down"), None, None)
    result = make_writer(clock, concurrency=8).write(sender, batch_of(a=records(10), b=records(10)))
    assert len(sender.calls) == 3
    assert (result.written, result.retries, result.status()) == (20, 1, 204)
