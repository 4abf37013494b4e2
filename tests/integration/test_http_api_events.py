"""The HTTP API front (templates: ApiType=HTTP) hands the function payload format 1.0 events.

The events are built from the 1.0 example of AWS's "Create AWS Lambda proxy integrations for HTTP
APIs" page (events/http_api_payload_1_0.json, its structure and every field kept), with what an
HTTP API puts there for Prometheus's requests: header names in lower case (HTTP/2 and API Gateway
both lower-case them), the protobuf body base64-encoded with isBase64Encoded, the route's path in
resource and requestContext.resourcePath, the stage's name in requestContext.stage. They go
through the Lambda entry point itself, `app.app(event, context)`, as Lambda calls it.

Payload format 2.0 is not declared by the templates: Chalice reads requestContext.resourcePath and
httpMethod, which 2.0 events do not have (the last test pins that, so that nobody switches the
integration to 2.0 without adapting the app).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.helpers import (
    basic_auth,
    decode_read_response,
    encode,
    now_ms,
    read_request,
    write_request,
)
from tests.integration.conftest import stored

DOC_EVENT = json.loads((Path(__file__).parent / "events" / "http_api_payload_1_0.json").read_text())
STAGE = "prod"


def http_api_event(path: str, body: bytes, headers: dict[str, str], route: str | None = None,
                   path_parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The documented 1.0 event for POST `path` on a named stage, matched by route `route`."""
    route = route or path
    event = copy.deepcopy(DOC_EVENT)
    lower = {name.lower(): value for name, value in headers.items()}
    event.update(
        resource=route,
        path=f"/{STAGE}{path}",
        httpMethod="POST",
        headers=lower,
        multiValueHeaders={name: [value] for name, value in lower.items()},
        queryStringParameters=None,
        multiValueQueryStringParameters=None,
        pathParameters=path_parameters,
        body=base64.b64encode(body).decode(),
        isBase64Encoded=True,
    )
    event["requestContext"].update(httpMethod="POST", path=f"/{STAGE}{path}", resourcePath=route, stage=STAGE)
    return event


def lambda_context(request_id: str = "req-http-api") -> SimpleNamespace:
    return SimpleNamespace(function_name="fn", function_version="1", memory_limit_in_mb=512,
                           aws_request_id=request_id, log_group_name="g", log_stream_name="s",
                           get_remaining_time_in_millis=lambda: 20000)


def lower_case_write_headers() -> dict[str, str]:
    return {
        "content-type": "application/x-protobuf",
        "content-encoding": "snappy",
        "x-prometheus-remote-write-version": "0.1.0",
        "authorization": basic_auth(),
        "user-agent": "Prometheus/2.42.0",
    }


def test_the_documented_event_shape_is_the_one_api_gateway_sends_for_payload_format_1_0():
    # The fixture is the documentation's example: the fields Chalice reads are all there.
    assert DOC_EVENT["version"] == "1.0"
    for field in ("resource", "path", "httpMethod", "headers", "multiValueHeaders",
                  "multiValueQueryStringParameters", "pathParameters", "stageVariables", "body", "isBase64Encoded"):
        assert field in DOC_EVENT, field
    assert {"resourcePath", "httpMethod", "stage", "identity"} <= set(DOC_EVENT["requestContext"])


def test_write_through_the_lambda_handler_stores_a_base64_body_sent_with_lower_case_headers(load_app, timestream):
    app = load_app()
    t = now_ms() - 60_000
    body = encode(write_request([([("__name__", "http_api_up"), ("job", "web")], [(1.5, t), (2.5, t + 1000)])]))
    response = app.app(http_api_event("/write", body, lower_case_write_headers()), lambda_context())
    assert response["statusCode"] == 204, response
    assert not response["body"]
    records = stored(timestream)
    assert sorted((r["MeasureName"], r["MeasureValue"], int(r["Time"])) for r in records) == [
        ("http_api_up", "1.5", t), ("http_api_up", "2.5", t + 1000),
    ]


def test_write_refusals_keep_their_status_through_the_lambda_handler(load_app, timestream):
    app = load_app()
    headers = {name: value for name, value in lower_case_write_headers().items() if name != "authorization"}
    missing_credentials = app.app(http_api_event("/write", b"", headers), lambda_context())
    assert missing_credentials["statusCode"] == 401
    assert "Basic" in {k.lower(): v for k, v in missing_credentials["headers"].items()}["www-authenticate"]
    not_snappy = app.app(http_api_event("/write", b"not snappy", lower_case_write_headers()), lambda_context())
    assert not_snappy["statusCode"] == 400


def test_read_through_the_lambda_handler_answers_base64_protobuf_without_an_accept_header(load_app, timestream):
    app = load_app()
    t = now_ms() - 60_000
    body = encode(write_request([([("__name__", "http_api_read"), ("job", "web")], [(0.1 + 0.2, t)])]))
    assert app.app(http_api_event("/write", body, lower_case_write_headers()), lambda_context())["statusCode"] == 204

    # What Prometheus 2.42 sends on remote read, lower-cased: no Accept header.
    headers = {
        "content-type": "application/x-protobuf",
        "content-encoding": "snappy",
        "x-prometheus-remote-read-version": "0.1.0",
        "authorization": basic_auth(),
    }
    query = read_request((t - 1000, t + 1000, [("__name__", "=", "http_api_read")]))
    response = app.app(http_api_event("/read", query, headers), lambda_context("req-read"))
    assert response["statusCode"] == 200, response
    # An HTTP API decodes a body marked isBase64Encoded whatever the request accepted.
    assert response["isBase64Encoded"] is True
    response_headers = {name.lower(): value for name, value in response["headers"].items()}
    assert response_headers["content-type"] == "application/x-protobuf"
    assert response_headers["content-encoding"] == "snappy"
    (result,) = decode_read_response(base64.b64decode(response["body"]))
    assert result == {(("__name__", "http_api_read"), ("job", "web")): [(t, 0.1 + 0.2)]}


def test_an_unknown_path_reaches_the_catch_all_route_and_repeats_no_header(load_app, timestream):
    app = load_app()
    headers = lower_case_write_headers()
    event = http_api_event("/metrics", b"", headers, route="/{p1}", path_parameters={"p1": "metrics"})
    response = app.app(event, lambda_context())
    assert response["statusCode"] == 404
    assert "/write" in response["body"] and "/read" in response["body"]
    secret_part = headers["authorization"].split()[1]
    assert secret_part not in json.dumps(response)


def test_payload_format_2_0_is_not_understood_which_is_why_the_templates_declare_1_0(load_app, timestream):
    app = load_app()
    event = {
        "version": "2.0", "routeKey": "POST /write", "rawPath": "/write", "rawQueryString": "",
        "headers": lower_case_write_headers(),
        "requestContext": {"http": {"method": "POST", "path": "/write"}, "routeKey": "POST /write", "stage": "$default"},
        "body": base64.b64encode(encode(write_request([]))).decode(), "isBase64Encoded": True,
    }
    try:
        response = app.app(event, lambda_context())
    except Exception:  # noqa: BLE001 - a crash is one way of not understanding it
        return
    assert response["statusCode"] >= 500, response
