"""Start and stop a real `influxd` (Debian's 1.6.7, or any 1.x) for development and tests.

The configuration is `influxd config`'s own full output with only what a throwaway local server
needs changed: every listener on 127.0.0.1 (the HTTP API and the RPC `bind-address`, which would
otherwise listen on 8088 and clash between two servers), the data, meta and WAL directories under
`data_dir`, no usage reporting and no `_internal` monitoring database. Starting from the binary's
own output keeps every other default that version's, rather than a config written for another.

With `auth=True` the server requires credentials; the admin user is created on the first start
(InfluxDB 1.x lets the first admin be created without credentials) and kept across restarts
of the same `data_dir`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "local-influxdb-admin"
_START_SECONDS = 30.0


class InfluxDBStartError(RuntimeError):
    """influxd is missing, a port is taken, or the server exited or did not answer in time."""


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGKILL when the process that started it dies,
    so a test or script killed before `stop()` leaves no influxd behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, 9)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (SO_REUSEADDR: last run's TIME_WAIT is no obstacle)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def render_config(base: str, overrides: dict[str, dict[str, str]]) -> str:
    """`base` (TOML as `influxd config` prints it) with `overrides[section][key]` replacing that
    key's value; "" is the top level, before any section. Values are TOML literals. A key that
    is not in its section is added at the section's end, so no override is silently lost."""
    pending = {section: dict(keys) for section, keys in overrides.items()}
    out: list[str] = []
    section = ""

    def flush(name: str) -> None:
        for key, value in pending.pop(name, {}).items():
            out.append(f"  {key} = {value}")

    for line in base.splitlines():
        header = re.match(r"\s*\[\[?([^\]]+)\]\]?\s*$", line)
        if header:
            flush(section)
            section = header.group(1).strip()
            out.append(line)
            continue
        key = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line)
        if key and key.group(1) in pending.get(section, {}):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{key.group(1)} = {pending[section].pop(key.group(1))}")
            continue
        out.append(line)
    flush(section)
    for name in list(pending):
        if pending[name]:
            out.append(f"[{name}]")
            flush(name)
    return "\n".join(out) + "\n"


def _toml_string(text: str) -> str:
    return json.dumps(text)


@dataclass
class LocalInfluxDB:
    """A running influxd. `url` is its HTTP API (http://127.0.0.1:<port>); `username` and
    `password` are the admin's when auth is on (None otherwise)."""

    process: subprocess.Popen[bytes]
    port: int
    rpc_port: int
    data_dir: Path
    config_path: Path
    log_path: Path
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Kill the server (SIGKILL: its data is throwaway) and wait for it."""
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def __enter__(self) -> LocalInfluxDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def query(self, statement: str, database: str | None = None, *, method: str = "POST") -> dict:
        """Run InfluxQL as the admin (or anonymously without auth); the /query JSON answer.
        Raises urllib.error.HTTPError for an error status."""
        params = {"q": statement}
        if database:
            params["db"] = database
        return json.loads(self._request(f"/query?{self._query_string(params)}", method=method))

    def write(self, database: str, lines: str | bytes, precision: str = "ms") -> None:
        """POST line protocol to /write as the admin."""
        body = lines.encode() if isinstance(lines, str) else lines
        params = {"db": database, "precision": precision}
        self._request(f"/write?{self._query_string(params)}", method="POST", body=body)

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{_ident(name)}"')

    def _query_string(self, params: dict[str, str]) -> str:
        # 1.x reads u/p from the query string (a form body with them is refused).
        if self.username is not None:
            params = {**params, "u": self.username, "p": self.password or ""}
        return urllib.parse.urlencode(params)

    def _request(self, path: str, *, method: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()


def _ident(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def start(
    data_dir: str | os.PathLike[str],
    port: int | None = None,
    *,
    rpc_port: int | None = None,
    auth: bool = False,
    username: str = DEFAULT_USERNAME,
    password: str = DEFAULT_PASSWORD,
    databases: tuple[str, ...] = (),
    influxd: str = "influxd",
    log_level: str = "warn",
    timeout: float = _START_SECONDS,
) -> LocalInfluxDB:
    """Start influxd with its data in `data_dir` on 127.0.0.1:`port` (a free one if None) and
    return once /ping answers (and the admin user exists, and `databases` are created).

    The server's output goes to `data_dir`/influxd.log. Stop it with `.stop()` (or use the
    handle as a context manager)."""
    binary = shutil.which(influxd)
    if binary is None:
        raise InfluxDBStartError(
            f"{influxd} not found: apt-get install influxdb (scripts/install_e2e_deps.sh does)"
        )
    data_path = Path(data_dir).resolve()
    data_path.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    rpc_port = rpc_port or free_port()
    for taken in (port, rpc_port):
        if not port_is_free(taken):
            raise InfluxDBStartError(f"port {taken} on 127.0.0.1 is already in use")
    base = subprocess.run([binary, "config"], capture_output=True, text=True, check=True, timeout=30).stdout
    config = render_config(base, {
        "": {"reporting-enabled": "false", "bind-address": _toml_string(f"127.0.0.1:{rpc_port}")},
        "meta": {"dir": _toml_string(str(data_path / "meta")), "logging-enabled": "false"},
        "data": {
            "dir": _toml_string(str(data_path / "data")),
            "wal-dir": _toml_string(str(data_path / "wal")),
            "query-log-enabled": "false",
        },
        "monitor": {"store-enabled": "false"},
        "http": {
            "bind-address": _toml_string(f"127.0.0.1:{port}"),
            "auth-enabled": "true" if auth else "false",
            "log-enabled": "false",
            "pprof-enabled": "false",
            "unix-socket-enabled": "false",
        },
        "logging": {"level": _toml_string(log_level), "suppress-logo": "true"},
        "ifql": {"bind-address": _toml_string("127.0.0.1:0")},
    })
    config_path = data_path / "influxd.conf"
    config_path.write_text(config)
    log_path = data_path / "influxd.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [binary, "run", "-config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
    server = LocalInfluxDB(process, port, rpc_port, data_path, config_path, log_path)
    try:
        _wait_for_ping(server, timeout)
        if auth:
            _ensure_admin(server, username, password)
        for database in databases:
            server.create_database(database)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_ping(server: LocalInfluxDB, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise InfluxDBStartError(f"influxd exited with {server.process.returncode}: {tail}")
        try:
            with urllib.request.urlopen(server.url + "/ping", timeout=1) as response:
                if response.status == 204:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise InfluxDBStartError(f"influxd did not answer /ping on {server.url} within {timeout:.0f} s")
        time.sleep(0.05)


def _ensure_admin(server: LocalInfluxDB, username: str, password: str) -> None:
    """Create the admin user unless it exists (a restart of the same data_dir)."""
    server.username, server.password = username, password
    try:
        server.query("SHOW USERS")
        return
    except urllib.error.HTTPError as error:
        if error.code not in (401, 403):
            raise
    # No user yet: 1.x accepts exactly this statement without credentials.
    server.username, server.password = None, None
    statement = f"CREATE USER \"{_ident(username)}\" WITH PASSWORD '{_literal(password)}' WITH ALL PRIVILEGES"
    server.query(statement)
    server.username, server.password = username, password


def _literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
