"""Local Timestream for development and tests: moto's server, plus what moto leaves out.

moto stores WriteRecords' `Records` as sent and ignores `CommonAttributes`; Timestream merges
them into every record. The patch below does that merge so that what a local run stores is
what Timestream would store. Usable in-process (`install_patches()` before `mock_aws`) or as a
server: `python -m local_timestream --port 9202 --database prometheus --table metrics`.

moto's timestream-query `Query` only returns results queued through its /moto-api. The second
patch answers it from the records actually written, so a local remote read sees what a local
remote write stored:

* ``DESCRIBE "db"."table"``: the table's columns as Timestream lists them (Column, Type,
  Timestream attribute type);
* ``SELECT ...`` (or ``WITH ...``): the SQL runs verbatim on sqlite, over a table built from the
  stored records with Timestream's columns: ``time`` (integer milliseconds here),
  ``measure_name``, ``"measure_value::double"``, and one TEXT column per dimension name ever
  written, NULL where a record lacks it. A record written again (same dimensions, measure name
  and millisecond) is kept once, the first value, as Timestream keeps it (it accepts an
  identical rewrite and refuses a different value). Two functions are registered, the only
  translation there is: ``from_milliseconds(ms)`` is the identity, ``regexp_like(value, pattern)``
  is Python's ``re.search`` with Java's end-of-input ``\\z`` spelt ``\\Z``. Anything else
  Timestream SQL has and sqlite lacks simply fails, as a ValidationException, and so does a
  double-quoted name that is not a column (sqlite alone would read it as a string);
* the answer has Timestream's shape: ColumnInfo, Rows of ScalarValue / ``NullValue: true``,
  timestamps as ``YYYY-MM-DD HH:MM:SS.fffffffff``, doubles as ``repr`` text, PAGE_ROWS rows a
  page with NextToken;
* a missing database or table is what Timestream answers a query for one: a ValidationException
  "Requested database 'x' not found for identifier 'x.t' at line 1:15" (and the same wording for
  a table); an SQL error is a ValidationException too.

Results queued through /moto-api still win, so moto's own mechanism keeps working.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any


def merge_common_attributes(common: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Timestream semantics: record attributes win; dimensions of both are combined."""
    merged = {**common, **record}
    if "Dimensions" in common or "Dimensions" in record:
        merged["Dimensions"] = list(common.get("Dimensions", [])) + list(record.get("Dimensions", []))
    return merged


# --------------------------------------------------------------------------------------------
# Timestream SQL on sqlite: the translation


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


def timestream_time(ms: int) -> str:
    """Milliseconds since the epoch as Timestream prints a timestamp (nanosecond digits)."""
    seconds, millis = divmod(ms, 1000)
    day = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{day}.{millis:03d}000000"


# --------------------------------------------------------------------------------------------
# Query answers from stored records

PAGE_ROWS = 1000
MAX_PENDING_RESULTS = 64

TIME, MEASURE_NAME, DOUBLE_VALUE = "time", "measure_name", "measure_value::double"
# TimeUnit -> (multiply, divide) to get milliseconds.
_TO_MS = {
    "SECONDS": (1000, 1), "MILLISECONDS": (1, 1), "MICROSECONDS": (1, 1000), "NANOSECONDS": (1, 1_000_000),
}
_IDENTIFIER = r'"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_]*'
_DESCRIBE = re.compile(rf"\s*DESCRIBE\s+({_IDENTIFIER})\s*\.\s*({_IDENTIFIER})\s*;?\s*", re.I)
_FROM = re.compile(rf"\bFROM\s+({_IDENTIFIER})\s*\.\s*({_IDENTIFIER})", re.I)
_SCALAR_TYPES = {TIME: "TIMESTAMP", MEASURE_NAME: "VARCHAR", DOUBLE_VALUE: "DOUBLE"}

