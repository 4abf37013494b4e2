"""The two request handlers, over plain inputs: decode -> route -> records -> writer for /write,
decode -> reader -> encode for /read. Each returns an Outcome, whatever happened.

Kept apart from app.py so they run without HTTP or Chalice; app.py only translates the HTTP
request into these arguments and the Outcome into a response.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from chalicelib.auth import AccessKey, parse_basic_authorization
from chalicelib.clients import ClientCache
from chalicelib.codec import PROTOBUF, decode_read_request, decode_write_request, encode_response
from chalicelib.config import Settings
from chalicelib.errors import ConnectorError
from chalicelib.outcome import Outcome
from chalicelib.records import SeriesCache, build_records
from chalicelib.writer import Writer, WriteResult

if TYPE_CHECKING:
    from chalicelib.query_client import ColumnsCache

_READ_ANSWER_HEADERS = {"Content-Type": PROTOBUF, "Content-Encoding": "snappy"}


def credentials_from(headers: Mapping[str, str], settings: Settings) -> AccessKey | None:
    """The access key to sign with; None means the function's own role (AUTH_MODE=iam)."""
    if settings.auth_mode == "iam":
        return None
    return parse_basic_authorization(headers.get("authorization"))


def _body_headers(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """What the codec needs to know about the body: its Content-Type and Content-Encoding."""
    return headers.get("content-type"), headers.get("content-encoding")


def handle_write(
    body: bytes,
    headers: Mapping[str, str],
    settings: Settings,
    clients: ClientCache,
    writer: Writer,
    series_cache: SeriesCache,
) -> Outcome:
    """Store one remote write request."""
    try:
        credentials = credentials_from(headers, settings)
        request = decode_write_request(body, *_body_headers(headers), settings.max_decompressed_bytes)
        batch = build_records(request.timeseries, settings, int(time.time() * 1000), series_cache)
        # The records own everything they need: free the parsed request (tens of MB for the
        # largest) before the calls to Timestream start.
        del request
        if batch.record_count == 0:
            return WriteResult.of(batch).outcome()
        return writer.write(clients.write_sender(credentials), batch).outcome()
    except ConnectorError as error:
        return Outcome.failed(error)


def handle_read(
    body: bytes,
    headers: Mapping[str, str],
    settings: Settings,
    clients: ClientCache,
    columns_cache: ColumnsCache,
) -> Outcome:
    """Answer one remote read request with a snappy-compressed ReadResponse."""
    # Imported here: the reader (and its regex translation) is not needed to start or to write.
    from chalicelib.reader import read

    try:
        credentials = credentials_from(headers, settings)
        request = decode_read_request(body, *_body_headers(headers), settings.max_decompressed_bytes)
        response = read(
            request,
            settings,
            clients.query_client(credentials),
            columns_cache,
            cache_scope=credentials.cache_key if credentials else "",
        )
        encoded = encode_response(response)
    except ConnectorError as error:
        return Outcome.failed(error)
    return Outcome(
        200,
        body=encoded,
        headers=_READ_ANSWER_HEADERS,
        log_fields={
            "queries": len(request.queries),
            "series": sum(len(result.timeseries) for result in response.results),
            "response_bytes": len(encoded),
        },
    )
