"""Run the inbox: one pass (`process`) or continuously (`watch`).

A pass takes the workspace lock, finishes files an interrupted run had claimed, then
claims and processes every ready file in the inbox, oldest first. A file is ready when its
size has stopped changing (`settle_seconds`, watch only) and it does not look cut off. A
file that looks cut off (empty, or a zip without its closing directory) waits until it has
been quiet for `incomplete_after_seconds`. It is then processed and rejected as incomplete.

`watch` repeats passes when watchfiles reports a change (and every few seconds anyway,
since a size that is still changing needs another look). SIGTERM and Ctrl-C stop it
between batches, never inside one. A pass that fails (ledger open in another program,
full disk, unwritable outbox) is logged and retried with a growing delay; the watcher
keeps running.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.core import BatchstockError, LedgerBusyError
from batchstock.guard import looks_incomplete
from batchstock.inbox import (
    Arrival,
    FiledBatch,
    claim,
    inbox_lock,
    now_in_zone,
    process_claimed,
    scan_inbox,
)
from batchstock.journal import claimed_folder, pending_claims, remove_stale_temporaries
from batchstock.snapshot import SNAPSHOT_NAME, publish_snapshot, snapshot_path

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 60.0


@dataclass
class PassReport:
    """Outcome of one pass over the inbox."""

    filed: list[FiledBatch] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)

    @property
    def all_applied(self) -> bool:
        return all(f.result.status in ("applied", "duplicate", "no change") for f in self.filed)


class SizeTracker:
    """Remembers each file's size and when it last changed, to tell when a copy is done."""

    def __init__(self) -> None:
        self.seen: dict[Path, tuple[int, float, float]] = {}

    def settled(self, arrival: Arrival, settle_seconds: float) -> bool:
        now = time.monotonic()
        key = arrival.path
        previous = self.seen.get(key)
        if previous is None or previous[:2] != (arrival.size, arrival.mtime):
            self.seen[key] = (arrival.size, arrival.mtime, now)
            return settle_seconds <= 0 or (time.time() - arrival.mtime) >= settle_seconds
        return now - previous[2] >= settle_seconds or (time.time() - arrival.mtime) >= settle_seconds

    def forget(self, path: Path) -> None:
        self.seen.pop(path, None)


def is_ready(arrival: Arrival, tracker: SizeTracker | None, workspace: Workspace) -> bool:
    """Return whether a file may be claimed now: settled, and complete or quiet long enough."""
    settings = workspace.settings
    if tracker is not None and not tracker.settled(arrival, settings.settle_seconds):
        return False
    if looks_incomplete(arrival.path):
        quiet = time.time() - arrival.mtime
        return quiet >= settings.incomplete_after_seconds
    return True


def run_pass(
    workspace: Workspace,
    tracker: SizeTracker | None = None,
    on_file: Callable[[FiledBatch], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], Callable[[], None]] | None = None,
    wait_for_lock: bool = False,
) -> PassReport:
    """Finish the claimed backlog, then process every ready inbox file once.

    Without a tracker (the `process` command) a file counts as settled at once.
    `progress`, when given, is called with the number of files and returns a callback to
    advance by one. Raises LedgerBusyError when the lock or the ledger is taken, and
    InboxStalled when the workspace cannot be written.
    """
    report = PassReport()
    with inbox_lock(workspace, wait=wait_for_lock, should_stop=should_stop):
        remove_stale_temporaries(workspace)
        backlog = pending_claims(workspace)
        arrivals = []
        for arrival in scan_inbox(workspace):
            if is_ready(arrival, tracker, workspace):
                arrivals.append(arrival)
            else:
                report.waiting.append(arrival.path)
        total = len(backlog) + len(arrivals)
        if total == 0:
            return report
        advance = progress(total) if progress else (lambda: None)
        con = connect_ledger(workspace)
        try:
            if not snapshot_path(workspace).exists():
                publish_snapshot(workspace, con)
            for name in backlog:
                if should_stop():
                    break
                log.warning("finishing %s, claimed by an interrupted run", name)
                _process(workspace, con, claimed_folder(workspace) / name, None, report, on_file)
                advance()
            for arrival in arrivals:
                if should_stop():
                    break
                try:
                    claimed = claim(workspace, arrival)
                except FileNotFoundError:
                    continue
                if tracker is not None:
                    tracker.forget(arrival.path)
                _process(workspace, con, claimed, arrival, report, on_file)
                advance()
        finally:
            # One copy per pass: copying the whole ledger after every batch of a backlog
            # cost more than applying the batch.
            if any(f.result.status in CHANGED for f in report.filed):
                publish_snapshot(workspace, con)
            con.close()
    return report


