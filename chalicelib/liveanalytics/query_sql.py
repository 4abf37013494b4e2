"""Label matchers -> Timestream SQL, with PromQL's semantics and every value quoted.

One Prometheus query (time range + label matchers) becomes one `SELECT *`:

    SELECT * FROM "db"."table"
    WHERE time >= from_milliseconds(1700000000000) AND time < from_milliseconds(1700000300001)
      AND measure_name = 'up' AND ("job" IS NULL OR "job" <> 'api')
      AND regexp_like("instance", '\\A(?:web[0-9]+)\\z')

* `__name__` is the `measure_name` column; every other stored label is a VARCHAR dimension column.
* An absent label equals "": `l=""` selects rows where the column is NULL, `l!="v"` keeps them.
* A label that is not one of the table's dimensions is not sent (Timestream fails a query naming
  an unknown column): its matcher is evaluated against "" here, and either drops out or makes
  the whole query provably empty (no SQL at all).
* Regexes are anchored like Prometheus's and rewritten by regex.py into a pattern Timestream's
  engine runs identically, or refused (BadRequest) when that cannot be certain, never answered
  differently; plain-text regexes become equality so Timestream can prune by them.
* Literals are single-quoted with quotes doubled, identifiers double-quoted with double quotes
  doubled; text with NUL or lone surrogates is refused. No value can change the query's shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chalicelib.errors import BadRequest
from chalicelib.matchers import EQ, METRIC_NAME_LABEL, NEQ, NRE, RE, Matcher
from chalicelib.regex import compile_regex

# The columns Timestream gives every table besides its dimensions.
TIME_COLUMN = "time"
MEASURE_NAME_COLUMN = "measure_name"
VALUE_COLUMN = "measure_value::double"
MEASURE_VALUE_PREFIX = "measure_value::"

# Timestream has no time before the epoch, and its timestamps end at 2262-04-11 23:47:16.854775807.
_MAX_TIME_MS = 9_223_372_036_853


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise BadRequest(f"{what} contains a NUL character, which Timestream queries cannot carry")
    if any("\ud800" <= char <= "\udfff" for char in text):
        raise BadRequest(f"{what} is not valid Unicode")


def quote_literal(value: str) -> str:
    """A Timestream SQL string literal equal to `value` (single quotes doubled).

    Timestream string literals have no backslash escapes (its own documentation passes regex
    patterns like 'ex\\w' verbatim), so doubling the quote is the only escaping needed."""
    _check_text(value, "a label value")
    return "'" + value.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """A double-quoted Timestream SQL identifier naming exactly `name` (double quotes doubled)."""
    if not name:
        raise BadRequest("an empty name cannot be a Timestream column, database or table")
    _check_text(name, "a name")
    return '"' + name.replace('"', '""') + '"'


def _predicate(matcher: Matcher, column: str, nullable: bool) -> str:
    """SQL that is true exactly when the column's value ("" when NULL) satisfies the matcher."""
    op, value = matcher.op, matcher.value
    if op in (RE, NRE):
        regex = compile_regex(value)
        if regex.literal is not None:
            # Plain text: equality lets Timestream prune by measure name and dimension.
            op, value = (EQ if op == RE else NEQ), regex.literal
    is_null = f"{column} IS NULL OR " if nullable else ""
    if op == EQ:
        if value == "":
            return f"({column} IS NULL OR {column} = '')" if nullable else f"{column} = ''"
        return f"{column} = {quote_literal(value)}"
    if op == NEQ:
        if value == "":
            return f"{column} <> ''"
        differs = f"{column} <> {quote_literal(value)}"
        return f"({is_null}{differs})" if nullable else differs
    regex = compile_regex(value)
    like = f"regexp_like({column}, {quote_literal(regex.sql_pattern)})"
    if op == RE:
        return f"({is_null}{like})" if regex.matches_empty and nullable else like
    # NULL and '' match the regex exactly when it matches "": then NOT regexp_like (NULL for
    # NULL) already excludes them; otherwise they must be let through explicitly.
    if regex.matches_empty or not nullable:
        return f"NOT {like}"
    return f"({is_null}NOT {like})"


def build_query(
    database: str,
    table: str,
    matchers: Sequence[Matcher],
    start_ms: int,
    end_ms: int,
    dimensions: Iterable[str],
    ignore_labels: Iterable[str] = (),
) -> str | None:
    """The Timestream SQL for one query, or None when it provably selects nothing.

    Time bounds are inclusive to the millisecond: [start_ms, end_ms] is sent as the half-open
    [start_ms, end_ms + 1) so rows stored with sub-millisecond precision are kept exactly when
    their millisecond is. `dimensions` are the table's dimension columns; a matcher on any other
    label (except `__name__` and `ignore_labels`, the routing labels) is evaluated against "".
    """
    lower = max(start_ms, 0)
    upper = min(end_ms, _MAX_TIME_MS)
    if upper < lower:
        return None
    known = frozenset(dimensions)
    skipped = frozenset(ignore_labels)
    predicates = [
        f"{TIME_COLUMN} >= from_milliseconds({lower})",
        f"{TIME_COLUMN} < from_milliseconds({upper + 1})",
    ]
    for matcher in matchers:
        if matcher.name in skipped:
            continue
        if matcher.name == METRIC_NAME_LABEL:
            predicate = _predicate(matcher, MEASURE_NAME_COLUMN, nullable=False)
        elif matcher.name in known:
            predicate = _predicate(matcher, quote_identifier(matcher.name), nullable=True)
        elif matcher.matches(""):
            continue
        else:
            return None
        if predicate not in predicates:
            predicates.append(predicate)
    source = f"{quote_identifier(database)}.{quote_identifier(table)}"
    return f"SELECT * FROM {source} WHERE " + " AND ".join(predicates)


def describe_query(database: str, table: str) -> str:
    """SQL listing a table's columns (rows: column name, type, Timestream attribute type)."""
    return f"DESCRIBE {quote_identifier(database)}.{quote_identifier(table)}"
