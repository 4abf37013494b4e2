"""vmagent (Debian `victoria-metrics`) remote-writes through the connector: it scrapes itself every second, adds the routing labels with `-remoteWrite.label`,
and every finite sample it sent lands once in a third table, without the routing labels.
"""

from __future__ import annotations

import time

from .checks import compare
from .launcher import Launcher
from .procs import wait_until
from .senders import (
    DATABASE_LABEL,
    ROUTING_LABELS,
    TABLE_LABEL,
    Labels,
    decode_write_request,
    metric_total,
    series_labels,
)
from .stack import non_finite

DATABASE = "e2e"
TABLE = "vmagent"


def test_vmagent_routes_with_remote_write_labels(launcher: Launcher) -> None:
    launcher.moto.create_table(DATABASE, TABLE)
    connector = launcher.connector(launcher.timestream_proxy().url)
    tap = launcher.proxy(connector.url)
    agent = launcher.vmagent(f"{tap.url}/write", labels={DATABASE_LABEL: DATABASE, TABLE_LABEL: TABLE})

    def ok_requests() -> int:
        return sum(1 for ex in tap.snapshot() if ex.status == 204)

    wait_until("vmagent's first requests stored", lambda: ok_requests() >= 4, timeout=40, interval=0.5)
    metrics = agent.metrics()
    agent.kill()  # nothing may arrive after the snapshot below
    wait_until("the tap to be idle", lambda: tap.in_flight() == 0, timeout=20)

    exchanges = tap.snapshot()
    sent: dict[Labels, dict[int, str]] = {}
    for exchange in exchanges:
        assert exchange.status == 204, (exchange.status, exchange.response_body[:300])
        for series in decode_write_request(exchange.request_body).timeseries:
            labels = series_labels(series)
            assert labels.get(DATABASE_LABEL) == DATABASE and labels.get(TABLE_LABEL) == TABLE, labels
            key = tuple(sorted((k, v) for k, v in labels.items() if k not in ROUTING_LABELS))
            points = sent.setdefault(key, {})
            for sample in series.samples:
                points[sample.timestamp] = repr(sample.value)

    stored = launcher.moto.records(DATABASE, TABLE)
    result = compare(sent, stored, 0, int(time.time() * 1000) + 60_000)
    assert result.expected > 500, result.summary()
    assert not result.problems(), result.problems()
    assert result.identical_copies == 0, result.summary()
    assert not non_finite(stored)
    for record in stored:
        dims = dict(record.dimensions)
        assert not set(dims) & set(ROUTING_LABELS), record
        assert dims.get("job") == "vmagent" and dims.get("instance") == agent.address, record

    assert metric_total(metrics, "vmagent_remotewrite_blocks_sent_total") > 0
    assert metric_total(metrics, "vmagent_remotewrite_errors_total") == 0
    assert metric_total(metrics, "vmagent_remotewrite_packets_dropped_total") == 0
    failed_statuses = [
        s.labels.get("status_code")
        for s in metrics
        if s.name == "vmagent_remotewrite_requests_total" and not s.labels.get("status_code", "2").startswith("2")
    ]
    assert not failed_statuses, failed_statuses
