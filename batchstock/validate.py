"""Turn operation drafts into validated operations, collecting every problem of a batch.

Third stage, after `sheets`. It converts each cell (`values`), resolves storages and
products against the catalogue, runs the line rules (`schema`, pandera), and checks the
rules that span fields: sale storages, relocation targets, units, totals rows. The checks
that need ledger history (stock never negative) run in `ledger` inside the apply
transaction. Nothing here raises for bad data: every finding is a `Problem`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from batchstock.core import (
    Catalogue,
    Cell,
    Line,
    LineDraft,
    Note,
    Operation,
    OperationDraft,
    Problem,
    Product,
    Storage,
)
from batchstock.schema import LineRecord, check_lines
from batchstock.values import CellValueError, display_text, normalise_label, to_datetime
from batchstock.values import NUMBER_LIMIT, to_decimal, to_text

QUANTITY_DECIMALS = 3
MONEY_DECIMALS = 4
TYPE_NAMES = {
    "arrival": "arrival", "sale": "sale", "relocation": "relocation",
    "write-off": "write-off", "write off": "write-off", "writeoff": "write-off",
}
STORED_PLACES = Decimal("0.0001")


@dataclass
class Validation:
    """Operations that passed, every problem found, and notes for the result."""

    operations: list[Operation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


class _Collector:
    """Converts cells of one file and records a problem for each that fails."""

    def __init__(self, file: str, validation: Validation) -> None:
        self.file = file
        self.validation = validation

    def problem(self, cell: Cell | None, code: str, message: str, value: object = None,
                sheet: str | None = None) -> None:
        self.validation.problems.append(
            Problem(
                self.file, cell.sheet if cell else sheet, cell.name if cell else None,
                code, message, display_text(value if value is not None else
                                            (cell.value if cell else None)),
            )
        )

    def note(self, cell: Cell, message: str) -> None:
        self.validation.notes.append(Note(cell.sheet, cell.name, message))

    def decimal(self, cell: Cell | None, label: str, places: int) -> Decimal | None:
        if cell is None:
            return None
        try:
            return to_decimal(cell.value, places)
        except CellValueError as error:
            self.problem(cell, error.code, f"{label}: {error.message}")
            return None

    def date(self, cell: Cell | None) -> dt.datetime | None:
        if cell is None:
            return None
        try:
            return to_datetime(cell.value)
        except CellValueError as error:
            self.problem(cell, error.code, f"date: {error.message}")
            return None


def validate_drafts(
    drafts: list[OperationDraft], catalogue: Catalogue, now: dt.datetime, file: str
) -> Validation:
    """Validate every draft of one batch; the batch is good when `problems` is empty."""
    validation = Validation()
    collect = _Collector(file, validation)
    records: list[LineRecord] = []
    for draft in drafts:
        operation = _validate_operation(draft, catalogue, now, collect, records)
        if operation is not None:
            validation.operations.append(operation)
    _check_totals_rows(drafts, validation.operations, collect)
    validation.problems.extend(check_lines(records))
    if validation.problems:
        validation.operations = []
    return validation


def _header_text(draft: OperationDraft, name: str) -> str | None:
    cell = draft.header.get(name)
    return to_text(cell.value) if cell is not None else None


def _missing_cell(draft: OperationDraft, name: str) -> Cell:
    """Return where to report a missing header field: its value cell, else the sheet's A1."""
    if name in draft.header:
        return draft.header[name]
    return Cell(draft.sheet, draft.first_row or 1, 1, None)