CHANGED = ("applied",)


def connect_ledger(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    """Open the ledger for writing; raise LedgerBusyError when another program has it open."""
    try:
        return ledger.connect(workspace.ledger_path)
    except duckdb.IOException as error:
        raise LedgerBusyError(
            f"cannot open the ledger {workspace.ledger_path} for writing ({error}); if a "
            f"DuckDB session has it open, close it: accountants open {SNAPSHOT_NAME} instead"
        ) from error


def _process(workspace, con, path, arrival, report, on_file) -> None:
    started = time.perf_counter()
    now = now_in_zone(workspace)
    arrived_at = now if arrival is not None else None  # the claim time: no earlier record
    filed = process_claimed(workspace, con, path, now, arrived_at)
    if filed is None:
        return
    report.filed.append(filed)
    result = filed.result
    ids = ", ".join(op.operation_id for op in result.operations)
    log.info(
        "%s %s (%s) in %.0f ms%s%s",
        result.status, result.file, result.submitter,
        (time.perf_counter() - started) * 1000,
        f": {ids}" if ids else "",
        f": {len(result.problems)} problem{'s' if len(result.problems) != 1 else ''}"
        if result.problems else "",
    )
    if on_file is not None:
        on_file(filed)
    # The ready-to-edit forms are in the result workbook by now; dropping them keeps a long
    # backlog's memory flat (about 0.3 MB per 500-line operation).
    result.forms = []


def watch(workspace: Workspace, poll_seconds: float = 2.0,
          on_file: Callable[[FiledBatch], None] | None = None,
          stop_event: threading.Event | None = None) -> None:
    """Process the inbox until SIGTERM, SIGINT or `stop_event`; stop between batches.

    A failed pass is logged and retried after `poll_seconds`, doubling up to
    MAX_RETRY_SECONDS while it keeps failing.
    """
    stop = stop_event or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    tracker = SizeTracker()
    if workspace.settings.refresh_stock_after_batch:
        from batchstock.reports_stock import stock_refresher

        on_file = stock_refresher(workspace, on_file)
    log.info("watching %s", workspace.inbox)
    delay = poll_seconds
    try:
        while not stop.is_set():
            try:
                report = run_pass(workspace, tracker, on_file, stop.is_set, wait_for_lock=True)
            except Exception as error:
                if stop.is_set():
                    break
                _log_failed_pass(error, delay)
                stop.wait(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
                continue
            delay = poll_seconds
            timeout = workspace.settings.settle_seconds if report.waiting else poll_seconds
            _wait_for_change(workspace, stop, timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("stopped watching %s", workspace.inbox)


def _log_failed_pass(error: Exception, delay: float) -> None:
    if isinstance(error, BatchstockError):
        log.error("%s; retrying in %.0f s", error, delay)
    else:
        log.exception("a pass over the inbox failed; retrying in %.0f s", delay)


def _wait_for_change(workspace: Workspace, stop: threading.Event, timeout: float) -> None:
    import watchfiles

    for _ in watchfiles.watch(
        workspace.inbox, stop_event=stop, rust_timeout=max(int(timeout * 1000), 50),
        yield_on_timeout=True, debounce=50, step=20,
    ):
        break
