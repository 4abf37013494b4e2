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
from .senders import FAST_QUEUE, metric_total, routing_relabel
from .stack import AccessKey, new_access_key

DATABASE = "e2e"
TABLE = "misconfig"
MISSING_TABLE = "no_such_table"
MISROUTED_TABLE = "misrouted"
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


def test_a_remote_write_url_ending_in_read_is_refused_and_prometheus_counts_nothing_sent(launcher: Launcher) -> None:
    """The remote_write URL ends in /read: Prometheus 2.42's write, with its own headers, gets a
    400 naming /write, logs it, drops the batch without retrying and counts nothing as sent; the
    connector runs no Timestream query for it. With default destinations set (as `make run` sets
    them), each series would read as a query of the default table without matchers, and the
    answer would be 200."""
    launcher.moto.create_table(DATABASE, MISROUTED_TABLE)
    timestream = launcher.timestream_proxy()
    connector = launcher.connector(timestream.url, DEFAULT_DATABASE=DATABASE, DEFAULT_TABLE=MISROUTED_TABLE)
    tap = launcher.proxy(connector.url)
    url = f"{tap.url}/read"
    prometheus = launcher.prometheus()
    prometheus.write_config(
        scrape_configs=[prometheus.self_scrape("prometheus")],
        remote_write=[{
            "url": url,
            "name": "misrouted",
            "remote_timeout": "5s",
            "basic_auth": launcher.basic_auth(),
            "queue_config": FAST_QUEUE,
        }],
    )
    prometheus.start()

    def logged() -> list[str]:
        return [line for line in prometheus.log_lines('msg="non-recoverable error"') if f"url={url} " in line]

    wait_until("Prometheus to log the refused write", logged, timeout=40, interval=0.5)
    answers = [ex for ex in tap.snapshot() if ex.status]
    assert answers and {ex.status for ex in answers} == {400}, [(ex.status, ex.response_body) for ex in answers]
    assert all(ex.request_headers.get("X-Prometheus-Remote-Write-Version") == "0.1.0" for ex in answers)
    message = answers[0].response_body.decode().rstrip("\n")
    assert "\n" not in message and "POST /write" in message, message
    assert launcher.aws_key.secret_access_key not in message
    expected_log = f'err="server returned HTTP status 400 Bad Request: {message}"'
    assert expected_log in logged()[0].replace('\\"', '"'), logged()[0]
    # Every sample Prometheus tried to send counts as failed, none as sent (samples_total counts
    # attempts; a batch in flight is counted in it before its answer, hence the wait).
    def all_failed() -> bool:
        samples = prometheus.metrics()
        failed = metric_total(samples, "prometheus_remote_storage_samples_failed_total", url=url)
        return 0 < failed == metric_total(samples, "prometheus_remote_storage_samples_total", url=url)

    wait_until("every sample sent to count as failed", all_failed, timeout=20, interval=0.5)
    assert prometheus.remote_metric("prometheus_remote_storage_samples_retried_total", url) == 0
    assert [ex.operation for ex in timestream.snapshot()] == [], "the connector called Timestream"
    assert launcher.moto.records(DATABASE, MISROUTED_TABLE) == []
