"""The two request handlers, over plain inputs: decode -> engine (prepare, store) for /write,
decode -> engine (read) -> encode for /read. Each returns an Outcome, whatever happened.

Kept apart from app.py so they run without HTTP or Chalice; app.py only translates the HTTP
request into these arguments and the Outcome into a response.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace

from chalicelib.codec import (
    PROTOBUF,
    WRITE_V1,
    WRITE_V2,
    decode_read_request,
    decode_write_request,
    encode_response,
    negotiate_write,
    refuse_read_sent_to_write,
    refuse_write_sent_to_read,
    written_headers,
)
from chalicelib.config import Settings
from chalicelib.engine import Engine
from chalicelib.errors import ConnectorError
from chalicelib.outcome import Outcome

_READ_ANSWER_HEADERS = {"Content-Type": PROTOBUF, "Content-Encoding": "snappy"}
# The protocol version each negotiated message stands for, as logged.
_PROTOCOL = {WRITE_V1: "1.0", WRITE_V2: "2.0"}


def _body_headers(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """What the codec needs to know about the body: its Content-Type and Content-Encoding."""
    return headers.get("content-type"), headers.get("content-encoding")


def handle_write(body: bytes, headers: Mapping[str, str], settings: Settings, engine: Engine) -> Outcome:
    """Store one remote write request, 1.0 or 2.0 as its Content-Type says.

    A 2.0 answer carries the written counts whatever its status, once the message is
    negotiated (a 415 comes before): 0 for a request refused before any write (401, 400, 413),
    the exact counts after a partial write. A 1.0 answer carries none, so that a sender never
    takes a 1.0 answer for a 2.0 receiver's."""
    try:
        # A misrouted read first: its answer names the right path, a 415 would not.
        refuse_read_sent_to_write(headers)
        message = negotiate_write(*_body_headers(headers))
    except ConnectorError as error:
        return Outcome.failed(error)
    result = None
    try:
        credentials = engine.credentials(headers)
        request = decode_write_request(body, message, settings.max_decompressed_bytes)
        batch = engine.prepare(request, message, int(time.time() * 1000))
        # The records own everything they need: free the parsed request (tens of MB for the
        # largest) before the calls to Timestream start.
        del request
        result = engine.store(batch, credentials)
        outcome = result.outcome()
    except ConnectorError as error:
        outcome = Outcome.failed(error)
    log_fields = {**outcome.log_fields, "protocol": _PROTOCOL[message]}
    if message != WRITE_V2:
        return replace(outcome, log_fields=log_fields)
    counts = result.written_counts() if result is not None else (0, 0, 0)
    return replace(outcome, headers={**outcome.headers, **written_headers(*counts)}, log_fields=log_fields)


def handle_read(body: bytes, headers: Mapping[str, str], settings: Settings, engine: Engine) -> Outcome:
    """Answer one remote read request with a snappy-compressed ReadResponse."""
    try:
        # A misrouted write first, whatever its credentials or Content-Type: the answer must name
        # /write, and nothing may be queried (or billed) for it.
        refuse_write_sent_to_read(headers)
        credentials = engine.credentials(headers)
        request = decode_read_request(body, *_body_headers(headers), settings.max_decompressed_bytes)
        response = engine.read(request, credentials)
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
