"""Prometheus 2.42 remote-writes through the connector.

One Prometheus run feeds all three checks, to keep the suite short on a 2-core machine:
Prometheus scrapes itself (job `prometheus`) and a small exporter (job `exporter`) every second;
`write_relabel_configs` route each job to its own table; a tap proxy between Prometheus and the
connector records every request and answer; the exporter is then switched off so that
Prometheus sends stale markers for its series.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from .checks import compare, series_key, settled
from .fault_proxy import Exchange
from .launcher import Launcher
from .procs import wait_until
from .senders import (
    FAST_QUEUE,
    ROUTING_LABELS,
    Labels,
    decode_write_request,
    is_stale_marker,
    routing_relabel,
    series_labels,
)
from .stack import StoredRecord, non_finite

DATABASE = "e2e"
SELF_TABLE = "prometheus_self"
EXPORTER_TABLE = "prometheus_exporter"
EXPORTER_METRICS = ("e2e_demo_requests_total", "e2e_demo_ratio", "e2e_demo_info")


@dataclass
class Decoded:
    exchange: Exchange
    series: int = 0
    samples: int = 0
    metadata: int = 0
    stale: Counter = field(default_factory=Counter)  # job -> stale markers in this request


@dataclass
class Run:
    start_ms: int
    end_ms: int
    remote_url: str
    metrics: dict[str, float]
    prom_self: dict[Labels, dict[int, str]]
    prom_exporter: dict[Labels, dict[int, str]]
    prom_all_series: set
    stored_self: list[StoredRecord]
    stored_exporter: list[StoredRecord]
    requests: list[Decoded]
    write_events: list[dict]
    metric_documents: list[dict]


def _decode(exchange: Exchange) -> Decoded:
    decoded = Decoded(exchange)
    message = decode_write_request(exchange.request_body)
    decoded.series = len(message.timeseries)
    decoded.metadata = len(message.metadata)
    for series in message.timeseries:
        labels = series_labels(series)
        for sample in series.samples:
            decoded.samples += 1
            if is_stale_marker(sample.value):
                decoded.stale[labels.get("job", "")] += 1
    return decoded


@pytest.fixture(scope="module")
def run(module_launcher: Launcher) -> Run:
    stack = module_launcher
    for table in (SELF_TABLE, EXPORTER_TABLE):
        stack.moto.create_table(DATABASE, table)
    connector = stack.connector(stack.timestream_proxy().url)
    tap = stack.proxy(connector.url)
    exporter = stack.exporter()
    prometheus = stack.prometheus()
    remote_url = f"{tap.url}/write"
    prometheus.write_config(
        scrape_configs=[
            prometheus.self_scrape("prometheus"),
            {"job_name": "exporter", "static_configs": [{"targets": [exporter.address]}]},
        ],
        remote_write=[
            {
                "url": remote_url,
                "basic_auth": stack.basic_auth(),
                "remote_timeout": "10s",
                "write_relabel_configs": routing_relabel("prometheus", DATABASE, SELF_TABLE)
                + routing_relabel("exporter", DATABASE, EXPORTER_TABLE),
                "queue_config": FAST_QUEUE,
                "metadata_config": {"send": True, "send_interval": "2s"},
            }
        ],
    )
    start_ms = int(time.time() * 1000)
    prometheus.start()

    def written_tables() -> set[str]:
        return {
            dest
            for event in connector.write_events()
            if event.get("status") == 204
            for dest, count in (event.get("destinations") or {}).items()
            if count
        }

    # Prometheus replays its WAL before its first send (about 6 s for 2.42).
    wait_until(
        "samples written to both tables",
        lambda: {f"{DATABASE}.{SELF_TABLE}", f"{DATABASE}.{EXPORTER_TABLE}"} <= written_tables(),
        timeout=40,
        interval=0.5,
    )
    time.sleep(4)  # a few more scrapes of both targets

    exporter.stop()  # the next scrape fails: Prometheus marks the exporter's series stale

    def stale_sent() -> bool:
        return any(_decode(ex).stale["exporter"] for ex in tap.snapshot() if ex.status)

    wait_until("stale markers for the exporter's series", stale_sent, timeout=20, interval=0.5)
    time.sleep(2.5)  # at least one more metadata send (every 2 s)

    end_ms = int(time.time() * 1000) - 1000
    highest_sent = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
    wait_until(
        "Prometheus to send everything up to the end of the window",
        lambda: prometheus.remote_metric(highest_sent, remote_url) * 1000 >= end_ms,
        timeout=30,
        interval=0.5,
    )
    # The last request may still be on its way through the connector.
    wait_until("the tap to be idle", lambda: tap.in_flight() == 0, timeout=20)

    names = (
        "prometheus_remote_storage_samples_total",
        "prometheus_remote_storage_samples_failed_total",
        "prometheus_remote_storage_samples_retried_total",
        "prometheus_remote_storage_samples_dropped_total",
        "prometheus_remote_storage_metadata_total",
        "prometheus_remote_storage_metadata_failed_total",
        "prometheus_remote_storage_metadata_retried_total",
    )
    settled(prometheus, stack.moto, '{job="prometheus"}', DATABASE, SELF_TABLE, start_ms, end_ms)
    settled(prometheus, stack.moto, '{job="exporter"}', DATABASE, EXPORTER_TABLE, start_ms, end_ms)
    metrics = {name: prometheus.remote_metric(name, remote_url) for name in names}
    prom_self = prometheus.raw_samples('{job="prometheus"}', start_ms, end_ms)
    prom_exporter = prometheus.raw_samples('{job="exporter"}', start_ms, end_ms)
    everything = prometheus.raw_samples('{__name__=~".+"}', start_ms - 60_000, int(time.time() * 1000))
    # What the tap saw, the tables, the connector's log lines and its metric documents are read one
    # after the other: with Prometheus still sending, a request could fall between two reads (a
    # write logged after its log lines were read, before its EMF documents were).
    prometheus.kill()
    wait_until("the tap to be idle", lambda: tap.in_flight() == 0, timeout=20)
    return Run(
        start_ms=start_ms,
        end_ms=end_ms,
        remote_url=remote_url,
        metrics=metrics,
        prom_self=prom_self,
        prom_exporter=prom_exporter,
        prom_all_series={series_key(labels) for labels in everything},
        stored_self=stack.moto.records(DATABASE, SELF_TABLE),
        stored_exporter=stack.moto.records(DATABASE, EXPORTER_TABLE),
        requests=[_decode(ex) for ex in tap.snapshot()],
        write_events=connector.write_events(),
        metric_documents=connector.metric_documents(),
    )


def _assert_routed(stored: list[StoredRecord], job: str, known_series: set) -> None:
    assert stored, f"nothing stored for job {job}"
    for record in stored:
        names = [name for name, _ in record.dimensions]
        assert not set(names) & set(ROUTING_LABELS), f"routing label stored as a dimension: {record}"
        assert len(names) == len(set(names)), f"repeated dimension: {record}"
        assert dict(record.dimensions).get("job") == job, f"series of another job in the table: {record}"
        assert record.series in known_series, f"stored series Prometheus never had: {record}"


def test_self_scrape_lands_in_named_table_exactly_once(run: Run) -> None:
    """Every sample Prometheus scraped from itself in the window is in the named
    table, once, with identical value and time, dimensions = its labels minus __name__ and the
    routing labels; Prometheus counts no failed sample."""
    _assert_routed(run.stored_self, "prometheus", run.prom_all_series)
    result = compare(run.prom_self, run.stored_self, run.start_ms, run.end_ms)
    print("self:", result.summary())
    assert result.expected > 1000, f"too little data to prove anything: {result.summary()}"
    assert not result.problems(), result.problems()
    # No fault was injected, so not even an identical rewrite is expected.
    assert result.identical_copies == 0, result.summary()
    assert run.metrics["prometheus_remote_storage_samples_total"] > 0
    assert run.metrics["prometheus_remote_storage_samples_failed_total"] == 0
    assert run.metrics["prometheus_remote_storage_samples_dropped_total"] == 0
    bad = [r for r in run.requests if not 200 <= r.exchange.status < 300]
    assert not bad, [(r.exchange.status, r.exchange.response_body[:200]) for r in bad[:5]]


def test_two_jobs_go_to_their_own_tables(run: Run) -> None:
    """Each table holds only its job, all of it, with values bit-for-bit (the
    exporter serves values that fixed-decimal formatting would change) and label values that
    need escaping unchanged."""
    _assert_routed(run.stored_exporter, "exporter", run.prom_all_series)
    _assert_routed(run.stored_self, "prometheus", run.prom_all_series)
    result = compare(run.prom_exporter, run.stored_exporter, run.start_ms, run.end_ms)
    print("exporter:", result.summary())
    assert not result.problems(), result.problems()
    names = {record.measure_name for record in run.stored_exporter}
    assert set(EXPORTER_METRICS) <= names, names
    info = [r for r in run.stored_exporter if r.measure_name == "e2e_demo_info"]
    assert info and dict(info[0].dimensions) == {
        "instance": dict(info[0].dimensions)["instance"],
        "job": "exporter",
        "quote": 'say "hi"',
        "path": "C:\\temp",
        "unicode": "h\u00e9llo \u2713",
    }
    tiny = [r for r in run.stored_exporter if ("kind", "tiny") in r.dimensions]
    assert tiny and all(float(r.value) > 0 for r in tiny), "a denormal value was rounded to 0"


def test_stale_markers_and_metadata_only_requests_succeed(run: Run) -> None:
    """The exporter disappeared, Prometheus sent stale markers; the requests that
    carried them succeeded, the markers were dropped (nothing non-finite is stored) and counted
    in the connector's log. Metadata-only requests succeed too."""
    stale_requests = [r for r in run.requests if sum(r.stale.values())]
    assert any(r.stale["exporter"] for r in stale_requests), "Prometheus sent no stale marker"
    for request in stale_requests:
        assert request.exchange.status == 204, (request.exchange.status, request.exchange.response_body)
    assert not non_finite(run.stored_exporter + run.stored_self)

    stale_sent = sum(sum(r.stale.values()) for r in run.requests if r.exchange.status == 204)
    stale_counted = sum((event.get("dropped") or {}).get("stale_marker", 0) for event in run.write_events)
    print(f"stale markers sent {stale_sent}, counted {stale_counted}")
    assert stale_counted == stale_sent, f"connector counted {stale_counted} stale markers, Prometheus sent {stale_sent}"

    metadata_only = [r for r in run.requests if r.series == 0 and r.metadata > 0]
    assert metadata_only, "Prometheus sent no metadata-only request"
    for request in metadata_only:
        assert request.exchange.status == 204, (request.exchange.status, request.exchange.response_body)
    assert run.metrics["prometheus_remote_storage_metadata_total"] > 0
    assert run.metrics["prometheus_remote_storage_metadata_failed_total"] == 0

    # After the stale markers, the exporter's series get no new sample in Timestream.
    last_stale_ms = max(r.exchange.started for r in stale_requests if r.stale["exporter"]) * 1000
    late = [
        r
        for r in run.stored_exporter
        if r.measure_name in EXPORTER_METRICS and r.time_ms > last_stale_ms and not math.isnan(float(r.value))
    ]
    assert not late, late[:3]


