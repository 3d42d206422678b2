"""Fault injection: `batchstock watch` killed with SIGKILL at random moments over a backlog.

Files keep arriving while a watcher is started, killed after a random delay, and started
again. Afterwards one last watcher finishes the backlog, and every file must be accounted
for exactly once: its original in the archive or the rejected folder, one result workbook,
one batches row, one data-log row and one manifest line, nothing applied twice, and the
stock balance equal to the balance computed here from the files' own lines.

CI runs CI_KILLS kills. `BATCHSTOCK_FULL=1` runs FULL_KILLS (about 15 minutes on a 2-core
machine); its last result is recorded in docs/reliability.md. `BATCHSTOCK_CRASH_SEED`
repeats a run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

import hostile_workbooks as hostile
from ingest_workbooks import (
    form_rows,
    query,
    stocked,  # noqa: F401 (fixture)
    stocked_ledger,  # noqa: F401 (fixture)
    submit,
    write_rows,
)

CI_KILLS = 20
FULL_KILLS = 200
FULL = os.environ.get("BATCHSTOCK_FULL") == "1"
PRODUCTS = ["COMB-CARB", "CLIP-RED", "000731", "SH-ARG-250"]
OPENING_STOCK = 100_000


@dataclass
class Dropped:
    """One file dropped in the inbox and what it must end as."""

    name: str
    content_key: str  # files with equal keys have equal bytes
    expected: str  # applied, duplicate or rejected
    change: dict[str, int]  # stock change in Products per SKU when applied


class Backlog:
    """Builds the files to drop, and the balance they must add up to."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder = folder
        self.random = random.Random(seed)
        self.dropped: list[Dropped] = []
        self.sources: dict[str, Path] = {}

    def next_file(self) -> tuple[Path, Dropped]:
        index = len(self.dropped)
        roll = self.random.random()
        earlier = [d for d in self.dropped if d.expected == "applied"]
        if roll < 0.1 and earlier:
            first = self.random.choice(earlier)
            item = Dropped(f"copy-{index:04d}.xlsx", first.content_key, "duplicate", {})
            source = self.sources[first.content_key]
        elif roll < 0.18:
            item = Dropped(f"bad-{index:04d}.xlsx", f"bad-{index}", "rejected", {})
            source = self._bad_file(item)
        else:
            item, source = self._operation(index)
        self.sources.setdefault(item.content_key, source)
        self.dropped.append(item)
        return source, item

    def _operation(self, index: int) -> tuple[Dropped, Path]:
        kind = self.random.choice(["Arrival", "Sale"])
        skus = self.random.sample(PRODUCTS, self.random.randint(1, 3))
        lines = [[sku, self.random.randint(1, 9)] for sku in skus]
        sign = 1 if kind == "Arrival" else -1
        change = {sku: sign * quantity for sku, quantity in lines}
        columns = ["SKU", "Quantity"] if kind == "Arrival" else ["SKU", "Quantity", "Price"]
        rows = lines if kind == "Arrival" else [line + [1] for line in lines]
        item = Dropped(f"{kind.lower()}-{index:04d}.xlsx", f"op-{index}", "applied", change)
        path = write_rows(self.folder / item.name, {kind: form_rows(
            kind, "Products", columns, rows, date=f"2026-11-02 10:{index % 60:02d}")})
        return item, path

    def _bad_file(self, item: Dropped) -> Path:
        path = self.folder / item.name
        if self.random.random() < 0.5:
            return hostile.renamed_csv(path)
        return write_rows(path, {"Arrival": form_rows(
            "Arrival", "Products", ["SKU", "Quantity"], [["NO-SUCH-SKU", 1]])})

    def expected_balance(self) -> dict[str, int]:
        balance = Counter({sku: OPENING_STOCK for sku in PRODUCTS})
        for item in self.dropped:
            balance.update(item.change)
        return dict(balance)


def drop_file(workspace, source: Path, name: str) -> None:
    """Copy a file into anna's inbox through a temporary name, as a careful copier does."""
    folder = workspace.inbox / "anna"
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{name}.part"
    shutil.copyfile(source, temporary)
    os.replace(temporary, folder / name)


def start_watch(root: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "batchstock.cli", "watch", "--workspace", str(root),
         "--poll", "0.2"],
        stdout=subprocess.DEVNULL, stderr=log.open("a"),
    )


