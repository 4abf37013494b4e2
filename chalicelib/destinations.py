"""The routing labels, both ways: which Timestream table a series is written to or read from.

Two labels (names configurable, `prometheusDatabaseLabel` and `prometheusTableLabel` by default,
usually added with `write_relabel_configs`) name the database and the table, each falling back
to its configured default. They are never stored:

* write: `route` takes a series' labels to its Destination and the labels without the routing
  labels, which become the record's dimensions;
* read: `select_destination` takes a query's matchers on the routing labels to the one
  Destination it reads, and the routing labels to put back on every series it returns (so
  results match the selector).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from chalicelib.config import Settings
from chalicelib.errors import BadRequest

if TYPE_CHECKING:
    # Only for annotations: the write path, which imports this module, needs no matcher (nor
    # the regex translation behind it) to start.
    from chalicelib.matchers import Matcher

Labels = list[tuple[str, str]]


class Destination(NamedTuple):
    """A Timestream table. A plain pair underneath: hashable, cheap, and unpacks as
    `database, table`, so it keys the writer's batches directly."""

    database: str
    table: str


# Timestream database and table names: 3-256 characters of letters, digits, '_', '-' and '.'.
_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,256}")


def route(
    labels: Labels, settings: Settings, *, table_required: bool = True
) -> tuple[Destination | None, Labels]:
    """Return (destination or None when there is none, labels without the routing labels).

    With `table_required` False (an engine that stores no table, such as InfluxDB's, where the
    database alone is the destination) a series without a table gets the table "" instead of
    no destination; its table label is still taken off."""
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
    table = table or settings.default_table or ("" if not table_required else None)
    if database is None or table is None:
        return None, kept
    return Destination(database, table), kept


@lru_cache(maxsize=1024)
def is_valid_destination(destination: Destination) -> bool:
    """Whether both names follow Timestream's naming rules."""
    return all(_NAME.fullmatch(name) for name in destination)


class ReadTarget(NamedTuple):
    """Where one query reads, and the routing labels it named, to echo on each returned series."""

    destination: Destination
    echo: tuple[tuple[str, str], ...] = ()


def select_destination(
    matchers: Sequence[Matcher],
    settings: Settings,
    *,
    table_required: bool = True,
    timestream_names: bool = True,
) -> ReadTarget | None:
    """The table a query reads, from its routing-label matchers and the configured defaults.

    Each routing label is resolved on its own (as on the write path): an `=` matcher with a
    non-empty value, or an `=~` matcher whose regex is plain text, names the database (table);
    otherwise the default is used. Every matcher on that label must then hold for the chosen
    value ("" when the default is used, since those series carry no routing label): if two
    matchers contradict each other the query is provably empty (None); if a matcher fails only
    because it wanted other destinations (`!=`, `=~`, `!~` without `=`) it is a BadRequest,
    because one query reads one table. Missing destination or invalid name: BadRequest.
    With `table_required` False a query without a table reads the table "" (as `route`); with
    `timestream_names` False the names are not held to Timestream's rules (the engine's server
    judges them).
    """
    names: dict[str, str] = {}
    echo: list[tuple[str, str]] = []
    for what, label, default, variable in (
        ("database", settings.database_label, settings.default_database, "DEFAULT_DATABASE"),
        ("table", settings.table_label, settings.default_table, "DEFAULT_TABLE"),
    ):
        own = [matcher for matcher in matchers if matcher.name == label]
        chosen = {value for value in (matcher.exact_value() for matcher in own) if value}
        if len(chosen) > 1:
            return None
        value = chosen.pop() if chosen else ""
        for matcher in own:
            if matcher.matches(value):
                continue
            if value:
                return None
            raise BadRequest(
                f"{matcher} cannot select a {what}: a query reads one {what}, chosen with "
                f'{label}="name" or else {variable}'
            )
        name = value or default or ("" if what == "table" and not table_required else None)
        if name is None:
            raise BadRequest(f'no {what} for this query: add the matcher {label}="name" or set {variable}')
        names[what] = name
        if value:
            echo.append((label, value))
    destination = Destination(names["database"], names["table"])
    if timestream_names and not is_valid_destination(destination):
        raise BadRequest(
            f"invalid Timestream database or table name {destination.database!r}.{destination.table!r}: "
            "3-256 letters, digits, '_', '-' or '.'"
        )
    return ReadTarget(destination, tuple(echo))
