"""Data model shared by every pipeline stage: problems, located cells, operation drafts.

`core` imports nothing from the rest of the package, and every other module imports it.
A workbook becomes `OperationDraft`s (raw cells with their coordinates), validation turns
drafts into `Operation`s (typed values, catalogue ids) plus a list of `Problem`s, and the
ledger applies operations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

OperationType = Literal["arrival", "sale", "relocation", "write-off"]
OPERATION_TYPES: tuple[OperationType, ...] = ("arrival", "sale", "relocation", "write-off")

StorageType = Literal["sale", "consumables"]
STORAGE_TYPES: tuple[StorageType, ...] = ("sale", "consumables")

MAX_LINES_PER_OPERATION = 500


class BatchstockError(Exception):
    """Base of the failures that are not problems in user data (environment, usage)."""


class WorkspaceError(BatchstockError):
    """The workspace folder or its configuration is missing or invalid."""


class LedgerBusyError(BatchstockError):
    """Another process holds the ledger or the inbox lock."""


def column_letter(col: int) -> str:
    """Convert a 1-based column number to Excel letters (1 → A, 27 → AA)."""
    letters = ""
    while col > 0:
        col, remainder = divmod(col - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def cell_name(row: int, col: int) -> str:
    """Return the A1 name of a 1-based row and column."""
    return f"{column_letter(col)}{row}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a batch, located as precisely as the input allows.

    `sheet` and `cell` are None for problems with the whole file (not a workbook, a
    duplicate). `code` is stable and documented; `message` is for people and may change.
    `value` is the offending input as text, or None when the cell was empty.
    """

    file: str
    sheet: str | None
    cell: str | None
    code: str
    message: str
    value: str | None = None

    def location(self) -> str:
        """Return `file: sheet!cell` as far as it is known."""
        where = self.file
        if self.sheet is not None:
            where += f": {self.sheet}"
            if self.cell is not None:
                where += f"!{self.cell}"
        return where

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"

    def to_json(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Cell:
    """A value read from a worksheet, with its 1-based coordinates.

    `value` is what the reader returned: str, int, float, bool, datetime, date, time,
    or None for an empty cell.
    """

    sheet: str
    row: int
    col: int
    value: Any

    @property
    def name(self) -> str:
        return cell_name(self.row, self.col)

    @property
    def is_empty(self) -> bool:
        return self.value is None or (isinstance(self.value, str) and not self.value.strip())


@dataclass
class LineDraft:
    """One row of a lines table, keyed by canonical field name (`sku`, `quantity`, …)."""

    sheet: str
    row: int
    cells: dict[str, Cell]


@dataclass
class OperationDraft:
    """One operation as found in a sheet, before any value is converted or checked.

    `header` maps canonical header fields (`type`, `date`, `storage`, …) to their cells.
    In the table layout a header field's cell is the one on the operation's first row.
    `header_label_cells` keeps, for the form layout, the cell of each label, so that a
    missing value can be reported next to its label.
    """

    file: str
    sheet: str
    layout: Literal["form", "table"]
    header: dict[str, Cell]
    lines: list[LineDraft]
    header_row: int
    line_columns: dict[str, int] = field(default_factory=dict)
    header_label_cells: dict[str, Cell] = field(default_factory=dict)
    totals: LineDraft | None = None
    ignored_columns: list[str] = field(default_factory=list)
    first_row: int = 0


@dataclass
class Line:
    """A validated line. Quantities are Decimal in the line's unit and in write-off units."""

    line_no: int
    product_id: int
    sku: str
    quantity: Decimal
    unit: str
    base_quantity: Decimal
    price: Decimal | None
    discount: Decimal
    subtotal: Decimal
    comment: str | None
    source: LineDraft | None = None


@dataclass
class Operation:
    """A validated operation, ready for the ledger.

    `storage_id` is the storage stock leaves (sale, write-off, relocation) or enters
    (arrival); `to_storage_id` is set for relocations only. `counterparty` is the supplier
    of an arrival or the client of a sale.
    """

    type: OperationType
    occurred_at: dt.datetime
    storage_id: int
    to_storage_id: int | None
    counterparty: str | None
    staff_member: str | None
    reason: str | None
    document_no: str | None
    comment: str | None
    lines: list[Line]
    source: OperationDraft | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Note:
    """Something the result should tell the submitter that is not a problem."""

    sheet: str | None
    cell: str | None
    message: str


BatchStatus = Literal["applied", "rejected", "duplicate", "checked", "no change"]

ChangeAction = Literal["created", "edited", "cancelled", "no change"]


@dataclass
class FormLine:
    """One line of a filled-in form. `price` is the unit cost of an arrival, None for
    relocations and write-offs; `quantity` is in `unit`."""

    sku: str
    product: str
    quantity: Decimal
    unit: str
    price: Decimal | None
    discount: Decimal
    comment: str | None


@dataclass
class OperationForm:
    """The current version of a stored operation, as a ready-to-edit form shows it.

    `fields` maps form labels (`Storage`, `Supplier`, `Document no.`, …) to their text,
    in the order the form writes them; a None value leaves the cell empty.
    """

    operation_id: str
    version: int
    type: OperationType
    occurred_at: dt.datetime
    fields: dict[str, str | None]
    lines: list[FormLine]


@dataclass(frozen=True)
class Change:
    """One change-log row of a batch: a field of an operation, old → new.

    `field` is None for the row that records the action itself (created, cancelled).
    """

    operation_id: str
    version: int
    action: ChangeAction
    field: str | None = None
    old_value: str | None = None
    new_value: str | None = None


@dataclass
class OperationSummary:
    """Summary row of one operation that a batch created or changed, for the result workbook."""

    operation_id: str
    type: OperationType
    sheet: str
    occurred_at: dt.datetime
    storage: str
    to_storage: str | None
    line_count: int
    total_amount: Decimal | None
    version: int = 1
    action: ChangeAction = "created"


@dataclass
class BatchResult:
    """The outcome of one batch, as written to its result workbook and printed by the CLI.

    `duplicate_of` names the earlier batch when the same content was applied before.
    `ignored_columns` lists, per sheet, the column headers that were not understood.
    `forms` holds a ready-to-edit copy of each operation the batch created or edited, and
    `changes` the change-log rows of its edits and cancellations.
    """

    file: str
    submitter: str
    status: BatchStatus
    batch_id: int | None
    processed_at: dt.datetime
    operations: list[OperationSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    duplicate_of: str | None = None
    ignored_columns: dict[str, list[str]] = field(default_factory=dict)
    forms: list[OperationForm] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Product:
    """A catalogue product. `equals` is how many write-off units one sale unit holds."""

    product_id: int
    sku: str
    name: str
    barcode: str | None
    sale_unit: str
    base_unit: str
    equals: Decimal
    sale_price: Decimal | None
    cost_price: Decimal | None


@dataclass(frozen=True)
class Storage:
    storage_id: int
    name: str
    type: StorageType


@dataclass
class Catalogue:
    """Snapshot of products and storages for validation, with lookup indexes.

    Name lookups are case-insensitive; `by_name` maps a folded name to every product
    that carries it, so an ambiguous name can be reported instead of guessed.
    """

    products: dict[int, Product]
    storages: dict[int, Storage]
    by_sku: dict[str, Product] = field(default_factory=dict)
    by_barcode: dict[str, list[Product]] = field(default_factory=dict)
    by_name: dict[str, list[Product]] = field(default_factory=dict)
    by_stripped_sku: dict[str, list[Product]] = field(default_factory=dict)
    storage_by_name: dict[str, Storage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for product in self.products.values():
            self.by_sku[product.sku] = product
            if product.barcode:
                self.by_barcode.setdefault(product.barcode, []).append(product)
            self.by_name.setdefault(product.name.casefold(), []).append(product)
            stripped = product.sku.lstrip("0")
            if stripped != product.sku:
                self.by_stripped_sku.setdefault(stripped, []).append(product)
        for storage in self.storages.values():
            self.storage_by_name[storage.name.casefold()] = storage
