"""Workbooks and ledger reads for the edit, cancel and access tests.

A workspace gets a three-product catalogue. Forms are written inline with openpyxl in the
layout `batchstock template` writes: labels in column A from A1, values in column B, then
a blank row and the lines table. Every batch is processed through the inbox with a fake
clock, so each batch's recorded time is known and the as-of balance can be asked about it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import openpyxl

from batchstock import ledger, watcher
from batchstock.config import Workspace
from batchstock.core import BatchResult
from conftest import drop
from ingest_workbooks import write_rows

PRODUCTS = [
    ["SKU", "Name", "Sale unit", "Write-off unit", "Equals", "Sale price", "Cost price"],
    ["SH-ARG-250", "Argan repair shampoo 250 ml", "pcs", "ml", 250, 18.9, 9.45],
    ["COMB-CARB", "Carbon comb", "pcs", "pcs", 1, 6.5, 2.1],
    ["GL-NIT-M", "Nitrile gloves M, box of 100", "box", "pcs", 100, 11, 6.2],
]
STORAGES = [
    ["Name", "Type"],
    ["Products", "sale"],
    ["Consumables", "consumables"],
    ["Branch 2 shelf", "sale"],
]

TYPE_TITLES = {"arrival": "Arrival", "sale": "Sale", "relocation": "Relocation",
               "write-off": "Write-off"}
PRICE_COLUMN = {"arrival": "Unit cost", "sale": "Price"}


# One worksheet per entry; None leaves a cell empty.
write_sheets = write_rows


def form_rows(op_type: str, fields: list[tuple[str, object]], lines: list[list],
              operation_id: str | None = None, version: int | None = None,
              action: str | None = None) -> list[list]:
    """Return the rows of a form: Operation, then `fields`, then Operation id, Version and
    Action (each only when given), a blank row, and the lines table.

    Each line is [SKU, quantity] plus the price for arrivals and sales.
    """
    rows: list[list] = [["Operation", TYPE_TITLES[op_type]]]
    rows += [[label, value] for label, value in fields]
    if operation_id is not None:
        rows.append(["Operation id", operation_id])
    if version is not None:
        rows.append(["Version", version])
    if action is not None:
        rows.append(["Action", action])
    rows.append([])
    header = ["SKU", "Quantity"]
    if op_type in PRICE_COLUMN:
        header.append(PRICE_COLUMN[op_type])
    rows.append(header)
    rows += lines
    return rows


def write_form(path: Path, op_type: str, fields: list[tuple[str, object]], lines: list[list],
               **options) -> Path:
    return write_sheets(path, {TYPE_TITLES[op_type]: form_rows(op_type, fields, lines,
                                                               **options)})


@dataclass
class Clock:
    """A fake processing clock: each batch is recorded one hour after the one before."""

    now: dt.datetime = dt.datetime(2026, 12, 1, 9, 0)

    def __call__(self, workspace) -> dt.datetime:
        self.now += dt.timedelta(hours=1)
        return self.now


def install_clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(watcher, "now_in_zone", clock)
    return clock


def process(workspace: Workspace, path: Path, user: str = "anna") -> BatchResult:
    """Drop one file in the user's inbox, process it, and return its result."""
    drop(workspace, path, user=user)
    report = watcher.run_pass(workspace)
    assert len(report.filed) == 1
    return report.filed[0].result


def load_catalogue(workspace: Workspace, tmp_path: Path) -> None:
    path = write_sheets(tmp_path / "catalogue.xlsx",
                        {"Products": PRODUCTS, "Storages": STORAGES})
    assert process(workspace, path, user="manager").status == "applied"


def query(workspace: Workspace, sql: str, parameters: list | None = None) -> list[tuple]:
    con = ledger.connect(workspace.ledger_path)
    try:
        return con.execute(sql, parameters or []).fetchall()
    finally:
        con.close()


def balances(workspace: Workspace) -> dict[tuple[str, str], Decimal]:
    """Return the non-zero balances in sale units, keyed by (storage, SKU)."""
    rows = query(workspace, "SELECT storage, sku, quantity FROM stock_balance")
    return {(storage, sku): quantity for storage, sku, quantity in rows if quantity != 0}


def balances_at(workspace: Workspace, business_time: dt.datetime,
                known_time: dt.datetime) -> dict[tuple[str, str], Decimal]:
    rows = query(workspace, "SELECT storage, sku, quantity FROM stock_balance_at(?, ?)",
                 [business_time, known_time])
    return {(storage, sku): quantity for storage, sku, quantity in rows if quantity != 0}


def operation_log(workspace: Workspace) -> list[tuple]:
    """Return the operation rows of the change_log view: (id, version, action, field, old,
    new, changed_by)."""
    return query(
        workspace,
        "SELECT entity_id, version, action, field, old_value, new_value, changed_by "
        "FROM change_log WHERE entity = 'operation' ORDER BY change_no",
    )


def problem_cells(result: BatchResult) -> list[tuple[str, str | None, str | None]]:
    return [(p.code, p.sheet, p.cell) for p in result.problems]


def result_workbook_path(workspace: Workspace, name: str, user: str = "anna") -> Path:
    return workspace.user_outbox(user) / name


def edit_form(source: Path, sheet_name: str, target: Path,
              labels: dict[str, object] | None = None,
              lines: dict[tuple[int, str], object] | None = None) -> Path:
    """Change a ready-to-edit form the way a user would, and save the workbook as `target`.

    `labels` sets the value beside a label; `lines` sets the cell of a 1-based line number
    and a column header.
    """
    workbook = openpyxl.load_workbook(source)
    sheet = workbook[sheet_name]
    column_a = [sheet.cell(row, 1).value for row in range(1, sheet.max_row + 1)]
    header_row = column_a.index("SKU") + 1
    for label, value in (labels or {}).items():
        sheet.cell(column_a.index(label) + 1, 2, value)
    headers = [sheet.cell(header_row, col).value for col in range(1, sheet.max_column + 1)]
    for (line, column), value in (lines or {}).items():
        sheet.cell(header_row + line, headers.index(column) + 1, value)
    workbook.save(target)
    return target
