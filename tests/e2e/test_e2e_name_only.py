"""A recording rule with no labels, as a new user writes one, from real Prometheus 2.42.

Prometheus A scrapes itself, evaluates `e2e_sum_up = sum(up)` every second, and remote-writes
with no external labels and no routing labels (the connector's default table): the recorded
series' only label is `__name__`. Timestream needs a dimension per record, so the connector
stores it with a dimension of its own; Prometheus B, which only has `remote_read` pointing at the
connector, must read it back as `{__name__="e2e_sum_up"}` with nothing added, value for value as
A holds it, and A must count no failed sample.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .launcher import Launcher, local_stack
from .procs import wait_until
from .senders import FAST_QUEUE
from .stack import AccessKey

DATABASE = "e2e_rules"
TABLE = "recorded"
RULE = "e2e_sum_up"
# What the connector adds to a name-only series in Timestream (and takes off on /read).
OWNED_DIMENSION = ("__prometheus_timestream_series__", "name_only")


@pytest.fixture(scope="module")
def stack(log_root: Path, aws_key: AccessKey) -> Iterator[Launcher]:
    with local_stack(log_root, aws_key, "test_e2e_name_only") as launcher:
        yield launcher


@pytest.fixture(scope="module")
def run(stack: Launcher) -> dict:
    stack.moto.create_table(DATABASE, TABLE)
    timestream = stack.timestream_proxy()
    connector = stack.connector(
        timestream.url, TIMESTREAM_QUERY_ENDPOINT=timestream.url, DEFAULT_DATABASE=DATABASE, DEFAULT_TABLE=TABLE
    )
    writer = stack.prometheus("prometheus-rules")
    rules = stack.workdir / "rules.yml"
    rules.write_text(json.dumps({"groups": [{
        "name": "e2e", "interval": "1s", "rules": [{"record": RULE, "expr": "sum(up)"}],
    }]}, indent=2))
    remote_write_url = f"{connector.url}/write"
    writer.write_config(
        scrape_configs=[writer.self_scrape("prometheus")],
        remote_write=[{
            "url": remote_write_url,
            "basic_auth": stack.basic_auth(),
            "remote_timeout": "10s",
            # Only the recorded series: no relabelling adds a label to it.
            "write_relabel_configs": [{"source_labels": ["__name__"], "regex": RULE, "action": "keep"}],
            "queue_config": FAST_QUEUE,
        }],
    )
    config = json.loads(writer.config_path.read_text())
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(rules)]
    writer.config_path.write_text(json.dumps(config, indent=2))
    writer.start()
    wait_until(f"{RULE} in Timestream", lambda: stack.moto.records(DATABASE, TABLE), timeout=40, interval=0.5)
    time.sleep(6)  # a few evaluations to read back
    end_s = int(time.time()) - 1
    highest_sent = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
    wait_until(
        "the writer to send everything up to the end of the window",
        lambda: writer.remote_metric(highest_sent, remote_write_url) >= end_s,
        timeout=30, interval=0.5,
    )

    reader = stack.prometheus("prometheus-reader")
    reader.config_path.write_text(json.dumps({
        "global": {"scrape_interval": "1s"},
        "remote_read": [{"url": f"{connector.url}/read", "basic_auth": stack.basic_auth(), "read_recent": True}],
    }, indent=2))
    reader.start()
    return {"writer": writer, "reader": reader, "connector": connector, "url": remote_write_url,
            "stored": stack.moto.records(DATABASE, TABLE), "end_ms": end_s * 1000}


def test_the_recorded_series_has_no_label_and_is_stored_with_the_connectors_dimension(run: dict) -> None:
    stored = run["stored"]
    assert stored and {record.series for record in stored} == {(RULE, (OWNED_DIMENSION,))}
    assert run["writer"].remote_metric("prometheus_remote_storage_samples_failed_total", run["url"]) == 0
    statuses = {event["status"] for event in run["connector"].write_events()}
    assert statuses == {204}, statuses


def test_it_reads_back_through_remote_read_as_sent_with_nothing_added(run: dict) -> None:
    end_ms = run["end_ms"]
    start_ms = min(record.time_ms for record in run["stored"])
    local = run["writer"].raw_samples(RULE, start_ms, end_ms)
    assert list(local) == [(("__name__", RULE),)], list(local)
    assert len(local[(("__name__", RULE),)]) >= 3
    remote = run["reader"].raw_samples(RULE, start_ms, end_ms)
    assert remote == local
