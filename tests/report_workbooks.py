"""Small ledgers for the valuation, report and reconcile tests, built through the inbox.

Each workbook is written inline with openpyxl in the form layout: labels in column A,
values in column B, a blank row, then the lines table. It is dropped in the inbox and
processed, so the ledger is built exactly as a user would build it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import openpyxl

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.core import BatchResult
from batchstock.watcher import run_pass
from conftest import drop

# One product counted in pieces (equals 1) keeps the hand-worked sums plain; the shampoo
# is bought by the bottle and written off by the millilitre.
PRODUCTS = [
    ["SKU", "Name", "Sale unit", "Write-off unit", "Equals", "Sale price", "Cost price",
     "Critical stock", "Desired stock"],
    ["COMB", "Carbon comb", "pcs", "pcs", 1, 6, 2, 2, 6],
    ["SHAMPOO", "Argan shampoo 250 ml", "pcs", "ml", 250, 20, 10, 1, 4],
]
STORAGES = [["Name", "Type"], ["Products", "sale"], ["Branch", "sale"]]
TITLES = {"arrival": "Arrival", "sale": "Sale", "relocation": "Relocation",
          "write-off": "Write-off"}
PRICE_HEADER = {"arrival": "Unit cost", "sale": "Price"}


def day(number: int, hour: int = 10) -> dt.datetime:
    """A business time in November 2026."""
    return dt.datetime(2026, 11, number, hour)


def write_sheets(path: Path, sheets: dict[str, list[list]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def process(workspace: Workspace, path: Path) -> BatchResult:
    """Drop a file in anna's inbox and process it; fail unless it is applied."""
    drop(workspace, path, user="anna")
    report = run_pass(workspace)
    result = report.filed[0].result
    assert result.status == "applied", [str(p) for p in result.problems]
    return result


def load_catalogue(workspace: Workspace, tmp_path: Path) -> None:
    path = write_sheets(tmp_path / "catalogue.xlsx",
                        {"Products": PRODUCTS, "Storages": STORAGES})
    process(workspace, path)


class Ledger:
    """Applies operations to a workspace's ledger, one workbook each."""

    def __init__(self, workspace: Workspace, tmp_path: Path) -> None:
        self.workspace = workspace
        self.folder = tmp_path
        self.files = 0
        load_catalogue(workspace, tmp_path)

    def _path(self, stem: str) -> Path:
        self.files += 1
        return self.folder / f"{self.files:03d}-{stem}.xlsx"

    def form(self, op_type: str, when: dt.datetime, lines: list[list], storage="Products",
             to_storage: str | None = None, operation_id: str | None = None,
             version: int | None = None) -> str:
        """Apply one operation; lines are [SKU, quantity] plus the price or cost, and an
        optional unit. Returns the operation id."""
        rows: list[list] = [["Operation", TITLES[op_type]], ["Date", when]]
        if op_type == "relocation":
            rows += [["From storage", storage], ["To storage", to_storage]]
        else:
            rows.append(["Storage", storage])
        if operation_id is not None:
            rows += [["Operation id", operation_id], ["Version", version]]
        header = ["SKU", "Quantity"]
        if op_type in PRICE_HEADER:
            header.append(PRICE_HEADER[op_type])
        rows += [[], header + ["Unit"]]
        for line in lines:
            padded = list(line[:len(header)]) + [None] * (len(header) - len(line))
            rows.append(padded + list(line[len(header):]))
        result = process(self.workspace, write_sheets(self._path(op_type),
                                                      {TITLES[op_type]: rows}))
        return result.operations[0].operation_id

    def arrival(self, when, sku, quantity, cost, storage="Products") -> str:
        return self.form("arrival", when, [[sku, quantity, cost]], storage)

    def sale(self, when, sku, quantity, price, storage="Products") -> str:
        return self.form("sale", when, [[sku, quantity, price]], storage)

    def relocation(self, when, sku, quantity, storage="Products", to="Branch") -> str:
        return self.form("relocation", when, [[sku, quantity]], storage, to)

    def write_off(self, when, sku, quantity, unit=None, storage="Products") -> str:
        return self.form("write-off", when, [[sku, quantity, unit]], storage)

    def cancel(self, operation_id: str) -> None:
        path = write_sheets(self._path("cancel"),
                            {"Cancel": [["Operation id"], [operation_id]]})
        process(self.workspace, path)

    def query(self, sql: str, parameters: list | dict | None = None) -> list[tuple]:
        con = ledger.connect(self.workspace.ledger_path)
        try:
            return con.execute(sql, parameters or []).fetchall()
        finally:
            con.close()


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))
