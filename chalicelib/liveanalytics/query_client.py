"""The Timestream query client of one caller: result pages, AWS errors, and tables' columns.

`fetch_pages` follows NextToken to the last page and turns AWS errors into ConnectorErrors
(`errors.classify`, shared with the write path): retryable ones 503, refused credentials 403, a
missing table 404, a refused query 400. A table's dimension columns come from `DESCRIBE`
(`parse_describe`) and are kept in a ColumnsCache shared by requests: per caller (the cache
scope: the credential), so one caller's view of a table never decides another's query, and for
a TTL, reloaded early when a query names a label the kept columns lack (columns are only ever
added to a table).
`QueryClient` puts these together for one request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

from chalicelib.config import Settings
from chalicelib.errors import classify
from chalicelib.liveanalytics.query_sql import describe_query
from chalicelib.liveanalytics.read_results import column_names, scalar

_DEFAULTS = Settings()

# --------------------------------------------------------------------------------------------
# Calling Timestream

def fetch_pages(
    client: Any, query_string: str, database: str = "", table: str = ""
) -> Iterator[dict[str, Any]]:
    """Yield every result page of `query_string`, following NextToken to the end.

    AWS errors are raised as the ConnectorErrors `errors.classify` makes of them."""
    token = None
    while True:
        params = {"QueryString": query_string}
        if token:
            params["NextToken"] = token
        try:
            page = client.query(**params)
        except Exception as error:
            mapped = classify(error, f"{database}.{table}" if database else "Timestream")
            if mapped is None:
                raise
            raise mapped from error
        yield page
        token = page.get("NextToken")
        if not token:
            return


# --------------------------------------------------------------------------------------------
# A table's dimension columns

_CATEGORY_COLUMNS = ("timestream attribute type", "column category")


def parse_describe(pages: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The DIMENSION column names from the result pages of `describe_query`.

    The attribute-type column is found by name ("Timestream attribute type" in the
    documentation, "Column Category" in real answers) and falls back to the third column."""
    dimensions = set()
    for page in pages:
        names = column_names(page)
        name_index = names.index("Column") if "Column" in names else 0
        category_index = next((i for i, name in enumerate(names) if name.lower() in _CATEGORY_COLUMNS), 2)
        for row in page.get("Rows", []):
            data = row.get("Data", [])
            name = scalar(data, name_index)
            category = scalar(data, category_index)
            if name and category and category.upper() == "DIMENSION":
                dimensions.add(name)
    return frozenset(dimensions)


class ColumnsCache:
    """Dimension columns per key, kept `ttl_seconds`; thread-safe, bounded, injectable clock.

    Columns are only ever added to a Timestream table, so a stale entry can only miss a new
    dimension: `columns()` reloads early when asked about a label the entry lacks, but not more
    often than `refresh_unknown_after_seconds`. Past `max_entries` the oldest entry goes.
    """

    def __init__(
        self,
        ttl_seconds: float = _DEFAULTS.read_columns_ttl_seconds,
        refresh_unknown_after_seconds: float = _DEFAULTS.read_columns_refresh_seconds,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = _DEFAULTS.read_columns_cache_size,
    ) -> None:
        self._ttl = ttl_seconds
        self._refresh_unknown_after = refresh_unknown_after_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.monotonic) -> ColumnsCache:
        """A cache with the configured TTL, refresh interval and size."""
        return cls(
            ttl_seconds=settings.read_columns_ttl_seconds,
            refresh_unknown_after_seconds=settings.read_columns_refresh_seconds,
            clock=clock,
            max_entries=settings.read_columns_cache_size,
        )

    def get(self, key: Hashable) -> frozenset[str] | None:
        """The cached columns if younger than the TTL, else None."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self._ttl:
            return None
        return entry[1]

    def put(self, key: Hashable, columns: frozenset[str]) -> None:
        """Keep `columns` for `key` from now on."""
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
# One caller's queries


class QueryClient:
    """A botocore timestream-query client signed for one caller, with the shared column cache
    seen through that caller's `cache_scope` (for example the access key id)."""

    def __init__(self, client: Any, columns_cache: ColumnsCache, cache_scope: str = "") -> None:
        self._client = client
        self._columns_cache = columns_cache
        self._cache_scope = cache_scope

    def pages(self, sql: str, database: str = "", table: str = "") -> Iterator[dict[str, Any]]:
        """Every result page of `sql`; `database` and `table` name the table in error messages."""
        return fetch_pages(self._client, sql, database, table)

    def dimensions(self, database: str, table: str, wanted: Iterable[str] = ()) -> frozenset[str]:
        """The table's dimension columns, from the cache or DESCRIBE; reloaded early when a
        `wanted` label is missing from an entry older than the refresh interval."""

        def load() -> frozenset[str]:
            return parse_describe(self.pages(describe_query(database, table), database, table))

        return self._columns_cache.columns((self._cache_scope, database, table), load, wanted)
