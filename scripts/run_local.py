"""`make run`: the connector on 127.0.0.1:9201 backed by the local Timestream, no AWS account.

Run as a module from the project's root (`python -m scripts.run_local`, which is what `make run`
does), so the project's packages import without touching `sys.path`.

Starts the local Timestream (database `prometheus`, table `metrics`, its log in a file named at
start-up) and `chalice local`, says where this differs from a deployment, prints
ready-to-paste Prometheus `remote_write` and `remote_read` blocks once both servers answer,
and stops both on Ctrl-C, SIGTERM, SIGHUP or SIGQUIT, however often they arrive (and, on
Linux, when make run itself is killed). Fails at once, with a message and a non-zero exit, when
a port is taken or a server does not come up.

Environment: PORT (9201), EMULATOR_PORT (9202), DEFAULT_DATABASE / DEFAULT_TABLE
(prometheus / metrics; both set empty: no default destination, so series without routing
labels are refused as in a deployment), LOCAL_TIMESTREAM_ACCESS_KEY_ID /
LOCAL_TIMESTREAM_SECRET_ACCESS_KEY (the one key pair the local Timestream accepts), RELOAD=1
(restart the connector when a file changes), RUN_LOG (the local Timestream's log file),
RUN_DATA (a directory that keeps the local Timestream's data across restarts).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from local_timestream.emulator import (
    ACCESS_KEY_ENV,
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_SECRET_ACCESS_KEY,
    SECRET_KEY_ENV,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
START_SECONDS = 60.0
DEFAULT_PORT = 9201
DEFAULT_EMULATOR_PORT = 9202
# Where the printed remote_write block routes series, and what the local Timestream creates.
DATABASE = "prometheus"
TABLE = "metrics"
# Ctrl-C, kill/timeout/an IDE's stop button/a process manager, a closed terminal, Ctrl-\.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class StartError(Exception):
    """Why `make run` cannot start; printed as one message."""


class Stopped(Exception):
    """A stop signal arrived: unwind, stopping both servers on the way out."""


_stop_requested = False


def _request_stop(_signum: int, _frame: object) -> None:
    """Only note the signal; the main flow acts on it between steps (`check_stop`). Raising here
    could interrupt the clean-up itself, or land between starting a server and noting its
    process: a second SIGTERM (make passes the first one on) then left a server running."""
    global _stop_requested
    _stop_requested = True


def check_stop() -> None:
    if _stop_requested:
        raise Stopped


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` now. SO_REUSEADDR, as the servers set it: the last
    run's connections in TIME_WAIT must not count as "in use" (a restart within a minute of a
    stop would be refused); a socket listening there still does (Linux refuses the bind)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def check_ports(ports: dict[str, tuple[int, str]]) -> None:
    """Refuse to start when a port is taken: otherwise whatever holds it would answer for us."""
    for what, (port, variable) in ports.items():
        if not port_is_free(port):
            raise StartError(f"port {port} ({what}) is already in use on {HOST}. Stop what uses it, "
                             f"or choose another port: make run {variable}={port + 100}")


def wait_until_answering(name: str, process: subprocess.Popen[bytes], url: str,
                         ready: Callable[[requests.Response], bool] | None = None,
                         waiting_for: str = "", seconds: float = START_SECONDS) -> None:
    """Wait until `process` answers HTTP on `url` and `ready(response)` is true, or fail when it
    exits or the time is up, saying which: no answer at all, or answers without `waiting_for`."""
    deadline = time.monotonic() + seconds
    answered = False
    while True:
        check_stop()
        if process.poll() is not None:
            raise StartError(f"{name} exited with status {process.returncode} before answering on {url}")
        try:
            response = requests.get(url, timeout=2)
            answered = True
            if ready is None or ready(response):
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            if answered:
                raise StartError(f"{name} answers on {url} but {waiting_for or 'is not ready'} "
                                 f"after {seconds:g} s")
            raise StartError(f"{name} did not answer on {url} within {seconds:g} s")
        time.sleep(0.1)


def wait_until_listening(name: str, process: subprocess.Popen[bytes], port: int,
                         seconds: float = START_SECONDS) -> None:
    """Wait until `process` accepts TCP connections on `port`. chalice local imports the app
    before it listens, so that is when it serves; no HTTP request is sent, because any would be
    logged (an access-log line, and the app's 404 for a made-up path) before "ready"."""
    deadline = time.monotonic() + seconds
    while True:
        check_stop()
        if process.poll() is not None:
            raise StartError(f"{name} exited with status {process.returncode} before listening on {port}")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        if time.monotonic() > deadline:
            raise StartError(f"{name} did not listen on port {port} within {seconds:g} s")
        time.sleep(0.1)


def has_table(database: str, table: str) -> Callable[[requests.Response], bool]:
    def ready(response: requests.Response) -> bool:
        tables = response.json().get("timestreamwrite", {}).get("TimestreamTable", [])
        return any(t.get("db_name") == database and t.get("name") == table for t in tables)

    return ready


def _die_with_parent(parent: int) -> Callable[[], None]:
    """For a server, between fork and exec: SIGTERM it when make run ends, even by SIGKILL, which
    no handler sees (Linux's parent-death signal; elsewhere a no-op)."""

    def arrange() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # make run died before the line above
                os._exit(1)

    return arrange


def start_server(argv: list[str], **popen: object) -> subprocess.Popen[bytes]:
    """A server in a session of its own (the terminal's Ctrl-C reaches make run only, which stops
    the servers in order), ended with make run."""
    return subprocess.Popen(argv, cwd=ROOT, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
                            **popen)


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    """End the servers and everything they started (chalice's reloader runs the server in a
    child): SIGTERM to all first, then wait for each, SIGKILL for any that stays."""
    running = [process for process in processes if process is not None and process.poll() is None]
    for process in running:
        _signal_group(process, signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=5)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass  # it ended meanwhile


def prometheus_blocks(port: int, database: str, table: str, key_id: str, secret: str) -> str:
    return f"""\
remote_write:
  - url: http://{HOST}:{port}/write
    basic_auth:
      username: {key_id}
      password: {secret}
    write_relabel_configs:
      - target_label: prometheusDatabaseLabel
        replacement: {database}
      - target_label: prometheusTableLabel
        replacement: {table}
remote_read:
  - url: http://{HOST}:{port}/read
    basic_auth:
      username: {key_id}
      password: {secret}
    read_recent: true
"""


def records_command(emulator_port: int, database: str, table: str) -> str:
    """The `make records` line for this run, as typed in another terminal: it names the port and
    the database when they are not the defaults (that terminal has none of make run's settings)."""
    port = f" EMULATOR_PORT={emulator_port}" if emulator_port != DEFAULT_EMULATOR_PORT else ""
    db = f"--database {database} " if database != DATABASE else ""
    return f"make records{port} ARGS='{db}--table {table}'"


def differences(defaults: tuple[str, str] | None, reload: bool, data_dir: str, log_path: Path) -> str:
    """Where this local run behaves differently from a deployment."""
    data = (f"kept in {data_dir} across restarts" if data_dir
            else "kept in memory: gone when make run stops (RUN_DATA=<dir> keeps it)")
    reloading = ("restarts the connector on every file change (RELOAD=1)" if reload
                 else "does not reload the connector on edits (RELOAD=1 does)")
    if defaults:
        database, table = defaults
        routing = (f"  - DEFAULT_DATABASE={database} and DEFAULT_TABLE={table} are set, so series without\n"
                   "    routing labels are stored here; a deployment refuses them unless both are set.\n")
    else:
        routing = ("  - DEFAULT_DATABASE and DEFAULT_TABLE are empty, so\n"
                   "    series without routing labels are refused, as in a deployment without them\n"
                   "    (the remote_write block below adds the routing labels).\n")
    return (
        "Differences from a deployment:\n"
        f"{routing}"
        f"  - the local Timestream's data is {data}.\n"
        "  - the local Timestream accepts only the access key below (a deployment: your IAM keys), and\n"
        "    checks Timestream's write rules but not IAM permissions, quotas or throttling.\n"
        f"  - `chalice local` {reloading}.\n"
        f"Local Timestream log: {log_path}\n"
    )


def default_destination() -> tuple[str, str] | None:
    """(database, table) for series without routing labels: make run's own unless set; None when
    both are set empty (a deployment's behaviour without them)."""
    database = os.environ.get("DEFAULT_DATABASE", DATABASE).strip()
    table = os.environ.get("DEFAULT_TABLE", TABLE).strip()
    if bool(database) != bool(table):
        raise StartError("DEFAULT_DATABASE and DEFAULT_TABLE must both be set, or both be empty (no default "
                         "destination: series without routing labels are refused, as in a deployment)")
    return (database, table) if database else None


def main() -> int:
    for signum in STOP_SIGNALS:
        # Installed whatever the inherited disposition (a shell may start us with SIGINT ignored).
        signal.signal(signum, _request_stop)
    port = int(os.environ.get("PORT", str(DEFAULT_PORT)))
    emulator_port = int(os.environ.get("EMULATOR_PORT", str(DEFAULT_EMULATOR_PORT)))
    key_id = os.environ.get(ACCESS_KEY_ENV) or DEFAULT_ACCESS_KEY_ID
    secret = os.environ.get(SECRET_KEY_ENV) or DEFAULT_SECRET_ACCESS_KEY
    reload = os.environ.get("RELOAD", "") not in ("", "0")
    data_dir = os.environ.get("RUN_DATA", "")
    default_log = Path(tempfile.gettempdir()) / f"prometheus-timestream-local-{emulator_port}.log"
    log_path = Path(os.environ.get("RUN_LOG") or default_log).resolve()
    emulator = connector = None
    try:
        defaults = default_destination()
        # The printed remote_write block routes to the default destination, or to make run's own.
        database, table = defaults or (DATABASE, TABLE)
        check_ports({"the connector": (port, "PORT"),
                     "the local Timestream": (emulator_port, "EMULATOR_PORT")})
        argv = [str(BIN / "python"), "-m", "local_timestream", "--host", HOST, "--port", str(emulator_port),
                "--database", database, "--table", table, "--log-file", str(log_path)]
        if data_dir:
            argv += ["--data-dir", data_dir]
        # The child's output (a traceback, say) goes to the log file too, not between the lines
        # of the connector's log.
        with open(log_path, "ab") as emulator_log:
            emulator = start_server(argv, env={**os.environ, ACCESS_KEY_ENV: key_id, SECRET_KEY_ENV: secret},
                                    stdout=emulator_log, stderr=subprocess.STDOUT)
        emulator_url = f"http://{HOST}:{emulator_port}"
        wait_until_answering(f"the local Timestream (log: {log_path})", emulator,
                             f"{emulator_url}/moto-api/data.json", has_table(database, table),
                             f"has no table {database}.{table}")
        env = {
            **os.environ,
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "TIMESTREAM_WRITE_ENDPOINT": emulator_url,
            "TIMESTREAM_QUERY_ENDPOINT": emulator_url,
            "DEFAULT_DATABASE": defaults[0] if defaults else "",
            "DEFAULT_TABLE": defaults[1] if defaults else "",
        }
        argv = [str(BIN / "chalice"), "local", "--host", HOST, "--port", str(port), "--stage", "local",
                "--autoreload" if reload else "--no-autoreload"]
        connector = start_server(argv, env=env)
        wait_until_listening("the connector (chalice local)", connector, port)
        storing = (f"storing series without routing labels in {database}.{table}" if defaults
                   else "refusing series without routing labels")
        print(
            f"\n{differences(defaults, reload, data_dir, log_path)}"
            f"\nConnector ready on http://{HOST}:{port}/write, {storing} "
            f"(local Timestream at {emulator_url}).\n"
            "Paste into prometheus.yml:\n\n" + prometheus_blocks(port, database, table, key_id, secret) + "\n"
            f"See what was stored: {records_command(emulator_port, database, table)}\nCtrl-C stops both.\n",
            flush=True,
        )
        return watch(emulator, connector, log_path)
    except StartError as error:
        print(f"make run: {error}", file=sys.stderr, flush=True)
        return 1
    except Stopped:
        return 0
    finally:
        stop(connector, emulator)


def watch(emulator: subprocess.Popen[bytes], connector: subprocess.Popen[bytes], log_path: Path) -> int:
    """Serve until either server ends or a stop signal arrives: then say which, and stop both."""
    while True:
        check_stop()
        for name, process in (("the local Timestream", emulator), ("the connector", connector)):
            if process.poll() is not None:
                where = f" (log: {log_path})" if process is emulator else ""
                print(f"make run: {name} exited with status {process.returncode}{where}; stopping",
                      file=sys.stderr, flush=True)
                return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
