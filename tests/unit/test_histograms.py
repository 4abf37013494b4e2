"""Histogram and exemplar records: the WriteRecords body Timestream is sent, what it is billed,
and the histogram encoding read back."""

import base64
import json

from chalicelib.config import Settings
from chalicelib.liveanalytics import histograms as h
from chalicelib.liveanalytics.metering import multi_write_units, units
from chalicelib.liveanalytics.records import build_records_v2
from chalicelib.liveanalytics.write_body import write_any_records_body
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.prompb import remote_write_v2_pb2 as v2
from local_timestream import rules
from tests.helpers import RequestV2

NOW = 1_800_000_000_000
SETTINGS = Settings(default_database="prometheus", default_table="metrics")
DEST = ("prometheus", "metrics")


def batch_of(histograms=(), exemplars=()):
    builder = RequestV2()
    series = builder.series([("__name__", "lat"), ("job", "api")])
    series.histograms.extend(histograms)
    for value, labels in exemplars:
        series.exemplars.add(labels_refs=builder.refs(labels), value=value, timestamp=NOW)
    return build_records_v2(builder.build(), SETTINGS, NOW)


def test_a_histogram_call_is_a_valid_multi_write_records_body():
    histogram = v2.Histogram(count_int=5, sum=2.5, schema=-53, custom_values=[0.1, 1.0], timestamp=NOW,
                             positive_spans=[v2.BucketSpan(offset=0, length=2)], positive_deltas=[2, 1])
    records = batch_of([histogram]).histograms[DEST]
    call = json.loads(write_any_records_body("prometheus", "metrics", records))
    assert call["CommonAttributes"] == {"MeasureValueType": "MULTI", "TimeUnit": "MILLISECONDS"}
    (record,) = rules.check_request("prometheus", "metrics", call["CommonAttributes"], call["Records"])
    assert record["MeasureName"] == "lat" and record["Time"] == str(NOW)
    values = {m["Name"]: (m["Type"], m["Value"]) for m in record["MeasureValues"]}
    assert values["histogram_count"] == ("DOUBLE", "5.0") and values["histogram_sum"] == ("DOUBLE", "2.5")
    decoded = pb.Histogram.FromString(base64.b64decode(values["histogram_proto"][1]))
    assert decoded.timestamp == 0 and list(decoded.custom_values) == [0.1, 1.0] and decoded.schema == -53


def test_an_exemplar_call_is_a_valid_multi_write_records_body():
    records = batch_of(exemplars=[(0.5, [("trace_id", "abc")])]).exemplars[DEST]
    call = json.loads(write_any_records_body("prometheus", "metrics", records))
    (record,) = rules.check_request("prometheus", "metrics", call["CommonAttributes"], call["Records"])
    assert record["MeasureName"] == "lat@exemplar"
    assert record["Dimensions"] == [{"Name": "job", "Value": "api"}]
    assert json.loads(record["MeasureValues"][1]["Value"]) == {"trace_id": "abc"}


def test_the_same_histogram_always_encodes_to_the_same_record():
    def make():
        return v2.Histogram(count_float=3.0, sum=1.0, schema=2, timestamp=NOW, zero_count_float=1.0,
                            negative_spans=[v2.BucketSpan(offset=-3, length=1)], negative_counts=[2.0])
    assert batch_of([make()]).histograms[DEST][0][2] == batch_of([make()]).histograms[DEST][0][2]


def test_a_non_finite_sum_leaves_the_sum_measure_out_and_keeps_the_histogram():
    measures, _ = h.histogram_measures(v2.Histogram(count_float=float("inf"), sum=float("nan")))
    assert [m["Name"] for m in json.loads(measures)] == ["histogram_proto"]


def test_multi_calls_are_billed_as_timestream_sizes_the_records():
    records = batch_of([v2.Histogram(count_int=1, sum=1.0, timestamp=NOW)] * 3).histograms[DEST]
    (_, _, measures, _, size) = records[0]
    blob = json.loads(measures)[2]["Value"]
    one = 8 + len("lat") + len("job") + len("api") + (15 + 8) + (13 + 8) + (15 + len(blob))
    assert size + 8 + len("lat") + len("job") + len("api") == one
    assert multi_write_units(records) == units(3 * one)
