"""Timestream query answers for the read-path tests: result pages in the service's shape, a
botocore timestream-query client to stub, a client that records what it was asked, a fake clock."""

from __future__ import annotations

import datetime
from typing import Any

import botocore.session

# A SELECT * answer's columns: two dimensions, Timestream's own columns, a non-double measure.
COLUMNS = ["job", "instance", "measure_name", "time", "measure_value::double", "measure_value::bigint"]
DESCRIBE_COLUMNS = ["Column", "Type", "Column Category"]


def page(names: list[str], rows: list[list[str | None]], token: str | None = None) -> dict[str, Any]:
    """One result page: every column VARCHAR, None as a NULL datum, `token` as NextToken."""
    answer: dict[str, Any] = {
        "QueryId": "q",
        "ColumnInfo": [{"Name": name, "Type": {"ScalarType": "VARCHAR"}} for name in names],
        "Rows": [
            {"Data": [{"NullValue": True} if value is None else {"ScalarValue": value} for value in row]}
            for row in rows
        ],
    }
    if token:
        answer["NextToken"] = token
    return answer


def describe_page(*dimensions: str) -> dict[str, Any]:
    """A DESCRIBE answer listing `dimensions` as the table's dimension columns."""
    return page(DESCRIBE_COLUMNS, [[name, "varchar", "DIMENSION"] for name in dimensions])


def query_client() -> Any:
    """A botocore timestream-query client that reaches nothing: use it under a Stubber."""
    return botocore.session.get_session().create_client(
        "timestream-query", region_name="us-east-1", endpoint_url="https://query.invalid",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
    )


def stamp(ms: int) -> str:
    """A Timestream timestamp for `ms` milliseconds since the epoch."""
    seconds, millis = divmod(ms, 1000)
    day = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{day}.{millis:03d}000000"


class RecordingClient:
    """Answers `query` from canned pages (DESCRIBE gets `describe`, anything else `select`) and
    records every QueryString it was sent."""

    def __init__(self, describe: dict[str, Any], select: dict[str, Any]) -> None:
        self.describe = describe
        self.select = select
        self.sent: list[str] = []

    def query(self, QueryString: str, **_: Any) -> dict[str, Any]:
        self.sent.append(QueryString)
        return self.describe if QueryString.startswith("DESCRIBE") else self.select

    def describes(self) -> int:
        return sum(sql.startswith("DESCRIBE") for sql in self.sent)


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
