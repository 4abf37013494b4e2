"""The InfluxDB writer: requests of INFLUXDB_BATCH_LINES lines, what each InfluxDB answer means
for the lines and the sender, 413 splits, retries within the budget, identical rewrites."""

from __future__ import annotations

import json
import threading

import pytest

from chalicelib.influxdb.client import InfluxDBError, InfluxDBUnreachable
from chalicelib.influxdb.records import LineBatch
from chalicelib.influxdb.writer import Writer, rejected_count, rejection_reason
from chalicelib.series import DROP_NAN

AUTH = "Basic dTpw"


class FakeClient:
    """Answers each /write with the next of `answers` (an exception to raise, or None for 204)."""

    def __init__(self, *answers, default=None, max_lines=None):
        self.answers = list(answers)
        self.default = default
        self.max_lines = max_lines
        self.calls: list[tuple[str, bytes, str | None]] = []
        self.lock = threading.Lock()

    def write(self, database, body, authorization):
        with self.lock:
            self.calls.append((database, body, authorization))
            answer = self.answers.pop(0) if self.answers else self.default
        if self.max_lines is not None and body.count(b"\n") > self.max_lines:
            raise InfluxDBError(413, "Request Entity Too Large")
        if answer is not None:
            raise answer


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def writer(batch_lines=5000, budget=20.0, attempt=7.0, clock=None):
    clock = clock or Clock()
    return Writer(concurrency=4, budget_seconds=budget, attempt_seconds=attempt, batch_lines=batch_lines,
                  clock=clock, sleep=clock.sleep)


def batch(n=3, database="prom", **kinds):
    lines = LineBatch()
    lines.samples[database] = [f"m,__name__=m value={i}.0 {1000 + i}\n" for i in range(n)]
    for kind, count in kinds.items():
        getattr(lines, kind)[database] = [f"m,__name__=m histogram=\"x\" {2000 + i}\n" for i in range(count)]
    return lines


def test_everything_written_is_204_with_the_authorization_forwarded():
    client = FakeClient()
    report = writer().write(client, AUTH, batch(3))
    assert report.status() == 204 and report.written == 3 and report.calls == 1
    assert client.calls == [("prom", b"".join(line.encode() for line in batch(3).samples["prom"]), AUTH)]


def test_lines_go_in_requests_of_batch_lines_each_and_kinds_apart():
    client = FakeClient()
    report = writer(batch_lines=2).write(client, AUTH, batch(5, histograms=3))
    assert sorted(body.count(b"\n") for _, body, _ in client.calls) == [1, 1, 2, 2, 2]
    assert (report.written, report.histograms_written, report.calls) == (5, 3, 5)
    assert report.written_counts() == (5, 3, 0)


def test_a_413_splits_the_request_in_halves_until_it_fits():
    client = FakeClient(max_lines=2)
    report = writer().write(client, AUTH, batch(7))
    assert report.status() == 204 and report.written == 7
    assert report.extra["splits"] == 3
    written = b"".join(body for _, body, _ in client.calls if body.count(b"\n") <= 2)
    assert written == b"".join(line.encode() for line in batch(7).samples["prom"])


def test_a_single_line_too_large_is_rejected_and_the_rest_written():
    client = FakeClient(max_lines=0)
    report = writer().write(client, AUTH, batch(2))
    assert report.rejected == {"too_large": 2} and report.written == 0
    assert report.status() == 400


PARTIAL_1X = 'partial write: field type conflict: input field "value" on measurement "m" is type integer, already exists as type float dropped=2'


def test_a_partial_write_counts_the_dropped_lines_and_answers_400_naming_the_first_culprit_never_retried():
    client = FakeClient(InfluxDBError(400, PARTIAL_1X))
    report = writer().write(client, AUTH, batch(5))
    assert (report.written, report.rejected, report.retries) == (3, {"field_type_conflict": 2}, 0)
    assert len(client.calls) == 1
    outcome = report.outcome()
    assert outcome.status == 400
    assert 'on measurement "m"' in outcome.message and "database 'prom'" in outcome.message
    assert "3 lines written" in outcome.message


def test_influxdb_3_partial_writes_count_the_lines_it_lists():
    body = json.dumps({"error": "partial write of line protocol occurred", "data": [
        {"original_line": "m value=1", "line_number": 2, "error_message": "invalid column type for column 'value'"},
        {"original_line": "m value=2", "line_number": 3, "error_message": "invalid column type"}]}).encode()
    report = writer().write(FakeClient(InfluxDBError(400, "partial write of line protocol occurred", body)), AUTH,
                            batch(4))
    assert report.written == 2 and sum(report.rejected.values()) == 2
    assert "line 2: invalid column type for column 'value'" in report.outcome().message


