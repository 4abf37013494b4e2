"""The connector's InfluxDB layout, checked against the real thing: InfluxDB 1.x's own Prometheus
endpoint (`/api/v1/prom/write` of Debian's influxd 1.6.7).

The same remote-write bodies go to that endpoint (into one database) and through the connector
(STORAGE_ENGINE=influxdb, into another database of the same server); then both databases must
hold the same points, point for point: measurement, tags, the field `value` and the time, read
with SELECT * and the SHOW statements. The label values are the ones line protocol makes hard
(commas, spaces, `=`, quotes, backslashes inside a value, `#`, UTF-8, an empty value) and the
metric names hold colons.

Where the two differ, the connector does better, and the last tests pin it: a request holding one
+Inf is answered 400 by that endpoint, which then stores nothing of it (Prometheus drops a batch
on 4xx: every sample is lost), while the connector writes the rest, answers 204 and counts the
drop; NaN and stale markers are dropped by both, silently by the endpoint, counted by the
connector.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local_influxdb.server import LocalInfluxDB
from tests.helpers import encode, write_headers, write_request

from .conftest import make_workdir
from .influx import InfluxStore, authorization, influx_connector, prom_write
from .stack import Connector

NATIVE = "e2e_layout_native"
CONNECTOR = "e2e_layout_connector"
STALE = struct.unpack(">d", struct.pack(">Q", 0x7FF0000000000002))[0]
T0 = (int(time.time()) - 600) * 1000  # ten minutes ago, whole seconds: inside any retention

HARD_LABELS = (
    ("__name__", "e2e:layout:hard_labels"),
    ("backslash", "C:\\temp\\new"),  # inside the value: line protocol cannot end one in a backslash
    ("backslash_before_delimiters", "x\\,y\\ z\\=w"),
    ("comma", "a,b"),
    ("empty", ""),  # not a tag, in both layouts
    ("equals", "a=b"),
    ("everything", ' x, y=z "q" \\w #h é'),
    ("hash", "#not a comment"),
    ("quote", 'say "hi"'),
    ("single", "it's"),
    ("space", "a b"),
    ("utf8", "h\u00e9llo \u2713 \u65e5\u672c"),
)
# Values whose text changes with fixed decimals, and the extremes of float64.
VALUES = (0.1 + 0.2, 5e-324, 1.7976931348623157e308, -0.0, 1.0, 123456789.12345679, -2.5e-10)
BODIES = {
    "hard labels and values": [
        (HARD_LABELS, [(value, T0 + i * 1000) for i, value in enumerate(VALUES)]),
        ((("__name__", "e2e:layout:rule:sum"),), [(42.0, T0), (43.5, T0 + 15_000)]),  # name only
        ((("__name__", "e2e_layout_total"), ("code", "200"), ("job", "api")), [(7.0, T0), (9.0, T0 + 1000)]),
    ],
    "NaN and a stale marker": [
        ((("__name__", "e2e_layout_gauge"), ("job", "api")),
         [(float("nan"), T0), (3.0, T0 + 1000), (STALE, T0 + 2000)]),
    ],
}
WITH_INF = [
    ((("__name__", "e2e_layout_inf"), ("job", "api")), [(1.0, T0), (float("inf"), T0 + 1000), (2.0, T0 + 2000)]),
    ((("__name__", "e2e_layout_beside_inf"), ("job", "api")), [(5.0, T0)]),
]


def send_to_connector(connector: Connector, server: LocalInfluxDB, body: bytes) -> requests.Response:
    return requests.post(connector.write_url, data=body, timeout=30,
                         headers=write_headers(Authorization=authorization(server)))


@pytest.fixture(scope="module")
def stack(log_root: Path, influxdb: LocalInfluxDB) -> Iterator[dict]:
    workdir = make_workdir(log_root, "test_e2e_influxdb_layout")
    store = InfluxStore(influxdb)
    for database in (NATIVE, CONNECTOR):
        store.create_database(database)
    connector = influx_connector(workdir, influxdb, DEFAULT_DATABASE=CONNECTOR)
    try:
        connector.start()
        answers = {}
        for name, series in BODIES.items():
            body = encode(write_request(series))
            answers[name] = (prom_write(influxdb, NATIVE, body), send_to_connector(connector, influxdb, body))
        yield {"store": store, "connector": connector, "server": influxdb, "answers": answers}
    finally:
        connector.proc.kill()


def test_both_accept_the_same_bodies(stack: dict) -> None:
    for name, ((native_status, native_body), ours) in stack["answers"].items():
        assert native_status == 204, (name, native_body)
        assert ours.status_code == 204, (name, ours.text)


def test_the_same_points_point_for_point(stack: dict) -> None:
    store = stack["store"]
    native, ours = store.points(NATIVE), store.points(CONNECTOR)
    assert len(native) == len(VALUES) + 2 + 2 + 1  # NaN and the stale marker dropped
    assert sorted(ours, key=repr) == sorted(native, key=repr)
    # And the values are the float64s sent, bit for bit.
    hard = sorted((p for p in ours if p.measurement == "e2e:layout:hard_labels"), key=lambda p: p.time_ms)
    assert [struct.pack(">d", float(p.value)) for p in hard] == [struct.pack(">d", v) for v in VALUES]
    assert dict(hard[0].tags) == {name: value for name, value in HARD_LABELS if value}


@pytest.mark.parametrize("statement", [
    "SHOW MEASUREMENTS", "SHOW TAG KEYS", "SHOW FIELD KEYS", 'SHOW TAG VALUES WITH KEY =~ /.*/', "SHOW SERIES",
])
def test_the_same_schema(stack: dict, statement: str) -> None:
    store = stack["store"]
    native = store.show(statement, NATIVE)
    assert native, statement
    assert store.show(statement, CONNECTOR) == native


def test_one_inf_loses_the_whole_request_at_influxdbs_endpoint_but_not_through_the_connector(stack: dict) -> None:
    store, server, connector = stack["store"], stack["server"], stack["connector"]
    body = encode(write_request(WITH_INF))
    status, text = prom_write(server, NATIVE, body)
    assert status == 400 and "Inf" in text, (status, text)
    assert not [p for p in store.points(NATIVE) if p.measurement.startswith(("e2e_layout_inf", "e2e_layout_beside"))]

    answer = send_to_connector(connector, server, body)
    assert answer.status_code == 204, answer.text
    stored = {(p.measurement, p.time_ms, p.value) for p in store.points(CONNECTOR)
              if p.measurement in ("e2e_layout_inf", "e2e_layout_beside_inf")}
    assert stored == {("e2e_layout_inf", T0, "1"), ("e2e_layout_inf", T0 + 2000, "2"), ("e2e_layout_beside_inf", T0, "5")}
    assert connector.write_events()[-1]["dropped"] == {"infinite": 1}


def test_nan_and_stale_markers_are_dropped_by_both_and_counted_by_the_connector(stack: dict) -> None:
    store = stack["store"]
    for database in (NATIVE, CONNECTOR):
        gauge = [(p.time_ms, p.value) for p in store.points(database) if p.measurement == "e2e_layout_gauge"]
        assert gauge == [(T0 + 1000, "3")], database
    events = stack["connector"].write_events()
    assert {"nan": 1, "stale_marker": 1} in [event.get("dropped") for event in events], events
