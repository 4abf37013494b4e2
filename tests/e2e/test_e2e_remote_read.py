"""Prometheus 2.42 reads back through the connector what another Prometheus wrote.

Prometheus A scrapes itself every second and remote-writes through the connector (basic auth,
routing labels added by write_relabel_configs) into the local Timestream (the local_timestream
package: moto plus Timestream's rules and Query answered from the stored records) behind the
e2e fault proxy. Once everything A holds for a window has been stored, Prometheus B,
which scrapes nothing and only has `remote_read` (read_recent: true) pointing at the connector's
/read, answers PromQL `query_range` queries over that window: its values must equal A's own,
point for point, both when the query names the table with routing-label matchers (echoed on the
series) and when the connector's default table is used.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .checks import settled
from .launcher import Launcher, local_stack
from .procs import wait_until
from .senders import FAST_QUEUE, ROUTING_LABELS, Prometheus, routing_relabel
from .stack import AccessKey, Connector

DATABASE = "e2e_read"
TABLE = "prometheus_self"
ROUTED = f'prometheusDatabaseLabel="{DATABASE}",prometheusTableLabel="{TABLE}"'
# Counters, a gauge and a float with many digits, chosen by a regex (regexp_like on measure_name).
NAMES = "prometheus_http_requests_total|scrape_duration_seconds|prometheus_tsdb_head_samples_appended_total"
SELECTOR = f'{{__name__=~"{NAMES}",job="prometheus"}}'
ROUTED_SELECTOR = f'{{__name__=~"{NAMES}",job="prometheus",{ROUTED}}}'


def query_range(prometheus: Prometheus, expr: str, start_s: float, end_s: float) -> dict:
    """/api/v1/query_range, step 1 s: {sorted labels: [(t, value text), ...]}."""
    params = {"query": expr, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}", "step": "1s"}
    response = requests.get(f"{prometheus.url}/api/v1/query_range", params=params, timeout=60)
    response.raise_for_status()
    payload = response.json()
    assert payload["status"] == "success", payload
    return {tuple(sorted(s["metric"].items())): [(t, v) for t, v in s["values"]] for s in payload["data"]["result"]}


def without_routing(result: dict) -> dict:
    return {tuple((k, v) for k, v in labels if k not in ROUTING_LABELS): values for labels, values in result.items()}


def read_events(connector: Connector) -> list[dict]:
    events = []
    for line in connector.proc.log_text().splitlines():
        if line.startswith("{") and '"event": "read"' in line:
            events.append(json.loads(line))
    return events


@pytest.fixture(scope="module")
def stack(log_root: Path, aws_key: AccessKey) -> Iterator[Launcher]:
    with local_stack(log_root, aws_key, "test_e2e_remote_read") as launcher:
        yield launcher


@pytest.fixture(scope="module")
def run(stack: Launcher) -> dict:
    stack.moto.create_table(DATABASE, TABLE)
    timestream = stack.timestream_proxy()
    connector = stack.connector(
        timestream.url, TIMESTREAM_QUERY_ENDPOINT=timestream.url, DEFAULT_DATABASE=DATABASE, DEFAULT_TABLE=TABLE
    )
    writer = stack.prometheus("prometheus-a")
    remote_write_url = f"{connector.url}/write"
    writer.write_config(
        scrape_configs=[writer.self_scrape("prometheus")],
        remote_write=[{
            "url": remote_write_url,
            "basic_auth": stack.basic_auth(),
            "remote_timeout": "10s",
            "write_relabel_configs": routing_relabel("prometheus", DATABASE, TABLE),
            "queue_config": FAST_QUEUE,
        }],
    )
    started_ms = int(time.time() * 1000)
    writer.start()
    wait_until("A's first samples in Timestream", lambda: stack.moto.records(DATABASE, TABLE), timeout=40, interval=0.5)
    time.sleep(12)  # a dozen scrapes to read back
    end_s = int(time.time()) - 1
    start_s = end_s - 10
    highest_sent = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
    wait_until(
        "A to send everything up to the end of the window",
        lambda: writer.remote_metric(highest_sent, remote_write_url) >= end_s,
        timeout=30, interval=0.5,
    )
    comparison, _, _ = settled(writer, stack.moto, '{job="prometheus"}', DATABASE, TABLE, started_ms, end_s * 1000)
    assert not comparison.problems(), comparison.problems()

    reader = stack.prometheus("prometheus-b")
    reader.config_path.write_text(json.dumps({
        "global": {"scrape_interval": "1s"},
        "remote_read": [{
            "url": f"{connector.url}/read",
            "basic_auth": stack.basic_auth(),
            "read_recent": True,
            "remote_timeout": "30s",
        }],
    }, indent=2))
    reader.start()
    return {"writer": writer, "reader": reader, "connector": connector, "timestream": timestream,
            "start_s": start_s, "end_s": end_s}


def test_query_range_through_remote_read_equals_the_writers_own_answer(run: dict) -> None:
    writer, reader = run["writer"], run["reader"]
    start_s, end_s = run["start_s"], run["end_s"]
    local = query_range(writer, SELECTOR, start_s, end_s)
    assert len(local) >= 5, f"too little to compare: {list(local)}"
    assert {dict(labels)["__name__"] for labels in local} == set(NAMES.split("|"))
    # 11 steps; a series born inside the window has fewer points.
    points = [len(values) for values in local.values()]
    assert max(points) == 11 and sum(points) >= 40, points

    remote = query_range(reader, ROUTED_SELECTOR, start_s, end_s)
    for labels in remote:
        assert (dict(labels)[ROUTING_LABELS[0]], dict(labels)[ROUTING_LABELS[1]]) == (DATABASE, TABLE)
    assert without_routing(remote) == local

    # The connector's default table: the same query without routing matchers, labels as A has them.
    assert query_range(reader, SELECTOR, start_s, end_s) == local

    # A function over the read data too: per-second rates of the counters.
    rate = 'rate(prometheus_http_requests_total{job="prometheus"}[4s])'
    assert query_range(reader, rate, start_s, end_s) == query_range(writer, rate, start_s, end_s)


def test_raw_samples_read_back_are_the_writers_bit_for_bit(run: dict) -> None:
    writer, reader = run["writer"], run["reader"]
    start_ms, end_ms = run["start_s"] * 1000, run["end_s"] * 1000
    local = writer.raw_samples(SELECTOR, start_ms, end_ms)
    remote = reader.raw_samples(ROUTED_SELECTOR, start_ms, end_ms)
    assert sum(len(points) for points in local.values()) >= 50
    assert without_routing(remote) == local


def test_the_answers_came_through_the_connectors_read_path(run: dict) -> None:
    events = read_events(run["connector"])
    assert events, "the connector logged no /read request"
    assert all(event["status"] == 200 for event in events), [e for e in events if e["status"] != 200][:3]
    assert sum(event.get("series", 0) for event in events) > 0
    queries = [ex for ex in run["timestream"].snapshot() if ex.operation == "Query"]
    assert queries and all(ex.status == 200 for ex in queries), [(ex.status, ex.response_body[:200]) for ex in queries]
    assert not run["reader"].log_lines("level=error"), run["reader"].log_lines("level=error")[:3]
