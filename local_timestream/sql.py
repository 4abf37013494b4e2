"""Timestream SQL on sqlite: the only translation there is.

Tables have Timestream's columns: ``time`` (integer milliseconds here), ``measure_name``,
``"measure_value::double"``, and one TEXT column per dimension name ever written, NULL where a
record lacks it. Two functions are registered: ``from_milliseconds(ms)`` is the identity,
``regexp_like(value, pattern)`` is Python's ``re.search`` with Java's end-of-input ``\\z``
spelt ``\\Z``. Anything else Timestream SQL has and sqlite lacks simply fails, as a
ValidationException, and so does a double-quoted name that is not a column (sqlite alone would
read it as a string).
"""

from __future__ import annotations

import datetime
import re
import sqlite3
from collections.abc import Iterable
from functools import lru_cache

TIME, MEASURE_NAME, DOUBLE_VALUE = "time", "measure_name", "measure_value::double"


class QueryError(Exception):
    """A Timestream error answer: `code` is its __type (ValidationException, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@lru_cache(maxsize=1024)
def _python_regex(pattern: str) -> re.Pattern[str]:
    # Java's \z (end of input) is Python's \Z; escaped backslashes are skipped over, not read.
    python = re.sub(r"\\(.)", lambda m: r"\Z" if m.group(1) == "z" else m.group(0), pattern, flags=re.S)
    return re.compile(python)


def regexp_like(value: str | None, pattern: str | None) -> bool | None:
    """Timestream's regexp_like: does `pattern` match anywhere in `value`? NULL in, NULL out."""
    if value is None or pattern is None:
        return None
    return _python_regex(pattern).search(value) is not None


def from_milliseconds(ms: int) -> int:
    """Timestream's from_milliseconds; time is stored as integer milliseconds here."""
    return ms


def register_functions(db: sqlite3.Connection) -> None:
    """The Timestream functions the connector's SQL uses, on a sqlite connection."""
    db.create_function("regexp_like", 2, regexp_like, deterministic=True)
    db.create_function("from_milliseconds", 1, from_milliseconds, deterministic=True)


@lru_cache(maxsize=65536)  # a query's rows share few distinct times (one per scrape)
def timestream_time(ms: int) -> str:
    """Milliseconds since the epoch as Timestream prints a timestamp (nanosecond digits)."""
    seconds, millis = divmod(ms, 1000)
    day = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{day}.{millis:03d}000000"


def unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# A single-quoted literal, or a double-quoted identifier (group 1), or an alias after AS.
_QUOTED = re.compile(r"""'(?:[^']|'')*'|\bAS\s+"(?:[^"]|"")*"|("(?:[^"]|"")*")""", re.I)


def check_identifiers(query_string: str, known: Iterable[str]) -> None:
    """Refuse a double-quoted name that is no column, database or table, as Timestream does.

    sqlite would read such a name as a string literal instead (its "double-quoted string"
    quirk, which Python's sqlite3 cannot switch off), silently answering a different query."""
    names = set(known)
    for match in _QUOTED.finditer(query_string):
        if match.group(1) and unquote(match.group(1)) not in names:
            raise QueryError("ValidationException", f"Column {match.group(1)} does not exist")
