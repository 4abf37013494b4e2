"""Integration fixtures: the Chalice app, imported fresh with chosen settings, against moto."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from timestream_emulator import install_patches  # noqa: E402

BASE_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIAFUNCTIONROLE0000",
    "AWS_SECRET_ACCESS_KEY": "function-role-secret",
    "DEFAULT_DATABASE": "prometheus",
    "DEFAULT_TABLE": "metrics",
    "LOG_LEVEL": "INFO",
    "WRITE_BUDGET_SECONDS": "2",
}
CONFIG_VARIABLES = (
    "DATABASE_LABEL", "TABLE_LABEL", "DEFAULT_DATABASE", "DEFAULT_TABLE", "AUTH_MODE",
    "TIMESTREAM_WRITE_ENDPOINT", "TIMESTREAM_QUERY_ENDPOINT", "MAX_DECOMPRESSED_BYTES",
)


@pytest.fixture
def timestream():
    """moto's Timestream in-process, with a `prometheus` database and `metrics` table."""
    install_patches()
    with mock_aws():
        client = boto3.client("timestream-write", region_name="us-east-1")
        client.create_database(DatabaseName="prometheus")
        for table in ("metrics", "nodes", "apps"):
            client.create_table(DatabaseName="prometheus", TableName=table)
        yield client


@pytest.fixture
def load_app(monkeypatch):
    """Import app.py fresh under the given environment; returns the module."""

    def load(**env: str):
        for name in CONFIG_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in {**BASE_ENV, **env}.items():
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
    """What moto holds for a table (moto has no read API for Timestream records)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    backend = timestreamwrite_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return backend.describe_table(database, table).records