def originals_on_disk(workspace) -> list[str]:
    """Names of anna's originals wherever they are: inbox, claimed, archive or rejected."""
    names = []
    for folder in (workspace.inbox, workspace.archive, workspace.rejected):
        names += [p.name for p in (folder / "anna").glob("*.xlsx")]
    names += [p.name.split("__")[-1] for p in (workspace.state / "claimed").glob("*__anna__*")]
    return names


def finish_backlog(workspace, log: Path, timeout: float = 600) -> None:
    """Run one watcher until the inbox and the claims are empty, then stop it cleanly."""
    started = log.read_text(errors="replace").count("INFO watching")
    process = start_watch(workspace.root, log)
    deadline = time.monotonic() + timeout
    try:
        # SIGTERM stops the watcher cleanly only once it has installed its handler.
        while log.read_text(errors="replace").count("INFO watching") == started:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        while time.monotonic() < deadline:
            pending = list(workspace.inbox.rglob("*.xlsx")) + list(
                (workspace.state / "claimed").glob("*")) + list(
                (workspace.state / "journal").glob("*.json"))
            if not pending:
                break
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def opened(stocked, tmp_path):
    """The stocked workspace with OPENING_STOCK of each product in Products."""
    stocked.root.joinpath("batchstock.toml").write_text(
        "[inbox]\nsettle_seconds = 0.0\n", encoding="utf-8")
    opening = write_rows(tmp_path / "opening.xlsx", {"Arrival": form_rows(
        "Arrival", "Products", ["SKU", "Quantity"],
        [[sku, OPENING_STOCK] for sku in PRODUCTS], date="2026-11-01 08:00")})
    assert submit(stocked, opening, user="manager").result.status == "applied"
    return stocked


def test_watch_survives_random_kills(opened, tmp_path):
    seed = int(os.environ.get("BATCHSTOCK_CRASH_SEED", random.randrange(1 << 30)))
    kills = FULL_KILLS if FULL else CI_KILLS
    rng = random.Random(seed)
    backlog = Backlog(tmp_path / "sources", seed)
    (tmp_path / "sources").mkdir()
    log = tmp_path / "watch.log"
    for _ in range(8):
        source, item = backlog.next_file()
        drop_file(opened, source, item.name)

    for _ in range(kills):
        for _ in range(rng.randint(0, 2)):
            source, item = backlog.next_file()
            drop_file(opened, source, item.name)
        process = start_watch(opened.root, log)
        time.sleep(rng.uniform(0.3, 3.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert sorted(originals_on_disk(opened)) == sorted(d.name for d in backlog.dropped), seed

    finish_backlog(opened, log)
    check_accounted_once(opened, backlog, seed)
    record_run(tmp_path, seed, kills, backlog)


def check_accounted_once(workspace, backlog: Backlog, seed: int) -> None:
    names = [d.name for d in backlog.dropped]
    context = f"seed {seed}"
    archived = sorted(p.name for p in (workspace.archive / "anna").glob("*.xlsx"))
    rejected = sorted(p.name for p in (workspace.rejected / "anna").glob("*.xlsx"))
    assert sorted(archived + rejected) == sorted(names), context
    expected_archived = sorted(d.name for d in backlog.dropped if d.expected == "applied")
    assert archived == expected_archived, context

    results = sorted(p.name for p in (workspace.outbox / "anna").glob("*.xlsx"))
    assert results == sorted(n.replace(".xlsx", ".result.xlsx") for n in names), context

    batches = query(workspace, "SELECT file_name, status, sha256, result_path FROM batches "
                               "WHERE file_name LIKE 'inbox/anna/%-%'")
    assert sorted(row[0] for row in batches) == sorted(f"inbox/anna/{n}" for n in names), context
    statuses = {row[0].split("/")[-1]: row[1] for row in batches}
    assert statuses == {d.name: d.expected for d in backlog.dropped}, context
    applied_shas = [row[2] for row in batches if row[1] == "applied"]
    assert len(applied_shas) == len(set(applied_shas)), context
    assert all(row[3] for row in batches), context

    entries = query(workspace, "SELECT entry_no, path FROM data_log_entries "
                               "WHERE kind = 'result' AND path LIKE 'outbox/anna/%'")
    manifest = [json.loads(line) for line in
                workspace.manifest_path.read_text(encoding="utf-8").splitlines()]
    result_lines = [line for line in manifest
                    if line["kind"] == "result" and line["path"].startswith("outbox/anna/")]
    assert len(entries) == len(names), context
    assert sorted(e[0] for e in entries) == sorted(line["id"] for line in result_lines), context
    assert len({e[1] for e in entries}) == len(entries), context

    balance = dict(query(workspace, "SELECT sku, quantity FROM stock_balance "
                                    "WHERE storage = 'Products'"))
    expected = backlog.expected_balance()
    assert {sku: int(balance[sku]) for sku in expected} == expected, context
    assert all(balance[sku] == Decimal(expected[sku]) for sku in expected), context
    assert not list((workspace.state / "claimed").glob("*")), context
    assert not list((workspace.state / "journal").glob("*.json")), context


def record_run(tmp_path: Path, seed: int, kills: int, backlog: Backlog) -> None:
    """Print a summary line; `pytest -s` shows it for docs/reliability.md."""
    log_text = (tmp_path / "watch.log").read_text(encoding="utf-8", errors="replace")
    finished = log_text.count("claimed by an interrupted run")
    rebuilt = log_text.count("before an interruption")
    counts = Counter(d.expected for d in backlog.dropped)
    print(f"\ncrash test: seed {seed}, {kills} kills, {len(backlog.dropped)} files "
          f"({dict(counts)}), {finished} claims finished after a kill, {rebuilt} results "
          "rebuilt from the ledger")


# ---------------------------------------------------------------- crashes at each step


class SimulatedCrash(BaseException):
    """Stands for kill -9: no `except Exception` handler catches it."""


def crash_once(monkeypatch, owner, attribute: str) -> None:
    """Make `owner.attribute` raise SimulatedCrash on its first call only."""
    original = getattr(owner, attribute)
    calls = []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SimulatedCrash(attribute)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, crashing)


def run_until_crash(workspace) -> None:
    from batchstock.watcher import run_pass

    with pytest.raises(SimulatedCrash):
        run_pass(workspace)


def arrival_file(tmp_path: Path, quantity: int = 4) -> Path:
    return write_rows(tmp_path / "delivery.xlsx", {"Arrival": form_rows(
        "Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", quantity]])})


