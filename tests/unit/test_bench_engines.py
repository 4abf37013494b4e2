"""The InfluxDB stand-in of `make bench` (bench/influx_standin.py) counts exactly what the
InfluxDB engine sends: every line's `value`, whatever its tags hold, and refuses what the
engine must not send (another database or precision, not the sender's credentials)."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chalicelib.config import load_settings
from chalicelib.influxdb.records import build_lines
from tests.helpers import label_bytes_view, make_series

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from influx_standin import InfluxStandIn, line_values  # noqa: E402

AUTHORIZATION = "Basic dXNlcjpwYXNzd29yZA=="
SETTINGS = load_settings({"STORAGE_ENGINE": "influxdb", "INFLUXDB_URL": "http://127.0.0.1:1",
                          "DEFAULT_DATABASE": "bench"})
VALUES = [0.1 + 0.2, -0.0, 5e-324, 1.7976931348623157e308, 42.0]


def engine_lines() -> bytes:
    """What the engine writes for series whose tags hold spaces, commas, `=` and quotes."""
    series = [
        make_series([("__name__", "a:b"), ("job", 'x y,z="q" \\w'), ("le", "+Inf")],
                    [(value, 1_700_000_000_000 + i) for i, value in enumerate(VALUES)]),
        make_series([("__name__", "name_only")], [(7.5, 1_700_000_000_000)]),
    ]
    batch = build_lines(label_bytes_view(series), SETTINGS)
    return "".join(batch.samples["bench"]).encode()


def test_line_values_are_the_values_the_engine_wrote_whatever_the_tags_hold() -> None:
    assert line_values(engine_lines()) == [*VALUES, 7.5]


def test_a_line_without_the_value_field_is_refused() -> None:
    with pytest.raises(ValueError, match="value field"):
        line_values(b"m,t=a count=1i 1000\n")


@pytest.fixture
def standin() -> Iterator[str]:
    server = InfluxStandIn(("127.0.0.1", 0), "bench", AUTHORIZATION)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_standin_counts_lines_and_values_of_accepted_writes(standin: str) -> None:
    body = engine_lines()
    answer = requests.post(f"{standin}/write", params={"db": "bench", "precision": "ms"}, data=body,
                           headers={"Authorization": AUTHORIZATION}, timeout=10)
    assert answer.status_code == 204
    stats = requests.get(f"{standin}/_standin/stats", timeout=10).json()
    assert (stats["calls"], stats["records"], stats["errors"]) == (1, len(VALUES) + 1, 0)
    assert stats["value_sum"] == math.fsum([*VALUES, 7.5])


@pytest.mark.parametrize(("params", "authorization"), [
    ({"db": "other", "precision": "ms"}, AUTHORIZATION),
    ({"db": "bench", "precision": "ns"}, AUTHORIZATION),
    ({"db": "bench", "precision": "ms"}, "Basic b3RoZXI6b3RoZXI="),
])
def test_the_standin_refuses_what_the_engine_must_not_send(standin: str, params: dict, authorization: str) -> None:
    answer = requests.post(f"{standin}/write", params=params, data=engine_lines(),
                           headers={"Authorization": authorization}, timeout=10)
    assert answer.status_code == 400
    stats = requests.get(f"{standin}/_standin/stats", timeout=10).json()
    assert (stats["records"], stats["errors"]) == (0, 1)
