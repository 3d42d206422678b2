"""Several processes on one workspace: a second `process` or `watch`, two watchers at
once, an accountant's DuckDB session, and the same file dropped twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from batchstock.inbox import inbox_lock
from batchstock.snapshot import SNAPSHOT_NAME
from batchstock.watcher import run_pass
from conftest import drop
from ingest_workbooks import (
    form_rows,
    query,
    stocked,  # noqa: F401 (fixture)
    stocked_ledger,  # noqa: F401 (fixture)
    write_rows,
)

TIMEOUT = 120.0


def arrival(path: Path, quantity: int) -> Path:
    return write_rows(path, {"Arrival": form_rows(
        "Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", quantity]])})


def cli(*arguments: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batchstock.cli", *arguments],
                          capture_output=True, text=True, timeout=timeout)


def start_watch(root: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "batchstock.cli", "watch", "--workspace", str(root),
         "--poll", "0.2"], stdout=subprocess.DEVNULL, stderr=log.open("w"))


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until(condition, timeout: float = TIMEOUT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def settle_now(workspace) -> None:
    workspace.root.joinpath("batchstock.toml").write_text(
        "[inbox]\nsettle_seconds = 0.0\n", encoding="utf-8")


def results(workspace) -> list[str]:
    return sorted(p.name for p in (workspace.outbox / "anna").glob("*.result.xlsx"))


def test_second_process_exits_with_message(stocked, tmp_path):
    drop(stocked, arrival(tmp_path / "delivery.xlsx", 2), user="anna")

    with inbox_lock(stocked):
        completed = cli("process", "--workspace", str(stocked.root))

    assert completed.returncode == 3
    assert "another batchstock process" in completed.stderr
    assert (stocked.inbox / "anna" / "delivery.xlsx").exists()


def test_second_watch_waits_for_lock(stocked, tmp_path):
    settle_now(stocked)
    log = tmp_path / "watch.log"
    with inbox_lock(stocked):
        process = start_watch(stocked.root, log)
        try:
            drop(stocked, arrival(tmp_path / "delivery.xlsx", 2), user="anna")
            wait_until(lambda: "waiting for another batchstock process" in log.read_text(),
                       what="the waiting message")
            time.sleep(1.0)
            assert (stocked.inbox / "anna" / "delivery.xlsx").exists()
        except BaseException:
            process.kill()
            raise
    try:
        wait_until(lambda: results(stocked) == ["delivery.result.xlsx"], what="the result")
    finally:
        assert stop(process) == 0


def test_watch_stops_while_waiting(stocked, tmp_path):
    log = tmp_path / "watch.log"
    with inbox_lock(stocked):
        process = start_watch(stocked.root, log)
        wait_until(lambda: "waiting for another" in log.read_text(), what="waiting")

        assert stop(process) == 0


def test_two_watchers_apply_each_file_once(stocked, tmp_path):
    settle_now(stocked)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    watchers = [start_watch(stocked.root, log) for log in logs]
    names = [f"delivery-{i:02d}.xlsx" for i in range(12)]
    try:
        for index, name in enumerate(names):
            drop(stocked, arrival(tmp_path / name, index + 1), user="anna")
        expected = sorted(n.replace(".xlsx", ".result.xlsx") for n in names)
        wait_until(lambda: results(stocked) == expected, what="twelve results")
    finally:
        codes = [stop(process) for process in watchers]

    assert codes == [0, 0]
    rows = query(stocked, "SELECT status, count(*) FROM batches "
                          "WHERE file_name LIKE 'inbox/anna/%' GROUP BY status")
    assert rows == [("applied", 12)]
    stock = query(stocked, "SELECT quantity FROM stock_balance WHERE sku = 'COMB-CARB'")
    assert int(stock[0][0]) == sum(range(1, 13))


READER = textwrap.dedent("""
    import sys, duckdb
    path = sys.argv[1]
    query = "SELECT count(*) FROM operations"
    con = duckdb.connect(path, read_only=True)
    print(con.execute(query).fetchall()[0][0], flush=True)
    sys.stdin.readline()
    print(con.execute(query).fetchall()[0][0], flush=True)
    con.close()
    con = duckdb.connect(path, read_only=True)
    print(con.execute(query).fetchall()[0][0], flush=True)
