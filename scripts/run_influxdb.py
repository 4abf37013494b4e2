"""`make run STORAGE_ENGINE=influxdb`: the connector on 127.0.0.1:9201 backed by a real local
InfluxDB (Debian's influxd 1.6.7), no AWS account. Entered from scripts/run_local.py, whose stop
signals, server start-up and clean-up it shares.

Starts influxd through `python -m local_influxdb` (auth on, its admin created on the first start,
database `prometheus`, data in a new temporary directory unless RUN_DATA names one, every listener
on 127.0.0.1, HTTP on INFLUX_PORT, its output in <tmp>/prometheus-influxdb-local-<port>.log), then
`chalice local` with STORAGE_ENGINE=influxdb against it; says where this differs from a
deployment on Timestream for InfluxDB and prints ready-to-paste Prometheus `remote_write` and
`remote_read` blocks (InfluxDB's user as basic auth, which the connector passes on) once both
serve. When influxd is not installed it installs Debian's `influxdb` with
scripts/install_e2e_deps.sh if it can (root, or sudo without a password), and otherwise says how.

Environment: PORT (9201), INFLUX_PORT (9203), DEFAULT_DATABASE (prometheus; set empty: no default
database, so series without the database label are refused as in a deployment), INFLUX_USERNAME /
INFLUX_PASSWORD (the admin user created in influxd; admin / local-influxdb-admin), RELOAD=1,
RUN_DATA (a directory that keeps influxd's data across restarts).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import requests

from local_influxdb.server import DEFAULT_PASSWORD, DEFAULT_USERNAME
from scripts.run_local import (
    BIN,
    DATABASE,
    DEFAULT_PORT,
    HOST,
    ROOT,
    StartError,
    Stopped,
    check_ports,
    install_stop_handlers,
    start_connector,
    start_server,
    stop,
    wait_until_answering,
    watch,
)

DEFAULT_INFLUX_PORT = 9203
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
        return any([database] in item.get("values", []) for item in series)

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


def differences(default_database: str, reload: bool, data_dir: str, kept: bool, log_path: Path) -> str:
    """Where this local run behaves differently from a deployment on Timestream for InfluxDB."""
    if default_database:
        routing = (f"  - DEFAULT_DATABASE={default_database} is set, so series without the database label\n"
                   "    are stored there; a deployment refuses them unless DefaultDatabase is set.\n")
    else:
        routing = ("  - DEFAULT_DATABASE is empty, so series without the database label are refused, as\n"
                   "    in a deployment without DefaultDatabase (the remote_write block below adds it).\n")
    data = (f"kept in {data_dir} across restarts" if kept
            else f"in {data_dir}, deleted when make run stops (RUN_DATA=<dir> keeps it)")
    reloading = ("restarts the connector on every file change (RELOAD=1)" if reload
                 else "does not reload the connector on edits (RELOAD=1 does)")
    return (
        "Differences from a deployment:\n"
        f"{routing}"
        "  - the InfluxDB is influxd 1.6.7 (its v1 API, which InfluxDB 2 and 3 also serve), with a user\n"
        "    and password; Timestream for InfluxDB 2 needs a DBRP mapping and a v1 authorization or\n"
        "    token, InfluxDB 3 a token and has per-table column and table-count limits (README).\n"
        f"  - influxd's data is {data}.\n"
        f"  - `chalice local` {reloading}.\n"
        f"influxd log: {log_path}\n"
    )


def run_influxdb() -> int:
    """make run's main for STORAGE_ENGINE=influxdb."""
    install_stop_handlers()
    port = int(os.environ.get("PORT", str(DEFAULT_PORT)))
    influx_port = int(os.environ.get("INFLUX_PORT", str(DEFAULT_INFLUX_PORT)))
    default_database = os.environ.get("DEFAULT_DATABASE", DATABASE).strip()
    database = default_database or DATABASE  # what influxd creates and the printed block routes to
    username = os.environ.get("INFLUX_USERNAME") or DEFAULT_USERNAME
    password = os.environ.get("INFLUX_PASSWORD") or DEFAULT_PASSWORD
    reload = os.environ.get("RELOAD", "") not in ("", "0")
    kept_dir = os.environ.get("RUN_DATA", "")
    # The log lives outside a temporary data directory: it says why influxd stopped.
    log_path = Path(tempfile.gettempdir()) / f"prometheus-influxdb-local-{influx_port}.log"
    data_dir = ""
    influx = connector = None
    try:
        check_ports({"the connector": (port, "PORT"), "the local InfluxDB": (influx_port, "INFLUX_PORT")})
        ensure_influxd()
        data_dir = kept_dir or tempfile.mkdtemp(prefix="prometheus-influxdb-local-")
        argv = [str(BIN / "python"), "-m", "local_influxdb", "--data-dir", data_dir,
                "--port", str(influx_port), "--auth", "--username", username, "--password", password,
                "--database", database]
        with open(log_path, "ab") as influx_log:
            influx = start_server(argv, stdout=influx_log, stderr=subprocess.STDOUT)
        influx_url = f"http://{HOST}:{influx_port}"
        show = urllib.parse.urlencode({"q": "SHOW DATABASES", "u": username, "p": password})
        wait_until_answering(f"the local InfluxDB (log: {log_path})", influx, f"{influx_url}/query?{show}",
                             has_database(database), f"has no database {database}")
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("TIMESTREAM_", "DEFAULT_TABLE"))}
        env.update({"STORAGE_ENGINE": "influxdb", "INFLUXDB_URL": influx_url,
                    "DEFAULT_DATABASE": default_database})
        connector = start_connector(port, env, reload)
        storing = (f"storing series without the database label in {default_database}" if default_database
                   else "refusing series without the database label")
        print(
            f"\n{differences(default_database, reload, data_dir, bool(kept_dir), log_path)}"
            f"\nConnector ready on http://{HOST}:{port}/write, {storing} "
            f"(local InfluxDB at {influx_url}).\n"
            "Paste into prometheus.yml:\n\n" + prometheus_blocks(port, database, username, password) + "\n"
            "See what was stored:\n"
            f"  curl -sG {influx_url}/query -u {username}:{password} --data-urlencode db={database} "
            "--data-urlencode 'q=SHOW MEASUREMENTS'\n"
            "Ctrl-C stops both.\n",
            flush=True,
        )
        return watch(("the local InfluxDB", influx, log_path), ("the connector", connector, None))
    except StartError as error:
        print(f"make run: {error}", file=sys.stderr, flush=True)
        return 1
    except Stopped:
        return 0
    finally:
        # The connector first (it writes to influxd), then influxd with what it started.
        stop(connector, influx)
        if data_dir and not kept_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
