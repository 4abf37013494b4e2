"""`make run`'s script over real HTTP: the local Timestream + `chalice local`, a remote write, the
records; and how it starts, fails and stops."""

import importlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from local_timestream.emulator import ACCESS_KEY_ENV, SECRET_KEY_ENV
from tests.helpers import basic_auth, encode, now_ms, write_headers, write_request
from tests.integration.conftest import ROOT, LocalRun, child_pids, free_port


def records_listing(emulator_port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "local_timestream.show_records", "--endpoint",
         f"http://127.0.0.1:{emulator_port}", *args],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )


def post(port: int, body: bytes, **headers: str | None) -> requests.Response:
    return requests.post(f"http://127.0.0.1:{port}/write", data=body, headers=write_headers(**headers), timeout=30)


def printed_key_pair(output: str) -> tuple[str, str]:
    """The basic_auth username and password of the printed remote_write block."""
    username = re.search(r"username: (\S+)", output)
    password = re.search(r"password: (\S+)", output)
    assert username and password, output
    return username.group(1), password.group(1)


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")


def chalice_local(run: LocalRun) -> int:
    (pid,) = [pid for pid in run.servers if "local" in cmdline(pid) and any("chalice" in a for a in cmdline(pid))]
    return pid


def test_make_run_prints_ready_to_paste_remote_write_and_read_blocks(local_run):
    output = local_run.output()
    port = local_run.port
    for expected in (f"url: http://127.0.0.1:{port}/write", "basic_auth:", "write_relabel_configs:",
                     "target_label: prometheusDatabaseLabel", "target_label: prometheusTableLabel",
                     f"url: http://127.0.0.1:{port}/read"):
        assert expected in output


def test_start_up_says_where_a_local_run_differs_from_a_deployment(local_run):
    output = local_run.output()
    differences = output[output.index("Differences from a deployment:"):output.index("Connector ready")]
    for expected in ("DEFAULT_DATABASE=prometheus", "DEFAULT_TABLE=metrics", "kept in memory", "RUN_DATA=",
                     "accepts only the access key below", "RELOAD=1",
                     f"Local Timestream log: {local_run.timestream_log}"):
        assert expected in differences, differences


def test_remote_write_over_http_is_stored_in_the_emulator(local_run):
    ts = now_ms()
    body = encode(write_request([([("__name__", "http_test_metric"), ("job", "e2e")], [(0.1 + 0.2, ts)])]))
    response = post(local_run.port, body)
    assert response.status_code == 204, response.text
    listing = records_listing(local_run.emulator_port, "--table", "metrics")
    assert listing.returncode == 0, listing.stderr
    assert f'http_test_metric{{job="e2e"}} {0.1 + 0.2!r} @{ts}' in listing.stdout


def test_bad_requests_over_http_get_their_status_and_the_server_keeps_serving(local_run):
    assert post(local_run.port, b"garbage").status_code == 400
    assert post(local_run.port, b"x", Authorization=None).status_code == 401
    ok = encode(write_request([([("__name__", "after_errors"), ("job", "x")], [(1.0, now_ms())])]))
    assert post(local_run.port, ok).status_code == 204


def test_the_local_timestreams_log_goes_to_its_file_not_between_the_connectors_lines(local_run):
    body = encode(write_request([([("__name__", "logged_metric"), ("job", "x")], [(1.0, now_ms())])]))
    assert post(local_run.port, body).status_code == 204
    log = local_run.timestream_log.read_text()
    assert "WriteRecords 200 prometheus.metrics: 1 of 1 records stored" in log
    output = local_run.output()
    assert "WriteRecords" not in output and '"POST / HTTP/1.1"' not in output  # moto's access log
    assert "\x1b[" not in output + log  # no colour codes


def test_no_autoreload_unless_asked_for(local_run):
    # chalice's reloader would restart the connector on every edit under the project (and serve
    # it from a child process): the connector is one process, started without it.
    pid = chalice_local(local_run)
    assert "--no-autoreload" in cmdline(pid)
    assert child_pids(pid) == []


def test_reload_1_turns_autoreload_on(tmp_path):
    run = LocalRun(tmp_path / "run.log", RELOAD="1")
    try:
        run.wait_ready()
        assert "--autoreload" in cmdline(chalice_local(run))
        assert "restarts the connector on every file change (RELOAD=1)" in run.output()
    finally:
        run.stop()


