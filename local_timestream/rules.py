"""Timestream's WriteRecords rules, answered the way the service answers them.

Two kinds of refusal, as in Timestream:

* a problem with the request itself (a name, the number of records, a record without a
  dimension, a bad dimension name, a record too large, a value that does not parse as its type)
  fails the whole call: `ValidationException`, HTTP 400, nothing written;
* a problem with one record against the table's state (a time outside the writable range, a
  different value for an existing point) rejects that record only: the others are written and
  the call answers `RejectedRecordsException` (HTTP 419 in the API reference) listing
  `RejectedRecords: [{RecordIndex, Reason, ExistingVersion?}]`. Those are decided by
  `local_timestream.store`, with the texts below.

Limits are the API reference's and the developer guide's quotas
(https://docs.aws.amazon.com/timestream/latest/developerguide/ts-limits.html). Messages of
model constraints follow AWS's usual "1 validation error detected: ..." form; where the
service's exact text is known (a record without a dimension, rejected records) it is used.
Pure functions over the request's JSON: no moto here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

MAX_RECORDS = 100
MAX_DIMENSIONS = 128
MAX_DIMENSION_NAME_BYTES = 60
MAX_MEASURE_NAME_BYTES = 256
MAX_RECORD_BYTES = 2048
MAX_VALUE_CHARACTERS = 2048
MIN_NAME, MAX_NAME = 3, 256
FUTURE_INGESTION_MS = 15 * 60 * 1000
# Timestream's and moto's defaults for a table created without RetentionProperties.
DEFAULT_MEMORY_RETENTION_HOURS = 6
DEFAULT_MAGNETIC_RETENTION_DAYS = 73000

RESERVED_DIMENSION_NAMES = frozenset({"time", "measure_name", "measure_value"})
RESERVED_DIMENSION_PREFIXES = ("ts_", "measure_value")
VALUE_TYPES = ("DOUBLE", "BIGINT", "VARCHAR", "BOOLEAN", "TIMESTAMP", "MULTI")
TIME_UNITS = ("MILLISECONDS", "SECONDS", "MICROSECONDS", "NANOSECONDS")
NANOS_PER_UNIT = {
    "SECONDS": 1_000_000_000, "MILLISECONDS": 1_000_000, "MICROSECONDS": 1_000, "NANOSECONDS": 1,
}
# Bytes a value counts towards the record size, by type (VARCHAR: its UTF-8 length).
_FIXED_VALUE_BYTES = {"DOUBLE": 8, "BIGINT": 8, "TIMESTAMP": 8, "BOOLEAN": 1}
_TIME_BYTES = 8
_NAME = re.compile(r"[a-zA-Z0-9_.-]+")
_INTEGER = re.compile(r"-?[0-9]+")
_INT64 = (-(2**63), 2**63 - 1)

# RejectedRecords reasons, as Timestream words them (texts seen in real rejections).
REJECTED_MESSAGE = "One or more records have been rejected. See RejectedRecords for details."
SAME_VERSION = ("A record already exists with the same time, dimensions, measure name, and record version. "
                "A higher record version must be specified in order to update the measure value. "
                "Specifying record version is supported by the latest SDKs.")


def lower_version(version: int, existing: int) -> str:
    return (f"The record version {version} is lower than the existing version {existing}. "
            "A higher version is required to update the measure value.")


def outside_time_range(earliest_ms: int, latest_ms: int, store: str) -> str:
    return (f"The record timestamp is outside the time range [{iso_time(earliest_ms)}, "
            f"{iso_time(latest_ms)}) of the {store} store.")


def iso_time(ms: int) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class TimestreamError(Exception):
    """An error answer: `code` is the JSON `__type`, `status` the HTTP status, `fields` any
    members besides the message (RejectedRecords)."""

    def __init__(self, code: str, status: int, message: str, **fields: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.fields = fields


def validation_error(message: str) -> TimestreamError:
    return TimestreamError("ValidationException", 400, message)


def rejected_records(rejections: Sequence[Mapping[str, Any]]) -> TimestreamError:
    return TimestreamError("RejectedRecordsException", 419, REJECTED_MESSAGE,
                           RejectedRecords=list(rejections))


def _constraint(value: Any, where: str, constraint: str) -> TimestreamError:
    return validation_error(f"1 validation error detected: Value '{value}' at '{where}' failed to satisfy "
                            f"constraint: {constraint}")


def check_resource_name(name: Any, where: str) -> None:
    """A database or table name: 3-256 characters of [a-zA-Z0-9_.-]."""
    if not isinstance(name, str) or len(name) < MIN_NAME:
        raise _constraint(name, where, f"Member must have length greater than or equal to {MIN_NAME}")
    if len(name) > MAX_NAME:
        raise _constraint(name, where, f"Member must have length less than or equal to {MAX_NAME}")
    if not _NAME.fullmatch(name):
        raise _constraint(name, where, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")


def merge_common_attributes(common: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as Timestream applies CommonAttributes to it: the record's own attributes win;
    dimensions of both are combined (a name in both is refused by `check_records`)."""
    merged = {**common, **record}
    if "Dimensions" in common or "Dimensions" in record:
        merged["Dimensions"] = list(common.get("Dimensions") or []) + list(record.get("Dimensions") or [])
    return merged


