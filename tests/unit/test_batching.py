import json
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.liveanalytics import metering
from chalicelib.liveanalytics.batching import MAX_RECORDS_PER_CALL, CallPlanner
from chalicelib.liveanalytics.call_cost import CallPrices
from chalicelib.liveanalytics.records import MAX_DIMENSIONS, MAX_RECORD_BYTES, build_records, series_cache
from chalicelib.liveanalytics.write_body import shared_attributes, write_records_body
from tests.botocore_reference import write_records_params
from tests.helpers import label_bytes_view, make_series
from tests.unit.test_write_body import merged

NOW = 1_800_000_000_000
SETTINGS = Settings(default_database="prometheus", default_table="metrics")
DEST = ("prometheus", "metrics")
EXTERNAL = [("cluster", "prod-eu-west-1"), ("env", "production")]


def series_labels(target, metric, variant):
    job, instance = target
    labels = [("__name__", metric), *EXTERNAL, ("job", job), ("instance", instance)]
    if job == "kube-state-metrics":
        # Sent by another Prometheus, with one more external label.
        labels.append(("region", "eu-west-1"))
    if variant is not None:
        labels.append(("cpu", str(variant)))
    return sorted(labels)


def records_of(specs, cache):
    """specs: (labels, samples) -> the records build_records makes of them, in that order."""
    timeseries = [make_series(labels, [(1.0 + i, NOW + i) for i in range(samples)]) for labels, samples in specs]
    return build_records(label_bytes_view(timeseries), SETTINGS, NOW + 10_000, cache).records.get(DEST, [])


def plain_chunks(records):
    return [records[start:start + MAX_RECORDS_PER_CALL] for start in range(0, len(records), MAX_RECORDS_PER_CALL)]


def units(calls):
    total = 0
    for call in calls:
        common, measure_name = shared_attributes(call)
        total += metering.write_units(call, common, common_measure_name=measure_name is not None)
    return total


def assert_within_timestream_limits(call):
    """The call's body says what the plain layout says, and passes what Timestream checks: 1-100
    records; each record, merged with CommonAttributes, has a measure name, 1-128 dimensions
    with distinct names, at most 2 KiB."""
    body = json.loads(write_records_body(*DEST, call))
    # The same records as the straightforward body (every dimension in every record) describes.
    assert merged(body) == merged(write_records_params(*DEST, list(call)))
    assert 1 <= len(body["Records"]) <= MAX_RECORDS_PER_CALL
    common = body["CommonAttributes"]
    for record in body["Records"]:
        dimensions = common.get("Dimensions", []) + record.get("Dimensions", [])
        names = [dimension["Name"] for dimension in dimensions]
        assert len(set(names)) == len(names), "a dimension is both common and the record's own"
        assert 1 <= len(names) <= MAX_DIMENSIONS
        measure_name = record.get("MeasureName", common.get("MeasureName"))
        assert measure_name and ("MeasureName" in record) != ("MeasureName" in common)
        size = 16 + len(measure_name.encode()) + sum(
            len(d["Name"].encode()) + len(d["Value"].encode()) for d in dimensions
        )
        assert size <= MAX_RECORD_BYTES


targets = st.sampled_from([("node", "10.0.0.1:9100"), ("node", "10.0.0.2:9100"), ("prometheus", "localhost:9090"),
                           ("kube-state-metrics", "10.0.3.7:8080")])
series_specs = st.lists(
    st.tuples(targets, st.sampled_from(["up", "node_cpu_seconds_total", "process_resident_memory_bytes"]),
              st.one_of(st.none(), st.integers(0, 40)), st.integers(1, 4)),
    min_size=1, max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(series_specs, min_size=1, max_size=3), st.randoms(use_true_random=False))