def _validate_operation(draft, catalogue, now, collect, records) -> Operation | None:
    op_type = _operation_type(draft, collect)
    occurred_at = collect.date(draft.header.get("date")) or now
    storage = _storage(draft, "storage", catalogue, collect, required=True)
    to_storage = None
    if op_type == "relocation":
        to_storage = _storage(draft, "to_storage", catalogue, collect, required=True)
        if storage and to_storage and storage.storage_id == to_storage.storage_id:
            collect.problem(
                draft.header["to_storage"], "same_storage",
                f'to storage "{to_storage.name}" equals from storage; '
                "a relocation must go to a different storage",
            )
    if op_type == "sale" and storage is not None and storage.type != "sale":
        collect.problem(
            draft.header["storage"], "sale_storage_type",
            f'storage "{storage.name}" is of type {storage.type}; a sale must use a '
            "storage of type sale",
        )
    if draft.layout == "table":
        _check_consistent_rows(draft, collect)
    if not draft.lines:
        collect.problem(
            Cell(draft.sheet, draft.header_row, 1, None), "no_lines",
            "the operation has no lines; add at least one product line under the header row",
        )
    lines = [
        _validate_line(draft, line, index, op_type, catalogue, collect, records)
        for index, line in enumerate(draft.lines, start=1)
    ]
    if op_type is None or storage is None or any(line is None for line in lines):
        return None
    if op_type == "relocation" and to_storage is None:
        return None
    counterparty = _header_text(draft, "supplier" if op_type == "arrival" else "client")
    return Operation(
        type=op_type, occurred_at=occurred_at, storage_id=storage.storage_id,
        to_storage_id=to_storage.storage_id if to_storage else None,
        counterparty=counterparty if op_type in ("arrival", "sale") else None,
        staff_member=_header_text(draft, "staff_member"),
        reason=_header_text(draft, "reason"),
        document_no=_header_text(draft, "document_no"),
        comment=_header_text(draft, "comment"),
        lines=[line for line in lines if line is not None], source=draft,
    )


def _operation_type(draft: OperationDraft, collect: _Collector):
    cell = draft.header.get("type")
    text = to_text(cell.value) if cell else None
    if text is None:
        collect.problem(
            _missing_cell(draft, "type"), "missing_type",
            "operation type is missing; write Arrival, Sale, Relocation or Write-off "
            "next to the Operation label or in an Operation column",
        )
        return None
    op_type = TYPE_NAMES.get(normalise_label(text))
    if op_type is None:
        collect.problem(
            cell, "unknown_type",
            f'operation type "{text}" is unknown; use Arrival, Sale, Relocation or Write-off',
        )
    return op_type


def _storage(draft, name, catalogue: Catalogue, collect, required: bool) -> Storage | None:
    text = _header_text(draft, name)
    label = "to storage" if name == "to_storage" else "storage"
    if text is None:
        if required:
            collect.problem(
                _missing_cell(draft, name), "missing_storage",
                f"{label} is missing; enter the name of a storage from the catalogue",
            )
        return None
    storage = catalogue.storage_by_name.get(text.casefold())
    if storage is None:
        known = ", ".join(sorted(s.name for s in catalogue.storages.values()))
        collect.problem(
            draft.header[name], "unknown_storage",
            f'{label} "{text}" is not in the catalogue; use one of: {known}',
        )
    return storage


def _check_consistent_rows(draft: OperationDraft, collect: _Collector) -> None:
    """In the table layout, every row of one operation must repeat its header fields."""
    for line in draft.lines[1:]:
        for name, first in draft.header.items():
            cell = line.cells.get(f"row_{name}")
            if cell is None or name == "document_no":
                continue
            if to_text(cell.value) != to_text(first.value):
                collect.problem(
                    cell, "inconsistent_header",
                    f'{name.replace("_", " ")} "{display_text(cell.value)}" differs from '
                    f'"{display_text(first.value)}" in {first.name} of the same document; '
                    "rows of one document must agree",
                )


def _find_product(cells: dict[str, Cell], catalogue: Catalogue, collect) -> Product | None:
    sku_cell, barcode_cell, name_cell = cells.get("sku"), cells.get("barcode"), cells.get("product")
    sku = to_text(sku_cell.value) if sku_cell else None
    barcode = to_text(barcode_cell.value) if barcode_cell else None
    name = to_text(name_cell.value) if name_cell else None
    product = None
    if sku is not None:
        product = _by_sku(sku, sku_cell, catalogue, collect)
        if product is None:
            return None
    elif barcode is not None:
        matches = catalogue.by_barcode.get(barcode, [])
        if len(matches) != 1:
            collect.problem(
                barcode_cell, "unknown_barcode" if not matches else "ambiguous_barcode",
                f'barcode "{barcode}" '
                + ("is not in the catalogue" if not matches else "belongs to several products")
                + "; use the SKU instead",
            )
            return None
        product = matches[0]
    elif name is not None:
        matches = catalogue.by_name.get(name.casefold(), [])
        if len(matches) != 1:
            collect.problem(
                name_cell, "unknown_product" if not matches else "ambiguous_product",
                f'product "{name}" '
                + ("is not in the catalogue" if not matches else "matches several products")
                + "; add the SKU column or correct the name",
            )
            return None
        return matches[0]
    else:
        return None
    if name is not None and name.casefold() != product.name.casefold():
        collect.problem(
            name_cell, "sku_name_mismatch",
            f'product "{name}" does not match SKU {product.sku}, which is "{product.name}"; '
            "correct the SKU or the name",
        )
        return None
    return product


