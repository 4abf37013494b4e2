"""The straightforward WriteRecords path, through botocore's own serializer, for tests only.

The connector writes WriteRecords bodies itself (chalicelib/liveanalytics/write_body.py) for speed; these
plain parameters describe the same call the obvious way, so differential tests can check that
both say the same thing, and `BotocoreSender` lets the writer run against botocore's Stubber.
"""

from __future__ import annotations

from typing import Any

from chalicelib.errors import from_botocore
from chalicelib.liveanalytics.records import Record


def write_records_params(database: str, table: str, records: list[Record]) -> dict[str, Any]:
    """One WriteRecords call as plain parameters for botocore's `client.write_records`."""
    return {
        "DatabaseName": database,
        "TableName": table,
        "CommonAttributes": {"MeasureValueType": "DOUBLE", "TimeUnit": "MILLISECONDS"},
        "Records": [
            {
                "Dimensions": [
                    {"Name": name, "Value": dim_value, "DimensionValueType": "VARCHAR"}
                    for name, dim_value in series.dimensions
                ],
                "MeasureName": series.measure_name,
                "MeasureValue": value,
                "Time": time,
            }
            for series, value, time in records
        ],
    }


class BotocoreSender:
    """A writer.Sender that calls a botocore client and raises the typed errors the
    connector's own sender raises."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def write_records(self, database: str, table: str, records: list[Record]) -> None:
        try:
            self.client.write_records(**write_records_params(database, table, records))
        except Exception as error:
            typed = from_botocore(error)
            if typed is error:
                raise
            raise typed from error
