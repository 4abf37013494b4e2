"""HTTP layer: routes, request -> handler, Outcome -> response with one log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from chalice import Chalice, IAMAuthorizer, Response
from chalice.app import CaseInsensitiveMapping, Request

from chalicelib import logs
from chalicelib.clients import ClientCache
from chalicelib.codec import PROTOBUF
from chalicelib.config import load_settings
from chalicelib.errors import Unauthorized
from chalicelib.handlers import handle_read, handle_write
from chalicelib.outcome import Outcome
from chalicelib.records import SeriesCache
from chalicelib.writer import Writer

if TYPE_CHECKING:
    from chalicelib.reader import ColumnsCache

settings = load_settings()
logs.configure(settings.log_level)

app = Chalice(app_name="prometheus-timestream")
app.api.binary_types.append(PROTOBUF)

clients = ClientCache(settings)
series_cache = SeriesCache(settings)
# In iam mode API Gateway checks the caller's SigV4 signature (execute-api:Invoke) and the
# function writes with its own role; without the authorizer the routes would be open.
authorizer = IAMAuthorizer() if settings.auth_mode == "iam" else None
writer = Writer(
    concurrency=settings.write_concurrency,
    budget_seconds=settings.write_budget_seconds,
    attempt_seconds=settings.connect_timeout_seconds + settings.write_timeout_seconds,
)
_INTERNAL_ERROR = Outcome(
    500, "internal error, see the connector's logs: the request did not complete; it can be resent"
)


@cache
def columns_cache() -> ColumnsCache:
    """The remote-read column cache, created (and the reader imported) on the first /read: a
    function that only receives writes never pays for it at cold start."""
    from chalicelib.reader import ColumnsCache

    return ColumnsCache()


@app.middleware("http")
def accept_protobuf_on_read(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """Prometheus sends no Accept header on remote read, and Chalice refuses a binary response
    to a request that did not accept one. The protobuf answer is the only one /read gives, so
    say so on the sender's behalf."""
    if request.path == "/read" and "accept" not in request.headers:
        request.headers = CaseInsensitiveMapping({**dict(request.headers), "accept": PROTOBUF})
    return get_response(request)


def _response(outcome: Outcome, error_line: str) -> Response:
    if outcome.ok:
        # Chalice sends an empty str as no body; empty bytes would need a binary content type.
        return Response(body=outcome.body or "", status_code=outcome.status, headers=dict(outcome.headers))
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if outcome.status == Unauthorized.status:
        headers["WWW-Authenticate"] = 'Basic realm="prometheus-timestream", charset="UTF-8"'
    return Response(body=error_line + "\n", status_code=outcome.status, headers=headers)


def _serve(route: str, handle: Callable[[], Outcome]) -> Response:
    """Run one request's handler and log one JSON line. Handlers turn every refusal into an
    Outcome; an exception here is a bug, answered 500 (Prometheus retries, nothing is lost)
    without taking the process down."""
    started = time.perf_counter()
    try:
        outcome = handle()
    except Exception:
        logs.logger.exception("unexpected error in /%s", route)
        outcome = _INTERNAL_ERROR
    # One line, whatever AWS or a decoder put in the message: Prometheus logs it as one.
    error_line = " ".join(outcome.message.split())
    logs.log_event(
        logging.INFO if outcome.ok else logging.WARNING,
        route,
        status=outcome.status,
        error=error_line if not outcome.ok else None,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        request_bytes=len(app.current_request.raw_body or b""),
        **outcome.log_fields,
    )
    return _response(outcome, error_line)


@app.route("/write", methods=["POST"], content_types=[PROTOBUF], authorizer=authorizer)
def write() -> Response:
    request = app.current_request
    body, headers = request.raw_body, request.headers
    return _serve("write", lambda: handle_write(body, headers, settings, clients, writer, series_cache))


@app.route("/read", methods=["POST"], content_types=[PROTOBUF], authorizer=authorizer)
def read() -> Response:
    request = app.current_request
    body, headers = request.raw_body, request.headers
    return _serve("read", lambda: handle_read(body, headers, settings, clients, columns_cache()))
