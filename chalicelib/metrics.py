"""CloudWatch metrics as Embedded Metric Format (EMF) documents, one JSON object a log line.

CloudWatch Logs turns each document into metric values: no API call, no permission, nothing
on the request path but building a few small dicts after the answer is decided.

Layout (what dashboards and alarms rely on):
- every document has the dimension `Function` (the Lambda function's name), so two stacks in
  one account and namespace stay apart;
- one totals document per request, dimension set [Function]: for /write `SamplesWritten`,
  `HistogramsWritten`, `ExemplarsWritten` (records stored), `SamplesDropped`, `SamplesRefused`,
  `RecordsRejected`, `TimestreamCalls`, `TimestreamRetries`, `TimestreamThrottles`,
  `TimestreamWriteUnits`, `RequestDuration`; for
  /read `ReadQueries`, `ReadSeries`, `ReadBytes`, `ReadDuration`;
- one document per reason a sample (histogram, exemplar) was dropped, refused or rejected,
  dimension set [Function, Reason], carrying that reason's count under the same metric name as
  the total. A document holds one value per name, so reasons cannot share one; a request has few.
CloudWatch takes at most 100 metrics and 30 dimensions per directive: far above these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COUNT = "Count"
MILLISECONDS = "Milliseconds"
BYTES = "Bytes"

# Request log field -> (metric name, unit), per route.
_WRITE_TOTALS = (
    ("written", "SamplesWritten", COUNT),
    ("histograms_written", "HistogramsWritten", COUNT),
    ("exemplars_written", "ExemplarsWritten", COUNT),
    ("calls", "TimestreamCalls", COUNT),
    ("retries", "TimestreamRetries", COUNT),
    ("throttles", "TimestreamThrottles", COUNT),
    ("write_units", "TimestreamWriteUnits", COUNT),
)
# Request log field holding {reason: count} -> metric name.
_BY_REASON = (
    ("dropped", "SamplesDropped"),
    ("refused", "SamplesRefused"),
    ("rejected", "RecordsRejected"),
)
_READ_TOTALS = (
    ("queries", "ReadQueries", COUNT),
    ("series", "ReadSeries", COUNT),
    ("response_bytes", "ReadBytes", BYTES),
)
_DURATION = {"write": "RequestDuration", "read": "ReadDuration"}


def _document(
    namespace: str,
    dimensions: Mapping[str, str],
    values: Mapping[str, tuple[float, str]],
    timestamp_ms: int,
    engine: str,
) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [list(dimensions)],
                "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in values.items()],
            }],
        },
        **dimensions,
        # A property, not a dimension: a function serves one engine, and the alarms' metrics
        # keep their dimensions whichever it is; Logs Insights can still filter on it.
        "Engine": engine,
        **{name: value for name, (value, _) in values.items()},
    }


def request_documents(
    namespace: str,
    function: str,
    route: str,
    fields: Mapping[str, Any],
    duration_ms: float,
    timestamp_ms: int,
    engine: str = "liveanalytics",
) -> list[dict[str, Any]]:
    """The EMF documents of one request to `route` ("write" or "read"), from the fields of its
    log line, marked with the storage engine that served it. Fields a request did not reach (a
    refused body has no calls) count as 0."""
    values: dict[str, tuple[float, str]] = {}
    by_reason: list[dict[str, Any]] = []
    if route == "write":
        for field, name, unit in _WRITE_TOTALS:
            values[name] = (fields.get(field, 0), unit)
        for field, name in _BY_REASON:
            counts: Mapping[str, int] = fields.get(field) or {}
            values[name] = (sum(counts.values()), COUNT)
            for reason, count in counts.items():
                dimensions = {"Function": function, "Reason": reason}
                document = _document(namespace, dimensions, {name: (count, COUNT)}, timestamp_ms, engine)
                by_reason.append(document)
    elif route == "read":
        for field, name, unit in _READ_TOTALS:
            values[name] = (fields.get(field, 0), unit)
    else:
        return []
    values[_DURATION[route]] = (duration_ms, MILLISECONDS)
    return [_document(namespace, {"Function": function}, values, timestamp_ms, engine), *by_reason]
