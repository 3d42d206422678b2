"""The inbox: find dropped files, claim them, process them, file the originals away.

Every file passes through recorded states (see `journal`). It arrives in `inbox/[user/]`.
It is claimed by renaming it into `.batchstock/claimed/` and writing its claim record; a
rename is atomic, so two processes never claim one file. The ledger applies or rejects its
batch. Its result workbook is written to `outbox/<user>/` under a temporary name and
renamed, and the original moves to `archive/<user>/` or `rejected/<user>/`. A data-log row
and a manifest line record the result, and the claim record is deleted.

Each step after the ledger commit is idempotent, so a run interrupted anywhere (kill -9
included) is finished by the next one: the file is applied once, and ends in the archive
or the rejected folder with one result. An unexpected exception while processing one file
rejects that file with an `internal_error` problem. A workspace that cannot be written
(full disk, unwritable outbox, ledger failure) raises `InboxStalled` and leaves the file
claimed, so nothing is marked finished without its result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from batchstock import journal, ledger
from batchstock.access import rights_for
from batchstock.config import Workspace
from batchstock.core import BatchResult, BatchstockError, LedgerBusyError, Problem
from batchstock.journal import SEPARATOR, ClaimRecord
from batchstock.pipeline import BatchInput, BatchOutcome, file_sha256, process_batch
from batchstock.results import write_result_workbook

log = logging.getLogger(__name__)

# Failures of the machine rather than of the file: the file stays claimed and is retried.
ENVIRONMENT_ERRORS = (OSError, duckdb.IOException, duckdb.FatalException)
LOCK_POLL_SECONDS = 0.2


class InboxStalled(BatchstockError):
    """The workspace cannot be written; the file stays claimed for the next run."""


def now_in_zone(workspace: Workspace) -> dt.datetime:
    """Return the current time in the ledger's zone, naive, to the second."""
    return dt.datetime.now(workspace.settings.zone).replace(tzinfo=None, microsecond=0)


def is_ignored(path: Path) -> bool:
    """Return whether a file is a temporary or lock file that is never processed."""
    name = path.name
    return name.startswith(("~$", ".~lock", ".")) or name.endswith((".tmp", ".part", ".crdownload"))


@dataclass
class Arrival:
    """A file waiting in the inbox."""

    path: Path
    submitter: str
    mtime: float
    size: int


def scan_inbox(workspace: Workspace) -> list[Arrival]:
    """List files in the inbox and its user folders, oldest first (mtime, then name)."""
    found = []
    for path in workspace.inbox.rglob("*"):
        if not path.is_file() or is_ignored(path):
            continue
        relative = path.relative_to(workspace.inbox)
        if any(part.startswith(".") for part in relative.parts):
            continue
        submitter = relative.parts[0] if len(relative.parts) > 1 else workspace.settings.default_user
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        found.append(Arrival(path, submitter, stat.st_mtime, stat.st_size))
    found.sort(key=lambda a: (a.mtime, str(a.path)))
    return found


