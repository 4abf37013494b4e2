"""Timestream for InfluxDB (or any server of InfluxDB's v1-compatible API) as the connector's
engine: the per-process state (HTTP client, series cache, writer, token source) and the four
steps the handlers call."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from chalicelib.codec import WRITE_V2
from chalicelib.config import Settings
from chalicelib.influxdb.client import InfluxDBClient
from chalicelib.influxdb.credentials import InfluxDBCredentials, from_basic_authorization
from chalicelib.influxdb.records import LineBatch, build_lines, build_lines_v2, series_cache
from chalicelib.influxdb.writer import REJECTED_BY, UNIT, Writer
from chalicelib.write_report import WriteReport


class InfluxDBEngine:
    name = "influxdb"

    def __init__(self, settings: Settings) -> None:
        if not settings.influxdb_url:
            raise ValueError("the influxdb engine needs settings.influxdb_url")
        self.settings = settings
        self.client = InfluxDBClient(
            settings.influxdb_url,
            connect_timeout=settings.connect_timeout_seconds,
            write_timeout=settings.write_timeout_seconds,
            query_timeout=settings.query_timeout_seconds,
        )
        self.series_cache = series_cache(settings)
        self.writer = Writer(
            concurrency=settings.write_concurrency,
            budget_seconds=settings.write_budget_seconds,
            attempt_seconds=settings.connect_timeout_seconds + settings.write_timeout_seconds,
            batch_lines=settings.influxdb_batch_lines,
        )

    @cached_property
    def token_source(self) -> Any:
        """AUTH_MODE=iam: the function's token, from Secrets Manager (imported on first use)."""
        from chalicelib.influxdb.secrets import TokenSource

        return TokenSource(self.settings.influxdb_token_secret_arn or "", self.settings.region)

    def credentials(self, headers: Mapping[str, str]) -> InfluxDBCredentials:
        if self.settings.auth_mode == "iam":
            return self.token_source.credentials()
        return from_basic_authorization(headers.get("authorization"))

    def prepare(self, request: Any, message: str, now_ms: int) -> LineBatch:
        # now_ms is unused: InfluxDB takes any time in its range (no memory-store window).
        if message == WRITE_V2:
            return build_lines_v2(request, self.settings, self.series_cache)
        return build_lines(request.timeseries, self.settings, self.series_cache)

    def store(self, batch: LineBatch, credentials: InfluxDBCredentials) -> WriteReport:
        if batch.line_count == 0:
            return WriteReport.of(batch, REJECTED_BY, UNIT)
        return self.writer.write(self.client, credentials.authorization, batch)

    def read(self, request: Any, credentials: InfluxDBCredentials) -> Any:
        from chalicelib.influxdb.reader import read

        return read(request, self.settings, self.client, credentials.authorization)
