"""Workbooks written inline for the ingest tests, and a workspace with a small catalogue.

The catalogue here is small and names the cases the tests need. It has a SKU with leading
zeros (`000731`), a product name with accents (`Crème brûlée mask`), and two products that
share one name (`Hair clip`). Several products have a write-off unit other than their sale
unit: a 250 ml bottle, a 60 g tube, a box of 100 gloves.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import openpyxl
import pytest

from batchstock import ledger
from batchstock.config import Workspace, init_workspace
from batchstock.core import Problem
from batchstock.inbox import FiledBatch
from batchstock.watcher import run_pass
from conftest import drop

PRODUCT_HEADER = ["SKU", "Name", "Barcode", "Category", "Sale unit", "Write-off unit",
                  "Equals", "Sale price", "Cost price", "Critical stock", "Desired stock"]
PRODUCTS = [
    ["SH-ARG-250", "Argan repair shampoo 250 ml", "4601234500017", "Shampoos", "pcs", "ml",
     250, 18.9, 9.45, 3, 10],
    ["000731", "Salon gift card sleeve", "4601234507310", "Retail", "pcs", "pcs",
     1, 1, 0.29, 0, 20],
    ["DYE-6.0", "Permanent hair dye 6.0 dark blonde 60 g", "4601234500055", "Hair dye", "pcs",
     "g", 60, 9.8, 4.1, 5, 20],
    ["GL-NIT-M", "Nitrile gloves M, box of 100", "4601234500116", "Disposables", "box", "pcs",
     100, 11, 6.2, 2, 6],
    ["COMB-CARB", "Carbon comb", "4601234500208", "Tools", "pcs", "pcs", 1, 6.5, 2.1, 2, 10],
    ["MASK-CB", "Crème brûlée mask", "4601234500215", "Masks", "pcs", "ml", 200, 24, 11, 1, 4],
    ["CLIP-RED", "Hair clip", "4601234500222", "Tools", "pcs", "pcs", 1, 2.5, 0.8, 0, 10],
    ["CLIP-BLUE", "Hair clip", "4601234500239", "Tools", "pcs", "pcs", 1, 2.5, 0.8, 0, 10],
]
STORAGES = [
    ["Products", "sale", "Front desk retail shelf"],
    ["Consumables", "consumables", "Back room, used in services"],
    ["Branch 2 shelf", "sale", "Retail shelf at the second branch"],
]

# Header block of `form_rows`: its lines table header is on row 5, the first line on row 6.
FIRST_LINE_ROW = 6


def write_rows(path: Path, sheets: dict[str, list[list]]) -> Path:
    """Write one worksheet per entry with openpyxl; `[]` is a blank row. Returns `path`."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        worksheet = workbook.create_sheet(name)
        for row_number, values in enumerate(rows, start=1):
            for col_number, value in enumerate(values, start=1):
                if value is not None:
                    worksheet.cell(row_number, col_number, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def catalogue_sheets(products: list[list] | None = None,
                     storages: list[list] | None = None) -> dict[str, list[list]]:
    """Return the sheets of a catalogue workbook: `Products` and `Storages`."""
    return {
        "Products": [PRODUCT_HEADER, *(PRODUCTS if products is None else products)],
        "Storages": [["Name", "Type", "Comment"], *(STORAGES if storages is None else storages)],
    }


def form_rows(operation: str, storage: str, columns: list[str], lines: list[list],
              date: object = "2026-11-02 10:00") -> list[list]:
    """Return a form sheet: Operation, Date and Storage labels, a blank row, then the lines
    table, whose header is on row 5 and whose first line is on row `FIRST_LINE_ROW`."""
    storage_label = "From storage" if operation == "Relocation" else "Storage"
    return [
        ["Operation", operation],
        ["Date", date],
        [storage_label, storage],
        [],
        columns,
        *lines,
    ]


def submit(workspace: Workspace, path: Path, user: str = "anna") -> FiledBatch:
    """Drop `path` in the user's inbox folder, run one pass, and return its filed batch."""
    drop(workspace, path, user=user)
    report = run_pass(workspace)
    assert len(report.filed) == 1, report.filed
    return report.filed[0]


def located(problems: list[Problem]) -> set[tuple[str, str | None, str | None]]:
    """Return each problem as (code, sheet, cell)."""
    return {(p.code, p.sheet, p.cell) for p in problems}


def find_problem(problems: list[Problem], code: str) -> Problem:
    """Return the only problem with `code`."""
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, problems
    return found[0]


def query(workspace: Workspace, sql: str, parameters: list | None = None) -> list[tuple]:
    con = ledger.connect(workspace.ledger_path)
    try:
        return con.execute(sql, parameters or []).fetchall()
    finally:
        con.close()


def balance(workspace: Workspace, storage: str, sku: str):
    """Return the stock_balance quantity (sale units) of one product in one storage."""
    rows = query(workspace, "SELECT quantity FROM stock_balance WHERE storage = ? AND sku = ?",
                 [storage, sku])
    return rows[0][0] if rows else None


@pytest.fixture(scope="session")
def stocked_ledger(tmp_path_factory) -> Path:
    """A ledger file with the test catalogue imported, built once and copied per test."""
    workspace = init_workspace(tmp_path_factory.mktemp("catalogue") / "ws")
    catalogue = write_rows(workspace.root / "catalogue.xlsx", catalogue_sheets())
    filed = submit(workspace, catalogue, user="manager")
    assert filed.result.status == "applied", filed.result.problems
    return workspace.ledger_path


@pytest.fixture
def stocked(tmp_path: Path, stocked_ledger: Path) -> Workspace:
    """A fresh workspace whose ledger contains the test catalogue and no operations."""
    workspace = init_workspace(tmp_path / "ws")
    shutil.copyfile(stocked_ledger, workspace.ledger_path)
    return workspace


def arrive(workspace: Workspace, tmp_path: Path, lines: list[list], storage: str = "Products",
           date: object = "2026-11-02 10:00") -> None:
    """Apply an arrival of `lines` ([SKU, quantity]) and check that it was applied."""
    rows = form_rows("Arrival", storage, ["SKU", "Quantity"], lines, date=date)
    name = f"arrival-{dt.datetime.now():%H%M%S%f}.xlsx"
    filed = submit(workspace, write_rows(tmp_path / name, {"Arrival": rows}))
    assert filed.result.status == "applied", filed.result.problems
