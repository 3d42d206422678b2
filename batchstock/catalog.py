"""Import the catalogue: products (by SKU) and storages (by name) from a workbook.

A catalogue workbook has sheets `Products` and `Storages` with one header row each. It
is imported by `batchstock catalog import FILE` or dropped in the inbox like any batch.
Rows are validated cell by cell; a workbook with any problem changes nothing. Every
added or changed field is written to the change log as old → new.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import duckdb

from batchstock import ledger
from batchstock.core import STORAGE_TYPES, Cell, Note, Problem
from batchstock.values import (
    CellValueError,
    display_text,
    normalise_label,
    to_decimal,
    to_text,
)
from batchstock.workbook import SheetGrid

PRODUCT_COLUMNS = {
    "sku": ("sku", "article", "code", "item code"),
    "name": ("name", "product", "product name"),
    "barcode": ("barcode", "ean"),
    "category": ("category",),
    "sale_unit": ("sale unit", "unit"),
    "base_unit": ("write-off unit", "write off unit", "base unit"),
    "equals": ("equals", "write-off units per sale unit"),
    "sale_price": ("sale price", "price"),
    "cost_price": ("cost price", "cost", "unit cost"),
    "critical_stock": ("critical stock", "critical"),
    "desired_stock": ("desired stock", "desired"),
}
STORAGE_COLUMNS = {
    "name": ("name", "storage"),
    "type": ("type", "storage type"),
    "comment": ("comment",),
}
REQUIRED_PRODUCT = ("sku", "name", "sale_unit")


@dataclass
class ProductRow:
    """One product row of a catalogue sheet. `sheet_fields` names the fields whose column
    the sheet has. Re-importing updates only those, so a sheet without a Barcode column
    keeps the barcodes in the ledger."""

    sku: str
    name: str
    barcode: str | None
    category: str | None
    sale_unit: str
    base_unit: str
    equals: Decimal
    sale_price: Decimal | None
    cost_price: Decimal | None
    critical_stock: Decimal | None
    desired_stock: Decimal | None
    sheet_fields: frozenset[str] = frozenset()


@dataclass
class StorageRow:
    """One storage row. `sheet_fields` names the fields whose column the sheet has, as for
    products."""

    name: str
    type: str
    comment: str | None
    sheet_fields: frozenset[str] = frozenset()


def _find_sheet(grids: list[SheetGrid], name: str) -> SheetGrid:
    return next(g for g in grids if normalise_label(g.name) == name)


def _columns(grid: SheetGrid, aliases: dict[str, tuple[str, ...]]) -> dict[str, int]:
    lookup = {alias: name for name, names in aliases.items() for alias in names}
    found: dict[str, int] = {}
    header = grid.rows[0] if grid.rows else []
    for col, value in enumerate(header, start=1):
        if isinstance(value, str):
            name = lookup.get(normalise_label(value))
            if name and name not in found:
                found[name] = col
    return found


def read_catalogue(grids: list[SheetGrid], file: str):
    """Read and check product and storage rows; return (products, storages, problems)."""
    problems: list[Problem] = []
    products = _read_products(_find_sheet(grids, "products"), file, problems)
    storages = _read_storages(_find_sheet(grids, "storages"), file, problems)
    return products, storages, problems


def _text(grid, row, col, file, problems, label, required=False) -> str | None:
    cell = grid.cell(row, col) if col else Cell(grid.name, row, 1, None)
    text = to_text(cell.value)
    if text is None and required:
        problems.append(Problem(file, grid.name, cell.name, "missing_value",
                                f"{label} is missing; every row needs a {label}"))
    return text


def _number(grid, row, col, file, problems, label, places) -> Decimal | None:
    if not col:
        return None
    cell = grid.cell(row, col)
    try:
        number = to_decimal(cell.value, places)
    except CellValueError as error:
        problems.append(Problem(file, grid.name, cell.name, error.code,
                                f"{label}: {error.message}", display_text(cell.value)))
        return None
    if number is not None and number < 0:
        problems.append(Problem(file, grid.name, cell.name, "negative_value",
                                f"{label} {number} is negative; enter zero or more",
                                str(number)))
        return None
    return number


def _read_products(grid: SheetGrid, file: str, problems: list[Problem]) -> list[ProductRow]:
    columns = _columns(grid, PRODUCT_COLUMNS)
    for name in REQUIRED_PRODUCT:
        if name not in columns:
            problems.append(Problem(file, grid.name, "A1", "missing_column",
                                    f"the Products sheet has no {name.replace('_', ' ')} "
                                    "column; add it to the header row"))
    if any(name not in columns for name in REQUIRED_PRODUCT):
        return []
    rows: list[ProductRow] = []
    seen: dict[str, str] = {}
    for row in range(2, len(grid.rows) + 1):
        if all(v is None for v in grid.rows[row - 1]):
            continue
        get = lambda name, label, required=False: _text(  # noqa: E731
            grid, row, columns.get(name), file, problems, label, required)
        sku, name = get("sku", "SKU", True), get("name", "name", True)
        sale_unit = get("sale_unit", "sale unit", True)
        base_unit = get("base_unit", "write-off unit") or sale_unit
        equals = _number(grid, row, columns.get("equals"), file, problems, "equals", 3)
        if equals is not None and equals == 0:
            cell = grid.cell(row, columns["equals"])
            problems.append(Problem(file, grid.name, cell.name, "not_positive",
                                    "equals must be above zero: how many write-off units "
                                    "one sale unit holds", "0"))
        numbers = {
            key: _number(grid, row, columns.get(key), file, problems, key.replace("_", " "),
                         4 if key.endswith("price") else 3)
            for key in ("sale_price", "cost_price", "critical_stock", "desired_stock")
        }
        if sku and sku in seen:
            cell = grid.cell(row, columns["sku"])
            problems.append(Problem(file, grid.name, cell.name, "duplicate_sku",
                                    f"SKU {sku} appears again (first in {seen[sku]}); "
                                    "keep one row per SKU", sku))
        if sku:
            seen.setdefault(sku, grid.cell(row, columns["sku"]).name)
        if sku and name and sale_unit:
            rows.append(ProductRow(
                sku, name, get("barcode", "barcode"), get("category", "category"),
                sale_unit, base_unit or sale_unit, equals or Decimal(1), **numbers,
                sheet_fields=frozenset(columns)))
    return rows


def _read_storages(grid: SheetGrid, file: str, problems: list[Problem]) -> list[StorageRow]:
    columns = _columns(grid, STORAGE_COLUMNS)
    if "name" not in columns or "type" not in columns:
        problems.append(Problem(file, grid.name, "A1", "missing_column",
                                "the Storages sheet needs Name and Type columns"))
        return []
    rows = []
    for row in range(2, len(grid.rows) + 1):
        if all(v is None for v in grid.rows[row - 1]):
            continue
        name = _text(grid, row, columns["name"], file, problems, "storage name", True)
        kind = _text(grid, row, columns["type"], file, problems, "storage type", True)
        if kind is not None and kind.lower() not in STORAGE_TYPES:
            cell = grid.cell(row, columns["type"])
            problems.append(Problem(file, grid.name, cell.name, "unknown_storage_type",
                                    f'storage type "{kind}" is unknown; use sale or '
                                    "consumables", kind))
            kind = None
        comment = _text(grid, row, columns.get("comment"), file, problems, "comment")
        if name and kind:
            rows.append(StorageRow(name, kind.lower(), comment, frozenset(columns)))
    return rows


def apply_catalogue(con: duckdb.DuckDBPyConnection, products: list[ProductRow],
                    storages: list[StorageRow], stamp: ledger.Stamp) -> tuple[int, int]:
    """Insert or update products by SKU and storages by name; log each changed field.

    Returns (products changed, storages changed). Runs inside the caller's transaction.
    """
    changes: list[tuple] = []
    product_count = sum(_upsert_product(con, row, changes) for row in products)
    storage_count = sum(_upsert_storage(con, row, changes) for row in storages)
    ledger.log_changes(con, changes, stamp)
    return product_count, storage_count


def _diff(entity: str, key: str, old: dict[str, Any] | None, new: dict[str, Any], changes):
    action = "created" if old is None else "edited"
    changed = False
    for name, value in new.items():
        before = None if old is None else old.get(name)
        if _same(before, value):
            continue
        changed = True
        changes.append((entity, key, None, action, name,
                        None if before is None else str(before),
                        None if value is None else str(value)))
    return changed


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    return a == b


def _upsert_product(con, row: ProductRow, changes) -> bool:
    values = {f.name: getattr(row, f.name) for f in fields(row) if f.name != "sheet_fields"}
    found = con.execute(
        f"SELECT product_id, {', '.join(values)} FROM products WHERE sku = ?", [row.sku]
    ).fetchall()
    found = found[0] if found else None
    old = dict(zip(values, found[1:])) if found else None
    if found:
        values = {name: value for name, value in values.items() if name in row.sheet_fields}
    if not _diff("product", row.sku, old, values, changes):
        return False
    if found:
        assignments = ", ".join(f"{name} = ?" for name in values)
        con.execute(f"UPDATE products SET {assignments} WHERE product_id = ?",
                    [*values.values(), found[0]])
    else:
        product_id = ledger.next_number(con, "products", "product_id")
        con.execute(f"INSERT INTO products (product_id, {', '.join(values)}) VALUES "
                    f"({', '.join('?' * (len(values) + 1))})", [product_id, *values.values()])
    return True


def _upsert_storage(con, row: StorageRow, changes) -> bool:
    found = con.execute("SELECT storage_id, type, comment FROM storages WHERE lower(name) = "
                        "lower(?)", [row.name]).fetchall()
    found = found[0] if found else None
    old = {"type": found[1], "comment": found[2]} if found else None
    comment = row.comment if found is None or "comment" in row.sheet_fields else found[2]
    if not _diff("storage", row.name, old, {"type": row.type, "comment": comment}, changes):
        return False
    if found:
        con.execute("UPDATE storages SET type = ?, comment = ? WHERE storage_id = ?",
                    [row.type, comment, found[0]])
    else:
        storage_id = ledger.next_number(con, "storages", "storage_id")
        con.execute("INSERT INTO storages VALUES (?, ?, ?, ?)",
                    [storage_id, row.name, row.type, row.comment])
    return True


def import_catalogue_grids(con, grids, file: str, submitter: str, now: dt.datetime, sha: str,
                           outcome, apply: bool, arrived_at=None) -> None:
    """Validate and apply a catalogue workbook, filling `outcome.result`."""
    result = outcome.result
    products, storages, problems = read_catalogue(grids, file)
    result.problems.extend(problems)
    if problems or not apply:
        result.status = "rejected" if problems else "checked"
        if apply:
            record = ledger.BatchRecord(file, submitter, sha, "catalogue", arrived_at, now,
                                        status="rejected", problem_count=len(problems))
            result.batch_id = ledger.insert_batch(con, record)
        return
    con.execute("BEGIN TRANSACTION")
    try:
        record = ledger.BatchRecord(file, submitter, sha, "catalogue", arrived_at, now)
        batch_id = ledger.insert_batch(con, record)
        stamp = ledger.Stamp(batch_id, submitter, now, file)
        changed_products, changed_storages = apply_catalogue(con, products, storages, stamp)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    result.status = "applied"
    result.batch_id = batch_id
    result.notes.append(Note(None, None,
                             f"catalogue: {changed_products} products and {changed_storages} "
                             f"storages added or changed ({len(products)} products and "
                             f"{len(storages)} storages read)"))
