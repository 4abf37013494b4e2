"""The sending side of the end-to-end tests: the real Prometheus and vmagent binaries from
Debian, a tiny exporter they can scrape, and helpers to read what they report.
"""

from __future__ import annotations

import json
import math
import re
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cramjam
import requests

from chalicelib.prompb import prometheus_remote_pb2

from .procs import LOOPBACK, Proc, free_port, wait_http

PROMETHEUS_BIN = "/usr/bin/prometheus"
VMAGENT_BIN = "/usr/bin/vmagent"

DATABASE_LABEL = "prometheusDatabaseLabel"
TABLE_LABEL = "prometheusTableLabel"
ROUTING_LABELS = (DATABASE_LABEL, TABLE_LABEL)

STALE_NAN_BITS = 0x7FF0000000000002

# Prometheus re-sends nothing it has once given up on, so retries must fit inside the test:
# short deadlines and backoff, few shards (chalice local serves one request at a time well).
FAST_QUEUE = {
    "batch_send_deadline": "1s",
    "min_backoff": "100ms",
    "max_backoff": "1s",
    "max_shards": 2,
    "max_samples_per_send": 500,
    "capacity": 2500,
}

Labels = tuple[tuple[str, str], ...]


# -- metrics text format ------------------------------------------------------------------------
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float


def parse_metrics(text: str) -> list[MetricSample]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        name, raw_labels, raw_value = match.groups()
        labels = dict(_PAIR.findall(raw_labels or ""))
        samples.append(MetricSample(name, labels, float(raw_value)))
    return samples


def metric_total(samples: Iterable[MetricSample], name: str, **match: str) -> float:
    """Sum of a metric over the series whose labels include `match`."""
    return sum(
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
    )


# -- remote write on the wire -------------------------------------------------------------------
def decode_write_request(body: bytes) -> Any:
    message = prometheus_remote_pb2.WriteRequest()
    message.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return message


def is_stale_marker(value: float) -> bool:
    return math.isnan(value) and struct.unpack(">Q", struct.pack(">d", value))[0] == STALE_NAN_BITS


def series_labels(series: Any) -> dict[str, str]:
    return {label.name: label.value for label in series.labels}


# -- a target to scrape -------------------------------------------------------------------------
class Exporter:
    """A /metrics endpoint in a thread of the test process, with values chosen to catch
    precision loss (0.1 + 0.2, tiny and huge numbers, many digits) and label values that need
    escaping. It can be switched off to make its series go stale."""

    def __init__(self) -> None:
        self.scrapes = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.address = f"{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="exporter", daemon=True)
        self._stopped = False

    def body(self) -> bytes:
        with self._lock:
            self.scrapes += 1
            n = self.scrapes
        lines = [
            "# HELP e2e_demo_requests_total Requests seen by the demo exporter.",
            "# TYPE e2e_demo_requests_total counter",
            f'e2e_demo_requests_total{{path="/a",code="200"}} {n}',
            f'e2e_demo_requests_total{{path="/b c",code="500"}} {n * 3}',
            "# HELP e2e_demo_ratio A value that loses precision when printed with fixed decimals.",
            "# TYPE e2e_demo_ratio gauge",
            f"e2e_demo_ratio {repr(0.1 + 0.2 + n)}",
            f'e2e_demo_ratio{{kind="tiny"}} {repr(5e-324 * n)}',
            f'e2e_demo_ratio{{kind="huge"}} {repr(1.7976931348623157e308 / n)}',
            f'e2e_demo_ratio{{kind="digits"}} {repr(123456789.12345679 + n / 7)}',
            "# HELP e2e_demo_info Labels with characters that need escaping.",
            "# TYPE e2e_demo_info gauge",
            'e2e_demo_info{quote="say \\"hi\\"",path="C:\\\\temp",unicode="h\u00e9llo \u2713"} 1',
        ]
        return ("\n".join(lines) + "\n").encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                pass

            def do_GET(self) -> None:
                body = exporter.body()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def start(self) -> Exporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# -- Prometheus ---------------------------------------------------------------------------------
def routing_relabel(job: str, database: str, table: str) -> list[dict]:
    """write_relabel_configs that send one job's series to database/table."""
    return [
        {
            "source_labels": ["job"],
            "regex": re.escape(job),
            "action": "replace",
            "target_label": label,
            "replacement": value,
        }
        for label, value in ((DATABASE_LABEL, database), (TABLE_LABEL, table))
    ]


