"""List what the local Timestream (see scripts/run_local.py) has stored, one line per record.

    make records ARGS='--table metrics'
    make records ARGS='--database prometheus --table metrics --json'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


class NotRunning(Exception):
    """Nothing answers at the endpoint."""


def stored_records(endpoint: str, database: str, table: str) -> list[dict]:
    """Records of one table, read from moto's state dump."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=60) as response:
            state = json.load(response)
    except urllib.error.URLError as error:
        if isinstance(error.reason, ConnectionRefusedError):
            raise NotRunning(endpoint) from None
        raise
    for stored in state.get("timestreamwrite", {}).get("TimestreamTable", []):
        if stored.get("db_name") == database and stored.get("name") == table:
            return stored.get("records", [])
    raise SystemExit(f"no table {database}.{table} in the local Timestream at {endpoint}")


def format_record(record: dict) -> str:
    dimensions = ",".join(f'{d["Name"]}="{d["Value"]}"' for d in record.get("Dimensions", []))
    return f'{record["MeasureName"]}{{{dimensions}}} {record["MeasureValue"]} @{record["Time"]}'


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="List records stored in the local Timestream.")
    parser.add_argument("--endpoint", default=f"http://127.0.0.1:{os.environ.get('EMULATOR_PORT', '9202')}")
    parser.add_argument("--database", default="prometheus")
    parser.add_argument("--table", default="metrics")
    parser.add_argument("--json", action="store_true", help="print the records as stored")
    args = parser.parse_args(argv)
    try:
        records = stored_records(args.endpoint, args.database, args.table)
    except NotRunning:
        print(f"nothing answers at {args.endpoint}: start the local Timestream with `make run` "
              "(in another terminal) first", file=sys.stderr)
        return 1
    for record in records:
        print(json.dumps(record) if args.json else format_record(record))
    print(f"{len(records)} records in {args.database}.{args.table}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