""")


def start_reader(path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_snapshot_reader_never_stalls_ingestion(stocked, tmp_path):
    settle_now(stocked)
    drop(stocked, arrival(tmp_path / "first.xlsx", 100), user="anna")
    assert [f.result.status for f in run_pass(stocked).filed] == ["applied"]
    snapshot = stocked.root / SNAPSHOT_NAME
    reader = start_reader(snapshot)
    assert reader.stdout.readline().strip() == "1"

    process = start_watch(stocked.root, tmp_path / "watch.log")
    names = [f"delivery-{i:02d}.xlsx" for i in range(20)]
    try:
        for index, name in enumerate(names):
            drop(stocked, arrival(tmp_path / name, index + 1), user="anna")
        expected = sorted(["first.result.xlsx"] + [n.replace(".xlsx", ".result.xlsx")
                                                   for n in names])
        wait_until(lambda: results(stocked) == expected, what="twenty results")
    finally:
        assert stop(process) == 0
    output, errors = reader.communicate("\n", timeout=60)

    assert output.split() == ["1", "21"], errors
    applied = query(stocked, "SELECT count(*) FROM batches WHERE status = 'applied' "
                             "AND file_name LIKE 'inbox/anna/delivery-%'")
    assert applied == [(20,)]


def test_snapshot_is_read_only_copy(stocked, tmp_path):
    drop(stocked, arrival(tmp_path / "delivery.xlsx", 3), user="anna")
    run_pass(stocked)

    con = duckdb.connect(str(stocked.root / SNAPSHOT_NAME), read_only=True)
    try:
        balance = con.execute("SELECT quantity FROM stock_balance "
                              "WHERE sku = 'COMB-CARB'").fetchall()
    finally:
        con.close()
    assert int(balance[0][0]) == 3


def test_reader_on_ledger_blocks_process_with_message(stocked, tmp_path):
    drop(stocked, arrival(tmp_path / "delivery.xlsx", 2), user="anna")
    reader = start_reader(stocked.ledger_path)
    try:
        assert reader.stdout.readline().strip() == "0"
        completed = cli("process", "--workspace", str(stocked.root))
    finally:
        reader.communicate("\n", timeout=60)

    assert completed.returncode == 3
    assert SNAPSHOT_NAME in completed.stderr
    assert (stocked.inbox / "anna" / "delivery.xlsx").exists()


def test_watch_retries_while_ledger_open(stocked, tmp_path):
    settle_now(stocked)
    reader = start_reader(stocked.ledger_path)
    log = tmp_path / "watch.log"
    assert reader.stdout.readline().strip() == "0"
    process = start_watch(stocked.root, log)
    try:
        drop(stocked, arrival(tmp_path / "delivery.xlsx", 2), user="anna")
        wait_until(lambda: "retrying" in log.read_text(), what="a retry")
        reader.communicate("\n", timeout=60)
        wait_until(lambda: results(stocked) == ["delivery.result.xlsx"], what="the result")
    finally:
        assert stop(process) == 0


def test_identical_file_during_processing_is_duplicate(stocked, tmp_path, monkeypatch):
    from batchstock import inbox

    source = arrival(tmp_path / "delivery.xlsx", 5)
    original = inbox.process_batch
    calls = []

    def drop_copy_meanwhile(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            drop(stocked, source, user="anna", name="delivery-again.xlsx")
        return original(*args, **kwargs)

    monkeypatch.setattr(inbox, "process_batch", drop_copy_meanwhile)
    drop(stocked, source, user="anna")
    first = run_pass(stocked).filed
    second = run_pass(stocked).filed

    assert [f.result.status for f in first + second] == ["applied", "duplicate"]
    assert second[0].original_path.parent == stocked.rejected / "anna"
    stock = query(stocked, "SELECT quantity FROM stock_balance WHERE sku = 'COMB-CARB'")
    assert int(stock[0][0]) == 5


def test_same_content_other_name_is_duplicate(stocked, tmp_path):
    source = arrival(tmp_path / "delivery.xlsx", 5)
    drop(stocked, source, user="anna")
    drop(stocked, source, user="bob", name="copy-of-delivery.xlsx")

    statuses = [f.result.status for f in run_pass(stocked).filed]

    assert statuses == ["applied", "duplicate"]


def test_incomplete_copy_waits_then_rejected(stocked, tmp_path):
    from batchstock.config import open_workspace

    data = arrival(tmp_path / "delivery.xlsx", 2).read_bytes()
    target = stocked.inbox / "anna" / "delivery.xlsx"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: len(data) // 2])

    report = run_pass(stocked)
    assert report.filed == []
    assert report.waiting == [target]

    stocked.root.joinpath("batchstock.toml").write_text(
        "[inbox]\nincomplete_after_seconds = 0.5\n", encoding="utf-8")
    time.sleep(0.6)
    filed = run_pass(open_workspace(stocked.root)).filed

    assert [(f.result.status, f.result.problems[0].code) for f in filed] == [
        ("rejected", "incomplete_file")]


def test_incomplete_copy_completed_is_applied(stocked, tmp_path):
    data = arrival(tmp_path / "delivery.xlsx", 2).read_bytes()
    target = stocked.inbox / "anna" / "delivery.xlsx"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: len(data) // 3])
    assert run_pass(stocked).filed == []

    with target.open("ab") as handle:
        handle.write(data[len(data) // 3:])

    assert [f.result.status for f in run_pass(stocked).filed] == ["applied"]
