"""Timestream for LiveAnalytics as the connector's engine: the per-process state (clients per
credential, series cache, writer, column cache) and the four steps the handlers call."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.auth import AccessKey, parse_basic_authorization
from chalicelib.codec import WRITE_V2
from chalicelib.config import Settings
from chalicelib.liveanalytics.clients import ClientCache
from chalicelib.liveanalytics.records import RecordBatch, build_records, build_records_v2, series_cache
from chalicelib.liveanalytics.writer import Writer, WriteResult

if TYPE_CHECKING:
    from chalicelib.liveanalytics.query_client import ColumnsCache


class LiveAnalyticsEngine:
    name = "liveanalytics"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients = ClientCache(settings)
        self.series_cache = series_cache(settings)
        self.writer = Writer(
            concurrency=settings.write_concurrency,
            budget_seconds=settings.write_budget_seconds,
            attempt_seconds=settings.connect_timeout_seconds + settings.write_timeout_seconds,
            memory_mb=settings.lambda_memory_mb,
        )

    def credentials(self, headers: Mapping[str, str]) -> AccessKey | None:
        """The access key to sign with; None means the function's own role (AUTH_MODE=iam)."""
        if self.settings.auth_mode == "iam":
            return None
        return parse_basic_authorization(headers.get("authorization"))

    def prepare(self, request: Any, message: str, now_ms: int) -> RecordBatch:
        if message == WRITE_V2:
            return build_records_v2(request, self.settings, now_ms, self.series_cache)
        return build_records(request.timeseries, self.settings, now_ms, self.series_cache)

    def store(self, batch: RecordBatch, credentials: AccessKey | None) -> WriteResult:
        if batch.record_count == 0:
            return WriteResult.of(batch)
        return self.writer.write(self.clients.write_sender(credentials), batch)

    @cached_property
    def columns_cache(self) -> ColumnsCache:
        """The remote-read column cache, created (and the read path imported) on the first
        /read: a function that only receives writes never pays for it at cold start."""
        from chalicelib.liveanalytics.query_client import ColumnsCache

        return ColumnsCache.from_settings(self.settings)

    def read(self, request: Any, credentials: AccessKey | None) -> Any:
        from chalicelib.liveanalytics.reader import read

        return read(
            request,
            self.settings,
            self.clients.query_client(credentials),
            self.columns_cache,
            cache_scope=credentials.cache_key if credentials else "",
        )
