"""Structured logging: one JSON object per line with stable keys, never credentials."""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger("prometheus_timestream")


def configure(level: str) -> None:
    logger.setLevel(level)
    if not logging.getLogger().handlers and not logger.handlers:
        # Outside Lambda (chalice local, tests) nothing else prints our lines.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def log_event(level: int, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, json.dumps({"event": event, **fields}, sort_keys=True, default=str))
