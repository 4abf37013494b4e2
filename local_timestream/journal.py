"""A local Timestream's data kept in a directory across restarts (`make run RUN_DATA=<dir>`).

`tables.json` holds the databases and tables (with their retention and magnetic-store
settings), rewritten whenever one is created, updated or deleted; `records/<region>/<database>/
<table>.jsonl` holds every record a WriteRecords call stored, one JSON object a line, appended
as they are stored. On start-up the tables are made again and the records replayed through the
tables' stores, so a point written twice (an upsert) ends with its highest version, as before.
The rules are not applied again on replay: what was accepted once stays, however old.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _backends() -> Any:
    from moto.timestreamwrite.models import timestreamwrite_backends

    return timestreamwrite_backends


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _records_path(self, region: str, database: str, table: str) -> Path:
        return self.directory / "records" / region / database / f"{table}.jsonl"

    def restore(self, account_id: str, store_of: Any) -> int:
        """Make the saved tables again in moto and replay their records; the record count."""
        path = self.directory / "tables.json"
        if not path.exists():
            return 0
        restored = 0
        for saved in json.loads(path.read_text()):
            backend = _backends()[account_id][saved["region"]]
            if saved["database"] not in backend.databases:
                backend.create_database(saved["database"], saved.get("kms_key_id"), [])
            if "table" not in saved:
                continue
            table = backend.create_table(saved["database"], saved["table"], saved.get("retention"), [],
                                         saved.get("magnetic"), None)
            records_path = self._records_path(saved["region"], saved["database"], saved["table"])
            if records_path.exists():
                with records_path.open() as lines:
                    records = [json.loads(line) for line in lines if line.strip()]
                store_of(table).restore(records)
                restored += len(records)
        return restored

    def save_tables(self, account_id: str) -> None:
        """Write the current databases and tables of every region."""
        saved: list[dict[str, Any]] = []
        backends = _backends()[account_id]
        for region in list(backends.keys()):  # the regions used so far
            backend = backends[region]
            for database in list(backend.databases.values()):
                entry = {"region": region, "database": database.name, "kms_key_id": database.kms_key_id}
                saved.append(entry)
                for table in list(database.tables.values()):
                    saved.append({**entry, "table": table.name, "retention": table.retention_properties,
                                  "magnetic": table.magnetic_store_write_properties})
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / "tables.json.tmp"
            temporary.write_text(json.dumps(saved, indent=1))
            temporary.replace(self.directory / "tables.json")

    def append(self, region: str, database: str, table: str, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(record) + "\n" for record in records)
        if not lines:
            return
        path = self._records_path(region, database, table)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as journal:
                journal.write(lines)
