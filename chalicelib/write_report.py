"""What storing one write request came to, for any engine: counts, the HTTP status, one line.

The status is the data-loss policy: anything a retry can fix becomes 503 (Prometheus retries
the whole request, and every engine accepts an identical rewrite, so nothing is duplicated);
anything permanent becomes 4xx, after everything that could be written has been. An engine's
writer fills a WriteReport; `rejected_by` and `unit` say in its messages what rejected what
("InfluxDB", "lines").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import ConnectorError
from chalicelib.outcome import Outcome
from chalicelib.series import HISTOGRAM_DROPS, Accounting

# When failures of several kinds mix, the status that lets the most data through wins: a
# transient failure is retried by Prometheus (and the rest rewritten identically), so it beats
# every permanent one; among permanent ones, the one that needs the operator most (credentials,
# then a missing database, then the data itself).
STATUS_PRECEDENCE = (503, 401, 403, 404, 400)


@dataclass
class Failure:
    """Points of one call that were not stored, and why; `where` names the destination."""

    error: ConnectorError
    where: str
    count: int


@dataclass
class WriteReport:
    """The outcome of one request, from decode to the engine's last call."""

    rejected_by: str
    unit: str
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
    failures: list[Failure] = field(default_factory=list)
    destinations: Counter[str] = field(default_factory=Counter)
    # Engine-specific totals to log beside the common ones (e.g. splits after a 413).
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, batch: Accounting, rejected_by: str, unit: str) -> WriteReport:
        """The report before any call: what the batch already left out."""
        return cls(rejected_by, unit, dropped=batch.dropped, refused=batch.refused,
                   refused_examples=batch.refused_examples)

    def status(self) -> int:
        statuses = {failure.error.status for failure in self.failures}
        if self.refused or self.rejected:
            statuses.add(400)
        return next((status for status in STATUS_PRECEDENCE if status in statuses), 204)

    def written_counts(self) -> tuple[int, int, int]:
        """(samples, histograms, exemplars) written, in the remote write 2.0 sense: accepted by
        the connector, i.e. stored or dropped on purpose (NaN, +-Inf, stale markers); refused,
        rejected and unstored points are not."""
        dropped_histograms = sum(count for reason, count in self.dropped.items() if reason in HISTOGRAM_DROPS)
        samples = self.written + sum(self.dropped.values()) - dropped_histograms
        return samples, self.histograms_written + dropped_histograms, self.exemplars_written

    def log_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "written": self.written,
            "histograms_written": self.histograms_written,
            "exemplars_written": self.exemplars_written,
            "dropped": dict(self.dropped),
            "refused": dict(self.refused),
            "rejected": dict(self.rejected),
            "retries": self.retries,
            "throttles": self.throttles,
            "calls": self.calls,
            "destinations": dict(self.destinations),
            **self.extra,
        }
        if self.refused_examples:
            fields["refused_examples"] = self.refused_examples
        return fields

    def error_message(self) -> str:
        """One line saying what was not stored and why, naming the first culprit of each kind;
        empty when everything was stored."""
        status = self.status()
        if status == 204:
            return ""
        parts = []
        deciding = next((f for f in self.failures if f.error.status == status), None)
        if deciding is not None:
            parts.append(deciding.error.message)
        if self.refused:
            refused = sorted(self.refused.items())
            reasons = ", ".join(self._refusal(reason, count) for reason, count in refused)
            parts.append(f"samples refused: {reasons}")
        if self.rejected:
            reasons = ", ".join(f"{reason}={count}" for reason, count in sorted(self.rejected.items()))
            parts.append(f"{self.unit} rejected by {self.rejected_by}: {reasons} ({self.rejected_example})")
        not_stored = sum(f.count for f in self.failures)
        if not_stored:
            parts.append(f"{not_stored} {self.unit} not stored")
        parts.append(f"{self.written + self.histograms_written + self.exemplars_written} {self.unit} written")
        return "; ".join(parts)

    def _refusal(self, reason: str, count: int) -> str:
        examples = self.refused_examples.get(reason)
        return f"{reason}={count} (first: {examples[0]})" if examples else f"{reason}={count}"

    def outcome(self) -> Outcome:
        fields = self.log_fields()
        failure_reasons = sorted({f.error.reason for f in self.failures})
        if failure_reasons:
            fields["failures"] = failure_reasons
        return Outcome(self.status(), self.error_message(), log_fields=fields)