def _by_sku(sku: str, cell: Cell, catalogue: Catalogue, collect) -> Product | None:
    product = catalogue.by_sku.get(sku)
    if product is not None:
        return product
    if isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool):
        matches = catalogue.by_stripped_sku.get(sku.lstrip("0"), [])
        if len(matches) == 1:
            collect.note(
                cell,
                f"numeric SKU {sku} matched {matches[0].sku}; format the column as text "
                "to keep leading zeros",
            )
            return matches[0]
        if len(matches) > 1:
            candidates = ", ".join(sorted(match.sku for match in matches))
            collect.problem(
                cell, "ambiguous_sku",
                f"numeric SKU {sku} lost its leading zeros and could be any of {candidates}; "
                "format the column as text and write the SKU with its zeros",
            )
            return None
    collect.problem(
        cell, "unknown_sku",
        f'SKU "{sku}" is not in the catalogue; check the SKU or import the product first',
    )
    return None


def _validate_line(draft, line: LineDraft, index, op_type, catalogue, collect, records):
    cells = line.cells
    has_product = any(
        n in cells and not cells[n].is_empty for n in ("sku", "barcode", "product")
    )
    product = _find_product(cells, catalogue, collect) if has_product else None
    first = _first_cell(draft, line)
    if not has_product:
        collect.problem(
            first, "missing_product",
            "the line names no product; enter an SKU, a barcode or a product name",
        )
    quantity = collect.decimal(cells.get("quantity"), "quantity", QUANTITY_DECIMALS)
    if quantity is None and "quantity" in cells and cells["quantity"].is_empty:
        collect.problem(cells["quantity"], "missing_quantity",
                        "quantity is missing; enter a quantity above zero")
    price_field = _price_field(op_type, cells)
    price = collect.decimal(cells.get(price_field), price_field, MONEY_DECIMALS)
    discount = collect.decimal(cells.get("discount"), "discount", MONEY_DECIMALS)
    subtotal = collect.decimal(cells.get("subtotal"), "subtotal", MONEY_DECIMALS)
    unit, base_quantity = _unit(cells.get("unit"), product, quantity, collect)
    if price is None and product is not None and not _given(cells, price_field):
        price = product.cost_price if op_type == "arrival" else product.sale_price
    if op_type in ("relocation", "write-off"):
        price = None
    expected = _expected_subtotal(cells, quantity, price, discount, collect)
    records.append(
        LineRecord(
            file=collect.file, sheet=draft.sheet, operation_type=op_type, line_index=index,
            quantity=quantity, price=price, discount=discount, subtotal=subtotal,
            expected_subtotal=expected,
            cells={
                "quantity": _name(cells, "quantity"), "price": _name(cells, price_field),
                "discount": _name(cells, "discount"), "subtotal": _name(cells, "subtotal"),
                "first": first.name,
            },
            raw={k: c.value for k, c in cells.items()} | {"price": _raw(cells, price_field)},
        )
    )
    if product is None or quantity is None or base_quantity is None:
        return None
    return Line(
        line_no=index, product_id=product.product_id, sku=product.sku, quantity=quantity,
        unit=unit, base_quantity=base_quantity, price=price, discount=discount or Decimal(0),
        subtotal=subtotal if subtotal is not None else (expected or Decimal(0)),
        comment=to_text(cells["line_comment"].value) if "line_comment" in cells else None,
        source=line,
    )


