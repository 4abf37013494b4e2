import json

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.liveanalytics.records import build_records
from chalicelib.liveanalytics.write_body import shared_attributes, write_records_body
from tests.botocore_reference import write_records_params
from tests.helpers import label_bytes_view, make_series

NOW = 1_800_000_000_000
SETTINGS = Settings(default_database="prometheus", default_table="metrics")
DEST = ("prometheus", "metrics")


def merged(call: dict) -> list[dict]:
    """Records as Timestream stores them: CommonAttributes applied to each (dimensions as a dict)."""
    common = call.get("CommonAttributes", {})
    out = []
    for record in call["Records"]:
        full = {**{k: v for k, v in common.items() if k != "Dimensions"}, **record}
        dims = common.get("Dimensions", []) + record.get("Dimensions", [])
        # VARCHAR is the only dimension type, and what Timestream assumes when none is given.
        full["Dimensions"] = {d["Name"]: (d["Value"], d.get("DimensionValueType", "VARCHAR")) for d in dims}
        assert len(full["Dimensions"]) == len(dims), "a dimension appears twice"
        out.append(full)
    return out


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in ("__name__", "time") and not n.startswith("ts_") and not n.startswith("measure_")
)
label_sets = st.dictionaries(label_names, st.text(max_size=8), max_size=6)
series_specs = st.lists(
    st.tuples(
        st.sampled_from(["up", "node_load1", 'we"ird\\name']),
        label_sets,
        st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=12,
)


@given(series_specs)
def test_prebuilt_body_describes_the_same_records_as_botocore_parameters(specs):
    timeseries = [
        # One fixed label (a name the strategy cannot produce): Timestream needs a dimension.
        make_series([("__name__", name), ("fixed_label_0", "1"), *labels.items()],
                    [(v, NOW + i) for i, v in enumerate(values)])
        for name, labels, values in specs
    ]
    records = build_records(label_bytes_view(timeseries), SETTINGS, NOW + 10).records[DEST][:100]
    fast = json.loads(write_records_body(*DEST, records))
    plain = write_records_params(*DEST, records)
    assert (fast["DatabaseName"], fast["TableName"]) == DEST
    assert merged(fast) == merged(plain)


def test_dimensions_every_record_shares_go_to_common_attributes():
    shared = [("instance", "a:9100"), ("job", "node")]
    timeseries = [
        make_series([("__name__", "cpu"), ("cpu", str(i)), *shared], [(1.0, NOW)]) for i in range(3)
    ]
    records = build_records(label_bytes_view(timeseries), SETTINGS, NOW).records[DEST]
    assert shared_attributes(records) == (tuple(shared), "cpu")
    body = json.loads(write_records_body(*DEST, records))
    assert [d["Name"] for d in body["CommonAttributes"]["Dimensions"]] == ["instance", "job"]
    assert [[d["Name"] for d in r["Dimensions"]] for r in body["Records"]] == [["cpu"]] * 3


def test_no_shared_dimensions_means_no_common_dimensions():
    timeseries = [make_series([("__name__", "m"), ("a", "1")], [(1.0, NOW)]),
                  make_series([("__name__", "m"), ("a", "2")], [(1.0, NOW)])]
    body = json.loads(write_records_body(*DEST, build_records(label_bytes_view(timeseries), SETTINGS, NOW).records[DEST]))
    assert "Dimensions" not in body["CommonAttributes"]


@given(st.text(min_size=1, max_size=30))
def test_any_label_value_survives_json_escaping(value):
    timeseries = [make_series([("__name__", "m"), ("label", value)], [(1.0, NOW)])]
    records = build_records(label_bytes_view(timeseries), SETTINGS, NOW).records[DEST]
    (record,) = merged(json.loads(write_records_body(*DEST, records)))
    assert record["Dimensions"]["label"][0] == value


def test_a_series_sent_with_different_neighbours_is_rendered_right_each_time():
    from chalicelib.liveanalytics.records import series_cache

    cache = series_cache(SETTINGS)
    target = make_series([("__name__", "m"), ("job", "a"), ("zone", "z1")], [(1.0, NOW)])
    same_job = make_series([("__name__", "m"), ("job", "a"), ("zone", "z2")], [(2.0, NOW)])
    same_zone = make_series([("__name__", "m"), ("job", "b"), ("zone", "z1")], [(3.0, NOW)])
    for neighbour in (same_job, same_zone, same_job):
        records = build_records(label_bytes_view([target, neighbour]), SETTINGS, NOW, cache).records[DEST]
        body = json.loads(write_records_body(*DEST, records))
        plain = write_records_params(*DEST, records)
        assert merged(body) == merged(plain)


def test_a_series_keeps_its_rendered_prefix_only_from_its_second_call_on():
    from chalicelib.liveanalytics.records import series_cache

    cache = series_cache(SETTINGS)
    series = [make_series([("__name__", "m"), ("job", "a"), ("i", str(i))], [(1.0, NOW)]) for i in range(2)]
    records = build_records(label_bytes_view(series), SETTINGS, NOW, cache).records[DEST]
    first = write_records_body(*DEST, records)
    assert all(record[0].rendered[0] is None for record in records), "nothing kept after one call"
    second = write_records_body(*DEST, records)
    assert all(record[0].rendered[0] is not None for record in records)
    assert write_records_body(*DEST, records) == second == first


def test_a_measure_name_every_record_has_goes_to_common_attributes_once():
    timeseries = [make_series([("__name__", "node_cpu_seconds_total"), ("cpu", str(i)), ("job", "node")],
                              [(1.0, NOW), (2.0, NOW + 1)]) for i in range(3)]
    records = build_records(label_bytes_view(timeseries), SETTINGS, NOW + 10).records[DEST]
    body = json.loads(write_records_body(*DEST, records))
    assert body["CommonAttributes"]["MeasureName"] == "node_cpu_seconds_total"
    assert all("MeasureName" not in record for record in body["Records"])
    assert merged(body) == merged(write_records_params(*DEST, records))
    # One record of another metric: every record names its own again, from a fresh prefix.
    other = build_records(label_bytes_view([make_series([("__name__", "up"), ("job", "node")], [(1.0, NOW)])]),
                          SETTINGS, NOW).records[DEST]
    body = json.loads(write_records_body(*DEST, records + other))
    assert "MeasureName" not in body["CommonAttributes"]
    assert merged(body) == merged(write_records_params(*DEST, records + other))


def test_dimensions_carry_no_value_type_varchar_being_the_only_one_and_the_default():
    records = build_records(label_bytes_view([make_series([("__name__", "m"), ("a", "1")], [(1.0, NOW)])]),
                            SETTINGS, NOW).records[DEST]
    assert b"DimensionValueType" not in write_records_body(*DEST, records)
