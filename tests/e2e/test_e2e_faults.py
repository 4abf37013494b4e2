"""Faults lose nothing.

Prometheus scrapes itself every second and writes through the connector while the Timestream
stand-in throttles, then fails with 500 after storing, then stalls a write while the connector
is killed (SIGKILL) and restarted on the same port. Afterwards every sample Prometheus holds for
the window is stored exactly once (identical rewrites from retried requests count once, as in
Timestream), and Prometheus counted retries, not failures.

The connector runs with a 1 s retry budget, so the faults reach Prometheus as 503s instead of
being absorbed by the connector's own retries.
"""

from __future__ import annotations

import time

from .checks import settled
from .launcher import Launcher
from .procs import wait_until
from .senders import FAST_QUEUE, routing_relabel
from .stack import non_finite

DATABASE = "e2e"
TABLE = "faults"


def test_throttling_errors_and_a_killed_connector_lose_nothing(launcher: Launcher) -> None:
    launcher.moto.create_table(DATABASE, TABLE)
    timestream = launcher.timestream_proxy()
    connector = launcher.connector(timestream.url, WRITE_BUDGET_SECONDS="1")
    prometheus = launcher.prometheus()
    remote_url = connector.write_url
    prometheus.write_config(
        scrape_configs=[prometheus.self_scrape("prometheus")],
        remote_write=[
            {
                "url": remote_url,
                "basic_auth": launcher.basic_auth(),
                "remote_timeout": "5s",
                "write_relabel_configs": routing_relabel("prometheus", DATABASE, TABLE),
                "queue_config": FAST_QUEUE,
            }
        ],
    )
    start_ms = int(time.time() * 1000)
    prometheus.start()

    def metric(name: str) -> float:
        return prometheus.remote_metric(f"prometheus_remote_storage_{name}", remote_url)

    def stored_writes() -> int:
        return sum(1 for ex in timestream.snapshot() if ex.operation == "WriteRecords" and ex.status == 200)

    wait_until("the first samples stored", lambda: stored_writes() > 0, timeout=40, interval=0.5)
    time.sleep(2)

    # 1. Throttling: Timestream answers 400 ThrottlingException; the connector must answer 5xx.
    timestream.inject("throttle", 4)
    time.sleep(4.5)
    assert timestream.faults_injected("throttle") > 0
    wait_until("Prometheus to retry", lambda: metric("samples_retried_total") > 0, timeout=10)
    time.sleep(1.5)

    # 2. Timestream stores the records but the answer is a 500: the retry rewrites them.
    timestream.inject("internal_after_write", 3)
    time.sleep(3.5)
    assert timestream.faults_injected("internal_after_write") > 0
    time.sleep(1.5)

    # 3. Kill the connector while one of its writes is held in flight, restart it on the port.
    timestream.inject("stall", 3)
    wait_until("a write held in flight", lambda: timestream.in_flight() > 0, timeout=10, interval=0.05)
    connector.kill()
    time.sleep(2)
    connector.start()

    # Let Prometheus catch up, then close the window.
    time.sleep(3)
    end_ms = int(time.time() * 1000)
    wait_until(
        "Prometheus to send everything up to the end of the window",
        lambda: metric("queue_highest_sent_timestamp_seconds") * 1000 >= end_ms,
        timeout=60,
        interval=0.5,
    )
    wait_until("the Timestream proxy to be idle", lambda: timestream.in_flight() == 0, timeout=20)

    result, _, stored = settled(prometheus, launcher.moto, '{job="prometheus"}', DATABASE, TABLE, start_ms, end_ms)
    retried = metric("samples_retried_total")
    failed = metric("samples_failed_total")
    dropped = metric("samples_dropped_total")
    print("faults:", result.summary(), f"retried={retried} failed={failed}")
    assert result.expected > 3000, result.summary()
    assert not result.problems(), result.problems()
    assert not non_finite(stored)
    assert retried > 0, "Prometheus never retried: the faults did not reach it"
    assert failed == 0, f"Prometheus gave up on {failed} samples"
    assert dropped == 0
    statuses = {event.get("status") for event in connector.write_events()}
    assert 503 in statuses, f"the connector never answered 503: {statuses}"
    assert not {s for s in statuses if s and 400 <= s < 500}, f"a transient fault became a 4xx: {statuses}"
    assert connector.proc.starts == 2
