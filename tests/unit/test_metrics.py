"""EMF documents: the exact layout dashboards and alarms rely on."""

import json

from chalicelib.metrics import request_documents

WRITE_FIELDS = {
    "written": 7, "calls": 2, "retries": 1, "throttles": 1, "write_units": 3,
    "dropped": {"nan": 2, "stale_marker": 1}, "refused": {"missing_metric_name": 4}, "rejected": {},
}


def metrics_of(document):
    directive = document["_aws"]["CloudWatchMetrics"][0]
    return {metric["Name"]: (document[metric["Name"]], metric["Unit"]) for metric in directive["Metrics"]}


def test_a_write_has_one_totals_document_with_every_metric_named_exactly():
    totals, *_ = request_documents("NS", "fn", "write", WRITE_FIELDS, 12.5, 1_700_000_000_000)
    assert totals["_aws"]["Timestamp"] == 1_700_000_000_000
    assert totals["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "NS"
    assert totals["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Function"]]
    assert totals["Function"] == "fn"
    assert metrics_of(totals) == {
        "SamplesWritten": (7, "Count"), "HistogramsWritten": (0, "Count"), "ExemplarsWritten": (0, "Count"), "SamplesDropped": (3, "Count"), "SamplesRefused": (4, "Count"),
        "RecordsRejected": (0, "Count"), "TimestreamCalls": (2, "Count"), "TimestreamRetries": (1, "Count"),
        "TimestreamThrottles": (1, "Count"), "TimestreamWriteUnits": (3, "Count"),
        "RequestDuration": (12.5, "Milliseconds"),
    }


def test_each_reason_gets_its_own_document_with_the_reason_as_a_dimension():
    _, *by_reason = request_documents("NS", "fn", "write", WRITE_FIELDS, 1.0, 0)
    seen = {}
    for document in by_reason:
        assert document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Function", "Reason"]]
        ((name, (value, unit)),) = metrics_of(document).items()
        seen[(name, document["Reason"])] = (value, unit)
    assert seen == {
        ("SamplesDropped", "nan"): (2, "Count"), ("SamplesDropped", "stale_marker"): (1, "Count"),
        ("SamplesRefused", "missing_metric_name"): (4, "Count"),
    }


def test_a_request_refused_before_any_call_counts_zero_calls():
    (totals,) = request_documents("NS", "fn", "write", {"reason": "unauthorized"}, 0.5, 0)
    assert metrics_of(totals)["TimestreamCalls"] == (0, "Count")
    assert metrics_of(totals)["SamplesWritten"] == (0, "Count")


def test_a_read_has_its_own_metrics():
    (totals,) = request_documents("NS", "fn", "read", {"queries": 2, "series": 5, "response_bytes": 900}, 30.0, 0)
    assert metrics_of(totals) == {
        "ReadQueries": (2, "Count"), "ReadSeries": (5, "Count"), "ReadBytes": (900, "Bytes"),
        "ReadDuration": (30.0, "Milliseconds"),
    }


def test_other_routes_have_no_metrics():
    assert request_documents("NS", "fn", "not_found", {}, 1.0, 0) == []


def test_documents_stay_within_cloudwatch_limits_and_serialise():
    for document in request_documents("NS", "fn", "write", WRITE_FIELDS, 1.0, 0):
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert len(directive["Metrics"]) <= 100
        assert all(len(dimension_set) <= 30 for dimension_set in directive["Dimensions"])
        for metric in directive["Metrics"]:
            assert isinstance(document[metric["Name"]], (int, float))
        json.dumps(document)


def test_every_document_names_the_storage_engine_as_a_property_not_a_dimension():
    documents = request_documents("NS", "fn", "write", WRITE_FIELDS, 1.0, 0, "influxdb")
    assert documents and all(document["Engine"] == "influxdb" for document in documents)
    for document in documents:
        (dimensions,) = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        assert "Engine" not in dimensions
