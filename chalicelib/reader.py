"""Remote read: Prometheus queries -> Timestream SQL -> Prometheus series.

One Prometheus `Query` (time range + label matchers) becomes at most one Timestream query:

    SELECT * FROM "db"."table"
    WHERE time >= from_milliseconds(1700000000000) AND time < from_milliseconds(1700000300001)
      AND measure_name = 'up' AND ("job" IS NULL OR "job" <> 'api')
      AND regexp_like("instance", '\\A(?:web[0-9]+)\\z')

and its rows are grouped back into series. Matchers keep PromQL semantics exactly:

* `__name__` is the `measure_name` column; every other stored label is a VARCHAR dimension column.
* An absent label equals "": `l=""` selects rows where the column is NULL, `l!="v"` keeps them.
* A label the table has never stored (not a DIMENSION in `DESCRIBE`) is not sent to Timestream,
  which would fail on an unknown column: the matcher is evaluated against "" here and becomes a
  constant, possibly making the whole query provably empty (then Timestream is not asked).
* Regexes are parsed as RE2 (what PromQL uses), anchored like Prometheus (`^(?:re)$`), and
  rewritten into a subset that Timestream's engine runs identically (regex.py); anything that
  cannot be rewritten with certainty is refused with BadRequest, never answered differently.
* Routing labels (settings.database_label / table_label) are not columns: `=` matchers on them
  choose the database and table (each falling back to its default, as on the write path), and
  the chosen values are echoed as labels on every returned series so results match the selector.
  Other matchers on routing labels are checked against the echoed value ("" when the default is
  used); one that could only hold for other destinations is refused, since a query reads one table.
* Values and identifiers are always quoted: literals in single quotes with quotes doubled,
  identifiers in double quotes with double quotes doubled; NUL and lone surrogates are refused.

The answer is capped (ResponseBudget) below Lambda's 6 MB response limit, counting the encoded
protobuf size as rows arrive, so an oversized answer fails early with 413 and a hint to narrow
the query instead of failing opaquely after all pages were read.
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.config import Settings
from chalicelib.destinations import is_valid_destination
from chalicelib.errors import BadRequest, ConnectorError, PayloadTooLarge, classify
from chalicelib.logs import log_event
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.regex import compile_regex

METRIC_NAME_LABEL = "__name__"
TIME_COLUMN = "time"
MEASURE_NAME_COLUMN = "measure_name"
VALUE_COLUMN = "measure_value::double"
_MEASURE_VALUE_PREFIX = "measure_value::"

EQ, NEQ, RE, NRE = "=", "!=", "=~", "!~"
_OPERATORS = {
    pb.LabelMatcher.EQ: EQ,
    pb.LabelMatcher.NEQ: NEQ,
    pb.LabelMatcher.RE: RE,
    pb.LabelMatcher.NRE: NRE,
}

# Lambda refuses responses over 6 MB (6,291,456 bytes). The protobuf is snappy-compressed
# (worst case 32 + n + n/6 bytes) and then base64-encoded (4/3) inside a JSON envelope, so a
# protobuf of n bytes needs at most about 1.56 n + 64: 4,000,000 leaves room for headers.
DEFAULT_MAX_RESPONSE_BYTES = 4_000_000
DEFAULT_COLUMNS_TTL_SECONDS = 60.0
# A matcher naming a label the cached columns do not have reloads them, at most this often,
# so a dimension written since the last DESCRIBE is found quickly without a DESCRIBE per query.
DEFAULT_REFRESH_UNKNOWN_AFTER_SECONDS = 5.0

# Timestream has no time before the epoch, and its timestamps end at 2262-04-11 23:47:16.854775807.
_MAX_TIME_MS = 9_223_372_036_853


# --------------------------------------------------------------------------------------------
# Matchers


@dataclass(frozen=True)
class Matcher:
    """One PromQL label matcher: `op` is one of "=", "!=", "=~", "!~"."""

    op: str
    name: str
    value: str

    def matches(self, value: str) -> bool:
        """Prometheus semantics for one label value ("" stands for an absent label)."""
        if self.op == EQ:
            return value == self.value
        if self.op == NEQ:
            return value != self.value
        matched = compile_regex(self.value).matches(value)
        return matched if self.op == RE else not matched

    def __str__(self) -> str:
        return f"{self.name}{self.op}{json.dumps(self.value, ensure_ascii=False)}"


def matchers_from_pb(query: Any) -> list[Matcher]:
    """The matchers of a `prompb.Query`, in order. Unknown matcher types are a BadRequest."""
    matchers = []
    for matcher in query.matchers:
        op = _OPERATORS.get(matcher.type)
        if op is None:
            raise BadRequest(f"unknown label matcher type {matcher.type}")
        matchers.append(Matcher(op, matcher.name, matcher.value))
    return matchers


# --------------------------------------------------------------------------------------------
# Quoting


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


# --------------------------------------------------------------------------------------------
# Destination (database, table) of a query


@dataclass(frozen=True)
class Destination:
    """Where one query reads, and the routing labels to put on each of its series."""

    database: str
    table: str
    echo: tuple[tuple[str, str], ...] = ()


def select_destination(matchers: Sequence[Matcher], settings: Settings) -> Destination | None:
    """The table a query reads, from its routing-label matchers and the configured defaults.

    Each routing label is resolved on its own (as on the write path): an `=` matcher with a
    non-empty value, or an `=~` matcher whose regex is plain text, names the database (table);
    otherwise the default is used. Every matcher on that label must then hold for the chosen
    value ("" when the default is used, since those series carry no routing label): if two
    matchers contradict each other the query is provably empty (None); if a matcher fails only
    because it wanted other destinations (`!=`, `=~`, `!~` without `=`) it is a BadRequest,
    because one query reads one table. Missing destination or invalid name: BadRequest.
    """
    names: dict[str, str] = {}
    echo: list[tuple[str, str]] = []
    for what, label, default, variable in (
        ("database", settings.database_label, settings.default_database, "DEFAULT_DATABASE"),
        ("table", settings.table_label, settings.default_table, "DEFAULT_TABLE"),
    ):
        own = [matcher for matcher in matchers if matcher.name == label]
        chosen = set()
        for matcher in own:
            if matcher.op == EQ and matcher.value:
                chosen.add(matcher.value)
            elif matcher.op == RE and compile_regex(matcher.value).literal:
                chosen.add(compile_regex(matcher.value).literal)
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
        name = value or default
        if not name:
            raise BadRequest(f'no {what} for this query: add the matcher {label}="name" or set {variable}')
        names[what] = name
        if value:
            echo.append((label, value))
    destination = (names["database"], names["table"])
    if not is_valid_destination(destination):
        raise BadRequest(
            f"invalid Timestream database or table name {destination[0]!r}.{destination[1]!r}: "
            "3-256 letters, digits, '_', '-' or '.'"
        )
    return Destination(destination[0], destination[1], tuple(echo))


# --------------------------------------------------------------------------------------------
# SQL


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


def _scalar(data: Sequence[Mapping[str, Any]], index: int) -> str | None:
    if index >= len(data):
        return None
    datum = data[index]
    if datum.get("NullValue"):
        return None
    return datum.get("ScalarValue")


_CATEGORY_COLUMNS = ("timestream attribute type", "column category")


def parse_describe(pages: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The DIMENSION column names from the result pages of `describe_query`.

    The attribute-type column is found by name ("Timestream attribute type" in the
    documentation, "Column Category" in real answers) and falls back to the third column."""
    dimensions = set()
    for page in pages:
        names = [column.get("Name", "") for column in page.get("ColumnInfo", [])]
        name_index = names.index("Column") if "Column" in names else 0
        category_index = next((i for i, name in enumerate(names) if name.lower() in _CATEGORY_COLUMNS), 2)
        for row in page.get("Rows", []):
            data = row.get("Data", [])
            name = _scalar(data, name_index)
            category = _scalar(data, category_index)
            if name and category and category.upper() == "DIMENSION":
                dimensions.add(name)
    return frozenset(dimensions)


