"""The write path as one function over plain inputs: decode -> route -> records -> writer.

Kept apart from app.py so it runs without HTTP or Chalice; app.py only translates the HTTP
request into these arguments and the result into a response.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from chalicelib.auth import AccessKey, parse_basic_authorization
from chalicelib.clients import ClientCache
from chalicelib.config import Settings
from chalicelib.decode import decode_write_request
from chalicelib.records import SeriesCache, build_records
from chalicelib.writer import Writer, WriteResult


def credentials_from(headers: Mapping[str, str], settings: Settings) -> AccessKey | None:
    """The access key to sign with; None means the function's own role (AUTH_MODE=iam)."""
    if settings.auth_mode == "iam":
        return None
    return parse_basic_authorization(headers.get("authorization"))


def handle_write(
    body: bytes,
    headers: Mapping[str, str],
    settings: Settings,
    clients: ClientCache,
    writer: Writer,
    series_cache: SeriesCache,
) -> WriteResult:
    """Store one remote write request. Raises ConnectorError for a request refused as a whole."""
    credentials = credentials_from(headers, settings)
    request = decode_write_request(
        body,
        headers.get("content-type"),
        headers.get("content-encoding"),
        settings.max_decompressed_bytes,
    )
    batch = build_records(request.timeseries, settings, int(time.time() * 1000), series_cache)
    if batch.record_count == 0:
        return WriteResult(dropped=batch.dropped, refused=batch.refused)
    return writer.write(clients.write_sender(credentials), batch)
