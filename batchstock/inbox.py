"""The inbox: find dropped files, claim them, process them, file the originals away.

Every file passes through recorded states. It arrives in `inbox/[user/]`; it is claimed
by renaming it into `.batchstock/claimed/` (a rename is atomic, so two processes never
claim one file); it is applied or rejected in the ledger; its result workbook is written
to `outbox/<user>/` under a temporary name and renamed; the original moves to
`archive/<user>/` or `rejected/<user>/`; and a data-log row and a manifest line record the
result. A claimed file left behind by a crash is processed again first: the ledger's
SHA-256 check makes sure it is never applied twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.core import BatchResult, LedgerBusyError
from batchstock.pipeline import BatchInput, BatchOutcome, file_sha256, process_batch
from batchstock.results import write_result_workbook

log = logging.getLogger(__name__)

SEPARATOR = "__"


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
def inbox_lock(workspace: Workspace, wait: bool = False) -> Iterator[None]:
    """Hold the workspace lock, so that only one process claims and applies files.

    Raises LedgerBusyError when another process holds it and `wait` is False.
    """
    workspace.state.mkdir(parents=True, exist_ok=True)
    handle = open(workspace.state / "lock", "a+")
    try:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(handle, flags)
        except BlockingIOError:
            raise LedgerBusyError(
                f"another batchstock process is working on {workspace.root}; wait for it to "
                "finish, or stop it"
            ) from None
        yield
    finally:
        handle.close()


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
    _, submitter, name = path.name.split(SEPARATOR, 2)
    return submitter, name


@dataclass
class FiledBatch:
    """Where one processed batch ended up."""

    result: BatchResult
    result_path: Path
    original_path: Path


def process_claimed(workspace: Workspace, con, claimed_path: Path, now: dt.datetime,
                    arrived_at: dt.datetime | None = None) -> FiledBatch:
    """Process one claimed file and file away its result and original."""
    submitter, name = parse_claimed(claimed_path)
    display = f"inbox/{submitter}/{name}"
    batch = BatchInput(claimed_path, display, submitter, arrived_at,
                       sha256=file_sha256(claimed_path))
    outcome = process_batch(con, batch, now, workspace.settings.allow_negative_stock)
    return file_outcome(workspace, con, claimed_path, name, submitter, outcome)


def file_outcome(workspace: Workspace, con, claimed_path: Path, name: str, submitter: str,
                 outcome: BatchOutcome) -> FiledBatch:
    """Write the result workbook, move the original, and record both in the data log."""
    result = outcome.result
    stem = os.path.splitext(name)[0]
    result_path = unique_path(workspace.user_outbox(submitter), f"{stem}.result.xlsx")
    write_result_workbook(result_path, result, outcome.sheets)
    folder = workspace.archive if result.status == "applied" else workspace.rejected
    original = unique_path(folder / submitter, name)
    os.replace(claimed_path, original)
    if result.batch_id is not None:
        ledger.set_batch_result(con, result.batch_id, str(result_path.relative_to(workspace.root)))
    register_file(workspace, con, kind="result", requested_by=submitter,
                  requested_at=result.processed_at, path=result_path,
                  source_batch=result.batch_id,
                  parameters={"file": result.file, "status": result.status})
    return FiledBatch(result, result_path, original)


def register_file(workspace: Workspace, con, *, kind: str, requested_by: str,
                  requested_at: dt.datetime, path: Path, source_batch: int | None = None,
                  parameters: dict | None = None, row_count: int | None = None,
                  delivery_status: str | None = None) -> int:
    """Record a produced file in the data-log table and the outbox manifest."""
    sha = file_sha256(path)
    size = path.stat().st_size
    finished = now_in_zone(workspace)
    entry_no = ledger.next_number(con, "data_log_entries", "entry_no")
    position = ledger.ledger_position(con)
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
    """Append one line with a single write and fsync it, so a crash never leaves half a line
    before the next write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def claimed_backlog(workspace: Workspace) -> list[Path]:
    """Files claimed by an earlier run that did not finish, oldest claim first."""
    folder = workspace.state / "claimed"
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and SEPARATOR in p.name),
                  key=lambda p: p.name)
