"""`make run`'s script over real HTTP: emulator + `chalice local`, a remote write, the records."""

import socket
import subprocess
import sys

import requests

from tests.helpers import encode, now_ms, write_headers, write_request
from tests.integration.conftest import ROOT, LocalRun


def test_make_run_prints_ready_to_paste_remote_write_and_read_blocks(local_run):
    output = local_run.output()
    port = local_run.port
    for expected in (f"url: http://127.0.0.1:{port}/write", "basic_auth:", "write_relabel_configs:",
                     "target_label: prometheusDatabaseLabel", "target_label: prometheusTableLabel",
                     f"url: http://127.0.0.1:{port}/read"):
        assert expected in output


def test_remote_write_over_http_is_stored_in_the_emulator(local_run):
    port, emulator_port = local_run.port, local_run.emulator_port
    ts = now_ms()
    body = encode(write_request([([("__name__", "http_test_metric"), ("job", "e2e")], [(0.1 + 0.2, ts)])]))
    response = requests.post(f"http://127.0.0.1:{port}/write", data=body, headers=write_headers(), timeout=30)
    assert response.status_code == 204, response.text
    listing = subprocess.run(
        [sys.executable, "-m", "local_timestream.show_records", "--endpoint",
         f"http://127.0.0.1:{emulator_port}", "--table", "metrics"],
        capture_output=True, text=True, timeout=30, check=True, cwd=ROOT,
    )
    assert f'http_test_metric{{job="e2e"}} {0.1 + 0.2!r} @{ts}' in listing.stdout


def test_bad_requests_over_http_get_their_status_and_the_server_keeps_serving(local_run):
    port = local_run.port
    url = f"http://127.0.0.1:{port}/write"
    assert requests.post(url, data=b"garbage", headers=write_headers(), timeout=30).status_code == 400
    assert requests.post(url, data=b"x", headers=write_headers(Authorization=None), timeout=30).status_code == 401
    ok = encode(write_request([([("__name__", "after_errors"), ("job", "x")], [(1.0, now_ms())])]))
    assert requests.post(url, data=ok, headers=write_headers(), timeout=30).status_code == 204


def test_stopping_make_run_stops_both_servers(tmp_path):
    run = LocalRun(tmp_path / "run.log")
    try:
        run.wait_ready()
    finally:
        run.process.terminate()
        run.process.wait(timeout=15)
    for port in (run.port, run.emulator_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