# database name -> its tables' stored records by table name, or None when there is no such database.
TablesOf = Callable[[str], "Mapping[str, list[dict[str, Any]]] | None"]


class QueryError(Exception):
    """A Timestream error answer: `code` is its __type (ValidationException, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _position(text: str, index: int) -> str:
    """Where `index` is in `text`, as Timestream's messages say it: "line 1:15"."""
    line_start = text.rfind("\n", 0, index)  # -1 on the first line
    line = text.count("\n", 0, index) + 1
    return f"line {line}:{index - line_start}"


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def record_time_ms(record: dict[str, Any]) -> int:
    """A record's Time in milliseconds (below the millisecond truncated), from its TimeUnit."""
    multiply, divide = _TO_MS[record.get("TimeUnit") or "MILLISECONDS"]
    return int(record["Time"]) * multiply // divide


def _dimensions(record: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in record.get("Dimensions", [])}


def dimension_names(records: Iterable[dict[str, Any]]) -> list[str]:
    """Every dimension name in the records, in the order first written."""
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(_dimensions(record)))
    return list(names)


def describe_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Column names and rows of `DESCRIBE` for a table holding `records`."""
    rows = [[name, "varchar", "DIMENSION"] for name in dimension_names(records)]
    rows += [[MEASURE_NAME, "varchar", "MEASURE_NAME"], [TIME, "timestamp", "TIMESTAMP"],
             [DOUBLE_VALUE, "double", "MEASURE_VALUE"]]
    return ["Column", "Type", "Timestream attribute type"], rows


def load_table(db: sqlite3.Connection, database: str, table: str, records: list[dict[str, Any]]) -> None:
    """Create `"database"."table"` in `db` (an attached in-memory schema) holding `records`."""
    dimensions = dimension_names(records)
    db.execute(f"ATTACH DATABASE ':memory:' AS {_quote(database)}")
    columns = "".join(f", {_quote(name)} TEXT" for name in dimensions)
    db.execute(f"CREATE TABLE {_quote(database)}.{_quote(table)} "
               f'(time INTEGER, measure_name TEXT, "measure_value::double" REAL{columns})')
    rows: dict[tuple[Any, ...], list[Any]] = {}
    for record in records:
        dims = _dimensions(record)
        key = (record.get("MeasureName"), tuple(sorted(dims.items())), record_time_ms(record))
        double = record.get("MeasureValueType", "DOUBLE") == "DOUBLE" and "MeasureValue" in record
        rows.setdefault(key, [record_time_ms(record), record.get("MeasureName"),
                              float(record["MeasureValue"]) if double else None,
                              *(dims.get(name) for name in dimensions)])
    placeholders = ", ".join("?" * (3 + len(dimensions)))
    db.executemany(f"INSERT INTO {_quote(database)}.{_quote(table)} VALUES ({placeholders})", rows.values())


# A single-quoted literal, or a double-quoted identifier (group 1), or an alias after AS.
_QUOTED = re.compile(r"""'(?:[^']|'')*'|\bAS\s+"(?:[^"]|"")*"|("(?:[^"]|"")*")""", re.I)


def check_identifiers(query_string: str, known: Iterable[str]) -> None:
    """Refuse a double-quoted name that is no column, database or table, as Timestream does.

    sqlite would read such a name as a string literal instead (its "double-quoted string"
    quirk, which Python's sqlite3 cannot switch off), silently answering a different query."""
    names = set(known)
    for match in _QUOTED.finditer(query_string):
        if match.group(1) and _unquote(match.group(1)) not in names:
            raise QueryError("ValidationException", f"Column {match.group(1)} does not exist")


