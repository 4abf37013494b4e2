"""List what the local Timestream (see scripts/run_local.py) has stored, one line per record.

    make records ARGS='--table metrics'
    make records ARGS='--database prometheus --table metrics --json'
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


# Names Prometheus's text format prints bare; any other (UTF-8 names, as Prometheus 3 allows) it
# prints quoted, the metric name then inside the braces.
_CLASSIC_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_CLASSIC_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def quoted(text: str) -> str:
    """A string as Prometheus's text format quotes it: backslash, double quote and line feed
    escaped, nothing else, so a value with a quote in it cannot be read as two labels."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def label_name(name: str) -> str:
    return name if _CLASSIC_LABEL_NAME.fullmatch(name) else quoted(name)


def format_record(record: dict) -> str:
    """`name{labels} value @time`, as Prometheus prints a sample; a MULTI record's measures as
    `measure=value` pairs (text ones quoted) in place of the value."""
    name = record["MeasureName"]
    labels = [f'{label_name(d["Name"])}={quoted(d["Value"])}' for d in record.get("Dimensions", [])]
    if not _CLASSIC_METRIC_NAME.fullmatch(name):
        labels.insert(0, quoted(name))
        name = ""
    if "MeasureValues" in record:
        value = " ".join(f'{m["Name"]}={m["Value"] if m.get("Type") != "VARCHAR" else quoted(m["Value"])}'
                         for m in record["MeasureValues"])
    else:
        value = record["MeasureValue"]
    return f'{name}{{{",".join(labels)}}} {value} @{record["Time"]}'


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
