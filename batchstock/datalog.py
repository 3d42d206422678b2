"""The data log: every file batchstock produced, and every download of one.

`inbox.register_file` writes a produced file's row and manifest line. This module reads
the log back (for `batchstock log` and the data-log page of `serve`), records downloads
and delivery outcomes, and opens the ledger for short visits from commands that must wait
while `process` or `watch` has it open. Downloads live in `download_entries`; the
`downloads` view and the download columns of the `data_log` view expose them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import duckdb

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.core import LedgerBusyError
from batchstock.inbox import append_line, now_in_zone

log = logging.getLogger(__name__)

LEDGER_WAIT_SECONDS = 15.0


def connect_when_free(workspace: Workspace,
                      wait_seconds: float = LEDGER_WAIT_SECONDS) -> duckdb.DuckDBPyConnection:
    """Open the ledger for writing, waiting while another process has it open.

    DuckDB lets one process at a time open a ledger file, and `watch` keeps it open only
    while a pass runs. Raises LedgerBusyError when the ledger is still held after `wait_seconds`.
    """
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return ledger.connect(workspace.ledger_path)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise LedgerBusyError(
                    f"the ledger {workspace.ledger_path} is held by another process (such "
                    "as `batchstock watch` in the middle of a pass); try again in a moment"
                ) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@dataclass
class DataLogEntry:
    """One row of the `data_log` view. `parameters` is the decoded JSON object.

    `finished_at`, `size`, `sha256`, `row_count`, `ledger_position` and `delivery_status`
    are None when the producer did not record them.
    """

    entry_id: int
    kind: str
    requested_by: str
    requested_at: dt.datetime
    finished_at: dt.datetime | None
    parameters: dict[str, Any]
    path: str
    size: int | None
    sha256: str | None
    row_count: int | None
    ledger_position: int | None
    delivery_status: str | None
    download_count: int = 0
    last_downloaded_at: dt.datetime | None = None

    @property
    def includes_costs(self) -> bool:
        """Whether the file shows cost prices: exports record it in their parameters."""
        return bool(self.parameters.get("cost_columns", False))

    @property
    def file_name(self) -> str:
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]


_ENTRY_COLUMNS = (
    "entry_id, kind, requested_by, requested_at, finished_at, parameters, path, size, sha256, "
    "row_count, ledger_position, delivery_status, download_count, last_downloaded_at"
)


def _entry(row: tuple) -> DataLogEntry:
    values = list(row)
    try:
        values[5] = json.loads(values[5]) if values[5] else {}
    except json.JSONDecodeError:
        values[5] = {"text": values[5]}
    return DataLogEntry(*values)


@dataclass
class EntryFilter:
    """Criteria for listing data-log entries; None or empty means no restriction.

    `date_from` and `date_to` bound the requested-at date, both days included.
    `users` limits the list to entries these users requested.
    """

    kind: str | None = None
    user: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    users: frozenset[str] | None = None
    limit: int | None = None


def list_entries(con: duckdb.DuckDBPyConnection, chosen: EntryFilter) -> list[DataLogEntry]:
    """Return data-log entries matching `chosen`, newest first."""
    conditions, parameters = [], []
    if chosen.kind:
        conditions.append("kind = ?")
        parameters.append(chosen.kind)
    if chosen.user:
        conditions.append("requested_by = ?")
        parameters.append(chosen.user)
    if chosen.users is not None:
        conditions.append("list_contains(?, requested_by)")
        parameters.append(sorted(chosen.users))
    if chosen.date_from:
        conditions.append("requested_at >= ?")
        parameters.append(dt.datetime.combine(chosen.date_from, dt.time()))
    if chosen.date_to:
        conditions.append("requested_at < ?")
        parameters.append(dt.datetime.combine(chosen.date_to + dt.timedelta(days=1), dt.time()))
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    limit = f"LIMIT {int(chosen.limit)}" if chosen.limit else ""
    rows = con.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM data_log {where} "
        f"ORDER BY requested_at DESC, entry_id DESC {limit}",
        parameters,
    ).fetchall()
    return [_entry(row) for row in rows]


def get_entry(con: duckdb.DuckDBPyConnection, entry_id: int) -> DataLogEntry | None:
    rows = con.execute(
        f"SELECT {_ENTRY_COLUMNS} FROM data_log WHERE entry_id = ?", [entry_id]
    ).fetchall()
    return _entry(rows[0]) if rows else None


def list_kinds_and_users(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str]]:
    """Return the distinct kinds and requesters in the data log, sorted, for filter menus."""
    kinds = [r[0] for r in con.execute(
        "SELECT DISTINCT kind FROM data_log_entries ORDER BY kind").fetchall()]
    users = [r[0] for r in con.execute(
        "SELECT DISTINCT requested_by FROM data_log_entries ORDER BY requested_by").fetchall()]
    return kinds, users


def record_download(workspace: Workspace, con: duckdb.DuckDBPyConnection, entry_id: int,
                    user: str) -> int:
    """Record that `user` downloaded the file of data-log entry `entry_id`; return its id.

    The download is written to the ledger and appended to the outbox manifest.
    """
    now = now_in_zone(workspace)
    download_no = ledger.next_number(con, "download_entries", "download_no")
    con.execute("INSERT INTO download_entries VALUES (?, ?, ?, ?)",
                [download_no, entry_id, user, now])
    append_line(workspace.manifest_path, json.dumps(
        {"event": "download", "id": entry_id, "download": download_no, "user": user,
         "time": now.isoformat()}
    ))
    log.info("download %d of data-log entry %d by %s", download_no, entry_id, user)
    return download_no


def set_delivery_status(workspace: Workspace, con: duckdb.DuckDBPyConnection, entry_id: int,
                        status: str) -> None:
    """Store how a file's email went, in the ledger and as a manifest line."""
    con.execute("UPDATE data_log_entries SET delivery_status = ? WHERE entry_no = ?",
                [status, entry_id])
    append_line(workspace.manifest_path, json.dumps(
        {"event": "delivery", "id": entry_id, "delivery_status": status,
         "time": now_in_zone(workspace).isoformat()}
    ))
