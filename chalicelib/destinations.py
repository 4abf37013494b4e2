"""Label router: chooses each series' Timestream destination from its routing labels.

The database and table come from two labels (names configurable, usually set with
`write_relabel_configs`), each falling back to its configured default. Routing labels are
removed here so they are never stored as dimensions.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from chalicelib.config import Settings

Labels = list[tuple[str, str]]


class Destination(NamedTuple):
    """A Timestream table. A plain pair underneath: hashable, cheap, and unpacks as
    `database, table`, so it keys the writer's batches directly."""

    database: str
    table: str


# Timestream database and table names: 3-256 characters of letters, digits, '_', '-' and '.'.
_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,256}")


def route(labels: Labels, settings: Settings) -> tuple[Destination | None, Labels]:
    """Return (destination or None when there is none, labels without the routing labels)."""
    database = table = None
    kept: Labels = []
    database_label = settings.database_label
    table_label = settings.table_label
    for name, value in labels:
        if name == database_label:
            database = value
        elif name == table_label:
            table = value
        else:
            kept.append((name, value))
    database = database or settings.default_database
    table = table or settings.default_table
    if database is None or table is None:
        return None, kept
    return Destination(database, table), kept


@lru_cache(maxsize=1024)
def is_valid_destination(destination: Destination) -> bool:
    """Whether both names follow Timestream's naming rules."""
    return all(_NAME.fullmatch(name) for name in destination)
