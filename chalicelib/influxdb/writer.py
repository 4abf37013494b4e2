"""Batched InfluxDB writer: lines in /write requests of `influxdb_batch_lines` each, sent
concurrently, transient failures retried with backoff inside the request's time budget.

What each InfluxDB answer means (the status is the data-loss policy, see write_report.py):

* 204: written.
* 400 / 422 (partial write, field type conflict, beyond retention, unparsable): the rest is
  written, these lines are counted as rejected, the sender gets 400 naming the first culprit;
  never retried (the same lines would be refused again).
* 401 / 403: not written; the sender gets 401 / 403.
* 404 (database not found): not written; 404 naming the database.
* 413: the lines are split in halves, each sent again (a single line too large is rejected).
* 429, 5xx, timeout, connection refused: retried within the budget; 503 if never answered.

InfluxDB keeps one value per series, field and time, so a retried request rewrites identical
points: never a duplicate.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from chalicelib.errors import (
    THROTTLED,
    UNREACHABLE,
    BadRequest,
    ConnectorError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    one_line,
)
from chalicelib.influxdb.client import InfluxDBError, InfluxDBUnreachable
from chalicelib.influxdb.records import LineBatch
from chalicelib.write_report import Failure, WriteReport

REJECTED_BY = "InfluxDB"
UNIT = "lines"
_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_CAP_SECONDS = 2.0
_SAMPLES, _HISTOGRAMS, _EXEMPLARS = "samples", "histograms", "exemplars"
# Statuses of points InfluxDB refused while (possibly) writing the others: 1.x and 3 say 400,
# 2.x 422 for points outside retention or of a conflicting type.
_REJECTED_STATUSES = frozenset({400, 422})
_DROPPED = re.compile(r"dropped=(\d+)")
_UNPARSABLE = "unable to parse"


class Writes(Protocol):
    """What the writer needs of the client (client.InfluxDBClient)."""

    def write(self, database: str, body: bytes, authorization: str | None) -> None: ...


def rejection_reason(message: str) -> str:
    """A stable key for why InfluxDB refused points, from its message."""
    lowered = message.lower()
    if "field type conflict" in lowered or "conflict" in lowered:
        return "field_type_conflict"
    if "retention" in lowered:
        return "outside_retention"
    if "max-series" in lowered or "max-values" in lowered or "limit" in lowered:
        return "series_limit"
    if _UNPARSABLE in lowered or "invalid" in lowered or "parse" in lowered:
        return "unparsable"
    return "other"


def rejected_count(error: InfluxDBError, total: int) -> tuple[int, str]:
    """(how many of the call's `total` lines InfluxDB did not store, the first culprit) for a
    400/422 answer. 1.x and 2.x say `partial write: ... dropped=N` (lines it could not parse are
    named, not counted); 3 lists the lines it refused. When nothing says which lines stood, all
    count as rejected rather than guess."""
    try:
        document = json.loads(error.body) if error.body else {}
    except (ValueError, UnicodeDecodeError):
        document = {}
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, list) and data:
        first = data[0] if isinstance(data[0], dict) else {}
        line, message = first.get("line_number", "?"), first.get("error_message", error.message)
        culprit = one_line(f"line {line}: {message}")
        return min(total, len(data)), culprit
    if "partial write" in error.message.lower():
        dropped = sum(int(n) for n in _DROPPED.findall(error.message))
        dropped += error.message.lower().count(_UNPARSABLE)
        if dropped:
            return min(total, dropped), error.message
    return total, error.message


def failure_of(error: InfluxDBError | InfluxDBUnreachable, database: str) -> ConnectorError:
    """The connector's error for an answer that refused a whole call (not a 400/422), or for
    no answer. InfluxDB's text for refused credentials is left out (it can name the user)."""
    where = f"database {database!r}"
    if isinstance(error, InfluxDBUnreachable):
        return ServiceUnavailable(f"InfluxDB did not answer on {where}, retry later ({error})", UNREACHABLE)
    status = error.status
    detail = f"HTTP {status}: {error.message}"
    if status == 429:
        return ServiceUnavailable(
            f"InfluxDB is throttling writes to {where}, retry later ({detail})", THROTTLED
        )
    if status >= 500:
        return ServiceUnavailable(f"InfluxDB is busy or unavailable on {where}, retry later ({detail})")
    if status == 401:
        return Unauthorized(
            f"InfluxDB refused the credentials for {where} (HTTP 401): send the InfluxDB user and "
            "password (1.x) or any user and an API token (2.x, 3) as basic auth"
        )
    if status == 403:
        return Forbidden(
            f"InfluxDB refused the action on {where} (HTTP 403): the user or token may not write there"
        )
    if status == 404:
        return NotFound(f"InfluxDB {where} does not exist ({detail})")
    return BadRequest(f"InfluxDB refused the write to {where} ({detail})")


@dataclass
class _CallOutcome:
    written: int = 0
    retries: int = 0
    throttles: int = 0
    splits: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_example: str = ""
    failures: list[Failure] = field(default_factory=list)


class Writer:
    """Sends a LineBatch to InfluxDB. Holds the thread pool, reused across requests."""

    def __init__(
        self,
        concurrency: int,
        budget_seconds: float,
        attempt_seconds: float,
        batch_lines: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="influxdb-write")
        self._budget = budget_seconds
        # Worst-case duration of one attempt: a retry is only started if it can finish in time.
        self._attempt_seconds = attempt_seconds
        self._batch_lines = batch_lines
        self._clock = clock
        self._sleep = sleep

    def write(self, client: Writes, authorization: str | None, batch: LineBatch) -> WriteReport:
        report = WriteReport.of(batch, REJECTED_BY, UNIT)
        deadline = self._clock() + self._budget
        calls: list[tuple[str, str, list[str]]] = []
        # Histograms and exemplars in requests of their own kind, so written counts tell them apart.
        for kind, per_database in ((_SAMPLES, batch.samples), (_HISTOGRAMS, batch.histograms),
                                   (_EXEMPLARS, batch.exemplars)):
            for database, lines in per_database.items():
                for start in range(0, len(lines), self._batch_lines):
                    calls.append((kind, database, lines[start:start + self._batch_lines]))
        report.calls = len(calls)

        def send(call: tuple[str, str, list[str]]) -> _CallOutcome:
            outcome = _CallOutcome()
            self._send(client, authorization, call[1], call[2], deadline, outcome)
            return outcome

        outcomes = [send(calls[0])] if len(calls) == 1 else list(self._pool.map(send, calls))
        splits = 0
        for (kind, database, _lines), outcome in zip(calls, outcomes, strict=True):
            if kind == _SAMPLES:
                report.written += outcome.written
            elif kind == _HISTOGRAMS:
                report.histograms_written += outcome.written
            else:
                report.exemplars_written += outcome.written
            report.destinations[database] += outcome.written
            report.retries += outcome.retries
            report.throttles += outcome.throttles
            splits += outcome.splits
            report.rejected.update(outcome.rejected)
            report.rejected_example = report.rejected_example or outcome.rejected_example
            report.failures.extend(outcome.failures)
        if splits:
            report.extra["splits"] = splits
        return report

    def _send(
        self, client: Writes, authorization: str | None, database: str, lines: list[str],
        deadline: float, outcome: _CallOutcome,
    ) -> None:
        """One /write of `lines`, retried while transient and within the budget; a 413 splits
        the lines in halves sent one after the other."""
        attempt = 0
        while True:
            try:
                client.write(database, "".join(lines).encode(), authorization)
                outcome.written += len(lines)
                return
            except InfluxDBError as error:
                if error.status == 413 and len(lines) > 1:
                    outcome.splits += 1
                    half = len(lines) // 2
                    self._send(client, authorization, database, lines[:half], deadline, outcome)
                    self._send(client, authorization, database, lines[half:], deadline, outcome)
                    return
                if error.status in _REJECTED_STATUSES or error.status == 413:
                    if error.status == 413:
                        count, reason = 1, "too_large"
                        culprit = f"a line of {len(lines[0])} bytes: {error.message}"
                    else:
                        count, culprit = rejected_count(error, len(lines))
                        reason = rejection_reason(culprit)
                    outcome.rejected[reason] += count
                    outcome.rejected_example = outcome.rejected_example or f"database {database!r}: {culprit}"
                    outcome.written += len(lines) - count
                    return
                connector_error = failure_of(error, database)
            except InfluxDBUnreachable as error:
                connector_error = failure_of(error, database)
            if connector_error.reason == THROTTLED:
                outcome.throttles += 1
            if not isinstance(connector_error, ServiceUnavailable):
                outcome.failures.append(Failure(connector_error, database, len(lines)))
                return
            backoff = random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt))
            if self._clock() + backoff + self._attempt_seconds > deadline:
                message = f"{connector_error.message} (gave up after {attempt + 1} attempts)"
                gave_up = ServiceUnavailable(message, connector_error.reason)
                outcome.failures.append(Failure(gave_up, database, len(lines)))
                return
            self._sleep(backoff)
            attempt += 1
            outcome.retries += 1