@contextlib.contextmanager
def inbox_lock(workspace: Workspace, wait: bool = False,
               should_stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Hold the workspace lock, so that only one process claims and applies files.

    Without `wait`, raises LedgerBusyError when another process holds it. With `wait`,
    polls until the lock is free, and raises LedgerBusyError if `should_stop` turns true
    first. The holder writes its process id into the lock file for that message.
    """
    workspace.state.mkdir(parents=True, exist_ok=True)
    handle = open(workspace.state / "lock", "a+")
    try:
        if not _try_lock(handle):
            holder = _lock_holder(handle)
            if not wait:
                raise LedgerBusyError(
                    f"another batchstock process{holder} is working on {workspace.root}; "
                    "wait for it to finish, or stop it"
                )
            log.info("waiting for another batchstock process%s working on %s", holder,
                     workspace.root)
            while not _try_lock(handle):
                if should_stop():
                    raise LedgerBusyError("stopped while waiting for the workspace lock")
                time.sleep(LOCK_POLL_SECONDS)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock_holder(handle) -> str:
    handle.seek(0)
    text = handle.read().strip()
    return f" (pid {text})" if text.isdigit() else ""


def unique_path(folder: Path, name: str) -> Path:
    """Return `folder/name`, or `folder/stem-2.ext` and so on when that name is taken."""
    folder.mkdir(parents=True, exist_ok=True)
    candidate = folder / name
    stem, suffix = os.path.splitext(name)
    counter = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{counter}{suffix}"
        counter += 1
    return candidate


def claim(workspace: Workspace, arrival: Arrival) -> Path:
    """Move an arrived file into the claimed folder; its name keeps submitter and name."""
    claimed = workspace.state / "claimed"
    claimed.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.time_ns()}"
    target = claimed / f"{stamp}{SEPARATOR}{arrival.submitter}{SEPARATOR}{arrival.path.name}"
    os.replace(arrival.path, target)
    return target


def parse_claimed(path: Path) -> tuple[str, str]:
    """Return (submitter, original file name) of a claimed file."""
    return journal.parse_claimed(path.name)


@dataclass
class FiledBatch:
    """Where one processed batch ended up."""

    result: BatchResult
    result_path: Path
    original_path: Path


def process_claimed(workspace: Workspace, con, claimed_path: Path, now: dt.datetime,
                    arrived_at: dt.datetime | None = None) -> FiledBatch | None:
    """Process one claimed file, or finish one an interrupted run left, and file it away.

    Returns None for a claim record whose file and batch are both gone (it is dropped).
    Raises InboxStalled when the workspace cannot be written; the file then stays claimed.
    """
    claim = claimed_path.name
    record = journal.read_record(workspace, claim)
    try:
        committed = journal.find_committed_batch(con, record) if record else None
        if committed is None and not claimed_path.exists():
            log.warning("dropping the claim record of %s: its file and batch are gone", claim)
            journal.remove_record(workspace, claim)
            return None
        if committed is None:
            sha = file_sha256(claimed_path)
            record = journal.start_record(workspace, con, claim, sha, now)
            outcome = _run_batch(workspace, con, record, claimed_path, now, arrived_at)
        else:
            outcome = _rebuild_outcome(workspace, con, record, claimed_path, now, committed)
    except ENVIRONMENT_ERRORS as error:
        raise InboxStalled(f"cannot process {claim}: {error}; the file stays claimed and "
                           "is finished by the next run") from error
    return file_outcome(workspace, con, record, claimed_path, outcome)


def _run_batch(workspace: Workspace, con, record: ClaimRecord, claimed_path: Path,
               now: dt.datetime, arrived_at: dt.datetime | None) -> BatchOutcome:
    """Run the pipeline on one file; an unexpected exception rejects the file instead."""
    batch = BatchInput(claimed_path, record.display_name, record.submitter, arrived_at,
                       sha256=record.sha256,
                       rights=rights_for(workspace.settings.users, record.submitter))
    try:
        outcome = process_batch(con, batch, now, workspace.settings.allow_negative_stock)
        if outcome.export_request is not None:
            from batchstock.export_requests import run_requested_export

            run_requested_export(workspace, con, outcome)
        return outcome
    except ENVIRONMENT_ERRORS:
        _roll_back(con)
        raise
    except Exception as error:
        log.exception("internal error while processing %s (%s)", record.display_name,
                      record.claim)
        _roll_back(con)
        committed = journal.find_committed_batch(con, record)
        if committed is not None:
            return _rebuild_outcome(workspace, con, record, claimed_path, now, committed)
        return _internal_error_outcome(con, batch, now, error)


def _roll_back(con) -> None:
    """End a transaction an exception left open; without one, DuckDB raises and it is ignored."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _internal_error_outcome(con, batch: BatchInput, now: dt.datetime,
                            error: Exception) -> BatchOutcome:
    result = BatchResult(batch.display_name, batch.submitter, "rejected", None, now)
    result.problems.append(Problem(
        batch.display_name, None, None, "internal_error",
        f"batchstock failed while processing this file ({type(error).__name__}: {error}); "
        "nothing was applied. The error is logged: tell the administrator, and keep the file",
    ))
    record = ledger.BatchRecord(batch.display_name, batch.submitter, batch.sha256, "operations",
                                batch.arrived_at, now, status="rejected", problem_count=1)
    result.batch_id = ledger.insert_batch(con, record)
    return BatchOutcome(result)


def _rebuild_outcome(workspace: Workspace, con, record: ClaimRecord, claimed_path: Path,
                     now: dt.datetime, committed: tuple[int, str]) -> BatchOutcome:
    """Rebuild the outcome of a batch the ledger committed before the run was interrupted.

    A rejected batch's problems are found again by checking the file without applying it.
    """
    batch_id, status = committed
    log.warning("finishing %s: the ledger recorded it as batch %d (%s) before an interruption",
                record.display_name, batch_id, status)
    result = journal.rebuild_result(con, record, batch_id, status)
    outcome = BatchOutcome(result)
    if status != "rejected" or not claimed_path.exists():
        return outcome
    batch = BatchInput(claimed_path, record.display_name, record.submitter, sha256=record.sha256,
                       rights=rights_for(workspace.settings.users, record.submitter))
    try:
        check = process_batch(con, batch, now, workspace.settings.allow_negative_stock,
                              apply=False)
        result.problems = check.result.problems
        outcome.sheets = check.sheets
    except Exception:  # the original run failed too; its internal error is logged there
        log.exception("checking %s again failed", record.display_name)
        _roll_back(con)
    if not result.problems:
        result.problems.append(journal.interrupted_problem(record, batch_id))
    return outcome


