import math

import pytest

from chalicelib.config import load_settings
from chalicelib.liveanalytics import call_cost
from chalicelib.liveanalytics.call_cost import CallPrices


def test_a_call_costs_its_cpu_and_its_share_of_the_wait_at_the_functions_memory():
    prices = CallPrices.for_lambda(memory_mb=1024, concurrency=4, call_cpu_seconds=0.001, call_wait_seconds=0.020)
    # 1 ms of CPU + 20 ms / 4 in flight = 6 ms of a 1 GB function.
    assert math.isclose(prices.call_usd, 0.006 * call_cost.LAMBDA_USD_PER_GB_SECOND)
    assert math.isclose(prices.unit_usd, 0.5e-6)


def test_at_the_deployed_size_a_call_is_worth_a_small_fraction_of_a_write_unit():
    # Why one saved unit pays for a call (and a saving of none never does).
    prices = CallPrices.for_lambda(memory_mb=512, concurrency=8)
    assert 0.01 < prices.call_usd / prices.unit_usd < 0.1
    assert prices.split_pays(units_saved=1, calls_added=1)
    assert not prices.split_pays(units_saved=0, calls_added=1)
    assert not prices.split_pays(units_saved=1, calls_added=100)


@pytest.mark.parametrize(("units_saved", "calls_added", "pays"), [(2, 1, True), (1, 1, False), (3, 2, False)])
def test_a_split_pays_only_when_the_units_it_saves_cost_more_than_its_calls(units_saved, calls_added, pays):
    prices = CallPrices(unit_usd=1.0, call_usd=1.5)
    assert prices.split_pays(units_saved, calls_added) is pays
    assert (prices.dollars(0, calls_added) < prices.dollars(units_saved, 0)) is pays


def test_more_calls_in_flight_make_a_call_cheaper():
    assert CallPrices.for_lambda(concurrency=16).call_usd < CallPrices.for_lambda(concurrency=8).call_usd


def test_the_functions_memory_comes_from_lambdas_variable():
    assert load_settings({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}).lambda_memory_mb == 1769
    assert load_settings({}).lambda_memory_mb == call_cost.DEFAULT_LAMBDA_MEMORY_MB


def test_the_benchmark_prices_its_results_with_the_connectors_prices():
    from bench import cost

    for name in ("TIMESTREAM_USD_PER_MILLION_WRITE_UNITS", "API_GATEWAY_REST_USD_PER_MILLION_REQUESTS",
                 "LAMBDA_USD_PER_GB_SECOND", "LAMBDA_USD_PER_MILLION_REQUESTS", "PRICES_READ"):
        assert getattr(cost, name) is getattr(call_cost, name)