def test_calls_carry_exactly_the_records_of_plain_chunking_and_stay_within_limits(requests, rng):
    cache = series_cache(SETTINGS)
    planner = CallPlanner()  # one per process in the connector: it learns across requests
    for specs in requests:
        specs = list(dict.fromkeys(((target, metric, variant), samples) for target, metric, variant, samples in specs))
        rng.shuffle(specs)
        records = records_of([(series_labels(*key), samples) for key, samples in specs], cache)
        calls = planner.calls(DEST, records)
        plain = plain_chunks(records)
        assert Counter(record for call in calls for record in call) == Counter(r for c in plain for r in c)
        groups = {tuple(pair for pair in series.dimensions if pair[0] in ("job", "instance"))
                  for series, _, _ in records}
        # At most one call more than the fewest possible per group of records kept together.
        assert len(calls) <= len(plain) + len(groups)
        for call in calls:
            assert_within_timestream_limits(call)


def test_a_request_that_mixes_targets_is_sent_in_calls_of_one_target_each():
    rng = random.Random(3)
    specs = [(series_labels(target, "node_cpu_seconds_total", cpu), 1)
             for target in (("node", "10.0.0.1:9100"), ("node", "10.0.0.2:9100")) for cpu in range(150)]
    rng.shuffle(specs)
    records = records_of(specs, series_cache(SETTINGS))
    calls = CallPlanner().calls(DEST, records)
    assert len(calls) == 4
    for call in calls:
        assert len({dict(series.dimensions)["instance"] for series, _, _ in call}) == 1
    assert units(calls) < units(plain_chunks(records))


def test_what_is_left_of_small_groups_is_packed_into_one_call_when_that_costs_less():
    # Ten targets of five series: ten calls of one unit each, or one call of a few units.
    specs = [(series_labels(("node", f"10.0.0.{host}:9100"), "up", None), 1) for host in range(10)]
    specs += [(series_labels(("node", f"10.0.0.{host}:9100"), "node_cpu_seconds_total", cpu), 1)
              for host in range(10) for cpu in range(4)]
    records = records_of(specs, series_cache(SETTINGS))
    calls = CallPlanner().calls(DEST, records)
    assert len(calls) == 1
    assert Counter(calls[0]) == Counter(records)


def test_a_group_that_does_not_fill_its_calls_ends_them_under_a_kib_boundary():
    # One target, 150 series of 45 metered bytes each besides the target's 62 shared ones (time
    # and value 16, a 22-byte measure name, cpu/1000..1149 7): in request order 100 records are
    # 4562 bytes, 5 units, and the other 50 3 units; ending the first call under 4 KiB (89
    # records, 4067 bytes) leaves 61 records, 2807 bytes: 4 + 3 units.
    metrics = ("node_cpu_seconds_total", "node_cpu_seconds_count")
    specs = [(series_labels(("node", "10.0.0.1:9100"), metrics[cpu % 2], 1000 + cpu), 1) for cpu in range(150)]
    records = records_of(specs, series_cache(SETTINGS))
    calls = CallPlanner().calls(DEST, records)
    assert len(calls) == 2
    assert [record for call in calls for record in call] == records
    assert [len(call) for call in calls] == [89, 61]
    assert (units(calls), units(plain_chunks(records))) == (7, 8)


def test_a_target_has_its_own_group_once_a_calls_worth_of_its_series_were_seen():
    # Two targets whose series arrive 50 per request each (what many queue shards do).
    cache = series_cache(SETTINGS)
    planner = CallPlanner()
    rng = random.Random(5)

    def request(part):
        specs = [(series_labels(target, "node_cpu_seconds_total", cpu), 1)
                 for target in (("node", "10.0.0.1:9100"), ("prometheus", "localhost:9090"))
                 for cpu in range(part * 50, part * 50 + 50)]
        rng.shuffle(specs)
        return records_of(specs, cache)

    def targets_per_call(records):
        calls = planner.calls(DEST, records)
        assert Counter(record for call in calls for record in call) == Counter(records)
        return [len({dict(series.dimensions)["job"] for series, _, _ in call}) for call in calls]

    # 50 series of each: too few to fill a call alone, so one call for both.
    assert targets_per_call(request(0)) == [2]
    # 100 of each seen: from now on each target's records are sent apart.
    assert targets_per_call(request(1)) == [1, 1]
    assert targets_per_call(request(2)) == [1, 1]


