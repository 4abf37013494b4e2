"""The cost-by-front table of the README and the deploy guide is what bench/cost.py computes from
its price constants and the recorded workload, so that neither prices nor workload can change
without the documents following (regenerate with `python bench/cost.py --front-door`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cost

ROOT = Path(__file__).resolve().parents[2]


def documented_table(path: Path) -> str:
    text = path.read_text()
    start, end = cost.FRONT_DOOR_MARKERS
    assert text.count(start) == 1 and text.count(end) == 1, f"{path.name}: one cost-by-front table expected"
    return text.split(start, 1)[1].split(end, 1)[0].strip()


@pytest.mark.parametrize("document", ["README.md", "docs/deploy.md"])
def test_the_documented_cost_by_front_table_is_what_the_cost_model_computes(document):
    assert documented_table(ROOT / document) == cost.front_door_table()


def test_the_two_fronts_differ_only_in_the_api_gateway_price_per_request():
    costs = cost.front_door_costs()
    rest, http = costs["REST"], costs["HTTP"]
    assert set(rest) == set(http) == {"Timestream writes", "API Gateway requests", "Lambda GB-seconds", "Lambda requests"}
    for part in ("Timestream writes", "Lambda GB-seconds", "Lambda requests"):
        assert rest[part] == http[part], part
    assert http["API Gateway requests"] == pytest.approx(rest["API Gateway requests"] * 1.00 / 3.50)
    # The claim: API Gateway is about a quarter of the bill per sample behind a REST API.
    assert 0.2 < rest["API Gateway requests"] / sum(rest.values()) < 0.3


def test_a_price_change_changes_the_table(monkeypatch):
    before = cost.front_door_table()
    monkeypatch.setitem(cost.API_GATEWAY_USD_PER_MILLION_REQUESTS, "HTTP", 1.10)
    assert cost.front_door_table() != before