def comb_stock(workspace) -> int:
    rows = query(workspace, "SELECT quantity FROM stock_balance "
                            "WHERE storage = 'Products' AND sku = 'COMB-CARB'")
    return int(rows[0][0]) if rows else 0


def finish(workspace):
    from batchstock.watcher import run_pass

    report = run_pass(workspace)
    assert len(report.filed) == 1, report.filed
    return report.filed[0]


def assert_filed_once(workspace, status: str, folder: str) -> None:
    assert [p.name for p in (workspace.outbox / "anna").glob("*.xlsx")] == [
        "delivery.result.xlsx"]
    assert [p.name for p in (workspace.root / folder / "anna").glob("*.xlsx")] == [
        "delivery.xlsx"]
    rows = query(workspace, "SELECT status, result_path FROM batches "
                            "WHERE file_name = 'inbox/anna/delivery.xlsx'")
    assert rows == [(status, "outbox/anna/delivery.result.xlsx")]
    lines = workspace.manifest_path.read_text(encoding="utf-8").splitlines()
    assert len([line for line in lines if "delivery.result.xlsx" in line]) == 1
    assert not list((workspace.state / "journal").glob("*.json"))


@pytest.mark.parametrize("owner, attribute", [
    ("batchstock.journal", "start_record"),
    ("batchstock.inbox", "file_outcome"),
    ("batchstock.inbox", "write_result_workbook"),
    ("batchstock.ledger", "set_batch_result"),
    ("batchstock.inbox", "append_line"),
    ("batchstock.journal", "remove_record"),
])
def test_crash_at_step_applies_once(stocked, tmp_path, monkeypatch, owner, attribute):
    import importlib

    from conftest import drop

    drop(stocked, arrival_file(tmp_path), user="anna")
    crash_once(monkeypatch, importlib.import_module(owner), attribute)
    run_until_crash(stocked)

    filed = finish(stocked)

    assert filed.result.status == "applied", filed.result.problems
    assert [op.line_count for op in filed.result.operations] == [1]
    assert comb_stock(stocked) == 4
    assert_filed_once(stocked, "applied", "archive")


