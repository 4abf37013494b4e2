"""One local table's records: kept as Timestream keeps them, indexed for queries.

A table's store holds three views of the same records, updated together under one lock:

* the points, by identity (measure name, dimensions, time to the nanosecond): a record for an
  existing point is an identical rewrite (accepted, nothing changes), an upsert (a higher
  Version replaces the value) or a conflict (rejected with the existing version);
* moto's `records` list of the table (what `/moto-api/data.json` and `make records` show),
  one entry per point, CommonAttributes already merged;
* an sqlite table with Timestream's columns, indexed by time and by measure name and time, so a
  query reads the rows of its time range instead of rebuilding a table from every record. A
  MULTI record's measures are columns named after them (NULL in rows without them), as in
  Timestream.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local_timestream import rules
from local_timestream.sql import (
    DOUBLE_VALUE,
    MEASURE_NAME,
    TIME,
    QueryError,
    check_identifiers,
    quote,
    register_functions,
)

PointKey = tuple[str, tuple[tuple[str, str], ...], int]


@dataclass(slots=True)
class _Point:
    value: tuple[str, Any]  # (type, value or MeasureValues): what "a different value" compares
    version: int
    position: int  # in the records list
    rowid: int | None  # in sqlite


@dataclass
class WriteOutcome:
    """What one WriteRecords call did: ingested counts and rejections (RecordIndex, Reason...)."""

    memory_store: int = 0
    magnetic_store: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _dimensions(record: Mapping[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in record.get("Dimensions") or []}


def _value(record: Mapping[str, Any]) -> tuple[str, Any]:
    value_type = record.get("MeasureValueType") or "DOUBLE"
    if value_type == "MULTI":
        measures = record["MeasureValues"]
        return value_type, tuple(sorted((m["Name"], m.get("Type"), m["Value"]) for m in measures))
    if value_type == "DOUBLE":
        return value_type, float(record["MeasureValue"])  # "1" and "1.0" are the same double
    return value_type, record["MeasureValue"]


class TableStore:
    """Records of `"database"."table"`; thread-safe (moto's server answers from several threads)."""

    def __init__(self, database: str, table: str, records: list[dict[str, Any]]) -> None:
        self.database = database
        self.table = table
        self.records = records  # moto's list, shared: kept one entry per point
        self.dimensions: list[str] = []
        self._dimension_names: set[str] = set()
        # MULTI measures seen: name -> Timestream type (DOUBLE, VARCHAR, ...)
        self.measures: dict[str, str] = {}
        self._points: dict[PointKey, _Point] = {}
        self._lock = threading.RLock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        register_functions(self._db)
        self._source = f"{quote(database)}.{quote(table)}"
        self._db.execute(f"ATTACH DATABASE ':memory:' AS {quote(database)}")
        self._db.execute(f"CREATE TABLE {self._source} "
                         f"({TIME} INTEGER, {MEASURE_NAME} TEXT, {quote(DOUBLE_VALUE)} REAL)")
        schema, name = quote(database), table
        self._db.execute(f"CREATE INDEX {schema}.{quote(name + '__time')} ON {quote(name)} ({TIME})")
        self._db.execute(f"CREATE INDEX {schema}.{quote(name + '__measure_time')} ON {quote(name)} "
                         f"({MEASURE_NAME}, {TIME})")
        existing = list(records)
        records.clear()
        self._add(existing)

    # -- writing ---------------------------------------------------------------------------

    def write(self, records: list[dict[str, Any]], earliest_ms: int, latest_ms: int, store: str,
              memory_start_ms: int) -> WriteOutcome:
        """Store checked records (see rules.check_request) whose time is in [earliest_ms,
        latest_ms); reject the others and conflicting values, as Timestream does."""
        outcome = WriteOutcome()
        with self._lock:
            accepted: list[tuple[int, dict[str, Any]]] = []
            for index, record in enumerate(records):
                time_ns = rules.time_ns(record)
                time_ms = time_ns // 1_000_000
                if not earliest_ms <= time_ms < latest_ms:
                    reason = rules.outside_time_range(earliest_ms, latest_ms, store)
                    outcome.rejected.append({"RecordIndex": index, "Reason": reason})
                    continue
                rejection = self._conflict(record, time_ns)
                if rejection:
                    outcome.rejected.append({"RecordIndex": index, **rejection})
                    continue
                accepted.append((time_ms, record))
                self._put(record, time_ns)
            for time_ms, _ in accepted:
                if time_ms >= memory_start_ms:
                    outcome.memory_store += 1
                else:
                    outcome.magnetic_store += 1
        return outcome

    def restore(self, records: Iterable[dict[str, Any]]) -> None:
        """Records stored before (a journal's replay): each written again as an upsert, no rules."""
        with self._lock:
            for record in records:
                self._put(record, rules.time_ns(record))

    def _key(self, record: Mapping[str, Any], time_ns: int) -> PointKey:
        return record["MeasureName"], tuple(sorted(_dimensions(record).items())), time_ns

    def _conflict(self, record: Mapping[str, Any], time_ns: int) -> dict[str, Any] | None:
        """The rejection of a record for an existing point, or None if it may be written."""
        point = self._points.get(self._key(record, time_ns))
        if point is None:
            return None
        version = record.get("Version") or 1
        if version > point.version or _value(record) == point.value:
            return None
        if version == point.version:
            reason = rules.SAME_VERSION
        else:
            reason = rules.lower_version(version, point.version)
        return {"Reason": reason, "ExistingVersion": point.version}

    def _put(self, record: dict[str, Any], time_ns: int) -> None:
        key = self._key(record, time_ns)
        version = record.get("Version") or 1
        point = self._points.get(key)
        if point is None:
            self._add([record])
            return
        if version <= point.version:
            return  # an identical rewrite: Timestream keeps the point as it is
        # An upsert: a higher version replaces the value (and an identical value's version).
        point.version = version
        point.value = _value(record)
        self.records[point.position] = record
        if point.rowid is not None:
            values = self._row_values(record, point.value)
            assignments = ", ".join(f"{quote(name)} = ?" for name in [DOUBLE_VALUE, *self.measures])
            row = [values.get(DOUBLE_VALUE), *(values.get(name) for name in self.measures)]
            self._db.execute(f"UPDATE {self._source} SET {assignments} WHERE rowid = ?", (*row, point.rowid))

    def _row_values(self, record: Mapping[str, Any], value: tuple[str, Any]) -> dict[str, Any]:
        """The value columns of a record (DOUBLE, or one per MULTI measure), adding columns for
        measures not seen before."""
        if value[0] == "DOUBLE":
            return {DOUBLE_VALUE: value[1]}
        if value[0] != "MULTI":
            return {}
        values: dict[str, Any] = {}
        for measure in record["MeasureValues"]:
            name, kind = measure["Name"], measure.get("Type") or "DOUBLE"
            if name not in self.measures:
                column_type = "REAL" if kind == "DOUBLE" else "INTEGER" if kind == "BIGINT" else "TEXT"
                self._db.execute(f"ALTER TABLE {self._source} ADD COLUMN {quote(name)} {column_type}")
                self.measures[name] = kind
            text = measure["Value"]
            values[name] = float(text) if kind == "DOUBLE" else int(text) if kind == "BIGINT" else text
        return values

    def _add(self, records: Iterable[dict[str, Any]]) -> None:
        """Append new points (or, when loading, keep the first of several copies of one)."""
        for record in records:
            time_ns = rules.time_ns(record)
            key = self._key(record, time_ns)
            if key in self._points:
                continue
            dims = _dimensions(record)
            for name in dims:
                if name not in self._dimension_names:
                    self._db.execute(f"ALTER TABLE {self._source} ADD COLUMN {quote(name)} TEXT")
                    self.dimensions.append(name)
                    self._dimension_names.add(name)
            value = _value(record)
            values = self._row_values(record, value)
            columns = [TIME, MEASURE_NAME, *(quote(name) for name in values), *(quote(name) for name in dims)]
            cursor = self._db.execute(
                f"INSERT INTO {self._source} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (time_ns // 1_000_000, record["MeasureName"], *values.values(), *dims.values()),
            )
            self._points[key] = _Point(value, record.get("Version") or 1, len(self.records), cursor.lastrowid)
            self.records.append(record)

    # -- reading ---------------------------------------------------------------------------

    def columns(self) -> list[str]:
        with self._lock:
            return [TIME, MEASURE_NAME, DOUBLE_VALUE, *self.measures, *self.dimensions]

    def describe(self) -> tuple[list[str], list[list[str]]]:
        """Column names and rows of `DESCRIBE` for this table, as Timestream lists them."""
        with self._lock:
            rows = [[name, "varchar", "DIMENSION"] for name in self.dimensions]
            multi = [[name, kind.lower(), "MULTI"] for name, kind in self.measures.items()]
        rows += [[MEASURE_NAME, "varchar", "MEASURE_NAME"], [TIME, "timestamp", "TIMESTAMP"],
                 [DOUBLE_VALUE, "double", "MEASURE_VALUE"], *multi]
        return ["Column", "Type", "Timestream attribute type"], rows

    def select(self, query_string: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run `query_string` (a SELECT over this table) on sqlite. Raises QueryError."""
        with self._lock:
            check_identifiers(query_string, [self.database, self.table, *self.columns()])
            try:
                cursor = self._db.execute(query_string)
                return [column[0] for column in cursor.description or ()], cursor.fetchall()
            except sqlite3.Error as error:
                message = f"the local Timestream could not run the query: {error}"
                raise QueryError("ValidationException", message) from None
