"""The local InfluxDB launcher against the real influxd: loopback only, auth with the admin
created on first start and kept across a restart of the same data directory."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from local_influxdb.server import start


def test_started_server_answers_on_loopback_and_writes_and_reads(tmp_path):
    with start(tmp_path / "influx", databases=("prometheus",)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        server.write("prometheus", "up,__name__=up,job=a value=1 1700000000000\n")
        answer = server.query('SELECT "value" FROM "up"', "prometheus")
        assert answer["results"][0]["series"][0]["values"] == [["2023-11-14T22:13:20Z", 1]]
        config = server.config_path.read_text()
        assert f'bind-address = "127.0.0.1:{server.rpc_port}"' in config


def test_auth_creates_the_admin_once_and_refuses_wrong_credentials(tmp_path):
    data = tmp_path / "influx"
    with start(data, auth=True, password="first-secret") as server:
        server.password = "wrong"
        with pytest.raises(urllib.error.HTTPError) as refused:
            server.query("SHOW DATABASES")
        assert refused.value.code == 401
    # Restarted on the same data: the admin exists already and its password still works.
    with start(data, auth=True, password="first-secret") as server:
        users = server.query("SHOW USERS")["results"][0]["series"][0]["values"]
        assert users == [["admin", True]]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_influxd_dies_with_the_process_that_started_it(tmp_path):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from local_influxdb.server import start; "
            "s = start(sys.argv[2]); print(s.process.pid, flush=True); import time; time.sleep(60)")
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen([sys.executable, "-c", code, root, str(tmp_path / "d")], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(child)