def test_crash_after_commit_gets_applied_result(stocked, tmp_path, monkeypatch):
    from batchstock import inbox
    from conftest import drop

    drop(stocked, arrival_file(tmp_path), user="anna")
    crash_once(monkeypatch, inbox, "file_outcome")
    run_until_crash(stocked)
    assert comb_stock(stocked) == 4

    filed = finish(stocked)

    assert filed.result.status == "applied"
    assert filed.result.duplicate_of is None
    assert filed.result.operations[0].operation_id.startswith("OP-")
    assert comb_stock(stocked) == 4


def test_crash_after_rejection_keeps_problems(stocked, tmp_path, monkeypatch):
    from batchstock import inbox
    from conftest import drop

    bad = write_rows(tmp_path / "delivery.xlsx", {"Arrival": form_rows(
        "Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", -2]])})
    drop(stocked, bad, user="anna")
    crash_once(monkeypatch, inbox, "file_outcome")
    run_until_crash(stocked)

    filed = finish(stocked)

    assert filed.result.status == "rejected"
    assert ("not_positive", "Arrival", "B6") in {
        (p.code, p.sheet, p.cell) for p in filed.result.problems}
    assert_filed_once(stocked, "rejected", "rejected")


def test_unwritable_outbox_retried(stocked, tmp_path):
    from batchstock.inbox import InboxStalled
    from batchstock.watcher import run_pass
    from conftest import drop

    drop(stocked, arrival_file(tmp_path), user="anna")
    blocker = stocked.outbox / "anna"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the user's outbox folder should be")

    with pytest.raises(InboxStalled):
        run_pass(stocked)
    assert comb_stock(stocked) == 4
    assert list((stocked.state / "claimed").glob("*delivery.xlsx"))
    assert query(stocked, "SELECT result_path FROM batches "
                          "WHERE file_name = 'inbox/anna/delivery.xlsx'") == [(None,)]

    blocker.unlink()
    filed = finish(stocked)

    assert filed.result.status == "applied"
    assert_filed_once(stocked, "applied", "archive")


def test_full_disk_retried(stocked, tmp_path, monkeypatch):
    import errno

    from batchstock import inbox
    from batchstock.inbox import InboxStalled
    from batchstock.watcher import run_pass
    from conftest import drop

    original = inbox.write_result_workbook
    attempts = []

    def disk_full(*args, **kwargs):
        attempts.append(1)
        if len(attempts) <= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(*args, **kwargs)

    monkeypatch.setattr(inbox, "write_result_workbook", disk_full)
    drop(stocked, arrival_file(tmp_path), user="anna")
    for _ in range(2):
        with pytest.raises(InboxStalled, match="No space left"):
            run_pass(stocked)
        assert not (stocked.outbox / "anna" / "delivery.result.xlsx").exists()

    filed = finish(stocked)

    assert filed.result.status == "applied"
    assert comb_stock(stocked) == 4
    assert_filed_once(stocked, "applied", "archive")


def test_watch_logs_and_retries_stalled_pass(stocked, tmp_path, caplog):
    import threading

    from batchstock.watcher import watch
    from conftest import drop

    drop(stocked, arrival_file(tmp_path), user="anna")
    blocker = stocked.outbox / "anna"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(stocked,),
                              kwargs={"poll_seconds": 0.2, "stop_event": stop})
    with caplog.at_level("ERROR", logger="batchstock.watcher"):
        thread.start()
        deadline = time.monotonic() + 20
        while "retrying" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)
        blocker.unlink()
        result = stocked.outbox / "anna" / "delivery.result.xlsx"
        while not result.exists() and time.monotonic() < deadline + 20:
            time.sleep(0.1)
        stop.set()
        thread.join(timeout=30)

    assert "cannot file the result" in caplog.text
    assert result.exists()
    assert comb_stock(stocked) == 4


def test_manifest_half_line_dropped(tmp_path):
    from batchstock.inbox import append_line

    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(b'{"id": 1}\n{"id": 2, "ki')

    append_line(manifest, '{"id": 3}')

    assert manifest.read_text().splitlines() == ['{"id": 1}', '{"id": 3}']
