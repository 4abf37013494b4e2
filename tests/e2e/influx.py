"""The InfluxDB side of the end-to-end tests: a real influxd (Debian's 1.6.7, started by the
project's `local_influxdb` launcher with auth on) and the connector under `chalice local` with
STORAGE_ENGINE=influxdb in front of it.

What InfluxDB stores is read back with InfluxQL (`SELECT * ... GROUP BY *`, epoch milliseconds)
and turned into the same `StoredRecord`s the LiveAnalytics tests compare, so `checks.compare` and
`checks.settled` judge both engines by one rule. Numbers are kept as the text InfluxDB printed:
its JSON prints whole floats as integers and large ones in exponent form, and `float()` of that
text is the stored float64 exactly (Go prints the shortest text that parses back).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_influxdb.server import LocalInfluxDB

from .stack import Connector, StoredRecord

# The admin's password: what Prometheus sends as basic auth, and the connector passes on.
PASSWORD = "e2e-influx-admin-password"


@dataclass(frozen=True)
class InfluxPoint:
    """One point as InfluxDB holds it: measurement, tags (sorted), the field `value` as printed."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    time_ms: int
    value: str


def _number_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class InfluxStore:
    """Reads what a database holds; `records()` answers as `MotoTimestream.records` does."""

    def __init__(self, server: LocalInfluxDB) -> None:
        self.server = server

    def query(self, statement: str, database: str) -> list[dict]:
        """The series of one statement's answer (JSON numbers kept as their text)."""
        params = {"q": statement, "db": database, "epoch": "ms", "u": self.server.username or "",
                  "p": self.server.password or ""}
        url = f"{self.server.url}/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=30) as response:
            answer = json.loads(response.read(), parse_float=str, parse_int=str)
        (result,) = answer["results"]
        if "error" in result:
            raise AssertionError(f"{statement}: {result['error']}")
        return result.get("series", [])

    def points(self, database: str) -> list[InfluxPoint]:
        """Every point of every measurement, with its own tags (GROUP BY * keeps them apart)."""
        points = []
        for series in self.query('SELECT * FROM /.*/ GROUP BY *', database):
            columns = series["columns"]
            assert columns == ["time", "value"], f"{series['name']}: fields other than value: {columns}"
            tags = tuple(sorted((k, v) for k, v in series.get("tags", {}).items() if v != ""))
            for time_ms, value in series["values"]:
                points.append(InfluxPoint(series["name"], tags, int(time_ms), _number_text(value)))
        return points

    def records(self, database: str, _table: str = "") -> list[StoredRecord]:
        """The points as records: measurement -> measure name, tags but `__name__` -> dimensions."""
        records = []
        for point in self.points(database):
            dimensions = tuple((k, v) for k, v in point.tags if k != "__name__")
            records.append(StoredRecord(point.measurement, dimensions, point.time_ms, point.value, "DOUBLE"))
        return records

    def show(self, statement: str, database: str) -> dict[str, list[list[str]]]:
        """SHOW MEASUREMENTS / TAG KEYS / FIELD KEYS / TAG VALUES: {series name: rows}."""
        return {series.get("name", ""): series["values"] for series in self.query(statement, database)}

    def create_database(self, name: str) -> None:
        self.server.create_database(name)


def basic_auth(server: LocalInfluxDB) -> dict[str, str]:
    """The basic_auth block of a Prometheus remote_write/remote_read: InfluxDB's own user."""
    return {"username": server.username or "", "password": server.password or ""}


def authorization(server: LocalInfluxDB) -> str:
    return "Basic " + base64.b64encode(f"{server.username}:{server.password}".encode()).decode()


def influx_connector(log_dir: Path, server: LocalInfluxDB, name: str = "connector", **env: str) -> Connector:
    """A (not yet started) connector under `chalice local` writing to `server`."""
    return Connector(
        log_dir, timestream_url="", name=name, STORAGE_ENGINE="influxdb", INFLUXDB_URL=server.url, **env
    )


def prom_write(server: LocalInfluxDB, database: str, body: bytes) -> tuple[int, str]:
    """POST a remote-write body to InfluxDB 1.x's own Prometheus endpoint: (status, body)."""
    params = urllib.parse.urlencode({"db": database, "u": server.username or "", "p": server.password or ""})
    request = urllib.request.Request(
        f"{server.url}/api/v1/prom/write?{params}", data=body, method="POST",
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                 "X-Prometheus-Remote-Write-Version": "0.1.0"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