class ColumnsCache:
    """Dimension columns per table, kept `ttl_seconds`; thread-safe, bounded, injectable clock.

    Columns are only ever added to a Timestream table, so a stale entry can only miss a new
    dimension: `columns()` reloads early when asked about a label the entry lacks, but not more
    often than `refresh_unknown_after_seconds`.
    """

    def __init__(
        self,
        ttl_seconds: float = DEFAULT_COLUMNS_TTL_SECONDS,
        refresh_unknown_after_seconds: float = DEFAULT_REFRESH_UNKNOWN_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 256,
    ) -> None:
        self._ttl = ttl_seconds
        self._refresh_unknown_after = refresh_unknown_after_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> frozenset[str] | None:
        """The cached columns if younger than the TTL, else None."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self._ttl:
            return None
        return entry[1]

    def put(self, key: Hashable, columns: frozenset[str]) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (self._clock(), columns)
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]

    def columns(
        self, key: Hashable, load: Callable[[], frozenset[str]], wanted: Iterable[str] = ()
    ) -> frozenset[str]:
        """Cached columns for `key`, calling `load()` when missing, expired, or lacking a wanted
        label and older than the refresh interval."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None:
            age = self._clock() - entry[0]
            if age < self._ttl and (age < self._refresh_unknown_after or set(wanted) <= entry[1]):
                return entry[1]
        columns = load()
        self.put(key, columns)
        return columns


