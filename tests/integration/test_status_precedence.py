"""One request, several kinds of failure: the status Prometheus sees is the one that loses the
least data. Transient beats everything (503: Prometheus resends, and the parts that failed for
good fail again, so nothing is lost by retrying), then refused credentials (403), then a missing
database or table (404), then refused series or records (400). Whatever fails, the series beside
it are written."""

import pytest

from tests.helpers import encode, now_ms, write_headers, write_request
from tests.integration.conftest import stored

DB, TABLE = "prometheusDatabaseLabel", "prometheusTableLabel"


def routed(table, ts):
    return ([("__name__", "up"), ("job", table), (DB, "prometheus"), (TABLE, table)], [(1.0, ts)])


# Each failure: the series that meets it, the fault injected for it (if any), what the answer names
# when it wins.
FAILURES = {
    "refused": (lambda ts: ([("job", "no-name")], [(1.0, ts)]), None, "missing_metric_name=1"),
    "missing": (lambda ts: routed("absent", ts), None, "database or table prometheus.absent does not exist (ResourceNotFoundException"),
    "forbidden": (lambda ts: routed("nodes", ts), ("nodes", "AccessDeniedException", 403),
                  "refused the credentials or the action on prometheus.nodes (AccessDeniedException)"),
    "throttled": (lambda ts: routed("apps", ts), ("apps", "ThrottlingException", 400),
                  "busy or unavailable on prometheus.apps, retry later (ThrottlingException"),
}


@pytest.mark.parametrize(
    ("failures", "status", "winner"),
    [
        (("refused", "missing"), 404, "missing"),
        (("refused", "forbidden"), 403, "forbidden"),
        (("missing", "forbidden"), 403, "forbidden"),
        (("refused", "throttled"), 503, "throttled"),
        (("missing", "throttled"), 503, "throttled"),
        (("forbidden", "throttled"), 503, "throttled"),
        (("refused", "missing", "forbidden", "throttled"), 503, "throttled"),
    ],
    ids=lambda value: "+".join(value) if isinstance(value, tuple) else str(value),
)
def test_the_status_of_mixed_failures_is_the_one_that_loses_least(http, timestream, fail_writes_to, failures,
                                                                   status, winner):
    ts = now_ms()
    series = [routed("metrics", ts)]  # the healthy neighbour
    for failure in failures:
        make_series, fault, _ = FAILURES[failure]
        series.append(make_series(ts))
        if fault is not None:
            fail_writes_to(*fault)

    response = http.post("/write", headers=write_headers(), body=encode(write_request(series)))

    assert response.status_code == status, response.body
    assert FAILURES[winner][2] in response.body.decode()
    assert [record["MeasureValue"] for record in stored(timestream)] == ["1.0"]
