"""Claim records: the recorded state of each file between its claim and its finish.

A file passes through these states. It has *arrived* while it sits in the inbox. It is
*claimed* when it is renamed into `.batchstock/claimed/` and its claim record is written
to `.batchstock/journal/<claimed name>.json`. The record has the file's SHA-256 and the
batch id that the ledger will give its batch: batch ids are `max + 1`, and only the
process holding the inbox lock and the ledger's write lock inserts batches. It is
*applied*, *rejected*, a *duplicate* or *no change* once the ledger committed its batch,
and the record then also names the result workbook and where the original goes. It is
*finished* when the result is written, the original moved, and the data log and manifest
hold the result. The record is then deleted.

Every record is written to a temporary name, flushed and renamed, so a crash leaves the
old state or the new one. After a crash, `find_committed_batch` tells whether the ledger
committed the batch before the record caught up: the batches row with the expected id, the
same content and the same file. The next run then rebuilds the result from the ledger
(`rebuild_result`) instead of processing the file again, so a batch whose result was
lost gets its "applied" result and is never reported as a duplicate of itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.core import BatchResult, Note, OperationSummary, Problem

log = logging.getLogger(__name__)

SEPARATOR = "__"
CLAIMED = "claimed"


@dataclass
class ClaimRecord:
    """The state of one claimed file. Paths are relative to the workspace root.

    `state` is CLAIMED until the ledger committed the batch, then the batch's status.
    `result_path` and `original_path` are chosen once, before anything is written there,
    so that a run that finishes an interrupted one writes to the same places.
    """

    claim: str
    submitter: str
    name: str
    sha256: str
    state: str
    expected_batch_id: int
    claimed_at: str
    batch_id: int | None = None
    result_path: str | None = None
    original_path: str | None = None

    @property
    def display_name(self) -> str:
        return f"inbox/{self.submitter}/{self.name}"


def claimed_folder(workspace: Workspace) -> Path:
    return workspace.state / "claimed"


def journal_folder(workspace: Workspace) -> Path:
    return workspace.state / "journal"


def parse_claimed(name: str) -> tuple[str, str]:
    """Return (submitter, original file name) of a claimed file's name."""
    _, submitter, original = name.split(SEPARATOR, 2)
    return submitter, original


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, and rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries, so that a rename in it survives a power failure."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_record(workspace: Workspace, record: ClaimRecord) -> None:
    path = journal_folder(workspace) / f"{record.claim}.json"
    write_atomically(path, json.dumps(dataclasses.asdict(record), indent=1).encode("utf-8"))