class Sender:
    """A sender process (Prometheus or vmagent) with an HTTP port: readiness and own metrics."""

    ready_path = "/"
    url: str
    proc: Proc

    def start(self, timeout: float = 30) -> Sender:
        self.proc.start()
        wait_http(self.proc, f"{self.url}{self.ready_path}", timeout, ok=lambda r: r.status_code == 200)
        return self

    def kill(self) -> None:
        self.proc.kill()

    def metrics(self) -> list[MetricSample]:
        response = requests.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return parse_metrics(response.text)


class Prometheus(Sender):
    """Prometheus 2.42 run directly (not the Debian service), config written as JSON (which is
    YAML), storage and logs in the test's tmp dir."""

    ready_path = "/-/ready"

    def __init__(self, workdir: Path, name: str = "prometheus") -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.address = f"{LOOPBACK}:{self.port}"
        self.workdir = workdir
        self.config_path = workdir / f"{name}.yml"
        argv = [
            PROMETHEUS_BIN,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={workdir / (name + '-data')}",
            f"--web.listen-address={self.address}",
            "--log.level=info",
        ]
        self.proc = Proc(name, argv, workdir)

    def write_config(
        self,
        scrape_configs: list[dict],
        remote_write: list[dict],
        scrape_interval: str = "1s",
        remote_read: list[dict] | None = None,
    ) -> None:
        config = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval},
            "scrape_configs": scrape_configs,
            "remote_write": remote_write,
        }
        if remote_read:
            config["remote_read"] = remote_read
        self.config_path.write_text(json.dumps(config, indent=2))

    def self_scrape(self, job: str = "prometheus") -> dict:
        return {"job_name": job, "static_configs": [{"targets": [self.address]}]}

    def remote_metric(self, name: str, url: str) -> float:
        """A prometheus_remote_storage_* counter for the queue that writes to `url`."""
        return metric_total(self.metrics(), name, url=url)

    def query(self, expr: str, at: float) -> list[dict]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}, timeout=30)
        response.raise_for_status()
        payload = response.json()
        assert payload["status"] == "success", payload
        return payload["data"]["result"]

    def raw_samples(self, selector: str, start_ms: int, end_ms: int) -> dict[Labels, dict[int, str]]:
        """Every sample Prometheus stored for `selector` with start_ms <= t <= end_ms, straight
        from its TSDB (a range-vector selector returns raw samples; stale markers are hidden).
        Keyed by the series' sorted labels, including __name__; values as Prometheus prints
        them (shortest round-trip form)."""
        seconds = math.ceil((end_ms - start_ms) / 1000) + 2
        result = self.query(f"{selector}[{seconds}s]", end_ms / 1000)
        out: dict[Labels, dict[int, str]] = {}
        for series in result:
            labels = tuple(sorted(series["metric"].items()))
            points = {}
            for t, v in series["values"]:
                t_ms = int(round(float(t) * 1000))
                if start_ms <= t_ms <= end_ms:
                    points[t_ms] = v
            if points:
                out[labels] = points
        return out

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.proc.log_text().splitlines() if needle in line]


# -- vmagent ------------------------------------------------------------------------------------
class VMAgent(Sender):
    """vmagent from Debian's victoria-metrics package."""

    ready_path = "/health"

    def __init__(self, workdir: Path, remote_write_url: str, username: str, password: str, labels: dict[str, str]):
        self.port = free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.url = f"http://{self.address}"
        self.scrape_config = workdir / "vmagent-scrape.yml"
        scrape = {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "vmagent", "static_configs": [{"targets": [self.address]}]}],
        }
        self.scrape_config.write_text(json.dumps(scrape, indent=2))
        argv = [
            VMAGENT_BIN,
            f"-httpListenAddr={self.address}",
            f"-promscrape.config={self.scrape_config}",
            f"-remoteWrite.url={remote_write_url}",
            f"-remoteWrite.basicAuth.username={username}",
            f"-remoteWrite.basicAuth.password={password}",
            f"-remoteWrite.tmpDataPath={workdir / 'vmagent-data'}",
            "-remoteWrite.flushInterval=1s",
            "-loggerLevel=INFO",
        ]
        argv += [f"-remoteWrite.label={name}={value}" for name, value in labels.items()]
        self.proc = Proc("vmagent", argv, workdir)

