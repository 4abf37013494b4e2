"""timestream-query `Query` answered from the records a local run stored.

* ``DESCRIBE "db"."table"``: the table's columns as Timestream lists them (Column, Type,
  Timestream attribute type);
* ``SELECT ...`` (or ``WITH ...``): the SQL runs verbatim on the table's indexed sqlite copy
  (see `local_timestream.sql` for the translation and `local_timestream.store` for the table);
* the answer has Timestream's shape: ColumnInfo, Rows of ScalarValue / ``NullValue: true``,
  timestamps as ``YYYY-MM-DD HH:MM:SS.fffffffff``, doubles as ``repr`` text, PAGE_ROWS rows a
  page with NextToken;
* a missing database or table is what Timestream answers a query for one: a ValidationException
  "Requested database 'x' not found for identifier 'x.t' at line 1:15" (and the same wording for
  a table); an SQL error is a ValidationException too.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from local_timestream.sql import DOUBLE_VALUE, MEASURE_NAME, TIME, QueryError, timestream_time, unquote

if TYPE_CHECKING:
    from local_timestream.store import TableStore

PAGE_ROWS = 1000
MAX_PENDING_RESULTS = 64

_IDENTIFIER = r'"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*'
_DESCRIBE = re.compile(rf"\s*DESCRIBE\s+({_IDENTIFIER})\s*\.\s*({_IDENTIFIER})\s*;?\s*", re.I)
_FROM = re.compile(rf"\bFROM\s+({_IDENTIFIER})\s*\.\s*({_IDENTIFIER})", re.I)
_SCALAR_TYPES = {TIME: "TIMESTAMP", MEASURE_NAME: "VARCHAR", DOUBLE_VALUE: "DOUBLE"}

# database name -> its tables' stores by table name, or None when there is no such database.
StoresOf = Callable[[str], "Mapping[str, TableStore] | None"]


def _position(text: str, index: int) -> str:
    """Where `index` is in `text`, as Timestream's messages say it: "line 1:15"."""
    line_start = text.rfind("\n", 0, index)  # -1 on the first line
    line = text.count("\n", 0, index) + 1
    return f"line {line}:{index - line_start}"


def _scalar_type(name: str, values: Iterable[Any]) -> str:
    if name in _SCALAR_TYPES:
        return _SCALAR_TYPES[name]
    for value in values:
        if isinstance(value, float):
            return "DOUBLE"
        if isinstance(value, int):
            return "BIGINT"
        if value is not None:
            return "VARCHAR"
    return "VARCHAR"


def _datum(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {"NullValue": True}
    if name == TIME and isinstance(value, int):
        return {"ScalarValue": timestream_time(value)}
    return {"ScalarValue": repr(value) if isinstance(value, float) else str(value)}


class QueryEmulator:
    """Answers Query calls from table stores; keeps computed results for their NextTokens."""

    def __init__(self, page_rows: int = PAGE_ROWS) -> None:
        self.page_rows = page_rows
        self._pending: OrderedDict[str, tuple[str, dict[str, Any], int]] = OrderedDict()
        self._lock = threading.Lock()

    def query(self, query_string: str, next_token: str | None, stores_of: StoresOf) -> dict[str, Any]:
        """One page of the answer to `query_string`. Raises QueryError."""
        if next_token:
            with self._lock:
                pending = self._pending.pop(next_token, None)
            if pending is None or pending[0] != query_string:
                raise QueryError("ValidationException", "invalid or expired NextToken for this query")
            return self._page(query_string, pending[1], pending[2])
        describe = _DESCRIBE.fullmatch(query_string)
        source = describe or _FROM.search(query_string)
        if source is None or not (describe or re.match(r"\s*(SELECT|WITH)\b", query_string, re.I)):
            raise QueryError("ValidationException", "the local Timestream answers only DESCRIBE and SELECT "
                             'on one "database"."table"')
        database, table = unquote(source.group(1)), unquote(source.group(2))
        stores = stores_of(database)
        if stores is None or table not in stores:
            what, name = ("database", database) if stores is None else ("table", table)
            raise QueryError("ValidationException", f"Requested {what} '{name}' not found for identifier "
                             f"'{database}.{table}' at {_position(query_string, source.start(1))}")
        store = stores[table]
        names, rows = store.describe() if describe else store.select(query_string)
        result = {
            "ColumnInfo": [
                {"Name": name, "Type": {"ScalarType": _scalar_type(name, (row[i] for row in rows))}}
                for i, name in enumerate(names)
            ],
            "Rows": [{"Data": [_datum(name, value) for name, value in zip(names, row, strict=True)]}
                     for row in rows],
            "QueryId": str(uuid.uuid4()),
        }
        return self._page(query_string, result, 0)

    def _page(self, query_string: str, result: dict[str, Any], start: int) -> dict[str, Any]:
        end = start + self.page_rows
        page = {
            "QueryId": result["QueryId"],
            "ColumnInfo": result["ColumnInfo"],
            "Rows": result["Rows"][start:end],
            "QueryStatus": {
                "ProgressPercentage": 100.0, "CumulativeBytesScanned": 0, "CumulativeBytesMetered": 0,
            },
        }
        if end < len(result["Rows"]):
            token = f"{result['QueryId']}:{end}"
            with self._lock:
                self._pending[token] = (query_string, result, end)
                while len(self._pending) > MAX_PENDING_RESULTS:
                    self._pending.popitem(last=False)
            page["NextToken"] = token
        return page


EMULATOR = QueryEmulator()
