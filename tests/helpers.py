"""Builders shared by the tests: remote write requests and basic-auth headers."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Sequence

import snappy

from chalicelib.prompb.prometheus_remote_pb2 import TimeSeries, WriteRequest, WriteRequestLabelBytes

ACCESS_KEY_ID = "AKIATESTEXAMPLE00001"
SECRET_ACCESS_KEY = "test/secret+key=example"

SeriesSpec = tuple[Sequence[tuple[str, str]], Sequence[tuple[float, int]]]


def now_ms() -> int:
    return int(time.time() * 1000)


def make_series(labels: Iterable[tuple[str, str]], samples: Iterable[tuple[float, int]]) -> TimeSeries:
    series = TimeSeries()
    for name, value in labels:
        series.labels.add(name=name, value=value)
    for value, timestamp in samples:
        series.samples.add(value=value, timestamp=timestamp)
    return series


def write_request(series: Iterable[SeriesSpec]) -> WriteRequest:
    request = WriteRequest()
    for labels, samples in series:
        request.timeseries.append(make_series(labels, samples))
    return request


def encode(request: WriteRequest) -> bytes:
    return snappy.compress(request.SerializeToString())


def basic_auth(access_key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY) -> str:
    return "Basic " + base64.b64encode(f"{access_key_id}:{secret}".encode()).decode()


def write_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
        "Authorization": basic_auth(),
    }
    headers.update(overrides)
    return {name: value for name, value in headers.items() if value is not None}


def label_bytes_view(series: Iterable[TimeSeries]) -> list:
    """The series as the write path decodes them (labels left serialised)."""
    request = WriteRequest(timeseries=list(series))
    return list(WriteRequestLabelBytes.FromString(request.SerializeToString()).timeseries)
