"""HTTP layer: routes, request -> domain call, result or error -> status and one-line body."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from chalice import Chalice, IAMAuthorizer, Response
from chalice.app import CaseInsensitiveMapping, Request

from chalicelib import logs
from chalicelib.clients import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, ClientCache
from chalicelib.codec import PROTOBUF
from chalicelib.config import load_settings
from chalicelib.errors import ConnectorError, Unauthorized
from chalicelib.handlers import handle_read, handle_write
from chalicelib.records import SeriesCache
from chalicelib.writer import Writer

if TYPE_CHECKING:
    from chalicelib.query_client import ColumnsCache

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
    attempt_seconds=CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS,
)


@cache
def columns_cache() -> ColumnsCache:
    """The remote-read column cache, created (and the read path imported) on the first /read: a
    function that only receives writes never pays for it at cold start."""
    from chalicelib.query_client import ColumnsCache

    return ColumnsCache.from_settings(settings)


@app.middleware("http")
def accept_protobuf_on_read(event: Request, get_response: Callable[[Request], Response]) -> Response:
    """Prometheus sends no Accept header on remote read, and Chalice refuses a binary response
    to a request that did not accept one. The protobuf answer is the only one /read gives, so
    say so on the sender's behalf."""
    if event.path == "/read" and "accept" not in event.headers:
        event.headers = CaseInsensitiveMapping({**dict(event.headers), "accept": PROTOBUF})
    return get_response(event)


def _text_response(status: int, message: str) -> Response:
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if status == Unauthorized.status:
        headers["WWW-Authenticate"] = 'Basic realm="prometheus-timestream", charset="UTF-8"'
    # One line, whatever AWS or a decoder put in the message: Prometheus logs it as one.
    return Response(body=" ".join(message.split()) + "\n", status_code=status, headers=headers)


def _serve(event: str, handle: Callable[[], tuple[Response, dict[str, Any]]]) -> Response:
    """Run one request's handler; map refusals to their status, log one JSON line either way.

    `handle` returns the success response and the fields to log. A ConnectorError carries
    its own status; anything else is a bug, answered 500 (Prometheus retries, nothing is lost)
    without taking the process down.
    """
    started = time.perf_counter()
    body = app.current_request.raw_body or b""
    fields: dict[str, Any] = {}
    try:
        response, fields = handle()
    except ConnectorError as error:
        response = _text_response(error.status, error.message)
    except Exception:
        logs.logger.exception("unexpected error in /%s", event)
        response = _text_response(
            500, "internal error, see the connector's logs: the request did not complete; it can be resent"
        )
    status = response.status_code
    logs.log_event(
        logging.INFO if status < 400 else logging.WARNING,
        event,
        status=status,
        error=response.body.strip() if status >= 400 else None,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
        request_bytes=len(body),
        **fields,
    )
    return response


@app.route("/write", methods=["POST"], content_types=[PROTOBUF], authorizer=authorizer)
def write() -> Response:
    request = app.current_request

    def handle() -> tuple[Response, dict[str, Any]]:
        result = handle_write(request.raw_body, request.headers, settings, clients, writer, series_cache)
        status = result.status()
        response = Response(body="", status_code=status) if status < 300 else _text_response(
            status, result.error_message()
        )
        return response, result.log_fields()

    return _serve("write", handle)


@app.route("/read", methods=["POST"], content_types=[PROTOBUF], authorizer=authorizer)
def read() -> Response:
    request = app.current_request

    def handle() -> tuple[Response, dict[str, Any]]:
        body, fields = handle_read(request.raw_body, request.headers, settings, clients, columns_cache())
        headers = {"Content-Type": PROTOBUF, "Content-Encoding": "snappy"}
        return Response(body=body, status_code=200, headers=headers), fields

    return _serve("read", handle)
