"""Read stored operations back: the current version, its ready-to-edit form, its history.

The read side of edits and cancellations. `edits` loads the version a change replaces,
`results` and `batchstock operation show` turn the current version into a form a user
can change and drop back, and `batchstock history` prints an operation's change-log rows.
Nothing here writes to the ledger.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

import duckdb

from batchstock.core import Catalogue, FormLine, Line, Operation, OperationForm
from batchstock.ledger import format_operation_id

_OPERATION_ID = re.compile(r"(?:OP-?)?0*(\d{1,9})", re.IGNORECASE)

# Form labels between Date and Operation id, per type. A field outside this list is added
# to the form only when the stored operation has a value for it, so that a copy dropped
# back unchanged changes nothing.
_FORM_FIELDS = {
    "arrival": ("Storage", "Supplier", "Document no.", "Comment"),
    "sale": ("Storage", "Client", "Staff member", "Document no.", "Comment"),
    "relocation": ("From storage", "To storage", "Comment"),
    "write-off": ("Storage", "Reason", "Comment"),
}
_OPTIONAL_FIELDS = ("Staff member", "Reason", "Document no.")


def parse_operation_id(text: str | None) -> str | None:
    """Return the canonical id (`OP-000012`) of `OP-000012`, `op-12` or `12`, else None."""
    if text is None:
        return None
    match = _OPERATION_ID.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        return None
    return format_operation_id(int(match.group(1)))


@dataclass
class StoredOperation:
    """The current version of an operation as the ledger stores it.

    `storage` and `to_storage` are storage names; `operation.lines` carry catalogue ids.
    `product_names` maps product ids to their catalogue names, for forms.
    """

    operation_no: int
    operation_id: str
    status: str
    version: int
    operation: Operation
    storage: str
    to_storage: str | None
    product_names: dict[int, str]

    @property
    def type(self) -> str:
        return self.operation.type

    @property
    def storages(self) -> list[str]:
        return [self.storage] + ([self.to_storage] if self.to_storage else [])


def load_operation(con: duckdb.DuckDBPyConnection, operation_id: str) -> StoredOperation | None:
    """Load the current version of `operation_id`, or None when the ledger has no such id."""
    rows = con.execute(
        """
        SELECT h.operation_no, h.type, h.status, h.version, v.occurred_at, v.storage_id,
               v.to_storage_id, v.counterparty, v.staff_member, v.reason, v.document_no,
               v.comment, s.name, t.name
        FROM operation_heads h
        JOIN operation_versions v ON v.operation_no = h.operation_no AND v.version = h.version
        JOIN storages s ON s.storage_id = v.storage_id
        LEFT JOIN storages t ON t.storage_id = v.to_storage_id
        WHERE h.operation_id = ?
        """,
        [operation_id],
    ).fetchall()
    if not rows:
        return None
    (number, op_type, status, version, occurred_at, storage_id, to_storage_id,
     counterparty, staff_member, reason, document_no, comment, storage, to_storage) = rows[0]
    lines, names = _load_lines(con, number, version)
    operation = Operation(
        type=op_type, occurred_at=occurred_at, storage_id=storage_id,
        to_storage_id=to_storage_id, counterparty=counterparty, staff_member=staff_member,
        reason=reason, document_no=document_no, comment=comment, lines=lines,
    )
    return StoredOperation(number, operation_id, status, version, operation, storage,
                           to_storage, names)


def _load_lines(con, number: int, version: int) -> tuple[list[Line], dict[int, str]]:
    rows = con.execute(
        """
        SELECT l.line_no, l.product_id, p.sku, l.quantity, l.unit, l.base_quantity, l.price,
               l.discount, l.subtotal, l.comment, p.name
        FROM line_versions l JOIN products p USING (product_id)
        WHERE l.operation_no = ? AND l.version = ?
        ORDER BY l.line_no
        """,
        [number, version],
    ).fetchall()
    lines = [Line(*row[:10]) for row in rows]
    return lines, {row[1]: row[10] for row in rows}


@dataclass
class LastChange:
    """Who made the latest change-log entry of an operation, when, and from which file."""

    version: int | None
    action: str
    changed_by: str
    changed_at: dt.datetime
    file_name: str | None


def last_change(con: duckdb.DuckDBPyConnection, operation_id: str) -> LastChange | None:
    rows = con.execute(
        "SELECT version, action, changed_by, changed_at, file_name FROM change_log_entries "
        "WHERE entity = 'operation' AND entity_id = ? ORDER BY change_no DESC LIMIT 1",
        [operation_id],
    ).fetchall()
    return LastChange(*rows[0]) if rows else None


def form_of(stored: StoredOperation) -> OperationForm:
    """Return the ready-to-edit form of a stored operation's current version."""
    return _build_form(stored.operation_id, stored.version, stored.operation, stored.storage,
                       stored.to_storage, stored.product_names)


