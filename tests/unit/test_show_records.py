"""`make records`' text output: one line per record, as Prometheus's text format prints a sample."""

from __future__ import annotations

import pytest

from local_timestream.show_records import format_record


def record(name: str, dimensions: dict[str, str], value: str = "1.0", time: str = "1700000000000") -> dict:
    return {"MeasureName": name, "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "MeasureValue": value, "MeasureValueType": "DOUBLE", "Time": time}


def test_a_record_prints_as_name_labels_value_and_time():
    assert format_record(record("up", {"job": "node", "instance": "h:9100"})) == (
        'up{job="node",instance="h:9100"} 1.0 @1700000000000'
    )


@pytest.mark.parametrize(("value", "printed"), [
    ('a"b', r'a\"b'),
    ("back\\slash", r"back\\slash"),
    ("two\nlines", r"two\nlines"),
    ('\\"', r'\\\"'),
    ("tab\tand ünïcode", "tab\tand ünïcode"),  # only \, " and newline are escaped
])
def test_label_values_are_escaped_as_prometheus_text_format_does(value, printed):
    assert format_record(record("m", {"q": value})) == f'm{{q="{printed}"}} 1.0 @1700000000000'


def test_names_outside_the_classic_charset_are_quoted_as_prometheus_3_prints_them():
    assert format_record(record("resource.cpu usage", {"zone.名": "x", "job": "a"})) == (
        '{"resource.cpu usage","zone.名"="x",job="a"} 1.0 @1700000000000'
    )


def test_a_multi_measure_record_prints_its_measures_by_name():
    multi = {"MeasureName": "latency", "Dimensions": [{"Name": "job", "Value": "api"}], "MeasureValueType": "MULTI",
             "MeasureValues": [{"Name": "histogram_count", "Value": "3.0", "Type": "DOUBLE"},
                               {"Name": "histogram_proto", "Value": "CAE=", "Type": "VARCHAR"}],
             "Time": "5"}
    assert format_record(multi) == 'latency{job="api"} histogram_count=3.0 histogram_proto="CAE=" @5'
