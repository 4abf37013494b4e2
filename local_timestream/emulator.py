"""Local Timestream for development and tests: moto's server, made to answer as Timestream does.

moto stores whatever WriteRecords is sent, drops `CommonAttributes`, accepts any credentials,
and answers `Query` only with results queued through its /moto-api. The patches below make a
local run refuse what AWS refuses and answer what AWS answers:

* WriteRecords: the call is checked as Timestream checks it (`local_timestream.rules`: names,
  record count, dimensions, sizes, value types, CommonAttributes merged), then each record
  against the table (`local_timestream.store`: the writable time range from the table's
  retention and magnetic-store setting, an existing point with a different value); answers
  are Timestream's: ValidationException (400) for the call, RejectedRecordsException (419)
  with RejectedRecords for single records, ResourceNotFoundException (404);
* Query: DESCRIBE and SELECT answered from the stored records (`local_timestream.query`);
  results queued through /moto-api still win, so moto's own mechanism keeps working;
* credentials, once `require_credentials` names the key pairs: every Timestream call must be
  SigV4-signed with one of them (`local_timestream.signature`), or gets AWS's 403.

Usable in-process (`install_patches()` before `mock_aws` or a ThreadedMotoServer) or as a
server: `python -m local_timestream --port 9202 --database prometheus --table metrics`.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local_timestream import rules
from local_timestream.journal import Journal
from local_timestream.query import EMULATOR, PAGE_ROWS, QueryEmulator
from local_timestream.rules import TimestreamError, merge_common_attributes
from local_timestream.signature import check_signature
from local_timestream.sql import (
    QueryError,
    from_milliseconds,
    regexp_like,
    register_functions,
    timestream_time,
)
from local_timestream.store import TableStore

__all__ = [
    "DEFAULT_ACCESS_KEY_ID", "DEFAULT_SECRET_ACCESS_KEY", "EMULATOR", "PAGE_ROWS", "QueryEmulator",
    "from_milliseconds", "install_patches", "merge_common_attributes", "record_time_ms", "regexp_like",
    "register_functions", "require_credentials", "timestream_time",
]

# The one key pair `make run` prints and a local run accepts unless told another.
DEFAULT_ACCESS_KEY_ID = "AKIALOCALEXAMPLE0000"
DEFAULT_SECRET_ACCESS_KEY = "local-secret-key"
ACCESS_KEY_ENV, SECRET_KEY_ENV = "LOCAL_TIMESTREAM_ACCESS_KEY_ID", "LOCAL_TIMESTREAM_SECRET_ACCESS_KEY"

LOG = logging.getLogger("local_timestream")

# Access key id -> secret access key; None: any credentials are accepted (moto's default).
_credentials: dict[str, str] | None = None
# Where the data is kept across restarts; None: in memory only.
_journal: Journal | None = None
_TABLE_CHANGES = frozenset({"CreateDatabase", "UpdateDatabase", "DeleteDatabase",
                            "CreateTable", "UpdateTable", "DeleteTable"})
_stores_lock = threading.Lock()


def require_credentials(pairs: Mapping[str, str] | None) -> dict[str, str] | None:
    """Accept only calls signed with one of `pairs` (access key id -> secret); None: any.
    Returns the setting it replaces, so a caller can put it back."""
    global _credentials
    previous, _credentials = _credentials, (dict(pairs) if pairs is not None else None)
    return previous


def record_time_ms(record: Mapping[str, Any]) -> int:
    """A record's Time in milliseconds (below the millisecond truncated), from its TimeUnit."""
    return rules.time_ns(record) // 1_000_000


def store_of(table: Any) -> TableStore:
    """The store of a moto TimestreamTable, made on first use from what it already holds."""
    store = table.__dict__.get("_local_store")
    if store is None:
        with _stores_lock:
            store = table.__dict__.get("_local_store")
            if store is None:
                store = TableStore(table.db_name, table.name, table.records)
                table._local_store = store
    return store


def _moto_error(error: TimestreamError) -> Exception:
    """The moto exception that answers with `error`'s status and JSON body."""
    from moto.core.exceptions import JsonRESTError

    answer = JsonRESTError(error.code, error.message)
    answer.code = error.status
    answer.description = json.dumps({"__type": error.code, "message": error.message, **error.fields})
    return answer


# --------------------------------------------------------------------------------------------
# moto patches


