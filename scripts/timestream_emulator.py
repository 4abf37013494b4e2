"""Local Timestream for development and tests: moto's server, plus what moto leaves out.

moto stores WriteRecords' `Records` as sent and ignores `CommonAttributes`; Timestream merges
them into every record. The patch below does that merge so that what a local run stores is
what Timestream would store. Usable in-process (`install_patches()` before `mock_aws`) or as a
server: `python scripts/timestream_emulator.py --port 9202 --database prometheus --table metrics`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def merge_common_attributes(common: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Timestream semantics: record attributes win; dimensions of both are combined."""
    merged = {**common, **record}
    if "Dimensions" in common or "Dimensions" in record:
        merged["Dimensions"] = list(common.get("Dimensions", [])) + list(record.get("Dimensions", []))
    return merged


def install_patches() -> None:
    from moto.timestreamwrite.responses import TimestreamWriteResponse

    if getattr(TimestreamWriteResponse, "_common_attributes_patched", False):
        return

    def write_records(self: Any) -> str:
        database_name = self._get_param("DatabaseName")
        table_name = self._get_param("TableName")
        common = self._get_param("CommonAttributes") or {}
        records = [merge_common_attributes(common, record) for record in self._get_param("Records")]
        self.timestreamwrite_backend.write_records(database_name, table_name, records)
        count = len(records)
        return json.dumps({"RecordsIngested": {"Total": count, "MemoryStore": count, "MagneticStore": 0}})

    TimestreamWriteResponse.write_records = write_records
    TimestreamWriteResponse._common_attributes_patched = True


def create_tables(endpoint: str, database: str, tables: list[str], region: str = "us-east-1") -> None:
    import boto3

    client = boto3.client(
        "timestream-write",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    client.create_database(DatabaseName=database)
    for table in tables:
        client.create_table(DatabaseName=database, TableName=table)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9202)
    parser.add_argument("--database", help="database to create at start-up")
    parser.add_argument("--table", action="append", default=[], help="table to create (repeatable)")
    args = parser.parse_args(argv)

    import threading

    from moto.server import ThreadedMotoServer

    install_patches()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    if args.database:
        create_tables(f"http://{args.host}:{args.port}", args.database, args.table)
    print(f"local Timestream listening on http://{args.host}:{args.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
