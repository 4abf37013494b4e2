"""Integration fixtures: the Chalice app, imported fresh with chosen settings, against moto's
server (real HTTP, as the write path's sender does not go through botocore's HTTP layer)."""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from chalice.test import Client
from moto.core.exceptions import JsonRESTError
from moto.server import ThreadedMotoServer
from moto.timestreamwrite.models import TimestreamWriteBackend

from local_timestream.emulator import ACCESS_KEY_ENV, SECRET_KEY_ENV, install_patches, require_credentials
from local_timestream.show_records import stored_records
from tests.helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY

ROOT = Path(__file__).resolve().parents[2]

BASE_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    # The local Timestream knows one key pair (as `make run`'s does): the function's role in IAM
    # mode signs with the same pair Prometheus sends in basic auth.
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "DEFAULT_DATABASE": "prometheus",
    "DEFAULT_TABLE": "metrics",
    "LOG_LEVEL": "INFO",
    "WRITE_BUDGET_SECONDS": "2",
}
CONFIG_VARIABLES = (
    "DATABASE_LABEL", "TABLE_LABEL", "DEFAULT_DATABASE", "DEFAULT_TABLE", "AUTH_MODE",
    "TIMESTREAM_WRITE_ENDPOINT", "TIMESTREAM_QUERY_ENDPOINT", "MAX_DECOMPRESSED_BYTES",
    "READ_COLUMNS_TTL_SECONDS", "READ_COLUMNS_REFRESH_SECONDS", "READ_COLUMNS_CACHE_SIZE",
    "SERIES_CACHE_SIZE", "CONNECT_TIMEOUT_SECONDS", "WRITE_TIMEOUT_SECONDS", "QUERY_TIMEOUT_SECONDS",
    "QUERY_MAX_ATTEMPTS", "METRICS_NAMESPACE", "AWS_LAMBDA_FUNCTION_NAME", "LOG_LEVEL",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """The local Timestream on loopback for the whole session (in this process, so faults can be
    injected into its backend), accepting only calls signed with the tests' key pair."""
    install_patches()
    require_credentials({ACCESS_KEY_ID: SECRET_ACCESS_KEY})
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        require_credentials(None)


@pytest.fixture
def timestream(moto_endpoint):
    """A fresh local Timestream with database `prometheus` and tables metrics, nodes, apps."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.client(
        "timestream-write", region_name="us-east-1", endpoint_url=moto_endpoint,
        aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    client.create_database(DatabaseName="prometheus")
    for table in ("metrics", "nodes", "apps"):
        client.create_table(DatabaseName="prometheus", TableName=table)
    client.endpoint = moto_endpoint
    yield client


class TimestreamFault(JsonRESTError):
    """An error answer from the local Timestream, with optional extra body fields."""

    def __init__(self, code: str, status: int, message: str = "", **fields: object) -> None:
        super().__init__(f"com.amazonaws.timestream.v20181101#{code}", message or f"{code} injected by the test")
        self.code = status
        self.description = json.dumps({"__type": self.error_type, "message": self.message, **fields})


@pytest.fixture
def fail_writes(monkeypatch):
    """Make every WriteRecords call to the local Timestream answer with the given error."""

    def install(code: str, status: int, message: str = "", **fields: object) -> None:
        def write_records(self, database_name, table_name, records):
            raise TimestreamFault(code, status, message, **fields)

        monkeypatch.setattr(TimestreamWriteBackend, "write_records", write_records)

    return install


@pytest.fixture
def load_app(monkeypatch, moto_endpoint):
    """Import app.py fresh under the given environment; returns the module."""

    def load(**env: str):
        for name in CONFIG_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        defaults = {**BASE_ENV, "TIMESTREAM_WRITE_ENDPOINT": moto_endpoint, "TIMESTREAM_QUERY_ENDPOINT": moto_endpoint}
        for name, value in {**defaults, **env}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        sys.modules.pop("app", None)
        return importlib.import_module("app")

    yield load
    sys.modules.pop("app", None)


@pytest.fixture
def http(load_app, timestream):
    """An HTTP test client for the app with default settings."""
    app = load_app()
    with Client(app.app, project_dir=str(ROOT), stage_name="local") as client:
        yield client.http


def stored(timestream_client, table: str = "metrics", database: str = "prometheus") -> list[dict]:
    """What the local Timestream holds for a table (moto has no read API for records)."""
    return stored_records(timestream_client.endpoint, database, table)


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def is_running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (an exited child not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class LocalRun:
    """`make run`'s script (emulator + `chalice local`) running on free ports, with the tests'
    key pair and its log files in the test's tmp dir; `env` overrides the environment (None
    removes a variable)."""

    def __init__(self, log_path: Path, **env_overrides: str | None) -> None:
        self.port = int(env_overrides.pop("PORT", None) or free_port())
        self.emulator_port = int(env_overrides.pop("EMULATOR_PORT", None) or free_port())
        self.log_path = log_path
        self.timestream_log = log_path.with_name(log_path.stem + "-timestream.log")
        env = {**os.environ, "PORT": str(self.port), "EMULATOR_PORT": str(self.emulator_port),
               ACCESS_KEY_ENV: ACCESS_KEY_ID, SECRET_KEY_ENV: SECRET_ACCESS_KEY,
               "RUN_LOG": str(self.timestream_log)}
        for name in CONFIG_VARIABLES + ("MAX_READ_RESPONSE_BYTES", "RELOAD", "RUN_DATA"):
            env.pop(name, None)
        for name, value in env_overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        self.servers: list[int] = []
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "scripts.run_local"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, seconds: float = 60) -> None:
        """Wait for the ready message; note the servers' pids (the script's children)."""
        deadline = time.monotonic() + seconds
        while "Connector ready" not in self.output():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"make run was not ready in {seconds:.0f} s:\n" + self.output()
            time.sleep(0.2)
        self.servers = child_pids(self.process.pid)

    def wait_servers_gone(self, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while any(is_running(pid) for pid in self.servers):
            assert time.monotonic() < deadline, f"servers still running: {self.servers}"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM lets the script stop its own servers; SIGKILL them (by pid) and the script if
        it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for pid in self.servers:
            if is_running(pid):
                os.killpg(pid, signal.SIGKILL)  # each server leads its own process group


@pytest.fixture(scope="session")
def local_run(tmp_path_factory):
    run = LocalRun(tmp_path_factory.mktemp("run") / "run.log")
    try:
        run.wait_ready()
        yield run
    finally:
        run.stop()


# -- faults per table and on queries (appended) -------------------------------------------------

@pytest.fixture
def fail_writes_to(monkeypatch):
    """Make WriteRecords calls to one table answer with an error while other tables work;
    `times` calls fail and the ones after succeed (None: every call fails). Call once per table."""
    faults: dict[str, list] = {}
    original = TimestreamWriteBackend.write_records

    def write_records(self, database_name, table_name, records):
        fault = faults.get(table_name)
        if fault is not None and fault[1] != 0:
            fault[1] -= 1
            raise TimestreamFault(*fault[0], **fault[2])
        return original(self, database_name, table_name, records)

    monkeypatch.setattr(TimestreamWriteBackend, "write_records", write_records)

    def install(table: str, code: str, status: int, message: str = "", times: int | None = None,
                **fields: object) -> None:
        faults[table] = [(code, status, message), -1 if times is None else times, fields]

    return install


@pytest.fixture
def fail_queries(monkeypatch):
    """Make every Query to the local Timestream answer with the given error."""
    from local_timestream import emulator

    def install(code: str, status: int, message: str = "") -> None:
        def query(query_string, next_token, tables_of):
            raise TimestreamFault(code, status, message)

        monkeypatch.setattr(emulator.EMULATOR, "query", query)

    return install