# --------------------------------------------------------------------------------------------
# Calling Timestream

def map_aws_error(error: Exception, database: str = "", table: str = "") -> ConnectorError | None:
    """The ConnectorError for an exception raised by a timestream-query call, or None when the
    exception is not an AWS/botocore error (a bug, to be raised as is)."""
    return classify(error, f"{database}.{table}" if database else "Timestream")


def fetch_pages(
    client: Any, query_string: str, database: str = "", table: str = ""
) -> Iterator[dict[str, Any]]:
    """Yield every result page of `query_string`, following NextToken to the end.

    AWS errors are raised as ConnectorErrors (see map_aws_error)."""
    token = None
    while True:
        params = {"QueryString": query_string}
        if token:
            params["NextToken"] = token
        try:
            page = client.query(**params)
        except Exception as error:
            mapped = map_aws_error(error, database, table)
            if mapped is None:
                raise
            raise mapped from error
        yield page
        token = page.get("NextToken")
        if not token:
            return


# --------------------------------------------------------------------------------------------
# Rows -> series, within a size budget


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def _field_size(payload: int) -> int:
    """Bytes of a length-delimited protobuf field (one-byte tag) carrying `payload` bytes."""
    return 1 + _varint_size(payload) + payload


def _label_size(name: str, value: str) -> int:
    inner = _field_size(len(name.encode())) + _field_size(len(value.encode()))
    return _field_size(inner)


def _sample_size(timestamp_ms: int) -> int:
    # Tag + length, the double (tag + 8) and the timestamp (tag + varint); an upper bound,
    # since proto3 leaves out zero values.
    return 2 + 9 + 1 + _varint_size(timestamp_ms if timestamp_ms >= 0 else 1 << 63)


# Length prefixes of a TimeSeries and of a QueryResult: at most 5 bytes each below 2**35 bytes.
_SERIES_OVERHEAD = 1 + 5
_RESULT_OVERHEAD = 1 + 5


class ResponseBudget:
    """Counts an upper bound of the encoded ReadResponse size; PayloadTooLarge past the limit."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.used = 0

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise PayloadTooLarge(
                f"the answer exceeds {self.limit} bytes, the most a response can carry: narrow the "
                "query (a shorter time range or more specific label matchers)"
            )


_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")


def parse_timestamp_ms(text: str) -> int:
    """Milliseconds since the epoch of a Timestream timestamp ("2024-01-02 03:04:05.678000000"),
    truncating below the millisecond as Prometheus timestamps do."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ConnectorError(f"unexpected time value from Timestream: {text!r}")
    fields = [int(part) for part in match.groups()[:6]]
    seconds = calendar.timegm((*fields, 0, 0, 0))
    fraction = (match.group(7) or "").ljust(3, "0")[:3]
    return seconds * 1000 + int(fraction)


def _is_label_column(name: str) -> bool:
    return name not in (TIME_COLUMN, MEASURE_NAME_COLUMN) and not name.startswith(_MEASURE_VALUE_PREFIX)


