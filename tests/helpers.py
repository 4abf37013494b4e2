"""Builders shared by the tests: remote write requests (1.0 and 2.0), remote read requests and
answers, and basic-auth headers."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Sequence

import snappy

from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.prompb import remote_write_v2_pb2 as v2
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


# -- Remote-Write 2.0 ------------------------------------------------------------------------------

V2_CONTENT_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"


class RequestV2:
    """Builds an io.prometheus.write.v2.Request as the 2.0 spec describes a sender's: a symbols
    table starting with "", each string once, every string of the request referred to by index.
    `message` is the protobuf message, to be altered further by tests of malformed requests."""

    def __init__(self) -> None:
        self.message = v2.Request()
        self._symbols: dict[str, int] = {"": 0}

    def ref(self, text: str) -> int:
        return self._symbols.setdefault(text, len(self._symbols))

    def refs(self, labels: Iterable[tuple[str, str]]) -> list[int]:
        return [self.ref(text) for pair in labels for text in pair]

    def series(
        self,
        labels: Iterable[tuple[str, str]],
        samples: Iterable[tuple[float, int]] = (),
        *,
        start_timestamp: int = 0,
        metadata: tuple[int, str, str] | None = None,
    ) -> v2.TimeSeries:
        """Add a series; `metadata` is (type, help, unit)."""
        series = self.message.timeseries.add(labels_refs=self.refs(labels))
        for value, timestamp in samples:
            series.samples.add(value=value, timestamp=timestamp, start_timestamp=start_timestamp)
        if metadata is not None:
            kind, help_text, unit = metadata
            series.metadata.type = kind
            series.metadata.help_ref = self.ref(help_text)
            series.metadata.unit_ref = self.ref(unit)
        return series

    def build(self) -> v2.Request:
        del self.message.symbols[:]
        self.message.symbols.extend(self._symbols)  # in index order: dicts keep insertion order
        return self.message

    def encode(self) -> bytes:
        return snappy.compress(self.build().SerializeToString())


def write_request_v2(series: Iterable[SeriesSpec]) -> v2.Request:
    builder = RequestV2()
    for labels, samples in series:
        builder.series(labels, samples)
    return builder.build()


def v2_headers(**overrides: str) -> dict[str, str]:
    return write_headers(**{"Content-Type": V2_CONTENT_TYPE, "X-Prometheus-Remote-Write-Version": "2.0.0",
                            **overrides})


# -- remote read --------------------------------------------------------------------------------------

MATCHER_TYPES = {"=": pb.LabelMatcher.EQ, "!=": pb.LabelMatcher.NEQ, "=~": pb.LabelMatcher.RE,
                 "!~": pb.LabelMatcher.NRE}


def read_request(*queries: tuple[int, int, Sequence[tuple[str, str, str]]]) -> bytes:
    """A snappy-compressed ReadRequest; queries: (start_ms, end_ms, [(name, op, value), ...])."""
    request = pb.ReadRequest()
    for start, end, matchers in queries:
        query = request.queries.add(start_timestamp_ms=start, end_timestamp_ms=end)
        for name, op, value in matchers:
            query.matchers.add(type=MATCHER_TYPES[op], name=name, value=value)
    return snappy.compress(request.SerializeToString())


def read_headers(**overrides: str | None) -> dict[str, str]:
    """What Prometheus 2.42 sends on remote read: no Accept header."""
    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Read-Version": "0.1.0",
        "User-Agent": "Prometheus/2.42.0",
        "Authorization": basic_auth(),
    }
    headers.update(overrides)
    return {name: value for name, value in headers.items() if value is not None}


def decode_read_response(body: bytes) -> list[dict]:
    """A snappy ReadResponse -> per query {labels as sent: [(timestamp, value), ...]}."""
    response = pb.ReadResponse()
    response.ParseFromString(snappy.uncompress(body))
    return [
        {tuple((label.name, label.value) for label in series.labels): [(s.timestamp, s.value) for s in series.samples]
         for series in result.timeseries}
        for result in response.results
    ]
