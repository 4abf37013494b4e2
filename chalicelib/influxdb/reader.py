"""Remote read: answer a Prometheus ReadRequest from InfluxDB, one QueryResult per query, in order.

Each query goes through the steps named after their modules:

1. matchers: the query's label matchers (`matchers_from_pb`);
2. destinations: the one database it reads, from the database label's matchers or
   DEFAULT_DATABASE, and the routing labels to echo on its series (`select_destination`; the
   table label selects nothing here, as nothing is stored under it);
3. query_influxql: the InfluxQL SELECT, or none when the query provably selects nothing;
4. client + read_results: one GET /query, its answer grouped into series within the response
   size budget (`settings.max_read_response_bytes`).

InfluxDB 1.x's own /api/v1/prom/read takes one query per request and leaves regexes
unanchored; this answers every query of the request, anchored as PromQL anchors them.
Only the SAMPLES response type is served (what Prometheus's remote read client accepts).
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib.config import Settings
from chalicelib.destinations import select_destination
from chalicelib.errors import BadRequest, ConnectorError
from chalicelib.influxdb.client import InfluxDBClient, InfluxDBError, InfluxDBUnreachable
from chalicelib.influxdb.query_influxql import build_query
from chalicelib.influxdb.read_results import series_from_answer
from chalicelib.influxdb.writer import failure_of
from chalicelib.logs import log_event
from chalicelib.matchers import matchers_from_pb
from chalicelib.prompb import prometheus_remote_pb2 as pb
from chalicelib.read_budget import ResponseBudget


def read(request: Any, settings: Settings, client: InfluxDBClient, authorization: str | None) -> Any:
    """Answer a prompb ReadRequest: one QueryResult per query, in order. Raises BadRequest,
    Unauthorized, Forbidden, NotFound, PayloadTooLarge or ServiceUnavailable."""
    accepted = list(request.accepted_response_types)
    if accepted and pb.ReadRequest.SAMPLES not in accepted:
        raise BadRequest("only the SAMPLES remote-read response type is supported")
    budget = ResponseBudget(settings.max_read_response_bytes)
    response = pb.ReadResponse()
    for query in request.queries:
        budget.charge_result()
        response.results.add().timeseries.extend(_answer(query, settings, client, authorization, budget))
    return response


def _answer(
    query: Any, settings: Settings, client: InfluxDBClient, authorization: str | None, budget: ResponseBudget
) -> list[Any]:
    matchers = matchers_from_pb(query)
    target = select_destination(matchers, settings, table_required=False, timestream_names=False)
    if target is None:
        return []
    database = target.destination.database
    routing = (settings.database_label, settings.table_label)
    statement = build_query(matchers, query.start_timestamp_ms, query.end_timestamp_ms, routing)
    if statement is None:
        log_event(logging.INFO, "read_query", database=database, sent=False, series=0)
        return []
    try:
        body = client.query(database, statement, authorization)
    except (InfluxDBError, InfluxDBUnreachable) as error:
        raise _query_failure(error, database) from None
    series = series_from_answer(body, database, target.echo, budget)
    log_event(
        logging.INFO, "read_query", database=database, sent=True, series=len(series),
        samples=sum(len(s.samples) for s in series), response_bytes=budget.used,
    )
    return series


def _query_failure(error: InfluxDBError | InfluxDBUnreachable, database: str) -> ConnectorError:
    """A failed /query as the connector's error: as for writes, except that InfluxDB's 400 is
    a query it could not run (its message says why), not rejected points."""
    if isinstance(error, InfluxDBError) and error.status == 400:
        return BadRequest(f"InfluxDB could not run the query on database {database!r}: {error.message}")
    return failure_of(error, database)
