"""HTTP layer: routes, request -> domain call, result or error -> status and one-line body."""

from __future__ import annotations

import logging
import time

from chalice import Chalice, Response

from chalicelib import logs
from chalicelib.clients import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, ClientCache
from chalicelib.config import load_settings
from chalicelib.decode import PROTOBUF
from chalicelib.errors import ConnectorError, Unauthorized
from chalicelib.pipeline import handle_write
from chalicelib.records import SeriesCache
from chalicelib.writer import Writer

settings = load_settings()
logs.configure(settings.log_level)

app = Chalice(app_name="prometheus-timestream")
app.api.binary_types.append(PROTOBUF)

clients = ClientCache(settings)
series_cache = SeriesCache(settings)
writer = Writer(
    concurrency=settings.write_concurrency,
    budget_seconds=settings.write_budget_seconds,
    attempt_seconds=CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS,
)


def _text_response(status: int, message: str) -> Response:
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if status == Unauthorized.status:
        headers["WWW-Authenticate"] = 'Basic realm="prometheus-timestream", charset="UTF-8"'
    return Response(body=message + "\n", status_code=status, headers=headers)


@app.route("/write", methods=["POST"], content_types=[PROTOBUF])
def write() -> Response:
    request = app.current_request
    started = time.perf_counter()
    fields: dict = {}
    try:
        result = handle_write(request.raw_body, request.headers, settings, clients, writer, series_cache)
    except ConnectorError as error:
        status, message = error.status, error.message
    except Exception:  # a bug must not crash the process; 500 makes Prometheus retry
        logs.logger.exception("unexpected error in /write")
        status, message = 500, "internal error: the request was not stored, see the connector's logs"
    else:
        status, message = result.status(), result.error_message()
        fields = {
            "written": result.written,
            "dropped": dict(result.dropped),
            "refused": dict(result.refused),
            "rejected": dict(result.rejected),
            "retries": result.retries,
            "calls": result.calls,
            "destinations": dict(result.destinations),
        }
    logs.log_event(
        logging.INFO if status < 400 else logging.WARNING,
        "write",
        status=status,
        error=message or None,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        request_bytes=len(request.raw_body or b""),
        **fields,
    )
    if status < 300:
        return Response(body="", status_code=status)
    return _text_response(status, message)
