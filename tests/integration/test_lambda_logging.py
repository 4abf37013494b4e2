"""Under Lambda's Python runtime the root logger already has a handler that prefixes each record
(or wraps it in its own JSON). The connector's lines must still reach the log as plain JSON and
its metrics as EMF documents: reproduced with the runtime's own logging set-up (awslambdaric)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.integration.conftest import ROOT

# Runs in a fresh interpreter: the runtime's logging first, then the app, as in Lambda.
_LAMBDA_PROCESS = textwrap.dedent("""
    import base64, sys
    from types import SimpleNamespace
    from awslambdaric.bootstrap import StandardLogSink, _setup_logging
    from awslambdaric.lambda_runtime_log_utils import LogFormat

    _setup_logging(LogFormat.from_str(sys.argv[1]), "INFO", StandardLogSink())
    import app

    def invoke(path, body, broken=False):
        event = {
            "resource": path, "path": path, "httpMethod": "POST",
            "headers": {"content-type": "application/x-protobuf", "content-encoding": "snappy",
                        "authorization": "Basic " + base64.b64encode(b"AKIATESTEXAMPLE00001:secret").decode()},
            "multiValueQueryStringParameters": None, "pathParameters": {}, "stageVariables": {},
            "requestContext": {"httpMethod": "POST", "resourcePath": path, "path": path, "stage": "prod",
                               "identity": {"sourceIp": "127.0.0.1"}},
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
        }
        context = SimpleNamespace(function_name="fn", function_version="1", memory_limit_in_mb=512,
                                  aws_request_id="req-" + path.strip("/"), log_group_name="g",
                                  log_stream_name="s", get_remaining_time_in_millis=lambda: 20000)
        return app.app(event, context)

    invoke("/write", b"not snappy")             # refused: a 400 line and its metrics
    app.handle_write = lambda *args: 1 / 0       # a bug: the exception line
    invoke("/write", b"")
""")


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_connector_lines_stay_plain_json_under_the_lambda_runtime_logging(log_format, tmp_path):
    env = {"AWS_REGION": "us-east-1", "DEFAULT_DATABASE": "prometheus", "DEFAULT_TABLE": "metrics",
           "AWS_LAMBDA_FUNCTION_NAME": "fn", "TIMESTREAM_WRITE_ENDPOINT": "http://127.0.0.1:9",
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", _LAMBDA_PROCESS, log_format], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    documents = [json.loads(line) for line in lines]  # every line is one JSON document
    requests = [doc for doc in documents if doc.get("event") == "write"]
    assert [(doc["status"], doc["request_id"]) for doc in requests] == [(400, "req-write"), (500, "req-write")]
    metrics = [doc for doc in documents if "_aws" in doc]
    assert metrics and all(doc["Function"] == "fn" for doc in metrics)
    (error,) = [doc for doc in documents if doc.get("level") == "ERROR"]
    assert "ZeroDivisionError" in error["traceback"]
    assert not [line for line in lines if line.startswith("[")], "no line went through the runtime's text handler"