def test_a_taken_port_stops_make_run_at_once_naming_the_port_and_how_to_choose_another(tmp_path):
    for variable in ("PORT", "EMULATOR_PORT"):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            run = LocalRun(tmp_path / f"{variable}.log", **{variable: str(port)})
            try:
                assert run.process.wait(timeout=15) != 0
            finally:
                run.stop()
        output = run.output()
        assert f"port {port}" in output and f"make run {variable}=" in output, output
        assert "Connector ready" not in output and "Traceback" not in output


def test_a_server_that_dies_stops_make_run_with_a_message(tmp_path):
    run = LocalRun(tmp_path / "run.log")
    try:
        run.wait_ready()
        (emulator,) = [pid for pid in run.servers if "local_timestream" in cmdline(pid)]
        os.kill(emulator, signal.SIGKILL)
        assert run.process.wait(timeout=15) == 1
        run.wait_servers_gone()
    finally:
        run.stop()
    assert "the local Timestream exited" in run.output()


def test_stopping_make_run_stops_both_servers(tmp_path):
    run = LocalRun(tmp_path / "run.log")
    try:
        run.wait_ready()
        assert len(run.servers) == 2, run.servers
    finally:
        run.process.terminate()
        run.process.wait(timeout=15)
    run.wait_servers_gone()
    for port in (run.port, run.emulator_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"


def test_the_printed_key_is_accepted_others_get_403_and_run_data_keeps_the_data(tmp_path):
    data = tmp_path / "data"
    ts = now_ms()
    body = encode(write_request([([("__name__", "kept_metric"), ("job", "x")], [(2.5, ts)])]))
    # make run's own defaults: the printed key pair, not the tests'.
    defaults = {ACCESS_KEY_ENV: None, SECRET_KEY_ENV: None, "RUN_DATA": str(data)}
    first = LocalRun(tmp_path / "first.log", **defaults)
    try:
        first.wait_ready()
        key_id, secret = printed_key_pair(first.output())
        assert f"kept in {data} across restarts" in first.output()
        wrong = post(first.port, body, Authorization=basic_auth(key_id, secret + "x"))
        assert wrong.status_code == 403 and "InvalidSignatureException" in wrong.text
        unknown = post(first.port, body, Authorization=basic_auth("AKIAUNKNOWN000000000", secret))
        assert unknown.status_code == 403 and "UnrecognizedClientException" in unknown.text
        assert post(first.port, body, Authorization=basic_auth(key_id, secret)).status_code == 204
    finally:
        first.stop()
    second = LocalRun(tmp_path / "second.log", **defaults)
    try:
        second.wait_ready()
        listing = records_listing(second.emulator_port, "--table", "metrics")
        assert f'kept_metric{{job="x"}} 2.5 @{ts}' in listing.stdout, listing.stdout + listing.stderr
    finally:
        second.stop()


def test_make_records_with_nothing_running_says_to_start_make_run(tmp_path):
    listing = records_listing(free_port())
    assert listing.returncode != 0
    assert listing.stdout == ""
    (line,) = listing.stderr.splitlines()
    assert "make run" in line and "Traceback" not in listing.stderr


def hold_in_time_wait(port: int) -> None:
    """Leave a connection of 127.0.0.1:`port` in TIME_WAIT, as a stopped server's connections are
    for a minute: the listening side closes first. Checks that a plain bind now fails."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()
        client.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))


def test_a_restart_while_the_last_runs_connections_are_in_time_wait_starts(tmp_path):
    # Stopping make run and starting it again within a minute: both ports hold connections of the
    # last run in TIME_WAIT. The servers can listen (they set SO_REUSEADDR), so make run must too.
    port, emulator_port = free_port(), free_port()
    hold_in_time_wait(port)
    hold_in_time_wait(emulator_port)
    run = LocalRun(tmp_path / "run.log", PORT=str(port), EMULATOR_PORT=str(emulator_port))
    try:
        run.wait_ready()
        ts = now_ms()
        body = encode(write_request([([("__name__", "after_restart"), ("job", "x")], [(1.0, ts)])]))
        assert post(port, body).status_code == 204
    finally:
        run.stop()


def stop_with_signals(run: LocalRun, signum: int) -> None:
    """Send `signum` to make run's process group until make run exits: one signal from `timeout`
    or a process manager, a second one from make passing it on, and more while it cleans up."""
    while run.process.poll() is None:
        try:
            os.killpg(run.process.pid, signum)
        except ProcessLookupError:
            break


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT],
                         ids=lambda signum: signal.Signals(signum).name)
def test_repeated_stop_signals_stop_both_servers_and_free_their_ports(tmp_path, signum):
    run = LocalRun(tmp_path / "run.log")
    try:
        run.wait_ready()
        assert len(run.servers) == 2, run.servers
        stop_with_signals(run, signum)
        run.wait_servers_gone()
    finally:
        run.stop()
    for port in (run.port, run.emulator_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"


def test_a_killed_make_run_takes_its_servers_with_it(tmp_path):
    # SIGKILL cannot be handled: the servers are told by the kernel that their parent died.
    run = LocalRun(tmp_path / "run.log")
    try:
        run.wait_ready()
        os.kill(run.process.pid, signal.SIGKILL)
        run.process.wait(timeout=15)
        run.wait_servers_gone()
    finally:
        run.stop()


def test_start_up_prints_no_error_and_no_request_before_ready(local_run):
    # The readiness probe must not show up as the connector's 404 (a JSON error line) and an
    # access-log line: the first thing a newcomer sees would look like a failure.
    before_ready = local_run.output().split("Connector ready", 1)[0]
    assert '"status": 404' not in before_ready and '"not_found"' not in before_ready, before_ready
    assert "HTTP/1.1" not in before_ready, before_ready


def printed_records_command(output: str) -> str:
    (line,) = [line for line in output.splitlines() if "make records" in line]
    return line.split(": ", 1)[1]


def test_the_printed_make_records_line_works_as_printed_on_other_ports(local_run):
    # local_run listens on free ports, not 9201/9202: the line must carry them. Run as a user would,
    # from a new terminal (none of make run's variables set); `-o` only keeps make from rebuilding
    # a virtualenv older than the requirements files (a shared one).
    ts = now_ms()
    body = encode(write_request([([("__name__", "printed_line"), ("job", "x")], [(1.0, ts)])]))
    assert post(local_run.port, body).status_code == 204
    command = printed_records_command(local_run.output())
    env = {name: value for name, value in os.environ.items() if name not in ("EMULATOR_PORT", "PORT")}
    make, target, *arguments = shlex.split(command)
    assert (make, target) == ("make", "records"), command
    listing = subprocess.run([make, "-o", ".venv/.installed", target, *arguments], capture_output=True, text=True,
                             timeout=60, cwd=ROOT, env=env)
    assert listing.returncode == 0, listing.stderr
    assert f'printed_line{{job="x"}} 1.0 @{ts}' in listing.stdout


def test_empty_defaults_run_like_a_deployment_refusing_unrouted_series(tmp_path):
    run = LocalRun(tmp_path / "run.log", DEFAULT_DATABASE="", DEFAULT_TABLE="")
    try:
        run.wait_ready()
        output = run.output()
        assert "series without routing labels are refused, as in a deployment" in output, output
        ts = now_ms()
        unrouted = encode(write_request([([("__name__", "unrouted"), ("job", "x")], [(1.0, ts)])]))
        refused = post(run.port, unrouted)
        assert refused.status_code == 400 and "no_destination" in refused.text, refused.text
        # The printed remote_write block's relabelling routes to the table make run created.
        routed = encode(write_request([([("__name__", "routed"), ("job", "x"),
                                         ("prometheusDatabaseLabel", "prometheus"),
                                         ("prometheusTableLabel", "metrics")], [(1.0, ts)])]))
        assert post(run.port, routed).status_code == 204
        assert "replacement: prometheus" in output and "replacement: metrics" in output
    finally:
        run.stop()


def test_only_one_default_set_stops_make_run_at_once_saying_so(tmp_path):
    run = LocalRun(tmp_path / "run.log", DEFAULT_DATABASE="prometheus", DEFAULT_TABLE="")
    try:
        assert run.process.wait(timeout=15) != 0
    finally:
        run.stop()
    assert "DEFAULT_DATABASE and DEFAULT_TABLE" in run.output(), run.output()


def test_a_server_that_answers_but_never_gets_ready_is_named_as_such(tmp_path):
    run_local = importlib.import_module("scripts.run_local")
    process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port := free_port())],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        run_local.wait_until_answering("a stand-in", process, url)  # it answers; then it never gets ready
        with pytest.raises(run_local.StartError) as failed:
            run_local.wait_until_answering("the local Timestream", process, url, lambda response: False,
                                           "has no table prometheus.metrics", seconds=0.5)
    finally:
        process.kill()
        process.wait()
    message = str(failed.value)
    assert "answers on" in message and "has no table prometheus.metrics" in message, message
    assert "did not answer" not in message


def test_make_run_runs_as_a_module_and_leaves_sys_path_alone():
    before = list(sys.path)
    sys.modules.pop("scripts.run_local", None)
    importlib.import_module("scripts.run_local")
    assert sys.path == before
    assert "python -m scripts.run_local" in (ROOT / "Makefile").read_text()
