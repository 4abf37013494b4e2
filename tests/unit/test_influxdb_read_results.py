"""InfluxDB /query JSON -> series: exact floats from the number text, labels from tags, order,
histograms, errors and the response budget."""

from __future__ import annotations

import json
import struct

import pytest

from chalicelib.errors import BadRequest, ConnectorError, NotFound, PayloadTooLarge
from chalicelib.influxdb.read_results import parse_answer, series_from_answer
from chalicelib.native_histograms import encode_histogram
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.prompb import remote_write_v2_pb2 as v2
from chalicelib.read_budget import ResponseBudget


def answer(*series, **result):
    return json.dumps({"results": [{"statement_id": 0, "series": list(series), **result}]}).encode()


def entry(name, columns, values):
    return {"name": name, "columns": columns, "values": values}


def as_dicts(series):
    return {tuple((lb.name, lb.value) for lb in s.labels): [(x.timestamp, x.value) for x in s.samples] for s in series}


def bits(value):
    return struct.pack("<d", value)


def test_number_text_is_read_exactly_whole_floats_negative_zero_and_exponents():
    body = b'{"results":[{"statement_id":0,"series":[{"name":"m","columns":["time","value","histogram","__name__"],' \
           b'"values":[[1,1,null,"m"],[2,-0,null,"m"],[3,1e+300,null,"m"],[4,5e-324,null,"m"],' \
           b'[5,100000000000000000000,null,"m"],[6,0.1,null,"m"]]}]}]}'
    (series,) = series_from_answer(body, "db")
    values = [sample.value for sample in series.samples]
    assert [bits(v) for v in values] == [bits(v) for v in (1.0, -0.0, 1e300, 5e-324, 1e20, 0.1)]
    assert [sample.timestamp for sample in series.samples] == [1, 2, 3, 4, 5, 6]


def test_tags_are_labels_sorted_absent_and_empty_ones_left_out_and_routing_labels_echoed():
    body = answer(entry("up", ["time", "value", "histogram", "__name__", "job", "zone"],
                        [[2, 1, None, "up", "b", None], [1, 0, None, "up", "a", ""], [3, 1, None, "up", "a", None]]))
    series = series_from_answer(body, "db", echo=(("prometheusDatabaseLabel", "db"),))
    assert as_dicts(series) == {
        (("__name__", "up"), ("job", "a"), ("prometheusDatabaseLabel", "db")): [(1, 0.0), (3, 1.0)],
        (("__name__", "up"), ("job", "b"), ("prometheusDatabaseLabel", "db")): [(2, 1.0)],
    }


def test_a_point_without_the_name_tag_takes_the_measurement_as_its_name():
    series = series_from_answer(answer(entry("cpu", ["time", "value", "host"], [[1, 2.5, "h"]])), "db")
    assert as_dicts(series) == {(("__name__", "cpu"), ("host", "h")): [(1, 2.5)]}


def test_histogram_rows_decode_bit_for_bit_and_rows_with_neither_field_are_skipped():
    sent = v2.Histogram(schema=-53, count_float=3.5, sum=-0.0, custom_values=[0.1, 1.0], timestamp=7)
    sent.positive_spans.add(offset=0, length=2)
    sent.positive_counts.extend([1.5, 2.0])
    blob, _, _ = encode_histogram(sent)
    body = answer(entry("h", ["time", "value", "histogram", "__name__"],
                        [[7, None, blob, "h"], [8, None, None, "h"], [9, 4, None, "h"]]))
    (series,) = series_from_answer(body, "db")
    assert [(s.timestamp, s.value) for s in series.samples] == [(9, 4.0)]
    (histogram,) = series.histograms
    expected = pb.Histogram.FromString(sent.SerializeToString())
    expected.timestamp = 7
    assert histogram.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


def test_statement_errors_are_the_connectors_database_not_found_is_404():
    with pytest.raises(NotFound, match="database 'nope'"):
        series_from_answer(answer(error="database not found: nope"), "nope")
    with pytest.raises(BadRequest, match="error parsing query"):
        series_from_answer(answer(error="error parsing query: found EOF"), "db")
    with pytest.raises(BadRequest):
        series_from_answer(b'{"error":"error parsing query"}', "db")


def test_a_partial_answer_cut_at_influxdbs_row_limit_is_413_not_a_silent_part():
    with pytest.raises(PayloadTooLarge, match="narrow the query"):
        series_from_answer(answer(entry("m", ["time", "value"], [[1, 1]]), partial=True), "db")


def test_the_response_budget_stops_an_oversized_answer():
    rows = [[i, 1.0, None, "m"] for i in range(1000)]
    with pytest.raises(PayloadTooLarge):
        series_from_answer(answer(entry("m", ["time", "value", "histogram", "__name__"], rows)), "db",
                           budget=ResponseBudget(2000))


def test_an_empty_answer_is_no_series_and_garbage_is_an_error():
    assert series_from_answer(answer(), "db") == []
    with pytest.raises(ConnectorError):
        parse_answer(b"<html>")
    with pytest.raises(ConnectorError):
        series_from_answer(answer(entry("m", ["time", "value"], [[1, "text"]])), "db")