def form_of_operation(operation_id: str, version: int, op: Operation,
                      catalogue: Catalogue) -> OperationForm:
    """Return the form of an operation version just written, using catalogue names."""
    to_storage = catalogue.storages[op.to_storage_id].name if op.to_storage_id else None
    names = {line.product_id: catalogue.products[line.product_id].name for line in op.lines}
    return _build_form(operation_id, version, op, catalogue.storages[op.storage_id].name,
                       to_storage, names)


def _build_form(operation_id: str, version: int, op: Operation, storage: str,
                to_storage: str | None, product_names: dict[int, str]) -> OperationForm:
    values = {
        "Storage": storage,
        "From storage": storage,
        "To storage": to_storage,
        "Supplier": op.counterparty if op.type == "arrival" else None,
        "Client": op.counterparty if op.type == "sale" else None,
        "Staff member": op.staff_member,
        "Reason": op.reason,
        "Document no.": op.document_no,
        "Comment": op.comment,
    }
    labels = list(_FORM_FIELDS[op.type])
    extra = [label for label in _OPTIONAL_FIELDS if label not in labels and values[label]]
    labels[-1:-1] = extra  # before Comment, which every form ends with
    lines = [
        FormLine(
            sku=line.sku, product=product_names[line.product_id],
            quantity=line.quantity, unit=line.unit,
            price=line.price if op.type in ("arrival", "sale") else None,
            discount=line.discount, comment=line.comment,
        )
        for line in op.lines
    ]
    return OperationForm(operation_id, version, op.type, op.occurred_at,
                         {label: values[label] for label in labels}, lines)


def load_form(con: duckdb.DuckDBPyConnection, operation_id: str) -> OperationForm | None:
    """Load the ready-to-edit form of an operation, or None when the id is unknown."""
    stored = load_operation(con, operation_id)
    return form_of(stored) if stored is not None else None


@dataclass
class HistoryEntry:
    """One change-log row of an operation."""

    version: int | None
    action: str
    changed_by: str
    changed_at: dt.datetime
    batch_id: int | None
    file_name: str | None
    field: str | None
    old_value: str | None
    new_value: str | None


def read_history(con: duckdb.DuckDBPyConnection, operation_id: str) -> list[HistoryEntry]:
    """Return the change-log rows of one operation, oldest first, from the `change_log` view."""
    rows = con.execute(
        "SELECT version, action, changed_by, changed_at, batch_id, file_name, field, "
        "old_value, new_value FROM change_log "
        "WHERE entity = 'operation' AND entity_id = ? ORDER BY change_no",
        [operation_id],
    ).fetchall()
    return [HistoryEntry(*row) for row in rows]


def format_history(operation_id: str, entries: list[HistoryEntry]) -> list[str]:
    """Render history rows as text: one heading per change, one indented line per field."""
    lines: list[str] = []
    previous: tuple | None = None
    for entry in entries:
        key = (entry.version, entry.action, entry.batch_id, entry.changed_at)
        if key != previous:
            where = f"batch {entry.batch_id}" if entry.batch_id is not None else "no batch"
            if entry.file_name:
                where += f", {entry.file_name}"
            lines.append(
                f"{entry.changed_at:%Y-%m-%d %H:%M:%S}  {operation_id} version "
                f"{entry.version}  {entry.action} by {entry.changed_by}  ({where})"
            )
            previous = key
        if entry.field is not None:
            old = entry.old_value if entry.old_value is not None else "(empty)"
            new = entry.new_value if entry.new_value is not None else "(empty)"
            lines.append(f"    {entry.field}: {old} → {new}")
    return lines


def number_text(value: Decimal | None) -> str | None:
    """Return a stored Decimal as plain text without trailing zeros (9.4500 → 9.45)."""
    if value is None:
        return None
    return format(value.normalize(), "f")
