"""`make run STORAGE_ENGINE=influxdb` over real HTTP: a real influxd (Debian's 1.6.7) on loopback
in a temporary directory, `chalice local` against it, the Prometheus blocks it prints, a remote
write stored in InfluxDB, and how it starts, fails and stops."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scripts import run_influxdb
from tests.helpers import encode, now_ms, write_headers, write_request
from tests.integration.conftest import LocalRun, child_pids, free_port, is_running

pytestmark = pytest.mark.skipif(shutil.which("influxd") is None,
                                reason="needs Debian's influxdb (scripts/install_e2e_deps.sh influxdb)")


class InfluxRun(LocalRun):
    """make run's script with STORAGE_ENGINE=influxdb, on free ports (INFLUX_PORT too)."""

    def __init__(self, log_path: Path, **env: str | None) -> None:
        self.influx_port = int(env.pop("INFLUX_PORT", None) or free_port())
        super().__init__(log_path, STORAGE_ENGINE="influxdb", INFLUX_PORT=str(self.influx_port), **env)

    def influxd_pid(self) -> int:
        (pid,) = [pid for pid in descendants(self.process.pid) if command(pid)[0].endswith("influxd")]
        return pid

    def data_dir(self) -> Path:
        match = re.search(r"influxd's data is (?:in |kept in )(\S+?),? ", self.output())
        assert match, self.output()
        return Path(match.group(1))


def descendants(pid: int) -> list[int]:
    """Every process below `pid`: the servers and what they started (influxd under its launcher)."""
    found, pending = [], [pid]
    while pending:
        children = child_pids(pending.pop())
        found += children
        pending += children
    return found


def command(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


@pytest.fixture(scope="module")
def influx_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxRun]:
    run = InfluxRun(tmp_path_factory.mktemp("run-influxdb") / "run.log")
    try:
        run.wait_ready()
        yield run
    finally:
        run.stop()


def printed_credentials(output: str) -> tuple[str, str]:
    username = re.search(r"username: (\S+)", output)
    password = re.search(r"password: (\S+)", output)
    assert username and password, output
    return username.group(1), password.group(1)


def authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_it_prints_blocks_with_influxdbs_own_user_and_the_database_label_only(influx_run: InfluxRun) -> None:
    output = influx_run.output()
    for expected in (f"url: http://127.0.0.1:{influx_run.port}/write", f"url: http://127.0.0.1:{influx_run.port}/read",
                     "basic_auth:", "target_label: prometheusDatabaseLabel", "replacement: prometheus"):
        assert expected in output
    assert "prometheusTableLabel" not in output  # InfluxDB has no tables
    assert printed_credentials(output) == (run_influxdb.DEFAULT_USERNAME, run_influxdb.DEFAULT_PASSWORD)


def test_it_says_where_a_local_run_differs_from_a_deployment(influx_run: InfluxRun) -> None:
    output = influx_run.output()
    differences = output[output.index("Differences from a deployment:"):output.index("Connector ready")]
    for expected in ("DEFAULT_DATABASE=prometheus", "influxd 1.6.7", "DBRP", "token", "RUN_DATA=",
                     "deleted when make run stops", "RELOAD=1", "influxd log:"):
        assert expected in differences, differences


def test_a_remote_write_with_the_printed_credentials_is_stored_in_influxdb(influx_run: InfluxRun) -> None:
    username, password = printed_credentials(influx_run.output())
    ts = now_ms()
    body = encode(write_request([([("__name__", "run_influx_metric"), ("job", "a b,c")], [(0.1 + 0.2, ts)])]))
    answer = requests.post(f"http://127.0.0.1:{influx_run.port}/write", data=body, timeout=30,
                           headers=write_headers(Authorization=authorization(username, password)))
    assert answer.status_code == 204, answer.text
    stored = requests.get(f"http://127.0.0.1:{influx_run.influx_port}/query", timeout=30, params={
        "db": "prometheus", "q": 'SELECT * FROM "run_influx_metric"', "epoch": "ms", "u": username, "p": password,
    }).json()
    series = stored["results"][0]["series"]
    assert [s["values"] for s in series] == [[[ts, "run_influx_metric", "a b,c", 0.1 + 0.2]]]


def test_influxd_checks_the_credentials_the_connector_passes_on(influx_run: InfluxRun) -> None:
    body = encode(write_request([([("__name__", "refused_metric")], [(1.0, now_ms())])]))
    answer = requests.post(f"http://127.0.0.1:{influx_run.port}/write", data=body, timeout=30,
                           headers=write_headers(Authorization=authorization("admin", "wrong")))
    assert answer.status_code == 401, answer.text


def listening_addresses(pid: int) -> set[str]:
    """hex address:port of the TCP sockets `pid` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:
                found.add(parts[1])
    return found


def test_influxd_listens_on_loopback_only(influx_run: InfluxRun) -> None:
    addresses = listening_addresses(influx_run.influxd_pid())
    assert len(addresses) >= 2  # HTTP and the RPC port
    assert all(address.startswith("0100007F:") for address in addresses), addresses  # 127.0.0.1
    assert f"0100007F:{influx_run.influx_port:04X}" in addresses


def test_sigterm_stops_both_servers_and_influxd_and_deletes_the_temporary_data(tmp_path: Path) -> None:
    run = InfluxRun(tmp_path / "run.log")
    try:
        run.wait_ready()
        data_dir = run.data_dir()
        assert data_dir.is_dir()
        everything = descendants(run.process.pid)
        assert run.influxd_pid() in everything
        run.process.send_signal(signal.SIGTERM)
        assert run.process.wait(timeout=20) == 0
        deadline = time.monotonic() + 15
        while any(is_running(pid) for pid in everything):
            assert time.monotonic() < deadline, [pid for pid in everything if is_running(pid)]
            time.sleep(0.05)
        assert not data_dir.exists()
    finally:
        run.stop()


def test_without_a_default_database_series_without_the_label_are_refused_as_deployed(tmp_path: Path) -> None:
    run = InfluxRun(tmp_path / "run.log", DEFAULT_DATABASE="")
    try:
        run.wait_ready()
        assert "DEFAULT_DATABASE is empty" in run.output()
        assert "replacement: prometheus" in run.output()  # the block adds the label itself
        username, password = printed_credentials(run.output())
        body = encode(write_request([([("__name__", "no_label_metric")], [(1.0, now_ms())])]))
        answer = requests.post(f"http://127.0.0.1:{run.port}/write", data=body, timeout=30,
                               headers=write_headers(Authorization=authorization(username, password)))
        assert answer.status_code == 400 and "no_destination" in answer.text, answer.text
    finally:
        run.stop()


def test_a_taken_port_stops_it_at_once_naming_the_port_and_its_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = InfluxRun(tmp_path / "run.log", INFLUX_PORT=str(port))
        try:
            assert run.process.wait(timeout=30) == 1
            assert f"port {port} (the local InfluxDB) is already in use" in run.output()
            assert "INFLUX_PORT=" in run.output()
        finally:
            run.stop()


def test_without_influxd_and_without_root_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_influxdb.shutil, "which", lambda name: None)
    monkeypatch.setattr(run_influxdb.os, "geteuid", lambda: 1000)
    with pytest.raises(run_influxdb.StartError, match=r"apt-get install influxdb.*install_e2e_deps.sh influxdb"):
        run_influxdb.ensure_influxd()


def test_with_influxd_installed_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_influxdb.subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
    assert run_influxdb.ensure_influxd() == shutil.which("influxd")
