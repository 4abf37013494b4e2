"""Structured logging: one JSON object per line on stdout, stable keys, never credentials.

The connector writes its lines to stdout itself instead of passing them to the root logger: in
Lambda's Python runtime the root logger's handler prefixes every record with level, time and
request id (or wraps it in its own JSON), so a propagated line would be neither plain JSON for
Logs Insights nor an EMF document CloudWatch turns into metrics.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("prometheus_timestream")


class JsonLines(logging.Formatter):
    """Lines from `log_event` are already JSON; any other record (an exception's, say) becomes
    {"level", "message", "traceback"}: one line either way, never Python's multi-line text."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "json_line", False):
            return record.getMessage()
        document = {"level": record.levelname, "message": record.getMessage()}
        if record.exc_info:
            document["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(document, sort_keys=True, default=str)


def configure(level: str) -> None:
    logger.setLevel(level)
    logger.propagate = False
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)


def log_event(level: int, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        line = json.dumps({"event": event, **fields}, sort_keys=True, default=str)
        logger.log(level, line, extra={"json_line": True})


def write_document(document: Mapping[str, Any]) -> None:
    """Write a JSON document as its own line whatever the log level (EMF metrics must not
    disappear with LOG_LEVEL=WARNING)."""
    for handler in logger.handlers:
        handler.acquire()
        try:
            handler.stream.write(json.dumps(document, separators=(",", ":"), default=str) + "\n")
            handler.flush()
        finally:
            handler.release()
