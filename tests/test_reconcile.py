"""`batchstock reconcile`: a clean ledger passes, and each kind of damage is found.

The damage is done with SQL straight on the ledger's tables, as a broken import or a
hand edit would do it. batchstock itself writes no such rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchstock import ledger
from batchstock.cli import main
from batchstock.config import init_workspace
from batchstock.reconcile import reconcile_ledger
from conftest import apply_samples, samples_dir
from report_workbooks import Ledger, day


def reconcile(workspace, *arguments: str):
    return CliRunner().invoke(main, ["reconcile", *arguments, "--workspace",
                                     str(workspace.root)])


def findings(workspace, **options) -> list[tuple[str, str]]:
    con = ledger.connect(workspace.ledger_path)
    try:
        outcome = reconcile_ledger(con, **options)
    finally:
        con.close()
    return [(finding.check, finding.subject) for finding in outcome.findings]


@pytest.fixture
def book(workspace, tmp_path) -> Ledger:
    book = Ledger(workspace, tmp_path)
    book.arrival(day(1), "COMB", 10, 2)
    book.sale(day(2), "COMB", 4, 6)
    book.relocation(day(3), "COMB", 2)
    book.arrival(day(4), "COMB", 6, 3)
    return book


@pytest.fixture(scope="module")
def sample_month(tmp_path_factory):
    workspace = init_workspace(tmp_path_factory.mktemp("samples") / "ws")
    ledger.connect(workspace.ledger_path).close()
    apply_samples(workspace, samples_dir())
    return workspace


def test_sample_month_reconciles(sample_month):
    result = reconcile(sample_month)

    assert result.exit_code == 0, result.output
    checks = [line.split(":")[0] for line in result.output.splitlines()]
    assert checks == ["ok   movements", "ok   stock balance", "ok   negative stock",
                      "ok   averages", "ok   operations"]


def test_sample_month_reconciles_at_date(sample_month):
    result = reconcile(sample_month, "--at", "2026-11-05")
    assert result.exit_code == 0, result.output


def test_edits_and_cancellations_reconcile(book):
    late = book.arrival(day(1, 14), "COMB", 10, 5)
    book.cancel(late)
    sale = book.sale(day(5), "COMB", 1, 6)
    book.form("sale", day(5), [["COMB", 2, 6]], operation_id=sale, version=1)

    assert findings(book.workspace) == []


def test_foreign_movement_kind_found(book):
    book.query("INSERT INTO movement_entries SELECT movement_no + 100, operation_no, "
               "version, line_no, storage_id, product_id, 'stocktake', -1, occurred_at, "
               "recorded_at, batch_id, false FROM movement_entries WHERE kind = 'sale'")

    result = reconcile(book.workspace)

    assert result.exit_code == 1
    assert "FAIL movements: 2 rows checked, 2 differences" in result.output
    assert ("movements", "Products / COMB") in findings(book.workspace)
    assert ("operations", "OP-000002 version 1 line 1") in findings(book.workspace)


def test_missing_movement_found(book):
    book.query("DELETE FROM movement_entries WHERE kind = 'relocation-in'")

    # The product's stock before the day-4 arrival changed, so its stored average no
    # longer follows from the movements either.
    assert findings(book.workspace) == [
        ("averages", "COMB at 2026-11-04 10:00"),
        ("operations", "OP-000003 version 1 line 1")]


def test_damaged_average_found(book):
    book.query("UPDATE cost_averages SET unit_cost = unit_cost + 0.01 "
               "WHERE occurred_at = ?", [day(4)])

    assert findings(book.workspace) == [("averages", "COMB at 2026-11-04 10:00")]


def test_damaged_stock_view_found(book):
    book.query("CREATE OR REPLACE VIEW stock_balance AS SELECT storage, sku, product, "
               "quantity, base_quantity + 1 AS base_quantity, sale_unit, base_unit "
               "FROM stock_balance_at(TIMESTAMP 'infinity', TIMESTAMP 'infinity')")

    assert findings(book.workspace) == [("stock balance", "Branch / COMB"),
                                        ("stock balance", "Products / COMB")]
    assert findings(book.workspace, until=day(30)) == []  # the macros are intact


def test_negative_stock_found_unless_allowed(book):
    book.workspace.settings.allow_negative_stock = True
    book.sale(day(1, 9), "COMB", 3, 6)   # before the first arrival: −3 for an hour

    result = reconcile(book.workspace)
    assert result.exit_code == 1
    assert "the balance falls to -3" in result.output
    assert findings(book.workspace, allow_negative_stock=True) == []


def test_reconcile_json_one_object_per_finding(book):
    book.query("DELETE FROM movement_entries WHERE kind = 'relocation-in'")

    result = reconcile(book.workspace, "--json")

    assert result.exit_code == 1
    objects = [json.loads(line) for line in result.output.splitlines()]
    assert [(o["check"], o["subject"]) for o in objects] == [
        ("averages", "COMB at 2026-11-04 10:00"),
        ("operations", "OP-000003 version 1 line 1")]


def test_reconcile_bad_date_exits_2(workspace):
    assert reconcile(workspace, "--at", "31.11.2026").exit_code == 2


def test_generated_ledger_reconciles(tmp_path):
    """The scale benchmark at a small size: its generated ledger passes every check, and
    each timed step runs. `bench/ledger_scale.py` without options is the full 10 million."""
    script = Path(__file__).resolve().parent.parent / "bench" / "ledger_scale.py"
    completed = subprocess.run(
        [sys.executable, str(script), "--movements", "20000", "--products", "60",
         "--storages", "3", "--years", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "ledger_scale.json").read_text())
    steps = results["steps"]

    assert abs(results["generated"]["movements"] - 20000) < 200
    assert steps["reconcile"]["findings"] == 0
    assert steps["movements-report"]["differences"] == 0
    assert steps["stock-report"]["rows"] == 180
    assert all(step["peak_rss_mib"] > 0 for step in steps.values())
