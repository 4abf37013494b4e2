"""Fixtures for the end-to-end tests: real processes on 127.0.0.1, every wait bounded, every
process killed by its pid (SIGKILL, its own process group) in teardown, logs kept in one tmp
dir that is named in the report of any failing test.

Needs the Debian packages `prometheus` and `victoria-metrics` (scripts/install_e2e_deps.sh, run
by `make e2e`). A missing binary is an error, not a skip: a suite that skips proves nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_influxdb.server import LocalInfluxDB, start

from .influx import PASSWORD
from .launcher import Launcher
from .senders import PROMETHEUS_BIN, VMAGENT_BIN
from .stack import AccessKey, MotoTimestream, new_access_key

_LOG_ROOT: list[Path] = []


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _binaries_present() -> None:
    missing = [path for path in (PROMETHEUS_BIN, VMAGENT_BIN) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"missing {', '.join(missing)}: run `bash scripts/install_e2e_deps.sh` (or `make e2e`)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def log_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e-logs")
    _LOG_ROOT.append(root)
    return root


def _log_dirs(item: pytest.Item) -> list[Path]:
    root = _LOG_ROOT[0]
    names = [slug(item.name), slug(item.module.__name__.rsplit(".", 1)[-1]) if item.module else ""]
    return [root / name for name in names if name and (root / name).is_dir()]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _LOG_ROOT:
        lines = [f"e2e logs and configs: {_LOG_ROOT[0]}"]
        for directory in _log_dirs(item):
            for log in sorted(directory.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                lines.append(f"--- {log} (last {len(tail)} lines) ---")
                lines.extend(line[:400] for line in tail)
        report.sections.append(("e2e logs", "\n".join(lines)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _LOG_ROOT:
        terminalreporter.write_line(f"e2e logs and configs: {_LOG_ROOT[0]}")


@pytest.fixture(scope="session")
def moto(log_root: Path, aws_key: AccessKey) -> Iterator[MotoTimestream]:
    """One local Timestream for the session; each test writes to tables of its own."""
    server = MotoTimestream(log_root, aws_key)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def influxdb(log_root: Path) -> Iterator[LocalInfluxDB]:
    """One real InfluxDB (Debian's influxd 1.6.7) for the session, with auth on: the connector
    must pass on the credentials Prometheus sends. Each test uses databases of its own."""
    server = start(log_root / "influxdb", auth=True, password=PASSWORD)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aws_key() -> AccessKey:
    """The access key Prometheus sends in basic auth; the local Timestream accepts only it."""
    return new_access_key()


def make_workdir(log_root: Path, name: str) -> Path:
    path = log_root / slug(name)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def launcher(log_root: Path, moto: MotoTimestream, aws_key: AccessKey, request: pytest.FixtureRequest):
    """Starts what a test needs; kills all of it (SIGKILL by pid) when the test ends."""
    stack = Launcher(make_workdir(log_root, request.node.name), moto, aws_key)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def module_launcher(log_root: Path, moto: MotoTimestream, aws_key: AccessKey, request: pytest.FixtureRequest):
    """Like `launcher`, shared by the tests of one module (one sender run, several checks)."""
    stack = Launcher(make_workdir(log_root, request.module.__name__.rsplit(".", 1)[-1]), moto, aws_key)
    try:
        yield stack
    finally:
        stack.close()
