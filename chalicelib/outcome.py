"""The outcome of one request, whichever path served it: what app.py turns into a response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import ConnectorError


@dataclass(frozen=True)
class Outcome:
    """Status, the one-line message of a failure (empty on success), the body of a successful
    answer, headers for the answer whatever its status (a failure's body is always one line of
    text), and the fields to log for the request."""

    status: int
    message: str = ""
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    log_fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, error: ConnectorError, **log_fields: Any) -> Outcome:
        return cls(error.status, error.message, log_fields={"reason": error.reason, **log_fields})

    @property
    def ok(self) -> bool:
        return self.status < 400
