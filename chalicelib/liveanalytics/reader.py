"""Remote read: answer a Prometheus ReadRequest from Timestream, one QueryResult per query, in order.

Each query goes through the steps named after their modules:

1. matchers: the query's label matchers (`matchers_from_pb`);
2. destinations: the one table it reads, from the routing-label matchers or the defaults, and the
   routing labels to echo on its series (`select_destination`);
3. query_client: that table's dimension columns, only when a matcher names an ordinary label
   (DESCRIBE, cached per caller);
4. query_sql: the SQL, or none when the query provably selects nothing (then Timestream is
   not asked);
5. query_client + read_results: the result pages, grouped into series within the response
   size budget (`settings.max_read_response_bytes`).

Only the SAMPLES response type is served (what Prometheus's remote read client accepts).
"""

from __future__ import annotations

import logging
from typing import Any

from chalicelib.config import Settings
from chalicelib.destinations import select_destination
from chalicelib.errors import BadRequest
from chalicelib.liveanalytics.query_client import ColumnsCache, QueryClient
from chalicelib.liveanalytics.query_sql import build_query
from chalicelib.liveanalytics.read_results import ResponseBudget, series_from_pages
from chalicelib.liveanalytics.records import NAME_ONLY_DIMENSION
from chalicelib.logs import log_event
from chalicelib.matchers import METRIC_NAME_LABEL, matchers_from_pb
from chalicelib.prompb import prometheus_remote_pb2 as pb


def read(
    request: Any,
    settings: Settings,
    query_client: Any,
    columns_cache: ColumnsCache,
    *,
    cache_scope: str = "",
) -> Any:
    """Answer a prompb ReadRequest: one QueryResult per query, in order.

    `query_client` is a botocore timestream-query client signed with the caller's credentials.
    `columns_cache` outlives requests; `cache_scope` (for example the caller's access key id)
    keeps one caller's view of a table's columns from deciding another caller's query.
    Raises BadRequest, Forbidden, NotFound, PayloadTooLarge or ServiceUnavailable.
    """
    _check_response_types(request)
    client = QueryClient(query_client, columns_cache, cache_scope)
    budget = ResponseBudget(settings.max_read_response_bytes)
    response = pb.ReadResponse()
    for query in request.queries:
        budget.charge_result()
        response.results.add().timeseries.extend(_answer(query, settings, client, budget))
    return response


def _check_response_types(request: Any) -> None:
    accepted = list(request.accepted_response_types)
    if accepted and pb.ReadRequest.SAMPLES not in accepted:
        raise BadRequest("only the SAMPLES remote-read response type is supported")


def _answer(query: Any, settings: Settings, client: QueryClient, budget: ResponseBudget) -> list[Any]:
    matchers = matchers_from_pb(query)
    target = select_destination(matchers, settings)
    if target is None:
        return []
    database, table = target.destination
    routing = (settings.database_label, settings.table_label)
    # The dimension the connector adds to name-only series is no label of any series: a matcher
    # on it is decided like one on a label the table never stored (against "").
    not_labels = {METRIC_NAME_LABEL, NAME_ONLY_DIMENSION[0], *routing}
    # Only matchers on ordinary labels need the table's columns; skip DESCRIBE otherwise.
    wanted = {m.name for m in matchers if m.name not in not_labels}
    dimensions = frozenset()
    if wanted:
        dimensions = client.dimensions(database, table, wanted) - {NAME_ONLY_DIMENSION[0]}
    sql = build_query(
        database, table, matchers, query.start_timestamp_ms, query.end_timestamp_ms, dimensions, routing
    )
    if sql is None:
        log_event(logging.INFO, "read_query", database=database, table=table, sent=False, series=0)
        return []
    series = series_from_pages(client.pages(sql, database, table), target.echo, budget)
    log_event(
        logging.INFO, "read_query", database=database, table=table, sent=True, series=len(series),
        samples=sum(len(s.samples) for s in series), response_bytes=budget.used,
    )
    return series