def _first_cell(draft: OperationDraft, line: LineDraft) -> Cell:
    columns = draft.line_columns
    for name in ("sku", "barcode", "product"):
        if name in columns:
            return line.cells[name]
    col = min(columns.values()) if columns else 1
    return Cell(line.sheet, line.row, col, None)


def _price_field(op_type: str | None, cells: dict[str, Cell]) -> str:
    if op_type == "arrival":
        return "cost" if "cost" in cells or "price" not in cells else "price"
    return "price" if "price" in cells or "cost" not in cells else "cost"


def _given(cells: dict[str, Cell], name: str) -> bool:
    return name in cells and not cells[name].is_empty


def _name(cells: dict[str, Cell], name: str) -> str | None:
    return cells[name].name if name in cells else None


def _raw(cells: dict[str, Cell], name: str) -> object:
    return cells[name].value if name in cells else None


def _unit(cell: Cell | None, product: Product | None, quantity, collect):
    """Return the line's unit and its quantity in write-off units."""
    if product is None:
        return None, None
    text = to_text(cell.value) if cell is not None else None
    if text is None or text.casefold() == product.sale_unit.casefold():
        unit = product.sale_unit
        factor = product.equals
    elif text.casefold() == product.base_unit.casefold():
        unit = product.base_unit
        factor = Decimal(1)
    else:
        collect.problem(
            cell, "unknown_unit",
            f'unit "{text}" is not a unit of {product.sku}; use {product.sale_unit} '
            f"(sale unit) or {product.base_unit} (write-off unit)",
        )
        return None, None
    if quantity is None:
        return unit, None
    return unit, quantity * factor


def _expected_subtotal(cells: dict[str, Cell], quantity, price, discount,
                       collect) -> Decimal | None:
    """Return quantity × price less the discount; report it at the quantity cell and return
    None when the ledger cannot hold the amount."""
    expected = _subtotal(quantity, price, discount)
    if expected is None or abs(expected) < NUMBER_LIMIT:
        return expected
    collect.problem(
        cells["quantity"], "too_large",
        f"quantity × price is {expected:.2f}, more than the ledger holds (below "
        f"{NUMBER_LIMIT:f}); check the quantity and the price",
    )
    return None


def _subtotal(quantity, price, discount) -> Decimal | None:
    if quantity is None or price is None:
        return None
    share = (Decimal(100) - (discount or Decimal(0))) / Decimal(100)
    amount = quantity * price * share
    if abs(amount) >= NUMBER_LIMIT:
        return amount  # too large to round to STORED_PLACES; the caller reports it
    return amount.quantize(STORED_PLACES, rounding=ROUND_HALF_UP)


def _check_totals_rows(drafts: list[OperationDraft], operations: list[Operation],
                       collect) -> None:
    """Check each totals row against the lines of every operation above it.

    A form's totals row belongs to its one operation; a table's is shared by every
    operation of the sheet. A totals row is checked only when all of those operations
    passed, since the sum of lines with bad cells means nothing.
    """
    by_draft = {id(op.source): op for op in operations}
    groups: dict[int, list[OperationDraft]] = {}
    for draft in drafts:
        if draft.totals is not None:
            groups.setdefault(id(draft.totals), []).append(draft)
    for group in groups.values():
        found = [by_draft.get(id(draft)) for draft in group]
        if all(op is not None for op in found):
            lines = [line for op in found if op is not None for line in op.lines]
            _check_totals(group[0].totals, lines, collect)


def _check_totals(totals: LineDraft, lines: list[Line], collect) -> None:
    """Check a totals row against the sum of the lines it can compare."""
    for name, attribute in (("subtotal", "subtotal"), ("quantity", "quantity")):
        cell = totals.cells.get(name)
        if cell is None or cell.is_empty:
            continue
        given = collect.decimal(cell, f"total {name}", MONEY_DECIMALS)
        if given is None:
            continue
        computed = sum((getattr(line, attribute) for line in lines), Decimal(0))
        if abs(given - computed) > Decimal("0.01"):
            collect.problem(
                cell, "total_mismatch",
                f"total {name} {given} does not equal the sum of the lines, {computed}; "
                "correct the total or the lines",
            )
