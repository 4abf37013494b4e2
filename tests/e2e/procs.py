"""Child processes for the end-to-end tests: started on loopback, waited for with a deadline,
killed by their own process-group id with SIGKILL.

Each process gets its own session (so its process group is its pid) and a log file in the test's
tmp dir. Killing the group also ends any child it forked (chalice's reloader, for example), and
never touches a process this suite did not start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import requests

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


class ProcessDied(RuntimeError):
    """A child process exited while the test waited for it: no point waiting any longer."""


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Call probe until it returns something truthy; fail with `what` after `timeout` seconds.

    Exceptions from the probe count as "not yet" (a server that is still starting refuses
    connections); the last one is shown if the deadline passes. ProcessDied ends the wait.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
        except ProcessDied:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the probe means "not ready yet"
            result, last_error = None, exc
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


class Proc:
    """One child process with its log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.log_dir = log_dir
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.starts = 0

    def start(self) -> Proc:
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        suffix = "" if self.starts == 1 else f".{self.starts}"
        self.log_path = self.log_dir / f"{self.name}{suffix}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(  # noqa: S603 - argv is built by the tests
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group this process leads, then reap it (bounded)."""
        if self.popen is None:
            return
        pid = self.popen.pid
        for send in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                send()
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def log_text(self) -> str:
        """Everything this process wrote, across restarts."""
        parts = []
        for path in sorted(self.log_dir.glob(f"{self.name}*.log")):
            parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            tail = self.log_text()[-3000:]
            raise ProcessDied(f"{self.name} exited with {self.popen.returncode}; log tail:\n{tail}")


def wait_http(proc: Proc, url: str, timeout: float, ok: Callable[[requests.Response], bool] | None = None) -> None:
    """Wait until `url` answers (any status unless `ok` says otherwise), failing fast if the
    process died."""

    def probe() -> bool:
        proc.check_alive()
        response = requests.get(url, timeout=2)
        return ok(response) if ok else True

    try:
        wait_until(f"{proc.name} at {url}", probe, timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; log tail:\n{proc.log_text()[-3000:]}") from None


def wait_port_closed(port: int, timeout: float) -> None:
    def probe() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((LOOPBACK, port)) != 0

    wait_until(f"port {port} to close", probe, timeout)