def test_concurrent_requests_get_calls_that_say_exactly_what_their_records_say():
    import threading

    cache = series_cache(SETTINGS)
    planner = CallPlanner()
    hosts = [("node", f"10.0.0.{host}:9100") for host in range(4)] + [("kube-state-metrics", "10.0.3.7:8080")]
    requests = []
    for seed in range(24):
        rng = random.Random(seed)
        specs = [(tuple(series_labels(rng.choice(hosts), rng.choice(["up", "node_load1"]), rng.randrange(400))), 1)
                 for _ in range(rng.randrange(1, 300))]
        requests.append(records_of(list(dict.fromkeys(specs)), cache))
    failures = []

    def send(part):
        try:
            for records in requests[part::4]:
                calls = planner.calls(DEST, records)
                assert Counter(record for call in calls for record in call) == Counter(records)
                for call in calls:
                    assert_within_timestream_limits(call)
        except AssertionError as error:
            failures.append(error)

    threads = [threading.Thread(target=send, args=(part,)) for part in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_empty_and_single_record_requests():
    planner = CallPlanner()
    assert planner.calls(DEST, []) == []
    records = records_of([(series_labels(("node", "a:9100"), "up", None), 1)], series_cache(SETTINGS))
    assert planner.calls(DEST, records) == [records]




def test_recorded_prometheus_workload_costs_at_most_1_3_times_the_floor_in_both_orders():
    from bench import cost

    for order, bodies in cost.orders(cost.read_bodies()).items():
        result = cost.account(bodies)
        assert result.ratio <= 1.3, (order, result)
        # Grouping never costs more than cutting in request order on real traffic.
        assert result.billed <= result.request_order, (order, result)


# -- one objective in dollars: a call of its own only when the units it saves pay for it ---------

CLUSTERS = ("prod-eu-west-1-platform-01", "prod-eu-west-1-platform-02")


def fleet_labels(cluster, node):
    """One series of a node: its own `instance`, its cluster's label shared with ~100 others."""
    return sorted([("__name__", "node_load1"), *EXTERNAL, ("job", "node"), ("cluster_name", cluster),
                   ("instance", f"10.{CLUSTERS.index(cluster)}.{node // 250}.{node % 250}:9100")])


def fleet_planner(prices):
    """A planner that has seen 150 nodes of each cluster (so each cluster is a group), and a
    request of 40 nodes of each."""
    cache = series_cache(SETTINGS)
    planner = CallPlanner(prices)
    seen = records_of([(fleet_labels(cluster, node), 1) for cluster in CLUSTERS for node in range(150)], cache)
    planner.calls(DEST, seen)
    request = records_of([(fleet_labels(cluster, node), 1) for node in range(40) for cluster in CLUSTERS], cache)
    return planner, request


def test_small_groups_keep_calls_of_their_own_when_the_units_they_save_pay_for_the_extra_call():
    planner, records = fleet_planner(CallPrices.for_lambda(memory_mb=512, concurrency=8))
    calls = planner.calls(DEST, records)
    assert [len(call) for call in calls] == [40, 40]
    together = units([records])
    assert units(calls) < together  # the cluster's long label is shared in each call


def test_small_groups_share_a_call_when_a_call_costs_more_than_the_units_it_would_save():
    # A call worth ten write units (a huge, slow function): the saving does not pay for it.
    prices = CallPrices(unit_usd=5e-7, call_usd=5e-6)
    planner, records = fleet_planner(prices)
    calls = planner.calls(DEST, records)
    assert len(calls) == 1 and Counter(calls[0]) == Counter(records)
    separate = fleet_planner(CallPrices.for_lambda())[0].calls(DEST, records)
    assert prices.dollars(units(calls), 1) < prices.dollars(units(separate), len(separate))


def test_groups_share_a_call_when_that_bills_no_more_units_even_if_calls_were_free():
    # Calls so cheap they are free: packing that adds no unit still saves the call.
    planner, records = fleet_planner(CallPrices(unit_usd=5e-7, call_usd=0.0))
    small = records[:6]  # three nodes of each cluster: one unit together or apart
    calls = planner.calls(DEST, small)
    assert len(calls) == 1