def test_emf_metrics_add_up_to_what_was_stored(run: Run) -> None:
    """The metrics an operator graphs agree with the log lines and with what Timestream holds:
    one totals document per write request, written samples covering the stored records, and
    the stale markers Prometheus sent under SamplesDropped by reason."""
    totals = [doc for doc in run.metric_documents if "SamplesWritten" in doc and "Reason" not in doc]
    assert len(totals) == len(run.write_events)
    for document in run.metric_documents:
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "PrometheusTimestream"
        assert all(document[metric["Name"]] >= 0 for metric in directive["Metrics"])
    written = sum(doc["SamplesWritten"] for doc in totals)
    assert written == sum(event["written"] for event in run.write_events)
    # Prometheus keeps sending while the run is collected, and the log is read after the tables:
    # every stored record was counted, and the count may include a few later requests.
    assert written >= len(run.stored_self) + len(run.stored_exporter) > 0
    assert sum(doc["TimestreamCalls"] for doc in totals) >= len([e for e in run.write_events if e["written"]])
    stale = sum(doc["SamplesDropped"] for doc in run.metric_documents if doc.get("Reason") == "stale_marker")
    assert stale == sum((event.get("dropped") or {}).get("stale_marker", 0) for event in run.write_events) > 0
    assert all(doc["RequestDuration"] > 0 for doc in totals)
