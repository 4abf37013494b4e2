"""Misconfiguration is loud.

One Prometheus writes its own samples through five remote-write queues, each misconfigured in
one way, each through its own tap proxy so the test sees the connector's exact answer. For every
queue Prometheus must log the connector's status and one-line message as a non-recoverable
error, count failed samples, and not retry (a permanent error retried forever only hides it).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .fault_proxy import FaultProxy
from .launcher import Launcher
from .procs import wait_until
from .senders import FAST_QUEUE, routing_relabel
from .stack import AccessKey, new_access_key

DATABASE = "e2e"
TABLE = "misconfig"
MISSING_TABLE = "no_such_table"
STATUS_TEXT = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


@dataclass
class Case:
    name: str
    status: int
    table: str
    basic_auth: dict | None
    message_must_contain: tuple[str, ...]  # any of these, case-insensitive
    tap: FaultProxy | None = None

    @property
    def url(self) -> str:
        assert self.tap is not None
        return f"{self.tap.url}/write"


def test_wrong_credentials_and_missing_table_are_logged_by_prometheus(launcher: Launcher) -> None:
    launcher.moto.create_table(DATABASE, TABLE)
    good: AccessKey = launcher.aws_key
    unknown = new_access_key()
    denied = new_access_key()
    timestream = launcher.timestream_proxy(denied=(denied,))
    connector = launcher.connector(timestream.url)
    secrets = [good.secret_access_key, unknown.secret_access_key, denied.secret_access_key, "not-the-secret"]

    def auth(key_id: str, secret: str) -> dict:
        return {"username": key_id, "password": secret}

    cases = [
        Case(
            "unknown access key",
            403,
            TABLE,
            auth(unknown.access_key_id, unknown.secret_access_key),
            ("security token", "UnrecognizedClient"),
        ),
        Case(
            "wrong secret",
            403,
            TABLE,
            auth(good.access_key_id, "not-the-secret"),
            ("signature",),
        ),
        Case(
            "key without permission",
            403,
            TABLE,
            auth(denied.access_key_id, denied.secret_access_key),
            ("not authorized", "AccessDenied"),
        ),
        Case("missing table", 404, MISSING_TABLE, launcher.basic_auth(), (MISSING_TABLE,)),
        Case("no credentials", 401, TABLE, None, ("auth", "credential")),
    ]
    prometheus = launcher.prometheus()
    remote_write = []
    for case in cases:
        case.tap = launcher.proxy(connector.url)
        queue = {
            "url": case.url,
            "name": re.sub(r"\W+", "_", case.name),
            "remote_timeout": "5s",
            "write_relabel_configs": routing_relabel("prometheus", DATABASE, case.table),
            "queue_config": FAST_QUEUE,
        }
        if case.basic_auth:
            queue["basic_auth"] = case.basic_auth
        remote_write.append(queue)
    prometheus.write_config(scrape_configs=[prometheus.self_scrape("prometheus")], remote_write=remote_write)
    prometheus.start()

    def logged(case: Case) -> list[str]:
        return [
            line
            for line in prometheus.log_lines('msg="non-recoverable error"')
            if f"url={case.url} " in line
        ]

    wait_until("every queue to log its error", lambda: all(logged(case) for case in cases), timeout=40, interval=0.5)
    time.sleep(1)

    failures = []
    for case in cases:
        answers = [ex for ex in case.tap.snapshot() if ex.status]
        assert answers, f"{case.name}: the connector was never called"
        statuses = {ex.status for ex in answers}
        if statuses != {case.status}:
            failures.append(f"{case.name}: connector answered {statuses}, expected {case.status}")
            continue
        body = answers[0].response_body.decode("utf-8", "replace")
        message = body.rstrip("\n")
        problems = []
        if not message.strip():
            problems.append("empty message")
        if "\n" in message or "\r" in message:
            problems.append("message is not one line")
        if any(secret in body for secret in secrets):
            problems.append("message echoes a secret")
        if "<?xml" in body or "Traceback" in body:
            problems.append("message is not readable text")
        if not any(word.lower() in message.lower() for word in case.message_must_contain):
            problems.append(f"message names none of {case.message_must_contain}")
        if case.status == 401:
            challenge = {k.lower(): v for k, v in answers[0].response_headers.items()}.get("www-authenticate", "")
            if not challenge.lower().startswith("basic"):
                problems.append(f"401 without a Basic challenge ({challenge!r})")
        expected_log = f'err="server returned HTTP status {case.status} {STATUS_TEXT[case.status]}: {message}"'
        line = logged(case)[0]
        if expected_log not in line.replace('\\"', '"'):
            problems.append(f"Prometheus logged {line!r}, expected it to contain {expected_log!r}")
        failed = prometheus.remote_metric("prometheus_remote_storage_samples_failed_total", case.url)
        retried = prometheus.remote_metric("prometheus_remote_storage_samples_retried_total", case.url)
        if failed <= 0:
            problems.append("Prometheus counted no failed sample")
        if retried:
            problems.append(f"Prometheus retried {retried} samples of a permanent error")
        if problems:
            failures.append(f"{case.name} ({case.status} {message!r}): {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
    # Nothing reached the table through a refused queue.
    assert launcher.moto.records(DATABASE, TABLE) == []