def select_rows(query_string: str, database: str, table: str,
                records: list[dict[str, Any]]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run `query_string` on sqlite over the table built from `records`."""
    columns = [TIME, MEASURE_NAME, DOUBLE_VALUE, *dimension_names(records)]
    check_identifiers(query_string, [database, table, *columns])
    db = sqlite3.connect(":memory:")
    try:
        register_functions(db)
        load_table(db, database, table, records)
        try:
            cursor = db.execute(query_string)
            return [column[0] for column in cursor.description or ()], cursor.fetchall()
        except sqlite3.Error as error:
            message = f"the local Timestream could not run the query: {error}"
            raise QueryError("ValidationException", message) from None
    finally:
        db.close()


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
    """Answers Query calls from stored records; keeps computed results for their NextTokens."""

    def __init__(self, page_rows: int = PAGE_ROWS) -> None:
        self.page_rows = page_rows
        self._pending: OrderedDict[str, tuple[str, dict[str, Any], int]] = OrderedDict()
        self._lock = threading.Lock()

    def query(self, query_string: str, next_token: str | None, tables_of: TablesOf) -> dict[str, Any]:
        """One page of the answer to `query_string` over the stored records. Raises QueryError."""
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
        database, table = _unquote(source.group(1)), _unquote(source.group(2))
        tables = tables_of(database)
        if tables is None or table not in tables:
            what, name = ("database", database) if tables is None else ("table", table)
            raise QueryError("ValidationException", f"Requested {what} '{name}' not found for identifier "
                             f"'{database}.{table}' at {_position(query_string, source.start(1))}")
        records = list(tables[table])
        if describe:
            names, rows = describe_rows(records)
        else:
            names, rows = select_rows(query_string, database, table, records)
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


# --------------------------------------------------------------------------------------------
# moto patches


def install_patches() -> None:
    """Patch moto (idempotent): CommonAttributes merged on WriteRecords, Query answered from
    the stored records (see the module docstring)."""
    from moto.timestreamwrite.responses import TimestreamWriteResponse

    if getattr(TimestreamWriteResponse, "_common_attributes_patched", False):
        return

    def write_records(self: Any) -> str:
        database_name = self._get_param("DatabaseName")
        table_name = self._get_param("TableName")
        common = self._get_param("CommonAttributes") or {}
        records = [merge_common_attributes(common, record) for record in self._get_param("Records")]
        self.timestreamwrite_backend.write_records(database_name, table_name, records)
        count = len(records)
        return json.dumps({"RecordsIngested": {"Total": count, "MemoryStore": count, "MagneticStore": 0}})

    TimestreamWriteResponse.write_records = write_records
    TimestreamWriteResponse._common_attributes_patched = True
    _install_query_patch(TimestreamWriteResponse)


def _install_query_patch(response_class: Any) -> None:
    from moto.core.exceptions import JsonRESTError

    queued_query = response_class.query

    def query(self: Any) -> str:
        if self.timestreamquery_backend.query_result_queue:
            return queued_query(self)  # results queued through /moto-api, moto's own way
        databases = self.timestreamwrite_backend.databases

        def tables_of(database: str) -> dict[str, list[dict[str, Any]]] | None:
            stored = databases.get(database)
            return {name: table.records for name, table in stored.tables.items()} if stored else None

        try:
            result = EMULATOR.query(self._get_param("QueryString"), self._get_param("NextToken"), tables_of)
        except QueryError as error:
            raise JsonRESTError(error.code, error.message) from None
        return json.dumps(result)

    response_class.query = query


def create_tables(endpoint: str, database: str, tables: list[str], region: str = "us-east-1") -> None:
    import boto3

    client = boto3.client(
        "timestream-write",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    client.create_database(DatabaseName=database)
    for table in tables:
        client.create_table(DatabaseName=database, TableName=table)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9202)
    parser.add_argument("--database", help="database to create at start-up")
    parser.add_argument("--table", action="append", default=[], help="table to create (repeatable)")
    args = parser.parse_args(argv)

    from moto.server import ThreadedMotoServer

    install_patches()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    if args.database:
        create_tables(f"http://{args.host}:{args.port}", args.database, args.table)
    print(f"local Timestream listening on http://{args.host}:{args.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
