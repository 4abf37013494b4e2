import json
import math

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.liveanalytics import metering
from chalicelib.liveanalytics.records import MappedSeries
from chalicelib.liveanalytics.write_body import shared_attributes, write_records_body

DEST = ("prometheus", "metrics")


def record(measure_name, dimensions, value="35.0", time="1602983435238"):
    return (MappedSeries(DEST, None, measure_name, tuple(dimensions)), value, time)


# The example of Timestream's "Metering and pricing: writes" page, counted by hand there:
# time 8 + region/us-east-1 15 + az/1d 4 + vpc/vpc-1a2b3c4d 15 + hostname/host-24Gju 18
# + cpu_utilization 15 + double 8 = 83 bytes.
EC2 = [("region", "us-east-1"), ("az", "1d"), ("vpc", "vpc-1a2b3c4d"), ("hostname", "host-24Gju")]


def test_one_record_is_its_time_dimensions_measure_name_and_value():
    assert metering.call_bytes([record("cpu_utilization", EC2)]) == 83
    assert metering.write_units([record("cpu_utilization", EC2)]) == 1


def test_a_call_is_rounded_up_to_whole_kib():
    # 12 records of 83 bytes are 996 bytes: one unit; the 13th makes 1079: two.
    assert metering.write_units([record("cpu_utilization", EC2)] * 12) == 1
    assert metering.write_units([record("cpu_utilization", EC2)] * 13) == 2
    assert metering.write_units([]) == 0


def test_common_dimensions_and_measure_name_count_once_per_call():
    records = [record("cpu_utilization", EC2[:3] + [("hostname", f"host-{i:05d}")]) for i in range(100)]
    # Each record: 8 + hostname/host-00000 18 + cpu_utilization 15 + 8 = 49, and the common
    # region, az, vpc 34 bytes once.
    assert metering.call_bytes(records, EC2[:3]) == 100 * 49 + 34
    # The measure name shared too: each record 34, the call 34 + 15.
    assert metering.call_bytes(records, EC2[:3], common_measure_name=True) == 100 * 34 + 34 + 15
    assert metering.write_units(records, EC2[:3], common_measure_name=True) == math.ceil(3449 / 1024) == 4


def test_sizes_are_utf8_bytes():
    assert metering.call_bytes([record("température", [("pièce", "salle à manger")])]) == (
        8 + len("pièce".encode()) + len("salle à manger".encode()) + len("température".encode()) + 8
    )


def billed_from_body(body: bytes) -> int:
    """Write units of a WriteRecords JSON body, counted from the JSON alone."""
    call = json.loads(body)
    common = call.get("CommonAttributes", {})
    size = 0
    for dimension in common.get("Dimensions", []):
        size += len(dimension["Name"].encode()) + len(dimension["Value"].encode())
    size += len(common.get("MeasureName", "").encode())
    for item in call["Records"]:
        size += 8 + 8  # time, DOUBLE value
        size += len(item.get("MeasureName", "").encode())
        for dimension in item.get("Dimensions", []):
            size += len(dimension["Name"].encode()) + len(dimension["Value"].encode())
    return -(-size // 1024)


names = st.sampled_from(["instance", "job", "cpu", "mode", "lé", "device"])
series_strategy = st.tuples(
    st.sampled_from(["up", "node_cpu_seconds_total", "mesure_ü"]),
    st.dictionaries(names, st.text(min_size=1, max_size=40), min_size=1, max_size=6),
)


@given(st.lists(st.tuples(series_strategy, st.integers(1, 30)), min_size=1, max_size=12))
def test_units_match_the_json_body_the_connector_sends(specs):
    records = []
    for (measure_name, dimensions), count in specs:
        series = MappedSeries(DEST, None, measure_name, tuple(sorted(dimensions.items())))
        records.extend((series, "1.5", str(1_800_000_000_000 + i)) for i in range(count))
    records = records[:100]
    common, measure_name = shared_attributes(records)
    units = metering.write_units(records, common, common_measure_name=measure_name is not None)
    assert units == billed_from_body(write_records_body(*DEST, records))