def install_patches() -> None:
    """Patch moto (idempotent): see the module docstring."""
    from moto.timestreamwrite.exceptions import ResourceNotFound
    from moto.timestreamwrite.models import TimestreamWriteBackend
    from moto.timestreamwrite.responses import TimestreamWriteResponse

    if getattr(TimestreamWriteResponse, "_local_timestream_patched", False):
        return
    TimestreamWriteResponse._local_timestream_patched = True
    ResourceNotFound.code = 404  # Timestream's status for it; moto answers 400
    TimestreamWriteBackend.write_records = _backend_write_records
    TimestreamWriteResponse.write_records = _write_records
    _patch_names_on_create(TimestreamWriteResponse)
    _patch_authentication(TimestreamWriteResponse)
    _patch_query(TimestreamWriteResponse)
    _patch_call_log(TimestreamWriteResponse)


def _backend_write_records(self: Any, database_name: str, table_name: str,
                           records: list[dict[str, Any]]) -> Any:
    """TimestreamWriteBackend.write_records: store checked records as Timestream would."""
    table = self.describe_table(database_name, table_name)  # ResourceNotFoundException
    now_ms = int(time.time() * 1000)
    earliest, latest, store = rules.writable_range_ms(table.retention_properties,
                                                      table.magnetic_store_write_properties, now_ms)
    memory_start = rules.memory_store_start_ms(table.retention_properties, now_ms)
    return store_of(table).write(records, earliest, latest, store, memory_start)


def _write_records(self: Any) -> str:
    """TimestreamWriteResponse.write_records, answering as Timestream does."""
    database, table = self._get_param("DatabaseName"), self._get_param("TableName")
    try:
        records = rules.check_request(database, table, self._get_param("CommonAttributes"),
                                      self._get_param("Records"))
        outcome = self.timestreamwrite_backend.write_records(database, table, records)
        written = len(records) - len(outcome.rejected)
        if _journal is not None:
            refused = {rejection["RecordIndex"] for rejection in outcome.rejected}
            stored = (record for index, record in enumerate(records) if index not in refused)
            _journal.append(self.region, database, table, stored)
        self._local_log_detail = f"{database}.{table}: {written} of {len(records)} records stored"
        if outcome.rejected:
            first = outcome.rejected[0]
            self._local_log_detail += f"; rejected: record {first['RecordIndex']}: {first['Reason']}"
            raise rules.rejected_records(outcome.rejected)
    except TimestreamError as error:
        raise _moto_error(error) from None
    return json.dumps({"RecordsIngested": {
        "Total": written, "MemoryStore": outcome.memory_store, "MagneticStore": outcome.magnetic_store,
    }})


def _patch_names_on_create(response_class: Any) -> None:
    """CreateDatabase and CreateTable refuse the names Timestream refuses."""
    create_database, create_table = response_class.create_database, response_class.create_table

    def checked(original: Any, *params: str) -> Any:
        def answer(self: Any) -> str:
            try:
                for param in params:
                    rules.check_resource_name(self._get_param(param), param[0].lower() + param[1:])
            except TimestreamError as error:
                raise _moto_error(error) from None
            return original(self)

        return answer

    response_class.create_database = checked(create_database, "DatabaseName")
    response_class.create_table = checked(create_table, "DatabaseName", "TableName")


def _patch_authentication(response_class: Any) -> None:
    """Every Timestream call is checked against the required key pairs, when there are some."""
    moto_check = response_class._authenticate_and_authorize_normal_action

    def authenticate(self: Any, *args: Any, **kwargs: Any) -> None:
        if _credentials is None:
            return moto_check(self, *args, **kwargs)
        body = self.raw_body if isinstance(self.raw_body, bytes) else (self.raw_body or "").encode()
        try:
            check_signature(self.method, self.uri, dict(self.headers.items()), body, _credentials)
        except TimestreamError as error:
            raise _moto_error(error) from None
        return None

    response_class._authenticate_and_authorize_normal_action = authenticate


def _patch_query(response_class: Any) -> None:
    from moto.core.exceptions import JsonRESTError

    queued_query = response_class.query

    def query(self: Any) -> str:
        if self.timestreamquery_backend.query_result_queue:
            return queued_query(self)  # results queued through /moto-api, moto's own way
        databases = self.timestreamwrite_backend.databases

        def stores_of(database: str) -> dict[str, TableStore] | None:
            stored = databases.get(database)
            return {name: store_of(table) for name, table in stored.tables.items()} if stored else None

        try:
            result = EMULATOR.query(self._get_param("QueryString"), self._get_param("NextToken"), stores_of)
        except QueryError as error:
            raise JsonRESTError(error.code, error.message) from None
        return json.dumps(result)

    response_class.query = query


