"""Child process of the benchmark: import the app and invoke it as Lambda does, then report.

Run in a fresh interpreter (cwd = project root, the connector's environment variables set):

    python bench/lambda_probe.py cold   BODY_FILE
    python bench/lambda_probe.py memory BODY_FILE WARMUP_BODY_FILE

The handler is called the way the Lambda runtime calls it, `app(event, context)`, with the
API Gateway REST proxy event that `chalice local` builds (binary body base64-encoded), so no
test harness is imported or timed. One JSON line goes to stdout.

`cold`: time.monotonic() (CLOCK_MONOTONIC, shared by all processes) at "app imported" and at
"first response", so the parent can measure from its own spawn time, and the process's CPU
time (user+sys) at the response: less sensitive than wall time to other load on the machine.
`memory`: VmRSS after import, VmRSS after a warm-up request (botocore client created), then
VmHWM and ru_maxrss after the large request.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import sys
import time
from types import SimpleNamespace

ACCESS_KEY_ID = "AKIALOCALEXAMPLE0000"
SECRET_ACCESS_KEY = "local-secret-key"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _event(body: bytes) -> dict:
    token = base64.b64encode(f"{ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}".encode()).decode()
    return {
        "resource": "/write",
        "path": "/write",
        "httpMethod": "POST",
        "headers": {
            "authorization": f"Basic {token}",
            "content-encoding": "snappy",
            "content-type": "application/x-protobuf",
            "user-agent": "Prometheus/2.42.0",
            "x-prometheus-remote-write-version": "0.1.0",
        },
        "multiValueQueryStringParameters": None,
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {
            "httpMethod": "POST",
            "resourcePath": "/write",
            "path": "/write",
            "stage": "local",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }


def _context() -> SimpleNamespace:
    deadline = time.monotonic() + 30
    return SimpleNamespace(
        function_name="prometheus-timestream-bench",
        function_version="$LATEST",
        memory_limit_in_mb=512,
        aws_request_id="00000000-0000-0000-0000-000000000000",
        log_group_name="/aws/lambda/bench",
        log_stream_name="bench",
        get_remaining_time_in_millis=lambda: int((deadline - time.monotonic()) * 1000),
    )


def _invoke(app: object, body: bytes) -> int:
    response = app(_event(body), _context())
    status = int(response.get("statusCode", 0))
    if not 200 <= status < 300:
        raise SystemExit(f"handler answered {status}: {response.get('body')!r}")
    return status


def main() -> int:
    mode, body_file = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.getcwd())
    if mode == "cold":
        import app as module  # the measured import

        imported = time.monotonic()
        with open(body_file, "rb") as handle:
            event = _event(handle.read())
        context = _context()
        before_call = time.monotonic()
        response = module.app(event, context)
        answered = time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread, since the interpreter started
        status = int(response.get("statusCode", 0))
        if not 200 <= status < 300:
            raise SystemExit(f"handler answered {status}: {response.get('body')!r}")
        print(json.dumps({"imported": imported, "before_call": before_call, "answered": answered,
                          "status": status, "modules": len(sys.modules),
                          "cpu_seconds": usage.ru_utime + usage.ru_stime}))
        return 0
    if mode == "memory":
        warmup_file = sys.argv[3]
        import app as module

        after_import = _status_kib("VmRSS")
        with open(warmup_file, "rb") as handle:
            _invoke(module.app, handle.read())
        after_warmup = _status_kib("VmRSS")
        with open(body_file, "rb") as handle:
            body = handle.read()
        started = time.monotonic()
        status = _invoke(module.app, body)
        elapsed = time.monotonic() - started
        print(json.dumps({
            "rss_after_import_kib": after_import,
            "rss_after_warmup_kib": after_warmup,
            "vm_hwm_kib": _status_kib("VmHWM"),
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "rss_after_kib": _status_kib("VmRSS"),
            "seconds": elapsed,
            "status": status,
        }))
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main())
