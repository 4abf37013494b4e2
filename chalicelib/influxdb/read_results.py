"""InfluxDB /query JSON answers -> Prometheus series, within the response size budget.

The answer of `SELECT "value"::field, "histogram"::field, *::tag` has one entry per measurement
(`name`), its columns (`time`, `value`, `histogram`, then the tags) and rows. Tags with a value
are the labels (`__name__` among them; the measurement stands in for a point without it), the
routing labels the query named are added, and rows are grouped into series: labels sorted by
name, series by labels, samples and histograms by time. A row with `histogram` is a native
histogram sample decoded bit for bit; rows with neither field do not come back (exemplars).

Numbers are read from their JSON text: InfluxDB writes whole floats as integers (`1`), -0.0 as
`-0` and large ones in exponent form, so every number is parsed as a float from its own text
(float("-0") keeps the sign; Go writes the shortest text that parses back to the same float64).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import DecodeError

from chalicelib.errors import BadRequest, ConnectorError, NotFound, PayloadTooLarge, one_line
from chalicelib.influxdb.histograms import HISTOGRAM, VALUE
from chalicelib.matchers import METRIC_NAME_LABEL
from chalicelib.native_histograms import decode_histogram
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.read_budget import SERIES_OVERHEAD, ResponseBudget, field_size, label_size, sample_size

_TIME = "time"
_Key = tuple[tuple[str, str], ...]


def parse_answer(body: bytes) -> dict[str, Any]:
    """The /query JSON with every number a float parsed from its own text."""
    try:
        document = json.loads(body, parse_int=float, parse_float=float)
    except (ValueError, UnicodeDecodeError):
        raise ConnectorError("InfluxDB's /query answer is not JSON") from None
    if not isinstance(document, dict):
        raise ConnectorError("InfluxDB's /query answer is not a JSON object")
    return document


def statement_series(document: dict[str, Any], database: str) -> list[dict[str, Any]]:
    """The series of the answer's one statement; its error as the connector's."""
    if document.get("error"):
        message = one_line(str(document["error"]))
        raise BadRequest(f"InfluxDB could not run the query on database {database!r}: {message}")
    results = document.get("results") or [{}]
    result = results[0] if isinstance(results[0], dict) else {}
    error = result.get("error")
    if error:
        message = one_line(str(error))
        if message.startswith("database not found"):
            raise NotFound(f"InfluxDB database {database!r} does not exist ({message})")
        raise BadRequest(f"InfluxDB could not run the query on database {database!r}: {message}")
    if result.get("partial"):
        # InfluxDB cut the answer at its row limit: a part is not the answer.
        raise PayloadTooLarge(
            f"InfluxDB returned a partial answer from database {database!r} (its row limit): narrow the "
            "query (a shorter time range or more specific label matchers)"
        )
    return result.get("series") or []


def series_from_answer(
    body: bytes,
    database: str,
    echo: Sequence[tuple[str, str]] = (),
    budget: ResponseBudget | None = None,
) -> list[Any]:
    samples_of: dict[_Key, list[tuple[int, float]]] = {}
    histograms_of: dict[_Key, list[tuple[int, str]]] = {}
    echo_names = {name for name, _ in echo}
    for entry in statement_series(parse_answer(body), database):
        columns = entry.get("columns") or []
        try:
            time_index = columns.index(_TIME)
        except ValueError:
            raise ConnectorError("InfluxDB's answer lacks the time column") from None
        value_index = columns.index(VALUE) if VALUE in columns else -1
        histogram_index = columns.index(HISTOGRAM) if HISTOGRAM in columns else -1
        fixed = {time_index, value_index, histogram_index}
        tag_indexes = [
            (i, name) for i, name in enumerate(columns) if i not in fixed and name not in echo_names
        ]
        measurement = str(entry.get("name", ""))
        keys: dict[tuple[Any, ...], _Key] = {}
        for row in entry.get("values") or []:
            value = row[value_index] if value_index >= 0 else None
            blob = row[histogram_index] if histogram_index >= 0 and value is None else None
            if value is None and blob is None:
                continue
            raw = tuple(row[i] for i, _ in tag_indexes)
            key = keys.get(raw)
            if key is None:
                labels = dict(echo)
                labels.update((name, tag) for (_, name), tag in zip(tag_indexes, raw, strict=True) if tag)
                labels.setdefault(METRIC_NAME_LABEL, measurement)
                key = keys[raw] = tuple(sorted(labels.items()))
            samples = samples_of.get(key)
            if samples is None:
                samples = samples_of[key] = []
                if budget is not None:
                    budget.charge(SERIES_OVERHEAD + sum(label_size(n, v) for n, v in key))
            timestamp = int(row[time_index])
            if blob is not None:
                if not isinstance(blob, str):
                    raise ConnectorError(f"unexpected histogram value from InfluxDB: {str(blob)[:64]!r}")
                if budget is not None:
                    budget.charge(field_size(len(blob) * 3 // 4 + 11))
                histograms_of.setdefault(key, []).append((timestamp, blob))
                continue
            if not isinstance(value, float):
                raise ConnectorError(f"unexpected value from InfluxDB: {str(value)[:64]!r}")
            if budget is not None:
                budget.charge(sample_size(timestamp))
            samples.append((timestamp, value))
    result = []
    for key in sorted(samples_of):
        timeseries = pb.TimeSeries()
        timeseries.labels.extend(pb.Label(name=name, value=value) for name, value in key)
        timeseries.samples.extend(
            pb.Sample(timestamp=timestamp, value=value)
            for timestamp, value in sorted(samples_of[key], key=lambda sample: sample[0])
        )
        for timestamp, blob in sorted(histograms_of.get(key, ()), key=lambda entry: entry[0]):
            try:
                decode_histogram(blob, timestamp, timeseries.histograms.add())
            except (ValueError, DecodeError):
                raise ConnectorError(f"unexpected histogram value from InfluxDB: {blob[:64]!r}") from None
        result.append(timeseries)
    return result