@pytest.mark.parametrize(("status", "message", "reason"), [
    (422, "partial write: points beyond retention policy dropped=1", "outside_retention"),
    (400, "partial write: max-series-per-database limit exceeded: (1000000) dropped=1", "series_limit"),
    (400, "partial write: unable to parse 'm value=': missing field value dropped=0", "unparsable"),
])
def test_rejections_are_counted_under_their_reason(status, message, reason):
    report = writer().write(FakeClient(InfluxDBError(status, message)), AUTH, batch(3))
    assert report.rejected == {reason: 1} and report.written == 2


def test_a_400_that_says_nothing_of_which_lines_stood_rejects_them_all():
    count, culprit = rejected_count(InfluxDBError(400, "unable to parse 'x': invalid field format"), 5)
    assert (count, culprit) == (5, "unable to parse 'x': invalid field format")
    assert rejection_reason("bad timestamp") == "other"


@pytest.mark.parametrize(("status", "expected", "named"), [
    (401, 401, "credentials"), (403, 403, "may not write"), (404, 404, "database 'prom' does not exist"),
    (405, 400, "refused the write to database 'prom'"),
])
def test_whole_request_refusals_map_to_the_senders_status_and_are_not_retried(status, expected, named):
    client = FakeClient(default=InfluxDBError(status, "no such thing"))
    report = writer().write(client, AUTH, batch(3))
    outcome = report.outcome()
    assert outcome.status == expected and named in outcome.message
    assert len(client.calls) == 1 and report.written == 0
    assert "3 lines not stored" in outcome.message


def test_influxdbs_own_text_of_refused_credentials_is_never_echoed():
    client = FakeClient(default=InfluxDBError(403, '"secret-user" user is not authorized to write to database "prom"'))
    assert "secret-user" not in writer().write(client, AUTH, batch(1)).outcome().message


@pytest.mark.parametrize("failure", [InfluxDBError(500, "engine: cache full"), InfluxDBError(503, "busy"),
                                     InfluxDBError(429, "too many requests"), InfluxDBUnreachable("refused")])
def test_transient_failures_are_retried_and_a_success_rewrites_identical_lines(failure):
    client = FakeClient(failure, failure)
    report = writer().write(client, AUTH, batch(3))
    assert report.status() == 204 and report.written == 3 and report.retries == 2
    assert len({body for _, body, _ in client.calls}) == 1
    assert report.throttles == (2 if getattr(failure, "status", 0) == 429 else 0)


def test_transient_failures_past_the_budget_answer_503_and_say_how_many_attempts():
    clock = Clock()
    client = FakeClient(default=InfluxDBError(503, "busy"))
    report = writer(budget=3.0, attempt=1.0, clock=clock).write(client, AUTH, batch(3))
    outcome = report.outcome()
    assert outcome.status == 503 and "gave up after" in outcome.message
    assert clock.now <= 3.0 and len(client.calls) >= 2


def test_a_budget_shorter_than_one_attempt_makes_exactly_one():
    client = FakeClient(default=InfluxDBUnreachable("timed out"))
    report = writer(budget=1.0, attempt=7.0).write(client, AUTH, batch(3))
    assert len(client.calls) == 1 and report.status() == 503


def test_transient_beats_permanent_so_the_sender_retries_what_can_succeed():
    lines = batch(2)
    lines.samples["other"] = ["m value=1 1\n"]

    class PerDatabase(FakeClient):
        def write(self, database, body, authorization):
            super().write(database, body, authorization)
            raise InfluxDBError(404, "database not found") if database == "other" else InfluxDBError(503, "busy")

    report = writer(budget=0.5, attempt=1.0).write(PerDatabase(), AUTH, lines)
    assert report.status() == 503


def test_dropped_samples_count_as_written_in_2_0_and_refusals_make_400():
    lines = batch(1)
    lines.dropped[DROP_NAN] += 2
    lines.refuse("newline_in_label", 1, type("S", (), {"describe": lambda self: 'm{a="x\\ny"}'})())
    report = writer().write(FakeClient(), AUTH, lines)
    assert report.written_counts() == (3, 0, 0)
    assert report.status() == 400 and 'newline_in_label=1 (first: m{a="x\\ny"})' in report.outcome().message


def test_calls_run_concurrently():
    barrier = threading.Barrier(3, timeout=5)

    class Concurrent(FakeClient):
        def write(self, database, body, authorization):
            super().write(database, body, authorization)
            barrier.wait()  # only passes when three calls are in flight at once

    report = writer(batch_lines=1).write(Concurrent(), AUTH, batch(3))
    assert report.written == 3
