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
from typing import Any

from chalicelib.destinations import Destination
from chalicelib.errors import FORBIDDEN_AWS_CODES, TRANSIENT_AWS_CODES
from chalicelib.records import Record, RecordBatch
from chalicelib.write_body import send_fast

# (target, database, table, records): one WriteRecords call; raises what botocore raises.
# The target is a transport.WriteRecordsSender (fast path) or a botocore client.
Send = Callable[[Any, str, str, list[Record]], None]

MAX_RECORDS_PER_CALL = 100

TRANSIENT = "transient"
NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
INVALID = "invalid"

_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_CAP_SECONDS = 2.0


@dataclass
class Failure:
    kind: str
    destination: Destination
    records: int
    message: str


@dataclass
class WriteResult:
    """The outcome of one request, from decode to the last WriteRecords call."""

    written: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_example: str = ""
    retries: int = 0
    calls: int = 0
    failures: list[Failure] = field(default_factory=list)
    destinations: Counter[str] = field(default_factory=Counter)

    def status(self) -> int:
        """The HTTP status: transient beats permanent so Prometheus retries what can succeed."""
        kinds = {failure.kind for failure in self.failures}
        if TRANSIENT in kinds:
            return 503
        if FORBIDDEN in kinds:
            return 403
        if NOT_FOUND in kinds:
            return 404
        if INVALID in kinds or self.refused or self.rejected:
            return 400
        return 204

    def log_fields(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "dropped": dict(self.dropped),
            "refused": dict(self.refused),
            "rejected": dict(self.rejected),
            "retries": self.retries,
            "calls": self.calls,
            "destinations": dict(self.destinations),
        }

    def error_message(self) -> str:
        """One line saying what was not stored and why; empty when everything was."""
        status = self.status()
        if status == 204:
            return ""
        parts = []
        wanted = {503: TRANSIENT, 403: FORBIDDEN, 404: NOT_FOUND, 400: INVALID}[status]
        for failure in self.failures:
            if failure.kind == wanted:
                parts.append(
                    f"{failure.destination[0]}.{failure.destination[1]}: {failure.message}"
                )
                break
        if self.refused:
            reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(self.refused.items()))
            parts.append(f"samples refused: {reasons}")
        if self.rejected:
            reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(self.rejected.items()))
            parts.append(f"records rejected by Timestream: {reasons} ({self.rejected_example})")
        not_stored = sum(f.records for f in self.failures)
        if not_stored:
            parts.append(f"{not_stored} records not stored")
        parts.append(f"{self.written} records written")
        return "; ".join(parts)


def _rejection_reason(message: str) -> str:
    lowered = message.lower()
    if "version" in lowered or "conflict" in lowered or "duplicate" in lowered:
        return "conflicting_value"
    if "retention" in lowered or "future" in lowered or "past" in lowered:
        return "outside_retention"
    return "other"


@dataclass
class _CallOutcome:
    written: int = 0
    retries: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_example: str = ""
    failure: Failure | None = None


def classify_error(error: Exception) -> tuple[str, str]:
    """(kind, one-line message) for an exception raised by a WriteRecords call."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        HTTPClientError,
        ReadTimeoutError,
    )

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "")
        message = details.get("Message", "") or code
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_AWS_CODES or status >= 500:
            return TRANSIENT, f"{code}: {message}"
        if code in FORBIDDEN_AWS_CODES or status == 403:
            return FORBIDDEN, f"{code}: {message}"
        if code == "ResourceNotFoundException" or status == 404:
            return NOT_FOUND, f"{code}: {message}"
        return INVALID, f"{code}: {message}"
    if isinstance(error, (EndpointConnectionError, ReadTimeoutError, ConnectionError, HTTPClientError)):
        return TRANSIENT, f"{type(error).__name__}: {error}"
    raise error


class Writer:
    """Sends a RecordBatch to Timestream. Holds the thread pool, reused across requests."""

    def __init__(
        self,
        concurrency: int,
        budget_seconds: float,
        attempt_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        send: Send = send_fast,
    ) -> None:
        self._send = send
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="write")
        self._budget = budget_seconds
        # Worst-case duration of one attempt: a retry is only started if it can finish in time.
        self._attempt_seconds = attempt_seconds
        self._clock = clock
        self._sleep = sleep

    def write(self, client: Any, batch: RecordBatch) -> WriteResult:
        result = WriteResult(dropped=batch.dropped, refused=batch.refused)
        deadline = self._clock() + self._budget
        calls = [
            (destination, records[start:start + MAX_RECORDS_PER_CALL])
            for destination, records in batch.records.items()
            for start in range(0, len(records), MAX_RECORDS_PER_CALL)
        ]
        result.calls = len(calls)
        if len(calls) == 1:
            outcomes = [self._call(client, *calls[0], deadline)]
        else:
            outcomes = list(
                self._pool.map(lambda call: self._call(client, *call, deadline), calls)
            )
        for (destination, _records), outcome in zip(calls, outcomes, strict=True):
            result.written += outcome.written
            result.destinations[f"{destination[0]}.{destination[1]}"] += outcome.written
            result.retries += outcome.retries
            result.rejected.update(outcome.rejected)
            result.rejected_example = result.rejected_example or outcome.rejected_example
            if outcome.failure is not None:
                result.failures.append(outcome.failure)
        return result

    def _call(
        self, client: Any, destination: Destination, records: list[Record], deadline: float
    ) -> _CallOutcome:
        outcome = _CallOutcome()
        attempt = 0
        while True:
            try:
                self._send(client, destination[0], destination[1], records)
                outcome.written = len(records)
                return outcome
            except Exception as error:  # classified below; anything unknown is re-raised
                if _is_rejected_records(error):
                    return _account_rejections(outcome, error, len(records))
                kind, message = classify_error(error)
            if kind != TRANSIENT:
                outcome.failure = Failure(kind, destination, len(records), message)
                return outcome
            backoff = random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt))
            if self._clock() + backoff + self._attempt_seconds > deadline:
                outcome.failure = Failure(
                    kind, destination, len(records), f"{message} (gave up after {attempt + 1} attempts)"
                )
                return outcome
            self._sleep(backoff)
            attempt += 1
            outcome.retries += 1


def _is_rejected_records(error: Exception) -> bool:
    response = getattr(error, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "RejectedRecordsException"


def _account_rejections(outcome: _CallOutcome, error: Any, total: int) -> _CallOutcome:
    """Timestream writes the valid records of a call and lists the ones it refused."""
    rejected = error.response.get("RejectedRecords", [])
    if not rejected:
        # Nothing says which records stood: count them all as rejected rather than guess.
        outcome.rejected["other"] += total
        outcome.rejected_example = error.response.get("Error", {}).get("Message", "")
        return outcome
    for entry in rejected:
        reason = entry.get("Reason", "")
        outcome.rejected[_rejection_reason(reason)] += 1
        if not outcome.rejected_example:
            outcome.rejected_example = f"record {entry.get('RecordIndex')}: {reason}"
    outcome.written = total - len(rejected)
    return outcome
