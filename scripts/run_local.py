"""`make run`: the connector on 127.0.0.1:9201 backed by a local Timestream (moto), no AWS account.

Starts the emulator with database `prometheus` and table `metrics`, serves the app with
`chalice local`, prints a ready-to-paste Prometheus `remote_write` block, and stops both on
Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PORT = int(os.environ.get("PORT", "9201"))
EMULATOR_PORT = int(os.environ.get("EMULATOR_PORT", "9202"))
DATABASE = os.environ.get("DEFAULT_DATABASE", "prometheus")
TABLE = os.environ.get("DEFAULT_TABLE", "metrics")
# Any well-formed key pair works against the emulator; these are documentation placeholders.
ACCESS_KEY_ID = "AKIALOCALEXAMPLE0000"
SECRET_ACCESS_KEY = "local-secret-key"

PROMETHEUS_BLOCK = f"""\
remote_write:
  - url: http://{HOST}:{PORT}/write
    basic_auth:
      username: {ACCESS_KEY_ID}
      password: {SECRET_ACCESS_KEY}
    write_relabel_configs:
      - target_label: prometheusDatabaseLabel
        replacement: {DATABASE}
      - target_label: prometheusTableLabel
        replacement: {TABLE}
remote_read:
  - url: http://{HOST}:{PORT}/read
    basic_auth:
      username: {ACCESS_KEY_ID}
      password: {SECRET_ACCESS_KEY}
    read_recent: true
"""


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"nothing listening on {HOST}:{port} after {seconds:.0f}s")


def stop(process: subprocess.Popen | None) -> None:
    """End a child and everything it started (chalice's reloader runs the server in a child)."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def main() -> int:
    # Ctrl-C and `kill` both end the servers too (a shell may start us with SIGINT ignored).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))
    emulator = subprocess.Popen(
        [str(BIN / "python"), "-m", "local_timestream",
         "--host", HOST, "--port", str(EMULATOR_PORT), "--database", DATABASE, "--table", TABLE],
        cwd=ROOT,
        start_new_session=True,
    )
    connector = None
    try:
        wait_for_port(EMULATOR_PORT, emulator)
        env = {
            **os.environ,
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "TIMESTREAM_WRITE_ENDPOINT": f"http://{HOST}:{EMULATOR_PORT}",
            "TIMESTREAM_QUERY_ENDPOINT": f"http://{HOST}:{EMULATOR_PORT}",
            "DEFAULT_DATABASE": DATABASE,
            "DEFAULT_TABLE": TABLE,
        }
        connector = subprocess.Popen(
            [str(BIN / "chalice"), "local", "--host", HOST, "--port", str(PORT), "--stage", "local"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        wait_for_port(PORT, connector)
        print(
            f"\nConnector ready on http://{HOST}:{PORT}/write, storing in {DATABASE}.{TABLE} "
            f"of the local Timestream at http://{HOST}:{EMULATOR_PORT}.\n"
            "Paste into prometheus.yml:\n\n" + PROMETHEUS_BLOCK + "\n"
            f"See what was stored: make records ARGS='--table {TABLE}'\nCtrl-C stops both.\n",
            flush=True,
        )
        connector.wait()
        return connector.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop(connector)
        stop(emulator)


if __name__ == "__main__":
    sys.exit(main())