def series_from_pages(
    pages: Iterable[Mapping[str, Any]],
    echo: Sequence[tuple[str, str]] = (),
    budget: ResponseBudget | None = None,
) -> list[Any]:
    """Group `SELECT *` result rows into prompb TimeSeries.

    Columns other than time, measure_name and measure_value::* are labels; NULL or empty values
    are left out; `echo` labels are added to every series. Labels are sorted by name, series by
    labels, samples by time; rows without a double value are skipped. `budget` is charged as
    series and samples appear, so an oversized answer stops before reading every page."""
    series: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
    echo_names = {name for name, _ in echo}
    for page in pages:
        names = [column.get("Name", "") for column in page.get("ColumnInfo", [])]
        try:
            time_index = names.index(TIME_COLUMN)
            name_index = names.index(MEASURE_NAME_COLUMN)
        except ValueError:
            raise ConnectorError("Timestream answer lacks the time or measure_name column") from None
        value_index = names.index(VALUE_COLUMN) if VALUE_COLUMN in names else -1
        label_indexes = [
            (i, name) for i, name in enumerate(names) if _is_label_column(name) and name not in echo_names
        ]
        # Rows of one series repeat the same label values: build each label key once per page.
        keys: dict[tuple[Any, ...], tuple[tuple[str, str], ...]] = {}
        for row in page.get("Rows", []):
            data = row.get("Data", [])
            raw_value = _scalar(data, value_index) if value_index >= 0 else None
            metric = _scalar(data, name_index)
            stamp = _scalar(data, time_index)
            if raw_value is None or not metric or stamp is None:
                continue
            raw = (metric, *(_scalar(data, i) for i, _ in label_indexes))
            key = keys.get(raw)
            if key is None:
                labels = [(METRIC_NAME_LABEL, metric), *echo]
                pairs = zip(label_indexes, raw[1:], strict=True)
                labels.extend((name, value) for (_, name), value in pairs if value)
                key = tuple(sorted(labels))
                keys[raw] = key
            samples = series.get(key)
            if samples is None:
                samples = series[key] = []
                if budget is not None:
                    budget.charge(_SERIES_OVERHEAD + sum(_label_size(n, v) for n, v in key))
            timestamp = parse_timestamp_ms(stamp)
            if budget is not None:
                budget.charge(_sample_size(timestamp))
            try:
                samples.append((timestamp, float(raw_value)))
            except ValueError:
                raise ConnectorError(f"unexpected value from Timestream: {raw_value!r}") from None
    result = []
    for key in sorted(series):
        timeseries = pb.TimeSeries()
        timeseries.labels.extend(pb.Label(name=name, value=value) for name, value in key)
        timeseries.samples.extend(
            pb.Sample(timestamp=timestamp, value=value)
            for timestamp, value in sorted(series[key], key=lambda sample: sample[0])
        )
        result.append(timeseries)
    return result


# --------------------------------------------------------------------------------------------
# The whole request


def _check_response_types(request: Any) -> None:
    accepted = list(request.accepted_response_types)
    if accepted and pb.ReadRequest.SAMPLES not in accepted:
        raise BadRequest("only the SAMPLES remote-read response type is supported")


def read(
    request: Any,
    settings: Settings,
    query_client: Any,
    columns_cache: ColumnsCache,
    *,
    max_response_bytes: int | None = None,
    cache_scope: str = "",
) -> Any:
    """Answer a prompb ReadRequest: one QueryResult per query, in order.

    `query_client` is a botocore timestream-query client signed with the caller's credentials.
    `columns_cache` outlives requests; `cache_scope` (for example the caller's access key id)
    keeps one caller's view of a table's columns from deciding another caller's query.
    The size limit is `max_response_bytes`, else `settings.max_read_response_bytes` when that
    setting exists, else DEFAULT_MAX_RESPONSE_BYTES.
    Raises BadRequest, Forbidden, NotFound, PayloadTooLarge or ServiceUnavailable.
    """
    _check_response_types(request)
    limit = (
        max_response_bytes
        or getattr(settings, "max_read_response_bytes", None)
        or DEFAULT_MAX_RESPONSE_BYTES
    )
    budget = ResponseBudget(limit)
    response = pb.ReadResponse()
    for query in request.queries:
        budget.charge(_RESULT_OVERHEAD)
        series = _answer(query, settings, query_client, columns_cache, budget, cache_scope)
        response.results.add().timeseries.extend(series)
    return response


def _answer(
    query: Any,
    settings: Settings,
    client: Any,
    columns_cache: ColumnsCache,
    budget: ResponseBudget,
    cache_scope: str,
) -> list[Any]:
    matchers = matchers_from_pb(query)
    destination = select_destination(matchers, settings)
    if destination is None:
        return []
    database, table = destination.database, destination.table
    routing = (settings.database_label, settings.table_label)
    # Only matchers on ordinary labels need the table's columns; skip DESCRIBE otherwise.
    wanted = {m.name for m in matchers if m.name != METRIC_NAME_LABEL and m.name not in routing}
    dimensions: frozenset[str] = frozenset()
    if wanted:
        def load() -> frozenset[str]:
            return parse_describe(fetch_pages(client, describe_query(database, table), database, table))

        dimensions = columns_cache.columns((cache_scope, database, table), load, wanted)
    sql = build_query(
        database, table, matchers, query.start_timestamp_ms, query.end_timestamp_ms, dimensions, routing
    )
    if sql is None:
        log_event(logging.INFO, "read_query", database=database, table=table, sent=False, series=0)
        return []
    series = series_from_pages(fetch_pages(client, sql, database, table), destination.echo, budget)
    log_event(
        logging.INFO, "read_query", database=database, table=table, sent=True, series=len(series),
        samples=sum(len(s.samples) for s in series), response_bytes=budget.used,
    )
    return series