def _patch_call_log(response_class: Any) -> None:
    """One log line per Timestream call: the operation, the status, what it did or why not."""
    call_action = response_class.call_action

    def logged(self: Any) -> Any:
        status, headers, body = call_action(self)
        if _journal is not None and int(status) == 200 and self._get_action() in _TABLE_CHANGES:
            _journal.save_tables(self.current_account)
        if LOG.isEnabledFor(logging.INFO):
            line = f"{self._get_action()} {status}"
            detail = self.__dict__.get("_local_log_detail")
            if detail:
                line += f" {detail}"
            elif int(status) >= 400:
                line += f" {str(body)[:300]}"
            LOG.info(line)
        return status, headers, body

    response_class.call_action = logged


# --------------------------------------------------------------------------------------------
# the server


def create_tables(endpoint: str, database: str, tables: list[str], access_key_id: str, secret_access_key: str,
                  region: str = "us-east-1") -> None:
    """Create the database and tables that do not exist yet (kept data may hold them already:
    moto's CreateDatabase would replace a database, tables and all)."""
    import boto3

    client = boto3.client("timestream-write", region_name=region, endpoint_url=endpoint,
                          aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
    if database not in {db["DatabaseName"] for db in client.list_databases()["Databases"]}:
        client.create_database(DatabaseName=database)
    existing = {table["TableName"] for table in client.list_tables(DatabaseName=database)["Tables"]}
    for table in tables:
        if table not in existing:
            client.create_table(DatabaseName=database, TableName=table)


def _serve(host: str, port: int) -> Any:
    """moto's WSGI app on host:port, serving from a thread. Binding happens here, in the caller's
    thread, so a taken port is an OSError now rather than a server thread that never starts."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    server = make_server(host, port, DomainDispatcherApplication(create_backend_app), threaded=True,
                         request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, name="local-timestream", daemon=True).start()
    return server


def main(argv: list[str]) -> int:
    global _journal
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9202)
    parser.add_argument("--database", help="database to create at start-up")
    parser.add_argument("--table", action="append", default=[], help="table to create (repeatable)")
    parser.add_argument("--access-key-id", default=os.environ.get(ACCESS_KEY_ENV) or DEFAULT_ACCESS_KEY_ID,
                        help=f"the access key id calls must be signed with (env {ACCESS_KEY_ENV})")
    parser.add_argument("--secret-access-key",
                        default=os.environ.get(SECRET_KEY_ENV) or DEFAULT_SECRET_ACCESS_KEY,
                        help=f"its secret access key (env {SECRET_KEY_ENV})")
    parser.add_argument("--log-file", type=Path, help="where the log goes (default: stderr)")
    parser.add_argument("--data-dir", type=Path, help="keep the data in this directory across restarts "
                        "(default: in memory only)")
    args = parser.parse_args(argv)

    handler: logging.Handler = (logging.FileHandler(args.log_file) if args.log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # werkzeug's access log (a coloured line per request) would drown the one line per call above.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    install_patches()
    require_credentials({args.access_key_id: args.secret_access_key})
    if args.data_dir:
        from moto.core import DEFAULT_ACCOUNT_ID

        _journal = Journal(args.data_dir)
        restored = _journal.restore(DEFAULT_ACCOUNT_ID, store_of)
        LOG.info("data kept in %s: %d records restored", args.data_dir, restored)
    try:
        server = _serve(args.host, args.port)
    except OSError as error:
        taken = error.errno == errno.EADDRINUSE
        print(f"local Timestream: cannot listen on {args.host}:{args.port}: "
              f"{'the port is taken' if taken else error.strerror}", file=sys.stderr, flush=True)
        return 2
    endpoint = f"http://{args.host}:{args.port}"
    if args.database:
        create_tables(endpoint, args.database, args.table, args.access_key_id, args.secret_access_key)
    LOG.info("listening on %s, accepting calls signed with access key id %s", endpoint, args.access_key_id)
    print(f"local Timestream listening on {endpoint}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0