def read_record(workspace: Workspace, claim: str) -> ClaimRecord | None:
    """Return the record of a claimed file, or None when there is none or it is unreadable."""
    path = journal_folder(workspace) / f"{claim}.json"
    try:
        return ClaimRecord(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as error:
        log.warning("ignoring unreadable claim record %s: %s", path.name, error)
        return None


def remove_record(workspace: Workspace, claim: str) -> None:
    """Delete a finished file's record: from here on the ledger and data log describe it."""
    (journal_folder(workspace) / f"{claim}.json").unlink(missing_ok=True)
    sync_folder(journal_folder(workspace))


def start_record(workspace: Workspace, con, claim: str, sha256: str,
                 claimed_at: dt.datetime) -> ClaimRecord:
    """Write the CLAIMED record of a file about to be processed and return it."""
    submitter, name = parse_claimed(claim)
    record = ClaimRecord(
        claim=claim, submitter=submitter, name=name, sha256=sha256, state=CLAIMED,
        expected_batch_id=ledger.next_number(con, "batches", "batch_id"),
        claimed_at=claimed_at.isoformat(),
    )
    write_record(workspace, record)
    return record


def remove_stale_temporaries(workspace: Workspace) -> None:
    """Delete record files half-written by a crashed run; call it holding the workspace lock."""
    folder = journal_folder(workspace)
    if folder.is_dir():
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def pending_claims(workspace: Workspace) -> list[str]:
    """Names of claimed files an earlier run did not finish, oldest claim first.

    A claim counts while its file sits in the claimed folder or its record exists: the
    record outlives the file between moving the original and registering the result.
    """
    names = set()
    folder = claimed_folder(workspace)
    if folder.is_dir():
        names.update(p.name for p in folder.iterdir()
                     if p.is_file() and SEPARATOR in p.name and not p.name.startswith("."))
    journal = journal_folder(workspace)
    if journal.is_dir():
        names.update(p.name[:-5] for p in journal.iterdir()
                     if p.name.endswith(".json") and not p.name.startswith("."))
    return sorted(names)


def find_committed_batch(con, record: ClaimRecord) -> tuple[int, str] | None:
    """Return (batch id, status) when the ledger holds this claim's batch, else None."""
    if record.batch_id is not None:
        rows = con.execute("SELECT batch_id, status FROM batches WHERE batch_id = ?",
                           [record.batch_id]).fetchall()
        return (rows[0][0], rows[0][1]) if rows else None
    rows = con.execute(
        "SELECT batch_id, status FROM batches WHERE batch_id = ? AND sha256 = ? "
        "AND file_name = ? AND submitter = ?",
        [record.expected_batch_id, record.sha256, record.display_name, record.submitter],
    ).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def rebuild_result(con, record: ClaimRecord, batch_id: int, status: str) -> BatchResult:
    """Rebuild the result of a batch the ledger committed before its result was written.

    The operations come from the ledger. Notes that validation made are not kept, and a
    rejected batch's problems are added by the caller, who validates the file again.
    """
    processed = con.execute("SELECT processed_at FROM batches WHERE batch_id = ?",
                            [batch_id]).fetchall()
    processed_at = processed[0][0] if processed else dt.datetime.now()
    result = BatchResult(record.display_name, record.submitter, status, batch_id, processed_at)
    if status == "duplicate":
        earlier = ledger.find_applied_batch(con, record.sha256)
        if earlier is not None and earlier[0] != batch_id:
            result.duplicate_of = f"batch {earlier[0]} ({earlier[1]})"
            ids = ledger.batch_operation_ids(con, earlier[0])
            result.notes.append(Note(
                None, None,
                f"the same content was applied as batch {earlier[0]} from {earlier[1]}; "
                f"nothing was applied again. Its operations: {', '.join(ids) or 'none'}"))
    elif status in ("applied", "no change"):
        result.operations = batch_operations(con, batch_id)
    result.notes.append(Note(
        None, None,
        f"processing was interrupted after the ledger recorded this file as batch {batch_id} "
        f"({status}); this result was rebuilt from the ledger, and nothing was applied twice"))
    return result


def batch_operations(con, batch_id: int) -> list[OperationSummary]:
    """Summaries of the operation versions a batch recorded, created or edited."""
    rows = con.execute(
        """
        SELECT h.operation_id, h.type, coalesce(v.source_sheet, ''), v.occurred_at,
               s.name, t.name, v.version,
               (SELECT count(*) FROM line_versions l
                 WHERE l.operation_no = v.operation_no AND l.version = v.version),
               (SELECT sum(l.subtotal) FROM line_versions l
                 WHERE l.operation_no = v.operation_no AND l.version = v.version)
        FROM operation_versions v
        JOIN operation_heads h USING (operation_no)
        JOIN storages s ON s.storage_id = v.storage_id
        LEFT JOIN storages t ON t.storage_id = v.to_storage_id
        WHERE v.batch_id = ?
        ORDER BY v.operation_no, v.version
        """,
        [batch_id],
    ).fetchall()
    summaries = []
    for op_id, kind, sheet, occurred, storage, to_storage, version, lines, total in rows:
        amount = Decimal(total) if total is not None and kind in ("arrival", "sale") else None
        summaries.append(OperationSummary(op_id, kind, sheet, occurred, storage, to_storage,
                                          lines, amount, version))
    return summaries


def interrupted_problem(record: ClaimRecord, batch_id: int) -> Problem:
    """The problem of a rejected batch whose problems could not be found again."""
    return Problem(
        record.display_name, None, None, "internal_error",
        f"processing was interrupted after the ledger recorded this file as rejected (batch "
        f"{batch_id}), and checking it again found no problem; nothing was applied. Drop the "
        "file in again to apply it",
    )
