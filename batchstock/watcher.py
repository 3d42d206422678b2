"""Run the inbox: one pass (`process`) or continuously (`watch`).

A pass takes the workspace lock, finishes files an interrupted run had claimed, then
claims and processes every settled file in the inbox, oldest first. `watch` repeats passes
when watchfiles reports a change (and every few seconds anyway, since a size that is still
changing needs another look). SIGTERM and Ctrl-C stop it between batches, never inside one.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.inbox import (
    Arrival,
    FiledBatch,
    claim,
    claimed_backlog,
    inbox_lock,
    now_in_zone,
    process_claimed,
    scan_inbox,
)

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    """What one pass over the inbox did."""

    filed: list[FiledBatch] = field(default_factory=list)
    waiting: list[Path] = field(default_factory=list)

    @property
    def all_applied(self) -> bool:
        return all(f.result.status in ("applied", "duplicate") for f in self.filed)


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


def run_pass(
    workspace: Workspace,
    tracker: SizeTracker | None = None,
    on_file: Callable[[FiledBatch], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[int], Callable[[], None]] | None = None,
    wait_for_lock: bool = False,
) -> PassReport:
    """Process the claimed backlog and every settled inbox file once.

    Without a tracker (the `process` command) every file is taken as complete.
    `progress`, when given, is called with the number of files and returns a callback to
    advance by one.
    """
    report = PassReport()
    settle = workspace.settings.settle_seconds
    with inbox_lock(workspace, wait=wait_for_lock):
        backlog = claimed_backlog(workspace)
        arrivals = []
        for arrival in scan_inbox(workspace):
            if tracker is None or tracker.settled(arrival, settle):
                arrivals.append(arrival)
            else:
                report.waiting.append(arrival.path)
        total = len(backlog) + len(arrivals)
        if total == 0:
            return report
        advance = progress(total) if progress else (lambda: None)
        con = ledger.connect(workspace.ledger_path)
        try:
            for path in backlog:
                if should_stop():
                    break
                log.warning("finishing %s, claimed by an interrupted run", path.name)
                _process(workspace, con, path, None, report, on_file)
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
            con.close()
    return report


def _process(workspace, con, path, arrival, report, on_file) -> None:
    started = time.perf_counter()
    now = now_in_zone(workspace)
    arrived_at = None
    if arrival is not None:
        arrived_at = now  # NOTE: the claim time; the inbox keeps no earlier record
    filed = process_claimed(workspace, con, path, now, arrived_at)
    report.filed.append(filed)
    result = filed.result
    ids = ", ".join(op.operation_id for op in result.operations)
    log.info(
        "%s %s (%s) in %.0f ms%s%s",
        result.status, result.file, result.submitter,
        (time.perf_counter() - started) * 1000,
        f": {ids}" if ids else "",
        f": {len(result.problems)} problems" if result.problems else "",
    )
    if on_file is not None:
        on_file(filed)


def watch(workspace: Workspace, poll_seconds: float = 2.0,
          on_file: Callable[[FiledBatch], None] | None = None,
          stop_event: threading.Event | None = None) -> None:
    """Process the inbox until SIGTERM, SIGINT or `stop_event`; stop between batches."""
    import watchfiles

    stop = stop_event or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    tracker = SizeTracker()
    log.info("watching %s", workspace.inbox)
    try:
        while not stop.is_set():
            report = run_pass(workspace, tracker, on_file, stop.is_set, wait_for_lock=True)
            timeout = workspace.settings.settle_seconds if report.waiting else poll_seconds
            for _ in watchfiles.watch(
                workspace.inbox, stop_event=stop, rust_timeout=int(timeout * 1000),
                yield_on_timeout=True, debounce=50, step=20,
            ):
                break
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("stopped watching %s", workspace.inbox)
