"""Batched Timestream writer: <=100 records per WriteRecords call, calls of one request sent
concurrently, transient failures retried with backoff inside a time budget.

Every outcome is accounted for in one WriteResult (a write_report.WriteReport), which decides
the HTTP status: anything a retry can fix becomes 5xx (Prometheus retries the whole request;
Timestream accepts identical rewrites, so nothing is duplicated) and anything permanent becomes
4xx, after everything that could be written has been.
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
    ServiceUnavailable,
    TimestreamError,
    classify,
)
from chalicelib.liveanalytics.batching import CallPlanner, chunks
from chalicelib.liveanalytics.call_cost import DEFAULT_LAMBDA_MEMORY_MB, CallPrices
from chalicelib.liveanalytics.metering import multi_write_units, write_units
from chalicelib.liveanalytics.records import MultiRecord, Record, RecordBatch, holds_multi_records
from chalicelib.liveanalytics.write_body import shared_attributes
from chalicelib.series import Accounting
from chalicelib.write_report import Failure, WriteReport

_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_CAP_SECONDS = 2.0
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
class WriteResult(WriteReport):
    """The outcome of one request, from decode to the last WriteRecords call, with the write
    units Timestream billed for the calls it accepted."""

    rejected_by: str = "Timestream"
    unit: str = "records"
    write_units: int = 0

    @classmethod
    def of(cls, batch: Accounting, rejected_by: str = "Timestream", unit: str = "records") -> WriteResult:
        """The result before any call: what the batch already left out."""
        return super().of(batch, rejected_by, unit)

    def log_fields(self) -> dict[str, Any]:
        return {**super().log_fields(), "write_units": self.write_units}


def _where(destination: Destination) -> str:
    database, table = destination
    return f"{database}.{table}"


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
                outcome.failure = Failure(connector_error, _where(destination), len(records))
                return outcome
            backoff = random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt))
            if self._clock() + backoff + self._attempt_seconds > deadline:
                message = f"{connector_error.message} (gave up after {attempt + 1} attempts)"
                gave_up = ServiceUnavailable(message, connector_error.reason)
                outcome.failure = Failure(gave_up, _where(destination), len(records))
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
