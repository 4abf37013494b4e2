"""`make run`: the connector on 127.0.0.1:9201 backed by the local Timestream, no AWS account.

Starts the local Timestream (database `prometheus`, table `metrics`, its log in a file named at
start-up) and `chalice local`, says where this differs from a deployment, prints
ready-to-paste Prometheus `remote_write` and `remote_read` blocks once both servers answer,
and stops both on Ctrl-C or SIGTERM. Fails at once, with a message and a non-zero exit, when a
port is taken or a server does not come up.

Environment: PORT (9201), EMULATOR_PORT (9202), DEFAULT_DATABASE / DEFAULT_TABLE
(prometheus / metrics), LOCAL_TIMESTREAM_ACCESS_KEY_ID / LOCAL_TIMESTREAM_SECRET_ACCESS_KEY
(the one key pair the local Timestream accepts), RELOAD=1 (restart the connector when a file
changes), RUN_LOG (the local Timestream's log file), RUN_DATA (a directory that keeps the
local Timestream's data across restarts).
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_timestream.emulator import (  # noqa: E402 - needs ROOT on the path
    ACCESS_KEY_ENV,
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_SECRET_ACCESS_KEY,
    SECRET_KEY_ENV,
)

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
START_SECONDS = 60.0


class StartError(Exception):
    """Why `make run` cannot start; printed as one message."""


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
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
                         seconds: float = START_SECONDS) -> None:
    """Wait until `process` answers HTTP on `url` (and `ready(response)` is true), or fail
    when it exits or the time is up."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise StartError(f"{name} exited with status {process.returncode} before answering on {url}")
        try:
            response = requests.get(url, timeout=2)
            if ready is None or ready(response):
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise StartError(f"{name} did not answer on {url} within {seconds:.0f} s")
        time.sleep(0.1)


def has_table(database: str, table: str) -> Callable[[requests.Response], bool]:
    def ready(response: requests.Response) -> bool:
        tables = response.json().get("timestreamwrite", {}).get("TimestreamTable", [])
        return any(t.get("db_name") == database and t.get("name") == table for t in tables)

    return ready


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """End a child and everything it started (chalice's reloader runs the server in a child)."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


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


def differences(database: str, table: str, reload: bool, data_dir: str, log_path: Path) -> str:
    """Where this local run behaves differently from a deployment."""
    data = (f"kept in {data_dir} across restarts" if data_dir
            else "kept in memory: gone when make run stops (RUN_DATA=<dir> keeps it)")
    reloading = ("restarts the connector on every file change (RELOAD=1)" if reload
                 else "does not reload the connector on edits (RELOAD=1 does)")
    return (
        "Differences from a deployment:\n"
        f"  - DEFAULT_DATABASE={database} and DEFAULT_TABLE={table} are set, so series without routing\n"
        "    labels are stored here; a deployment refuses them unless both are set.\n"
        f"  - the local Timestream's data is {data}.\n"
        "  - the local Timestream accepts only the access key below (a deployment: your IAM keys), and\n"
        "    checks Timestream's write rules but not IAM permissions, quotas or throttling.\n"
        f"  - `chalice local` {reloading}.\n"
        f"Local Timestream log: {log_path}\n"
    )


def main() -> int:
    # Ctrl-C and `kill` both end the servers too (a shell may start us with SIGINT ignored).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))
    port = int(os.environ.get("PORT", "9201"))
    emulator_port = int(os.environ.get("EMULATOR_PORT", "9202"))
    database = os.environ.get("DEFAULT_DATABASE", "prometheus")
    table = os.environ.get("DEFAULT_TABLE", "metrics")
    key_id = os.environ.get(ACCESS_KEY_ENV) or DEFAULT_ACCESS_KEY_ID
    secret = os.environ.get(SECRET_KEY_ENV) or DEFAULT_SECRET_ACCESS_KEY
    reload = os.environ.get("RELOAD", "") not in ("", "0")
    data_dir = os.environ.get("RUN_DATA", "")
    default_log = Path(tempfile.gettempdir()) / f"prometheus-timestream-local-{emulator_port}.log"
    log_path = Path(os.environ.get("RUN_LOG") or default_log).resolve()
    emulator = connector = None
    try:
        check_ports({"the connector": (port, "PORT"),
                     "the local Timestream": (emulator_port, "EMULATOR_PORT")})
        argv = [str(BIN / "python"), "-m", "local_timestream", "--host", HOST, "--port", str(emulator_port),
                "--database", database, "--table", table, "--log-file", str(log_path)]
        if data_dir:
            argv += ["--data-dir", data_dir]
        # The child's output (a traceback, say) goes to the log file too, not between the lines
        # of the connector's log.
        with open(log_path, "ab") as emulator_log:
            emulator = subprocess.Popen(
                argv, cwd=ROOT, env={**os.environ, ACCESS_KEY_ENV: key_id, SECRET_KEY_ENV: secret},
                stdout=emulator_log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        emulator_url = f"http://{HOST}:{emulator_port}"
        wait_until_answering(f"the local Timestream (log: {log_path})", emulator,
                             f"{emulator_url}/moto-api/data.json", has_table(database, table))
        env = {
            **os.environ,
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "TIMESTREAM_WRITE_ENDPOINT": emulator_url,
            "TIMESTREAM_QUERY_ENDPOINT": emulator_url,
            "DEFAULT_DATABASE": database,
            "DEFAULT_TABLE": table,
        }
        argv = [str(BIN / "chalice"), "local", "--host", HOST, "--port", str(port), "--stage", "local",
                "--autoreload" if reload else "--no-autoreload"]
        connector = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
        # Any HTTP answer (the app's 404 for "/") means chalice local serves the app.
        wait_until_answering("the connector (chalice local)", connector, f"http://{HOST}:{port}/")
        print(
            f"\n{differences(database, table, reload, data_dir, log_path)}"
            f"\nConnector ready on http://{HOST}:{port}/write, storing in {database}.{table} "
            f"of the local Timestream at {emulator_url}.\n"
            "Paste into prometheus.yml:\n\n" + prometheus_blocks(port, database, table, key_id, secret) + "\n"
            f"See what was stored: make records ARGS='--table {table}'\nCtrl-C stops both.\n",
            flush=True,
        )
        return watch(emulator, connector, log_path)
    except StartError as error:
        print(f"make run: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(connector)
        stop(emulator)


def watch(emulator: subprocess.Popen[bytes], connector: subprocess.Popen[bytes], log_path: Path) -> int:
    """Serve until either server ends: then say which, and stop the other."""
    while True:
        for name, process in (("the local Timestream", emulator), ("the connector", connector)):
            if process.poll() is not None:
                where = f" (log: {log_path})" if process is emulator else ""
                print(f"make run: {name} exited with status {process.returncode}{where}; stopping",
                      file=sys.stderr, flush=True)
                return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
