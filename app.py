"""HTTP layer: routes, request -> handler, Outcome -> response with one log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from chalice import Chalice, IAMAuthorizer, Response
from chalice.app import CaseInsensitiveMapping, Request

from chalicelib import logs, metrics
from chalicelib.clients import ClientCache
from chalicelib.codec import PROTOBUF
from chalicelib.config import load_settings
from chalicelib.errors import Unauthorized
from chalicelib.handlers import handle_read, handle_write
from chalicelib.outcome import Outcome
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
    attempt_seconds=settings.connect_timeout_seconds + settings.write_timeout_seconds,
    memory_mb=settings.lambda_memory_mb,
)
_INTERNAL_ERROR = Outcome(
    500, "internal error, see the connector's logs: the request did not complete; it can be resent"
)
_NOT_FOUND = Outcome(
    404,
    "no such path: remote write goes to POST /write and remote read to POST /read "
    "(append /write or /read to the API's URL)",
)
# The first request a process serves pays for the imports and clients; logs say which it was.
_cold_start = True


@cache
def columns_cache() -> ColumnsCache:
    """The remote-read column cache, created (and the read path imported) on the first /read: a
    function that only receives writes never pays for it at cold start."""
    from chalicelib.query_client import ColumnsCache

    return ColumnsCache.from_settings(settings)


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
    headers = {**outcome.headers, "Content-Type": "text/plain; charset=utf-8"}
    if outcome.status == Unauthorized.status:
        headers["WWW-Authenticate"] = 'Basic realm="prometheus-timestream", charset="UTF-8"'
    return Response(body=error_line + "\n", status_code=outcome.status, headers=headers)


def _serve(route: str, handle: Callable[[], Outcome]) -> Response:
    """Run one request's handler, log one JSON line and write its metrics. Handlers turn every
    refusal into an Outcome; an exception here is a bug, answered 500 (Prometheus retries,
    nothing is lost) without taking the process down."""
    global _cold_start
    started = time.perf_counter()
    context = app.lambda_context
    request_id = getattr(context, "aws_request_id", None)
    try:
        outcome = handle()
    except Exception:
        logs.logger.exception("unexpected error in /%s (request %s)", route, request_id)
        outcome = _INTERNAL_ERROR
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    # One line, whatever AWS or a decoder put in the message: Prometheus logs it as one.
    error_line = " ".join(outcome.message.split())
    logs.log_event(
        logging.INFO if outcome.ok else logging.WARNING,
        route,
        request_id=request_id,
        cold_start=_cold_start,
        status=outcome.status,
        error=error_line if not outcome.ok else None,
        duration_ms=duration_ms,
        request_bytes=len(app.current_request.raw_body or b""),
        **outcome.log_fields,
    )
    _cold_start = False
    if settings.metrics_namespace:
        for document in metrics.request_documents(
            settings.metrics_namespace, settings.function_name, route, outcome.log_fields, duration_ms,
            int(time.time() * 1000),
        ):
            logs.write_document(document)
    return _response(outcome, error_line)


# Any Content-Type reaches the handler, which negotiates it: Chalice's own check would answer a
# request without one (remote write 1.0 by the protocol) and any type it does not list with a 415
# that names nothing supported and is not logged.
@app.route("/write", methods=["POST"], content_types=["*/*"], authorizer=authorizer)
def write() -> Response:
    request = app.current_request
    body, headers = request.raw_body, request.headers
    return _serve("write", lambda: handle_write(body, headers, settings, clients, writer, series_cache))


@app.route("/read", methods=["POST"], content_types=[PROTOBUF], authorizer=authorizer)
def read() -> Response:
    request = app.current_request
    body, headers = request.raw_body, request.headers
    return _serve("read", lambda: handle_read(body, headers, settings, clients, columns_cache()))


# Any other path or method, to at least a few levels deep: the app answers itself, naming the
# right paths and never repeating a request header. Without these, API Gateway (and chalice
# local) answer an unknown path with a 403 that quotes the Authorization header: the base64
# access key and secret would end up in Prometheus's log. The templates' Gateway Responses
# cover what is deeper still.
_ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
_CATCH_ALL_PATHS = ["/", "/{p1}", "/{p1}/{p2}", "/{p1}/{p2}/{p3}", "/{p1}/{p2}/{p3}/{p4}"]


def not_found(**_path: str) -> Response:
    return _serve("not_found", lambda: _NOT_FOUND)


for _depth, _path in enumerate(_CATCH_ALL_PATHS):
    app.route(
        _path, methods=_ANY_METHOD, content_types=["*/*"], name=f"not_found_{_depth}", authorizer=authorizer
    )(not_found)
