"""Starts the pieces of one end-to-end run and stops them all, in reverse order, on close().

Usable at any fixture scope: a module-scoped fixture that runs one Prometheus for several tests
and a function-scoped one share the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .fault_proxy import FaultProxy
from .senders import Exporter, Prometheus, VMAgent
from .stack import AccessKey, Connector, MotoTimestream
from .tls_front import MutualTlsFront


class Launcher:
    def __init__(self, workdir: Path, moto: MotoTimestream, aws_key: AccessKey) -> None:
        self.workdir = workdir
        self.moto = moto
        self.aws_key = aws_key
        self._stops: list[Callable[[], None]] = []

    def close(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception:  # noqa: BLE001 - keep stopping the rest
                pass

    def proxy(self, upstream: str, **kwargs: object) -> FaultProxy:
        proxy = FaultProxy(upstream, **kwargs)
        proxy.start()
        self._stops.append(proxy.stop)
        return proxy

    def timestream_proxy(self, denied: tuple[AccessKey, ...] = ()) -> FaultProxy:
        """A front door for the local Timestream: injects faults, and answers AccessDenied to keys
        in `denied` (they sign correctly but are not authorized). Every other call is forwarded
        unchanged; the local Timestream accepts `aws_key` and refuses any other key or secret."""
        credentials = {key.access_key_id: key.secret_access_key for key in denied}
        return self.proxy(
            self.moto.url,
            timestream_compat=True,
            credentials=credentials,
            denied_keys=tuple(key.access_key_id for key in denied),
            keep_bodies=False,
        )

    def connector(self, timestream_url: str, name: str = "connector", **env: str) -> Connector:
        connector = Connector(self.workdir, timestream_url, name=name, **env)
        self._stops.append(connector.proc.kill)
        return connector.start()

    def tls_front(self, upstream_port: int, server_cert: Path, server_key: Path, client_ca: Path) -> MutualTlsFront:
        """A mutual-TLS door to `upstream_port` (tests/e2e/tls_front.py)."""
        front = MutualTlsFront(upstream_port, server_cert, server_key, client_ca).start()
        self._stops.append(front.stop)
        return front

    def exporter(self) -> Exporter:
        exporter = Exporter().start()
        self._stops.append(exporter.stop)
        return exporter

    def prometheus(self, name: str = "prometheus") -> Prometheus:
        """A Prometheus with a port and workdir; write_config() then start() it."""
        prometheus = Prometheus(self.workdir, name=name)
        self._stops.append(prometheus.kill)
        return prometheus

    def vmagent(self, remote_write_url: str, labels: dict[str, str]) -> VMAgent:
        agent = VMAgent(
            self.workdir,
            remote_write_url,
            self.aws_key.access_key_id,
            self.aws_key.secret_access_key,
            labels,
        )
        self._stops.append(agent.kill)
        return agent.start()

    def basic_auth(self) -> dict[str, str]:
        return {"username": self.aws_key.access_key_id, "password": self.aws_key.secret_access_key}


@contextmanager
def local_stack(log_root: Path, aws_key: AccessKey, name: str) -> Iterator[Launcher]:
    """A started local Timestream and a Launcher over it, in `log_root/name`; stops both."""
    workdir = log_root / name
    workdir.mkdir(parents=True, exist_ok=True)
    timestream = MotoTimestream(workdir, aws_key)
    launcher = Launcher(workdir, timestream, aws_key)
    try:
        timestream.start()
        yield launcher
    finally:
        launcher.close()
        timestream.stop()