def file_outcome(workspace: Workspace, con, record: ClaimRecord, claimed_path: Path,
                 outcome: BatchOutcome) -> FiledBatch:
    """Write the result workbook, move the original, and record both in the data log.

    The places are chosen once and kept in the claim record, and each step skips what an
    interrupted run already did, so running this twice files the batch once. Raises
    InboxStalled when a step cannot write; the record then keeps the file's state.
    """
    result = outcome.result
    try:
        if record.result_path is None:
            _choose_places(workspace, record, result)
        result_path = workspace.root / record.result_path
        original = workspace.root / record.original_path
        if not result_path.exists():
            write_result_workbook(result_path, result, outcome.sheets)
        if claimed_path.exists():
            original.parent.mkdir(parents=True, exist_ok=True)
            os.replace(claimed_path, original)
        if record.batch_id is not None:
            ledger.set_batch_result(con, record.batch_id, record.result_path)
        _register_result(workspace, con, record, result, result_path)
        journal.remove_record(workspace, record.claim)
    except ENVIRONMENT_ERRORS as error:
        raise InboxStalled(
            f"cannot file the result of {record.display_name} ({record.state}): {error}; the "
            "file stays claimed and its result is written by the next run") from error
    return FiledBatch(result, result_path, original)


def _choose_places(workspace: Workspace, record: ClaimRecord, result: BatchResult) -> None:
    """Pick free names for the result and the original, and record them with the state."""
    stem = os.path.splitext(record.name)[0]
    # A result workbook dropped back for an edit gets x.result-2.xlsx, not x.result.result.xlsx.
    stem = re.sub(r"\.result(-\d+)?$", "", stem)
    result_path = unique_path(workspace.user_outbox(record.submitter), f"{stem}.result.xlsx")
    filed = result.status in ("applied", "no change")
    folder = workspace.archive if filed else workspace.rejected
    original = unique_path(folder / record.submitter, record.name)
    record.state = result.status
    record.batch_id = result.batch_id
    record.result_path = str(result_path.relative_to(workspace.root))
    record.original_path = str(original.relative_to(workspace.root))
    journal.write_record(workspace, record)


def _register_result(workspace: Workspace, con, record: ClaimRecord, result: BatchResult,
                     result_path: Path) -> None:
    """Add the result's data-log row and manifest line, unless an earlier run did."""
    rows = con.execute(
        "SELECT entry_no, finished_at, sha256 FROM data_log_entries "
        "WHERE kind = 'result' AND path = ?", [record.result_path],
    ).fetchall()
    if not rows:
        register_file(workspace, con, kind="result", requested_by=record.submitter,
                      requested_at=result.processed_at, path=result_path,
                      source_batch=record.batch_id,
                      parameters={"file": record.display_name, "status": record.state})
        return
    entry_no, finished, sha = rows[0]
    if not manifest_has_entry(workspace.manifest_path, entry_no):
        line = {
            "id": entry_no, "kind": "result", "submitter": record.submitter,
            "time": finished.isoformat() if finished else None,
            "source_batch": record.batch_id, "path": record.result_path, "sha256": sha,
        }
        append_line(workspace.manifest_path, json.dumps(line))


def register_file(workspace: Workspace, con, *, kind: str, requested_by: str,
                  requested_at: dt.datetime, path: Path, source_batch: int | None = None,
                  parameters: dict | None = None, row_count: int | None = None,
                  delivery_status: str | None = None,
                  ledger_position: int | None = None) -> int:
    """Record a produced file in the data-log table and the outbox manifest.

    `ledger_position` defaults to the current position; a file re-created as of an
    earlier position passes that one.
    """
    sha = file_sha256(path)
    size = path.stat().st_size
    finished = now_in_zone(workspace)
    entry_no = ledger.next_number(con, "data_log_entries", "entry_no")
    position = ledger.ledger_position(con) if ledger_position is None else ledger_position
    relative = str(path.relative_to(workspace.root))
    con.execute(
        "INSERT INTO data_log_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [entry_no, kind, requested_by, requested_at, finished,
         json.dumps(parameters or {}, default=str), relative, size, sha, row_count,
         position, delivery_status, source_batch],
    )
    line = {
        "id": entry_no, "kind": kind, "submitter": requested_by,
        "time": finished.isoformat(), "source_batch": source_batch, "path": relative,
        "sha256": sha,
    }
    append_line(workspace.manifest_path, json.dumps(line))
    return entry_no


def append_line(path: Path, text: str) -> None:
    """Append one line to a JSON-lines file such as the manifest, atomically.

    Under an exclusive lock the file is rewritten to a temporary name with the new line
    and renamed over the old one, so a reader or a crash sees the old file or the new one,
    never half a line. A half line left by an older version's crash is dropped.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            existing = b""
        if existing and not existing.endswith(b"\n"):
            existing = existing[:existing.rfind(b"\n") + 1]
        journal.write_atomically(path, existing + (text + "\n").encode("utf-8"))


def manifest_has_entry(path: Path, entry_no: int) -> bool:
    """Return whether the manifest holds the line of data-log entry `entry_no`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        try:
            if json.loads(line).get("id") == entry_no:
                return True
        except ValueError:
            continue
    return False
