"""The storage engine behind /write and /read, chosen once per process from STORAGE_ENGINE.

Everything the handlers do is the protocol's (negotiate, decode, answer); what a request becomes
in storage is the engine's. Each engine package (`chalicelib.liveanalytics`,
`chalicelib.influxdb`) has an `engine` module whose class satisfies `Engine`; only the chosen one
is imported, so a function never pays for the other's imports at cold start.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from chalicelib.config import Settings
from chalicelib.outcome import Outcome


class WriteReport(Protocol):
    """What storing one write request came to."""

    def outcome(self) -> Outcome:
        """The answer: status, one-line message and log fields."""
        ...

    def written_counts(self) -> tuple[int, int, int]:
        """(samples, histograms, exemplars) written, as remote write 2.0 counts them."""
        ...


class Engine(Protocol):
    name: str

    def credentials(self, headers: Mapping[str, str]) -> Any:
        """What the engine's calls for this request are made with; raises Unauthorized."""
        ...

    def prepare(self, request: Any, message: str, now_ms: int) -> Any:
        """A decoded write request (`message`: the negotiated Content-Type) -> the batch to
        store. The batch owns everything it needs: the caller frees the request before storing."""
        ...

    def store(self, batch: Any, credentials: Any) -> WriteReport:
        """Write a prepared batch; every failure is in the report, nothing is raised but
        ConnectorError."""
        ...

    def read(self, request: Any, credentials: Any) -> Any:
        """Answer a prompb ReadRequest with a ReadResponse: one QueryResult per query, in order."""
        ...


# STORAGE_ENGINE -> the module holding its Engine class.
_ENGINES = {
    "liveanalytics": ("chalicelib.liveanalytics.engine", "LiveAnalyticsEngine"),
    "influxdb": ("chalicelib.influxdb.engine", "InfluxDBEngine"),
}


def load_engine(settings: Settings) -> Engine:
    """The engine `settings.storage_engine` names, ready to serve requests."""
    module_name, class_name = _ENGINES[settings.storage_engine]
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(settings)
