"""The sample month end to end: balances match, and every bad file is rejected where expected."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest

from batchstock import ledger
from batchstock.watcher import run_pass
from conftest import apply_samples, drop, samples_dir


def read_balances(workspace) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    con = ledger.connect(workspace.ledger_path)
    try:
        rows = con.execute(
            "SELECT storage, sku, base_quantity, quantity FROM stock_balance"
        ).fetchall()
    finally:
        con.close()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def ledger_counts(workspace) -> tuple[int, int, int]:
    con = ledger.connect(workspace.ledger_path)
    try:
        return con.execute(
            "SELECT (SELECT count(*) FROM operation_heads), (SELECT count(*) FROM "
            "movement_entries), (SELECT count(*) FROM line_versions)"
        ).fetchall()[0]
    finally:
        con.close()


def test_samples_reach_expected_balances(workspace, samples):
    apply_samples(workspace, samples)
    balances = read_balances(workspace)
    expected = {}
    with (samples / "expected-balances.csv").open(newline="") as stream:
        for row in csv.DictReader(stream):
            expected[(row["storage"], row["sku"])] = (
                Decimal(row["base_quantity"]), Decimal(row["quantity"])
            )
    for key, (base, quantity) in expected.items():
        assert key in balances, key
        assert balances[key][0] == base, key
        assert balances[key][1] == quantity, key
    for key, (base, quantity) in balances.items():
        if key not in expected:
            assert base == 0, key


def bad_cases():
    path = samples_dir() / "bad" / "expected-problems.csv"
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    files = sorted({row["file"] for row in rows})
    return [(name, [(r["sheet"], r["cell"]) for r in rows if r["file"] == name])
            for name in files]


@pytest.mark.parametrize(("name", "cells"), bad_cases())
def test_bad_file_rejected_at_cells(workspace, samples, name, cells):
    apply_samples(workspace, samples)
    before_balances = read_balances(workspace)
    before_counts = ledger_counts(workspace)

    drop(workspace, samples / "bad" / name, user="anna")
    report = run_pass(workspace)

    assert len(report.filed) == 1
    result = report.filed[0].result
    assert result.status == "rejected"
    located = {(p.sheet, p.cell) for p in result.problems}
    for sheet, cell in cells:
        assert (sheet, cell) in located, (sheet, cell, result.problems)
    assert read_balances(workspace) == before_balances
    assert ledger_counts(workspace) == before_counts
    assert (workspace.rejected / "anna" / name).exists()
    assert report.filed[0].result_path.parent == workspace.outbox / "anna"


def test_sample_sku_without_zeros_matches_with_note(workspace, samples):
    apply_samples(workspace, samples)
    con = ledger.connect(workspace.ledger_path)
    try:
        sold = con.execute(
            "SELECT sum(quantity) FROM operation_lines WHERE sku = '000731' "
            "AND operation_type = 'sale'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert sold == Decimal(11)
