"""Real Prometheus 2.42 -> the connector (chalice local, STORAGE_ENGINE=influxdb) -> a real InfluxDB
(Debian's influxd 1.6.7, auth on) -> back through the connector's /read.

Prometheus A scrapes itself and the demo exporter (values that fixed decimals would change, label
values that need escaping), evaluates the recording rule `e2e_influx_sum_up = sum(up)` (its only
label is `__name__`) every second, and remote-writes with InfluxDB's own user as basic auth, no
relabelling: everything goes to the connector's DEFAULT_DATABASE. Then:
- every sample A holds for the window is in InfluxDB once, value for value (float64 bits), with
  the layout of InfluxDB's own Prometheus endpoint: measurement = metric name, every label and
  `__name__` as tags, one float field `value`, the sample's millisecond time;
- Prometheus B, which only has `remote_read` pointing at the connector, reads the same raw
  samples back for the exporter's series, the recorded series and A's own, exactly;
- A counts no failed sample and the connector answered every write 204.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from local_influxdb.server import LocalInfluxDB

from .checks import settled
from .conftest import make_workdir
from .influx import InfluxStore, basic_auth, influx_connector
from .procs import wait_until
from .senders import FAST_QUEUE, Exporter, Prometheus

DATABASE = "e2e_influx"
RULE = "e2e_influx_sum_up"
EVERYTHING = '{__name__=~".+"}'
# Read back: the exporter's series (escaping, precision), the rule, and a few of A's own.
READ_SELECTORS = (
    '{__name__=~"e2e_demo_.*"}',
    RULE,
    '{__name__=~"prometheus_http_requests_total|scrape_duration_seconds",job="prometheus"}',
)


@pytest.fixture(scope="module")
def run(log_root: Path, influxdb: LocalInfluxDB) -> Iterator[dict]:
    workdir = make_workdir(log_root, "test_e2e_influxdb_prometheus")
    store = InfluxStore(influxdb)
    store.create_database(DATABASE)
    with ExitStack() as stops:
        connector = influx_connector(workdir, influxdb, DEFAULT_DATABASE=DATABASE)
        stops.callback(connector.proc.kill)
        connector.start()
        exporter = Exporter().start()
        stops.callback(exporter.stop)

        writer = Prometheus(workdir, name="prometheus-writer")
        stops.callback(writer.kill)
        rules = workdir / "influx-rules.yml"
        rules.write_text(json.dumps({"groups": [{
            "name": "e2e", "interval": "1s", "rules": [{"record": RULE, "expr": "sum(up)"}],
        }]}))
        remote_write_url = f"{connector.url}/write"
        writer.write_config(
            scrape_configs=[
                writer.self_scrape("prometheus"),
                {"job_name": "demo", "static_configs": [{"targets": [exporter.address]}]},
            ],
            remote_write=[{
                "url": remote_write_url, "basic_auth": basic_auth(influxdb), "remote_timeout": "10s",
                "queue_config": FAST_QUEUE,
            }],
        )
        config = json.loads(writer.config_path.read_text())
        config["global"]["evaluation_interval"] = "1s"
        config["rule_files"] = [str(rules)]
        writer.config_path.write_text(json.dumps(config, indent=2))
        started_ms = int(time.time() * 1000)
        writer.start()
        wait_until(f"{RULE} in InfluxDB", lambda: any(r.measure_name == RULE for r in store.records(DATABASE)),
                   timeout=40, interval=0.5)
        time.sleep(8)  # several scrapes and evaluations
        end_s = int(time.time()) - 1
        highest_sent = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
        wait_until("the writer to send everything up to the end of the window",
                   lambda: writer.remote_metric(highest_sent, remote_write_url) >= end_s, timeout=30, interval=0.5)
        comparison, held, stored = settled(writer, store, EVERYTHING, DATABASE, "", started_ms, end_s * 1000)

        reader = Prometheus(workdir, name="prometheus-reader")
        stops.callback(reader.kill)
        reader.config_path.write_text(json.dumps({
            "global": {"scrape_interval": "1s"},
            "remote_read": [{"url": f"{connector.url}/read", "basic_auth": basic_auth(influxdb),
                             "read_recent": True, "remote_timeout": "30s"}],
        }, indent=2))
        reader.start()
        yield {"writer": writer, "reader": reader, "connector": connector, "store": store, "url": remote_write_url,
               "comparison": comparison, "held": held, "stored": stored, "start_ms": started_ms,
               "end_ms": end_s * 1000}


def test_every_sample_prometheus_holds_is_in_influxdb_once_with_the_identical_value(run: dict) -> None:
    comparison = run["comparison"]
    assert not comparison.problems(), comparison.problems()
    assert comparison.expected >= 500, comparison.summary()  # A's own metrics, the exporter's, the rule
    assert comparison.identical_copies == 0  # InfluxDB keeps one point per series and time anyway
    names = {dict(labels)["__name__"] for labels in run["held"]}
    assert {RULE, "e2e_demo_ratio", "e2e_demo_info", "e2e_demo_requests_total", "up"} <= names
    assert run["writer"].remote_metric("prometheus_remote_storage_samples_failed_total", run["url"]) == 0
    statuses = {event["status"] for event in run["connector"].write_events()}
    assert statuses == {204}, statuses


def test_the_layout_is_influxdbs_own_prometheus_layout(run: dict) -> None:
    points = run["store"].points(DATABASE)
    assert points
    for point in points:
        assert dict(point.tags)["__name__"] == point.measurement, point
    rule_points = {point.tags for point in points if point.measurement == RULE}
    assert rule_points == {(("__name__", RULE),)}  # nothing added to a series with no labels
    fields = run["store"].show("SHOW FIELD KEYS", DATABASE)
    assert fields and all(rows == [["value", "float"]] for rows in fields.values()), fields
    info = [point for point in points if point.measurement == "e2e_demo_info"]
    assert info
    tags = dict(info[0].tags)
    assert tags.pop("instance").startswith("127.0.0.1:")
    assert tags == {"__name__": "e2e_demo_info", "job": "demo", "quote": 'say "hi"', "path": "C:\\temp",
                    "unicode": "h\u00e9llo \u2713"}


@pytest.mark.parametrize("selector", READ_SELECTORS)
def test_remote_read_through_the_connector_gives_back_the_writers_raw_samples(run: dict, selector: str) -> None:
    local = run["writer"].raw_samples(selector, run["start_ms"], run["end_ms"])
    assert local, f"the writer holds nothing for {selector}"
    remote = run["reader"].raw_samples(selector, run["start_ms"], run["end_ms"])
    assert remote == local


def test_the_recorded_series_reads_back_as_sent_with_nothing_added(run: dict) -> None:
    remote = run["reader"].raw_samples(RULE, run["start_ms"], run["end_ms"])
    assert list(remote) == [(("__name__", RULE),)]
    assert len(remote[(("__name__", RULE),)]) >= 5
