"""`make run STORAGE_ENGINE=influxdb`: the connector on 127.0.0.1:9201 backed by a real local
InfluxDB (Debian's influxd 1.6.7), no AWS account.

Starts influxd through `python -m local_influxdb` (auth on, its admin created on the first start,
database `prometheus`, data in a new temporary directory unless RUN_DATA names one, every
listener on 127.0.0.1, HTTP on INFLUX_PORT; its output in a log file), then `chalice local` with
STORAGE_ENGINE=influxdb against it, each a server in a session of its own, stopped as a group;
says where this differs from a deployment on Timestream for InfluxDB, prints ready-to-paste
Prometheus `remote_write` and `remote_read` blocks (InfluxDB's user as basic auth, which the
connector passes on) once both answer, and stops both on Ctrl-C or SIGTERM. When influxd is not
installed it installs Debian's `influxdb` with scripts/install_e2e_deps.sh if it can (root, or
sudo without a password), and otherwise says how.

Environment: PORT (9201), INFLUX_PORT (9203), DEFAULT_DATABASE (prometheus), INFLUX_USERNAME /
INFLUX_PASSWORD (the admin user created in influxd; admin / local-influxdb-admin), RELOAD=1,
RUN_DATA (a directory that keeps influxd's data across restarts). influxd's output goes to
<tmp>/prometheus-influxdb-local-<INFLUX_PORT>.log.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run_local import BIN, HOST, StartError, check_ports, stop, wait_until_answering  # noqa: E402

from local_influxdb.server import DEFAULT_PASSWORD, DEFAULT_USERNAME  # noqa: E402 - needs ROOT on the path

INSTALL_SCRIPT = ROOT / "scripts" / "install_e2e_deps.sh"
INSTALL_HINT = ("install Debian's influxdb package (1.6.7): `sudo apt-get install influxdb`, or "
                "`sudo bash scripts/install_e2e_deps.sh influxdb`")


def ensure_influxd(influxd: str = "influxd") -> str:
    """The influxd binary; installed first (Debian's `influxdb`) when it is missing and this user
    may install packages without being asked for a password. Otherwise a StartError saying how."""
    found = shutil.which(influxd)
    if found:
        return found
    can_install = os.geteuid() == 0 or (
        shutil.which("sudo") is not None
        and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    )
    if not can_install:
        raise StartError(f"{influxd} not found and this user cannot install packages: {INSTALL_HINT}")
    print("make run: influxd not found; installing Debian's influxdb", flush=True)
    result = subprocess.run(["bash", str(INSTALL_SCRIPT), "influxdb"])
    found = shutil.which(influxd)
    if result.returncode != 0 or not found:
        raise StartError(f"installing influxdb failed (status {result.returncode}): {INSTALL_HINT}")
    return found


def has_database(database: str) -> Callable[[requests.Response], bool]:
    """Ready once the admin exists and the database does (local_influxdb creates both after
    influxd answers): SHOW DATABASES with the admin's credentials lists it."""

    def ready(response: requests.Response) -> bool:
        if response.status_code != 200:
            return False
        series = response.json()["results"][0].get("series", [])
        return any([database] in s.get("values", []) for s in series)

    return ready


def prometheus_blocks(port: int, database: str, username: str, password: str) -> str:
    """remote_write and remote_read for this run: InfluxDB's own user as basic auth (the connector
    passes it on; a Timestream for InfluxDB deployment takes a v1 authorization or a token there),
    the database label only (InfluxDB has no tables)."""
    return f"""\
remote_write:
  - url: http://{HOST}:{port}/write
    basic_auth:
      username: {username}
      password: {password}
    write_relabel_configs:
      - target_label: prometheusDatabaseLabel
        replacement: {database}
remote_read:
  - url: http://{HOST}:{port}/read
    basic_auth:
      username: {username}
      password: {password}
    read_recent: true
"""


def differences(database: str, reload: bool, data_dir: str, kept: bool, log_path: Path) -> str:
    """Where this local run behaves differently from a deployment on Timestream for InfluxDB."""
    data = (f"kept in {data_dir} across restarts" if kept
            else f"in {data_dir}, deleted when make run stops (RUN_DATA=<dir> keeps it)")
    reloading = ("restarts the connector on every file change (RELOAD=1)" if reload
                 else "does not reload the connector on edits (RELOAD=1 does)")
    return (
        "Differences from a deployment:\n"
        f"  - DEFAULT_DATABASE={database} is set, so series without the database label are stored\n"
        "    here; a deployment refuses them unless DefaultDatabase is set.\n"
        "  - the InfluxDB is influxd 1.6.7 (its v1 API, which InfluxDB 2 and 3 also serve), with a user\n"
        "    and password; Timestream for InfluxDB 2 needs a DBRP mapping and a v1 authorization or\n"
        "    token, InfluxDB 3 a token and has per-table column and table-count limits (README).\n"
        f"  - influxd's data is {data}.\n"
        f"  - `chalice local` {reloading}.\n"
        f"influxd log: {log_path}\n"
    )


def main() -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))
    port = int(os.environ.get("PORT", "9201"))
    influx_port = int(os.environ.get("INFLUX_PORT", "9203"))
    database = os.environ.get("DEFAULT_DATABASE", "prometheus")
    username = os.environ.get("INFLUX_USERNAME") or DEFAULT_USERNAME
    password = os.environ.get("INFLUX_PASSWORD") or DEFAULT_PASSWORD
    reload = os.environ.get("RELOAD", "") not in ("", "0")
    kept_dir = os.environ.get("RUN_DATA", "")
    data_dir = kept_dir or tempfile.mkdtemp(prefix="prometheus-influxdb-local-")
    # The log outlives a temporary data directory: it says why influxd stopped.
    log_path = Path(tempfile.gettempdir()) / f"prometheus-influxdb-local-{influx_port}.log"
    influx = connector = None
    try:
        check_ports({"the connector": (port, "PORT"), "the local InfluxDB": (influx_port, "INFLUX_PORT")})
        ensure_influxd()
        argv = [str(BIN / "python"), "-m", "local_influxdb", "--data-dir", data_dir,
                "--port", str(influx_port), "--auth", "--username", username, "--password", password,
                "--database", database]
        with open(log_path, "ab") as influx_log:
            influx = subprocess.Popen(argv, cwd=ROOT, stdout=influx_log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        influx_url = f"http://{HOST}:{influx_port}"
        show = urllib.parse.urlencode({"q": "SHOW DATABASES", "u": username, "p": password})
        wait_until_answering(f"the local InfluxDB (log: {log_path})", influx, f"{influx_url}/query?{show}",
                             has_database(database))
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("TIMESTREAM_", "DEFAULT_TABLE"))}
        env.update({"STORAGE_ENGINE": "influxdb", "INFLUXDB_URL": influx_url, "DEFAULT_DATABASE": database})
        argv = [str(BIN / "chalice"), "local", "--host", HOST, "--port", str(port), "--stage", "local",
                "--autoreload" if reload else "--no-autoreload"]
        connector = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
        wait_until_answering("the connector (chalice local)", connector, f"http://{HOST}:{port}/")
        print(
            f"\n{differences(database, reload, data_dir, bool(kept_dir), log_path)}"
            f"\nConnector ready on http://{HOST}:{port}/write, storing in database {database} "
            f"of the local InfluxDB at {influx_url}.\n"
            "Paste into prometheus.yml:\n\n" + prometheus_blocks(port, database, username, password) + "\n"
            "See what was stored:\n"
            f"  curl -sG {influx_url}/query -u {username}:{password} --data-urlencode db={database} "
            "--data-urlencode 'q=SHOW MEASUREMENTS'\n"
            "Ctrl-C stops both.\n",
            flush=True,
        )
        return watch(influx, connector, log_path)
    except StartError as error:
        print(f"make run: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # The connector first (it writes to influxd), then influxd and what it started.
        stop(connector)
        stop(influx)
        if not kept_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


def watch(influx: subprocess.Popen[bytes], connector: subprocess.Popen[bytes], log_path: Path) -> int:
    """Serve until either server ends: then say which, and stop the other."""
    while True:
        for name, process in (("the local InfluxDB", influx), ("the connector", connector)):
            if process.poll() is not None:
                where = f" (log: {log_path})" if process is influx else ""
                print(f"make run: {name} exited with status {process.returncode}{where}; stopping",
                      file=sys.stderr, flush=True)
                return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
