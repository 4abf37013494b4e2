"""Batched Timestream writer: <=100 records per WriteRecords call, calls of one request sent
concurrently, transient failures retried with backoff inside a time budget.

Every outcome is accounted for in one WriteResult, which decides the HTTP status: anything a
retry can fix becomes 5xx (Prometheus retries the whole request; Timestream accepts identical
rewrites, so nothing is duplicated) and anything permanent becomes 4xx, after everything that
could be written has been.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.destinations import Destination
from chalicelib.errors import (
    REJECTED_RECORDS,
    THROTTLED,
    ConnectorError,
    ServiceUnavailable,
    TimestreamError,
    classify,
)
from chalicelib.liveanalytics.batching import CallPlanner, chunks
from chalicelib.liveanalytics.call_cost import DEFAULT_LAMBDA_MEMORY_MB, CallPrices
from chalicelib.liveanalytics.metering import multi_write_units, write_units
from chalicelib.liveanalytics.records import MultiRecord, Record, RecordBatch, holds_multi_records
from chalicelib.liveanalytics.write_body import shared_attributes
from chalicelib.outcome import Outcome
from chalicelib.series import HISTOGRAM_DROPS

_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_CAP_SECONDS = 2.0
# When failures of several kinds mix, the status that lets the most data through wins: a
# transient failure is retried by Prometheus (and the rest rewritten identically), so it beats
# every permanent one; among permanent ones, the one that needs the operator most.
_STATUS_PRECEDENCE = (503, 403, 404, 400)
_SAMPLES, _HISTOGRAMS, _EXEMPLARS = "samples", "histograms", "exemplars"


class Sender(Protocol):
    """Makes one WriteRecords call (at most 100 records, all within Timestream's limits).

    Raises errors.TimestreamError for an error answer (with `rejected_records` for a
    RejectedRecordsException) and errors.TimestreamUnreachable when there is no answer.

    A sender may also have `write_records_many(calls, in_flight)`: every call's first attempt
    at once, returning per call None or the error write_records would have raised (or None
    for all when it cannot); transport.WriteRecordsSender has it."""

    def write_records(self, database: str, table: str, records: list[Record] | list[MultiRecord]) -> None: ...


@dataclass
class Failure:
    """Records of one call that were not stored, and why."""

    error: ConnectorError
    destination: Destination
    records: int


@dataclass
class WriteResult:
    """The outcome of one request, from decode to the last WriteRecords call."""

    written: int = 0
    histograms_written: int = 0
    exemplars_written: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    refused_examples: dict[str, list[str]] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_example: str = ""
    retries: int = 0
    throttles: int = 0
    calls: int = 0
    write_units: int = 0
    failures: list[Failure] = field(default_factory=list)
    destinations: Counter[str] = field(default_factory=Counter)

    def status(self) -> int:
        """The HTTP status: transient beats permanent so Prometheus retries what can succeed."""
        statuses = {failure.error.status for failure in self.failures}
        if self.refused or self.rejected:
            statuses.add(400)
        return next((status for status in _STATUS_PRECEDENCE if status in statuses), 204)

    def written_counts(self) -> tuple[int, int, int]:
        """(samples, histograms, exemplars) written, in the remote write 2.0 sense of the word:
        accepted by the connector. A sample is written when its record was stored, or when it
        was dropped on purpose (NaN, +-Inf, stale markers: accepted, and not storable); refused
        samples and records that Timestream rejected or that a failed call did not store are
        not. Histograms and exemplars likewise, each a record of its own kind of call."""
        dropped_histograms = sum(count for reason, count in self.dropped.items() if reason in HISTOGRAM_DROPS)
        samples = self.written + sum(self.dropped.values()) - dropped_histograms
        return samples, self.histograms_written + dropped_histograms, self.exemplars_written

    @classmethod
    def of(cls, batch: RecordBatch) -> WriteResult:
        """The result before any call: what the batch already left out."""
        return cls(dropped=batch.dropped, refused=batch.refused, refused_examples=batch.refused_examples)

    def log_fields(self) -> dict[str, Any]:
        fields = {
            "written": self.written,
            "histograms_written": self.histograms_written,
            "exemplars_written": self.exemplars_written,
            "dropped": dict(self.dropped),
            "refused": dict(self.refused),
            "rejected": dict(self.rejected),
            "retries": self.retries,
            "throttles": self.throttles,
            "calls": self.calls,
            "write_units": self.write_units,
            "destinations": dict(self.destinations),
        }
        if self.refused_examples:
            fields["refused_examples"] = self.refused_examples
        return fields

    def error_message(self) -> str:
        """One line saying what was not stored and why; empty when everything was."""
        status = self.status()
        if status == 204:
            return ""
        parts = []
        deciding = next((f for f in self.failures if f.error.status == status), None)
        if deciding is not None:
            parts.append(deciding.error.message)  # it names the database and table
        if self.refused:
            refused = sorted(self.refused.items())
            reasons = ", ".join(self._refusal(reason, count) for reason, count in refused)
            parts.append(f"samples refused: {reasons}")
        if self.rejected:
            reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(self.rejected.items()))
            parts.append(f"records rejected by Timestream: {reasons} ({self.rejected_example})")
        not_stored = sum(f.records for f in self.failures)
        if not_stored:
            parts.append(f"{not_stored} records not stored")
        parts.append(f"{self.written} records written")
        return "; ".join(parts)

    def _refusal(self, reason: str, count: int) -> str:
        examples = self.refused_examples.get(reason)
        return f"{reason}={count} (first: {examples[0]})" if examples else f"{reason}={count}"

    def outcome(self) -> Outcome:
        status = self.status()
        fields = self.log_fields()
        failure_reasons = sorted({f.error.reason for f in self.failures})
        if failure_reasons:
            fields["failures"] = failure_reasons
        return Outcome(status, self.error_message(), log_fields=fields)


def _rejection_reason(message: str) -> str:
    lowered = message.lower()
    if "version" in lowered or "conflict" in lowered or "duplicate" in lowered:
        return "conflicting_value"
    if any(word in lowered for word in ("retention", "future", "past", "time range", "ingestion window")):
        return "outside_retention"
    return "other"


class _Untried:
    """Marks a call whose first attempt is still to be made."""


_First = Exception | None | type[_Untried]


@dataclass
class _CallOutcome:
    written: int = 0
    retries: int = 0
    throttles: int = 0
    write_units: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_example: str = ""
    failure: Failure | None = None


class Writer:
    """Sends a RecordBatch to Timestream. Holds the thread pool, reused across requests."""

    def __init__(
        self,
        concurrency: int,
        budget_seconds: float,
        attempt_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        memory_mb: int = DEFAULT_LAMBDA_MEMORY_MB,
    ) -> None:
        self._concurrency = concurrency
        # The request's own thread sends calls too: the pool adds the others in flight.
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency - 1), thread_name_prefix="write")
        self._budget = budget_seconds
        # Worst-case duration of one attempt: a retry is only started if it can finish in time.
        self._attempt_seconds = attempt_seconds
        self._clock = clock
        self._sleep = sleep
        # Which records share a call decides what Timestream bills, and how many calls there
        # are what Lambda bills (see batching, call_cost).
        self._planner = CallPlanner(CallPrices.for_lambda(memory_mb, concurrency))

    def write(self, sender: Sender, batch: RecordBatch) -> WriteResult:
        result = WriteResult.of(batch)
        deadline = self._clock() + self._budget
        calls: list[tuple[Destination, list[Any]]] = [
            (destination, call)
            for destination, records in batch.records.items()
            for call in self._planner.calls(destination, records)
        ]
        # MULTI records (histograms, exemplars) go in calls of their own kind: their
        # CommonAttributes differ, and the written counts are told apart by call.
        kinds = [_SAMPLES] * len(calls)
        for kind, multi in ((_HISTOGRAMS, batch.histograms), (_EXEMPLARS, batch.exemplars)):
            for destination, records in multi.items():
                for call in chunks(records):
                    calls.append((destination, call))
                    kinds.append(kind)
        result.calls = len(calls)
        outcomes = self._send_all(sender, calls, deadline)
        for (destination, _records), kind, outcome in zip(calls, kinds, outcomes, strict=True):
            if kind == _SAMPLES:
                result.written += outcome.written
            elif kind == _HISTOGRAMS:
                result.histograms_written += outcome.written
            else:
                result.exemplars_written += outcome.written
            result.destinations[f"{destination[0]}.{destination[1]}"] += outcome.written
            result.retries += outcome.retries
            result.throttles += outcome.throttles
            result.write_units += outcome.write_units
            result.rejected.update(outcome.rejected)
            result.rejected_example = result.rejected_example or outcome.rejected_example
            if outcome.failure is not None:
                result.failures.append(outcome.failure)
        return result

    def _send_all(
        self, sender: Sender, calls: list[tuple[Destination, list[Any]]], deadline: float
    ) -> list[_CallOutcome]:
        """Every call's outcome, in order, with up to `concurrency` calls in flight.

        A sender that can (`write_records_many`) sends every call once from this thread, all
        their answers awaited together: no thread hand-off per call. The calls that failed, and
        every call of other senders, go through `_call` (retries, backoff) on this thread and
        `concurrency - 1` pool threads, each taking the next call not taken yet until none is
        left: one task per thread rather than a future per call."""
        outcomes: list[_CallOutcome | None] = [None] * len(calls)
        todo: list[tuple[int, _First]] = [(index, _Untried) for index in range(len(calls))]
        many = getattr(sender, "write_records_many", None)
        if many is not None and len(calls) > 1:
            try:
                first = many([(destination[0], destination[1], records) for destination, records in calls],
                             self._concurrency)
            except Exception:  # discovery failed, say: each call below finds out why, and says it
                first = None
            if first is not None:
                todo = []
                for index, error in enumerate(first):
                    if error is None:
                        outcomes[index] = _stored(calls[index][1])
                    else:
                        todo.append((index, error))
        # next() on a list iterator is atomic under the GIL: no call is taken twice.
        pending = iter(todo)

        def work() -> None:
            for index, first_error in pending:
                outcomes[index] = self._call(sender, *calls[index], deadline, first_error)

        helpers = [self._pool.submit(work) for _ in range(min(self._concurrency, len(todo)) - 1)]
        try:
            work()
        finally:
            for helper in helpers:
                # Re-raises what a helper raised (an unexpected error: see _call).
                helper.result()
        return outcomes  # type: ignore[return-value]

    def _call(
        self,
        sender: Sender,
        destination: Destination,
        records: list[Any],
        deadline: float,
        first_error: _First = _Untried,
    ) -> _CallOutcome:
        """One call, retried while that can help; `first_error` is what its first attempt raised
        when that attempt was already made (_Untried when not)."""
        outcome = _CallOutcome()
        attempt = 0
        where = f"{destination[0]}.{destination[1]}"
        error: _First = first_error
        while True:
            if error is _Untried:
                try:
                    sender.write_records(destination[0], destination[1], records)
                    error = None
                except Exception as raised:  # classified below; anything unknown is re-raised
                    error = raised
            if error is None:
                return _stored(records, outcome)
            assert isinstance(error, Exception)
            if isinstance(error, TimestreamError) and error.code == REJECTED_RECORDS:
                # Timestream wrote the call's other records: the call is metered.
                outcome.write_units = _billed_units(records)
                return _account_rejections(outcome, error, len(records))
            connector_error = classify(error, where)
            if connector_error is None:
                raise error
            if connector_error.reason == THROTTLED:
                outcome.throttles += 1
            if not isinstance(connector_error, ServiceUnavailable):
                outcome.failure = Failure(connector_error, destination, len(records))
                return outcome
            backoff = random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt))
            if self._clock() + backoff + self._attempt_seconds > deadline:
                message = f"{connector_error.message} (gave up after {attempt + 1} attempts)"
                gave_up = ServiceUnavailable(message, connector_error.reason)
                outcome.failure = Failure(gave_up, destination, len(records))
                return outcome
            self._sleep(backoff)
            attempt += 1
            outcome.retries += 1
            error = _Untried


def _stored(records: list[Any], outcome: _CallOutcome | None = None) -> _CallOutcome:
    """The outcome of a call Timestream stored whole."""
    outcome = outcome or _CallOutcome()
    outcome.written = len(records)
    outcome.write_units = _billed_units(records)
    return outcome


def _billed_units(records: list[Any]) -> int:
    """What Timestream bills for this call, with the layout write_body sends it in."""
    if holds_multi_records(records):
        return multi_write_units(records)
    common, measure_name = shared_attributes(records)
    return write_units(records, common, measure_name is not None)


def _account_rejections(outcome: _CallOutcome, error: TimestreamError, total: int) -> _CallOutcome:
    """Timestream writes the valid records of a call and lists the ones it refused."""
    if not error.rejected_records:
        # Nothing says which records stood: count them all as rejected rather than guess.
        outcome.rejected["other"] += total
        outcome.rejected_example = error.message
        return outcome
    for entry in error.rejected_records:
        outcome.rejected[_rejection_reason(entry.reason)] += 1
        if not outcome.rejected_example:
            outcome.rejected_example = f"record {entry.index}: {entry.reason}"
    # Distinct indexes: a record listed twice was still only one record not stored.
    outcome.written = max(0, total - len({entry.index for entry in error.rejected_records}))
    return outcome
