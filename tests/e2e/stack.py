"""The receiving side of the end-to-end tests: the project's local Timestream (moto made to answer
as Timestream does, `python -m local_timestream`) and the connector served by `chalice local`,
both real processes on 127.0.0.1.

The local Timestream accepts only calls signed with the session's access key (the one Prometheus
sends in basic auth), merges CommonAttributes and enforces Timestream's write rules itself, so a
write only succeeds when the connector signs it with that key and sends what Timestream accepts.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import string
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests

from .procs import LOOPBACK, Proc, free_port, wait_http, wait_port_closed

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"

_TIME_UNIT_TO_MS = {"MILLISECONDS": 1, "SECONDS": 1000, "MICROSECONDS": 1e-3, "NANOSECONDS": 1e-6}


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret_access_key: str


def new_access_key() -> AccessKey:
    """A well-formed, random, test-only access key (AKIA + 16 characters, 40-character secret)."""
    alphabet = string.ascii_uppercase + "234567"
    key_id = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = "".join(secrets.choice(string.ascii_letters + string.digits + "+/") for _ in range(40))
    return AccessKey(key_id, secret)


@dataclass(frozen=True)
class StoredRecord:
    """One record as moto stored it (CommonAttributes already merged by the fault proxy)."""

    measure_name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name
    time_ms: int
    value: str
    value_type: str | None

    @property
    def series(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.measure_name, self.dimensions


def _time_ms(record: dict) -> int:
    unit = record.get("TimeUnit") or "MILLISECONDS"
    return int(round(int(record["Time"]) * _TIME_UNIT_TO_MS[unit]))


def _stored(record: dict) -> StoredRecord:
    dims = tuple(sorted((d["Name"], d["Value"]) for d in record.get("Dimensions", [])))
    return StoredRecord(
        measure_name=record.get("MeasureName", ""),
        dimensions=dims,
        time_ms=_time_ms(record),
        value=record.get("MeasureValue", ""),
        value_type=record.get("MeasureValueType"),
    )


class MotoTimestream:
    """The local Timestream as the Timestream stand-in, accepting calls signed with `key` only."""

    def __init__(self, log_dir: Path, key: AccessKey) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        argv = [
            sys.executable, "-m", "local_timestream", "--host", LOOPBACK, "--port", str(self.port),
            "--access-key-id", key.access_key_id, "--secret-access-key", key.secret_access_key,
        ]
        self.proc = Proc("timestream-emulator", argv, log_dir, env=dict(os.environ), cwd=REPO)
        self._admin = key

    def start(self, timeout: float = 30) -> MotoTimestream:
        self.proc.start()
        wait_http(self.proc, f"{self.url}/moto-api/data.json", timeout, ok=lambda r: r.status_code == 200)
        return self

    def stop(self) -> None:
        self.proc.kill()

    def _client(self, service: str, key: AccessKey) -> object:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=key.secret_access_key,
        )

    def create_table(self, database: str, table: str) -> None:
        client = self._client("timestream-write", self._admin)
        # moto's CreateDatabase replaces an existing database (and drops its tables) instead of
        # answering ConflictException, so only create a database that is not there yet.
        existing = {db["DatabaseName"] for db in client.list_databases()["Databases"]}
        if database not in existing:
            client.create_database(DatabaseName=database)
        client.create_table(DatabaseName=database, TableName=table)

    def raw_tables(self) -> list[dict]:
        response = requests.get(f"{self.url}/moto-api/data.json", timeout=60)
        response.raise_for_status()
        return response.json().get("timestreamwrite", {}).get("TimestreamTable", [])

    def records(self, database: str, table: str) -> list[StoredRecord]:
        for entry in self.raw_tables():
            if entry.get("db_name") == database and entry.get("name") == table:
                return [_stored(r) for r in entry.get("records", [])]
        raise AssertionError(f"table {database}.{table} not found in moto")


def non_finite(records: list[StoredRecord]) -> list[StoredRecord]:
    """Records whose value is NaN/Inf or not a number at all: Timestream would refuse them."""
    bad = []
    for record in records:
        try:
            value = float(record.value)
        except ValueError:
            bad.append(record)
            continue
        if not math.isfinite(value):
            bad.append(record)
    return bad


class Connector:
    """The connector under `chalice local`, restartable on the same port."""

    def __init__(self, log_dir: Path, timestream_url: str, name: str = "connector", **env_overrides: str) -> None:
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.write_url = f"{self.url}/write"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "TIMESTREAM_WRITE_ENDPOINT": timestream_url,
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                # Never pick up a developer's own profile or keys: basic auth supplies them.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AUTH_MODE": "basic",
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(env_overrides)
        argv = [
            str(VENV_BIN / "chalice"),
            "local",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--stage",
            "local",
            # The reloader would fork a child that outlives a kill of its parent, and would
            # restart the connector whenever someone edits a file in the tree.
            "--no-autoreload",
        ]
        self.proc = Proc(name, argv, log_dir, env=env, cwd=REPO)

    def start(self, timeout: float = 60) -> Connector:
        self.proc.start()
        # Any HTTP answer (a GET on /write is refused with 4xx) means the server is serving.
        wait_http(self.proc, self.write_url, timeout)
        return self

    def kill(self) -> None:
        self.proc.kill()
        wait_port_closed(self.port, 10)

    def restart(self, timeout: float = 60) -> None:
        self.kill()
        self.start(timeout)

    def _json_lines(self) -> list[dict]:
        documents = []
        for line in self.proc.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                documents.append(json.loads(line))
            except ValueError:
                continue
        return documents

    def write_events(self) -> list[dict]:
        """The connector's structured `write` log lines, across restarts."""
        return [document for document in self._json_lines() if document.get("event") == "write"]

    def read_events(self) -> list[dict]:
        """The connector's structured `read` log lines, across restarts."""
        return [document for document in self._json_lines() if document.get("event") == "read"]

    def metric_documents(self) -> list[dict]:
        """The connector's CloudWatch EMF documents, across restarts."""
        return [document for document in self._json_lines() if "_aws" in document]
