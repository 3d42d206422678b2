"""`batchstock watch` as a separate program: it picks up dropped files, ignores temporary and
lock files, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ingest_workbooks import (
    form_rows,
    stocked,  # noqa: F401 (fixture)
    stocked_ledger,  # noqa: F401 (fixture)
    write_rows,
)

SETTLE_SECONDS = 0.3
# Generous for a loaded CI machine; on a 2-core machine a result takes about one second.
RESULT_TIMEOUT = 10.0


class Watcher:
    """A running `batchstock watch` process whose log lines are collected in the background."""

    def __init__(self, root: Path) -> None:
        (root / "batchstock.toml").write_text(
            f"[inbox]\nsettle_seconds = {SETTLE_SECONDS}\n", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "batchstock.cli", "watch", "--workspace", str(root),
             "--poll", "0.5"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for_log(self, text: str, timeout: float = RESULT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.process.poll() is None, self.log
                continue
            self.log.append(line)
            if text in line:
                return
        raise AssertionError(f"no log line with {text!r} in {timeout} s: {self.log}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=RESULT_TIMEOUT)
        finally:
            while not self.lines.empty():
                self.log.append(self.lines.get())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def watcher(stocked):
    running = Watcher(stocked.root)
    running.wait_for_log("watching")
    yield running
    running.kill()


def wait_for(path: Path, timeout: float = RESULT_TIMEOUT) -> float:
    """Wait until `path` exists; return the seconds it took."""
    started = time.monotonic()
    while not path.exists():
        assert time.monotonic() - started < timeout, f"{path} did not appear in {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def arrival_workbook(tmp_path: Path, name: str = "delivery.xlsx", quantity: int = 3) -> Path:
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", quantity]])
    return write_rows(tmp_path / name, {"Arrival": rows})


def copy_into(source: Path, target: Path) -> None:
    """Copy through a temporary name and rename, as a careful sync client does."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def test_watch_picks_up_dropped_file(stocked, watcher, tmp_path):
    copy_into(arrival_workbook(tmp_path), stocked.inbox / "anna" / "delivery.xlsx")

    seconds = wait_for(stocked.outbox / "anna" / "delivery.result.xlsx")

    assert seconds < RESULT_TIMEOUT
    assert wait_for(stocked.archive / "anna" / "delivery.xlsx") < 1
    watcher.wait_for_log("delivery.xlsx")
    assert watcher.stop() == 0


def test_watch_logs_one_line_per_batch(stocked, watcher, tmp_path):
    copy_into(arrival_workbook(tmp_path), stocked.inbox / "anna" / "logged.xlsx")
    wait_for(stocked.outbox / "anna" / "logged.result.xlsx")

    assert watcher.stop() == 0

    assert len([line for line in watcher.log if "logged.xlsx" in line]) == 1


def test_watch_ignores_temporary_and_lock_files(stocked, watcher, tmp_path):
    workbook = arrival_workbook(tmp_path)
    ignored = ["~$delivery.xlsx", ".~lock.delivery.xlsx#", ".delivery.xlsx"]
    for name in ignored:
        shutil.copyfile(workbook, stocked.inbox / name)
    copy_into(workbook, stocked.inbox / "anna" / "real.xlsx")

    wait_for(stocked.outbox / "anna" / "real.result.xlsx")
    copy_into(workbook, stocked.inbox / "anna" / "second.xlsx")
    wait_for(stocked.outbox / "anna" / "second.result.xlsx")

    assert sorted(p.name for p in stocked.inbox.iterdir() if p.is_file()) == sorted(ignored)
    results = sorted(p.name for p in stocked.outbox.rglob("*.xlsx"))
    assert results == ["real.result.xlsx", "second.result.xlsx"]
    assert watcher.stop() == 0


def test_watch_waits_for_slow_copy(stocked, watcher, tmp_path):
    data = arrival_workbook(tmp_path).read_bytes()
    target = stocked.inbox / "anna" / "slow.xlsx"
    target.parent.mkdir(parents=True, exist_ok=True)
    chunk = len(data) // 8 + 1
    with target.open("wb") as stream:
        for start in range(0, len(data), chunk):
            stream.write(data[start:start + chunk])
            stream.flush()
            time.sleep(SETTLE_SECONDS / 3)

    wait_for(stocked.outbox / "anna" / "slow.result.xlsx")

    assert (stocked.archive / "anna" / "slow.xlsx").exists()
    assert watcher.stop() == 0


def test_watch_stops_on_sigterm(watcher):
    assert watcher.stop() == 0
    assert any("stopped" in line for line in watcher.log)


def test_watch_sigterm_never_leaves_half_batch(stocked, watcher, tmp_path):
    names = [f"delivery-{index}.xlsx" for index in range(6)]
    for name in names:
        # Distinct quantities, so that no file is a duplicate of another by content.
        quantity = 3 + names.index(name)
        copy_into(arrival_workbook(tmp_path, name, quantity), stocked.inbox / "anna" / name)
    wait_for(stocked.outbox / "anna" / "delivery-0.result.xlsx")

    assert watcher.stop() == 0

    claimed = stocked.state / "claimed"
    assert not claimed.exists() or not any(claimed.iterdir())
    for name in names:
        archived = (stocked.archive / "anna" / name).exists()
        waiting = (stocked.inbox / "anna" / name).exists()
        assert archived != waiting, name
        stem = name.removesuffix(".xlsx")
        assert (stocked.outbox / "anna" / f"{stem}.result.xlsx").exists() == archived