def check_request(database: Any, table: Any, common: Any, records: Any) -> list[dict[str, Any]]:
    """The call's records with CommonAttributes merged, or a ValidationException for the call."""
    check_resource_name(database, "databaseName")
    check_resource_name(table, "tableName")
    if not isinstance(records, list) or not records:
        raise _constraint("[]", "records", "Member must have length greater than or equal to 1")
    if len(records) > MAX_RECORDS:
        raise _constraint(f"[{len(records)} records]", "records",
                          f"Member must have length less than or equal to {MAX_RECORDS}")
    common = common or {}
    if not isinstance(common, dict) or not all(isinstance(record, dict) for record in records):
        raise validation_error("Records and CommonAttributes must be Record structures")
    merged = [merge_common_attributes(common, record) for record in records]
    for index, record in enumerate(merged):
        check_record(record, f"records.{index + 1}.member")
    return merged


def check_record(record: Mapping[str, Any], where: str) -> None:
    """Everything Timestream checks in one (merged) record without looking at the table."""
    size = _TIME_BYTES + _check_dimensions(record.get("Dimensions") or [], where)
    measure_name = record.get("MeasureName")
    if not isinstance(measure_name, str) or not measure_name:
        raise validation_error(f"Measure name is required and must be at least 1 character long ({where}).")
    measure_bytes = len(measure_name.encode())
    if measure_bytes > MAX_MEASURE_NAME_BYTES:
        raise validation_error(f"Measure name exceeds the maximum supported length of "
                               f"{MAX_MEASURE_NAME_BYTES} bytes: {measure_bytes} bytes "
                               f"({where}.measureName).")
    size += measure_bytes + _check_value(record, where)
    _check_time(record, where)
    version = record.get("Version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise _constraint(version, f"{where}.version", "Member must have value greater than or equal to 1")
    if size > MAX_RECORD_BYTES:
        raise validation_error(f"Record size {size} bytes exceeds the maximum supported record size of "
                               f"{MAX_RECORD_BYTES} bytes ({where}).")


def _check_dimensions(dimensions: Any, where: str) -> int:
    """Bytes the dimensions count towards the record size; ValidationException if one is wrong."""
    if not isinstance(dimensions, list) or not dimensions:
        raise validation_error("At least one dimension is required for a record.")
    if len(dimensions) > MAX_DIMENSIONS:
        raise _constraint(f"[{len(dimensions)} dimensions]", f"{where}.dimensions",
                          f"Member must have length less than or equal to {MAX_DIMENSIONS}")
    seen: set[str] = set()
    size = 0
    for position, dimension in enumerate(dimensions, start=1):
        at = f"{where}.dimensions.{position}.member"
        name = dimension.get("Name") if isinstance(dimension, dict) else None
        value = dimension.get("Value") if isinstance(dimension, dict) else None
        if not isinstance(name, str) or not isinstance(value, str):
            raise validation_error(f"Dimension name and value are required ({at}).")
        name_bytes = len(name.encode())
        if name_bytes < 1:
            raise _constraint(name, f"{at}.name", "Member must have length greater than or equal to 1")
        if name_bytes > MAX_DIMENSION_NAME_BYTES:
            raise _constraint(name, f"{at}.name",
                              f"Member must have length less than or equal to {MAX_DIMENSION_NAME_BYTES}")
        if ":" in name:
            raise validation_error(f"Dimension name '{name}' contains the character ':', which is not "
                                   f"allowed in a dimension name ({at}.name).")
        if name in RESERVED_DIMENSION_NAMES or name.startswith(RESERVED_DIMENSION_PREFIXES):
            raise validation_error(f"Dimension name '{name}' is reserved: dimensions cannot be named time, "
                                   f"measure_name or measure_value, nor start with ts_ or measure_value "
                                   f"({at}.name).")
        if dimension.get("DimensionValueType", "VARCHAR") != "VARCHAR":
            raise _constraint(dimension["DimensionValueType"], f"{at}.dimensionValueType",
                              "Member must satisfy enum value set: [VARCHAR]")
        if name in seen:
            raise validation_error(f"Duplicate dimension name '{name}': a record must contain dimensions "
                                   f"with unique names, CommonAttributes included ({where}).")
        seen.add(name)
        size += name_bytes + len(value.encode())
    return size


def _check_value(record: Mapping[str, Any], where: str) -> int:
    """Bytes the measure value counts towards the record size; ValidationException if it does
    not parse as its MeasureValueType."""
    value_type = record.get("MeasureValueType") or "DOUBLE"
    if value_type not in VALUE_TYPES:
        raise _constraint(value_type, f"{where}.measureValueType",
                          f"Member must satisfy enum value set: [{', '.join(VALUE_TYPES)}]")
    if value_type == "MULTI":
        values = record.get("MeasureValues")
        if "MeasureValue" in record or not isinstance(values, list) or not values:
            raise validation_error(f"A MULTI record needs MeasureValues and no MeasureValue ({where}).")
        size = 0
        for position, measure in enumerate(values, start=1):
            at = f"{where}.measureValues.{position}.member"
            name = measure.get("Name") if isinstance(measure, dict) else None
            if not name or not isinstance(name, str):
                raise validation_error(f"Measure name is required ({at}).")
            if measure.get("Type") == "MULTI":
                raise validation_error(f"A measure inside MeasureValues cannot be MULTI ({at}).")
            size += len(name.encode()) + _check_value(
                {"MeasureValue": measure.get("Value"), "MeasureValueType": measure.get("Type")}, at)
        return size
    if record.get("MeasureValues"):
        raise validation_error(f"MeasureValues are only allowed with MeasureValueType MULTI ({where}).")
    value = record.get("MeasureValue")
    if not isinstance(value, str) or not value:
        raise validation_error(f"Measure value is required ({where}.measureValue).")
    if len(value) > MAX_VALUE_CHARACTERS:
        raise _constraint("...", f"{where}.measureValue",
                          f"Member must have length less than or equal to {MAX_VALUE_CHARACTERS}")
    if not _parses_as(value, value_type):
        raise validation_error(f"Measure value '{value[:64]}' is not a valid {value_type} "
                               f"({where}.measureValue).")
    return _FIXED_VALUE_BYTES.get(value_type, len(value.encode()))


def _parses_as(value: str, value_type: str) -> bool:
    if value_type == "DOUBLE":
        try:
            return math.isfinite(float(value))  # NaN and +-Infinity cannot be stored
        except ValueError:
            return False
    if value_type in ("BIGINT", "TIMESTAMP"):
        return bool(_INTEGER.fullmatch(value)) and _INT64[0] <= int(value) <= _INT64[1]
    if value_type == "BOOLEAN":
        return value.lower() in ("true", "false")
    return True  # VARCHAR


def _check_time(record: Mapping[str, Any], where: str) -> None:
    unit = record.get("TimeUnit") or "MILLISECONDS"
    if unit not in TIME_UNITS:
        raise _constraint(unit, f"{where}.timeUnit",
                          f"Member must satisfy enum value set: [{', '.join(TIME_UNITS)}]")
    time = record.get("Time")
    if not isinstance(time, str) or not _INTEGER.fullmatch(time) or int(time) < 0:
        raise validation_error(f"Time '{time}' is not a valid timestamp in {unit} since the epoch "
                               f"({where}.time).")


def time_ns(record: Mapping[str, Any]) -> int:
    """A checked record's Time in nanoseconds since the epoch."""
    return int(record["Time"]) * NANOS_PER_UNIT[record.get("TimeUnit") or "MILLISECONDS"]


def writable_range_ms(retention: Mapping[str, Any] | None, magnetic: Mapping[str, Any] | None,
                      now_ms: int) -> tuple[int, int, str]:
    """[earliest, latest) milliseconds a table accepts now, and the store that sets the lower
    bound: the memory store's retention, or the magnetic store's when magnetic-store writes are
    enabled; at most 15 minutes ahead either way."""
    retention = retention or {}
    if (magnetic or {}).get("EnableMagneticStoreWrites"):
        days = int(retention.get("MagneticStoreRetentionPeriodInDays") or DEFAULT_MAGNETIC_RETENTION_DAYS)
        return now_ms - days * 86_400_000, now_ms + FUTURE_INGESTION_MS, "magnetic"
    hours = int(retention.get("MemoryStoreRetentionPeriodInHours") or DEFAULT_MEMORY_RETENTION_HOURS)
    return now_ms - hours * 3_600_000, now_ms + FUTURE_INGESTION_MS, "memory"


def memory_store_start_ms(retention: Mapping[str, Any] | None, now_ms: int) -> int:
    hours = int((retention or {}).get("MemoryStoreRetentionPeriodInHours") or DEFAULT_MEMORY_RETENTION_HOURS)
    return now_ms - hours * 3_600_000
