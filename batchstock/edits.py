"""Edits and cancellations of stored operations.

Sits between `validate` and `ledger`. `route_drafts` sorts a batch's drafts into new
operations, edits (a draft whose `Operation id` names a stored operation) and cancellations
(`Action` Cancel, or the rows of a `Cancel` sheet). An edit draft is validated like a new
operation. `plan_changes` then checks each change against the ledger: the id exists, the
operation is still active, the form's `Version` is the current one, the type is unchanged,
a relocation is only cancelled, and the submitter has the rights. `apply_plan` appends,
inside the batch's transaction, reversing movements for each replaced or cancelled version,
the new versions with their movements, and the change-log rows. Nothing is updated in
place except the current version and status in `operation_heads`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import duckdb

from batchstock import ledger
from batchstock.access import Rights, check_change_rights
from batchstock.changelog import diff_versions
from batchstock.core import (
    Catalogue,
    Cell,
    Change,
    Note,
    Operation,
    OperationDraft,
    OperationSummary,
    Problem,
)
from batchstock.history import StoredOperation, last_change, load_operation, parse_operation_id
from batchstock.sheets import CancelRequest
from batchstock.validate import TYPE_NAMES
from batchstock.values import CellValueError, display_text, normalise_label, to_decimal, to_text

ACTIONS = ("edit", "cancel")


@dataclass
class EditRequest:
    """A draft that replaces the stored operation named in `id_cell`.

    `stored` is the version it replaces and `operation` the validated new version, each
    None until found. `changes` are the change-log rows, and none means no change.
    """

    draft: OperationDraft
    id_cell: Cell
    version_cell: Cell | None
    stored: StoredOperation | None = None
    operation: Operation | None = None
    changes: list[Change] = field(default_factory=list)


@dataclass
class CancelItem:
    request: CancelRequest
    stored: StoredOperation


@dataclass
class Routing:
    """A batch's drafts sorted by what they do."""

    new: list[OperationDraft] = field(default_factory=list)
    edits: list[EditRequest] = field(default_factory=list)
    cancels: list[CancelRequest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def drafts_to_validate(self) -> list[OperationDraft]:
        return self.new + [edit.draft for edit in self.edits]


@dataclass
class ChangePlan:
    """The edits and cancellations of a batch that passed the ledger checks."""

    edits: list[EditRequest] = field(default_factory=list)
    unchanged: list[EditRequest] = field(default_factory=list)
    cancels: list[CancelItem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def changes_ledger(self) -> bool:
        return bool(self.edits or self.cancels)


def route_drafts(drafts: list[OperationDraft], cancels: list[CancelRequest],
                 file: str) -> Routing:
    """Sort drafts by their `Action` and `Operation id` cells.

    No action and no id creates an operation, an id without action (or Action Edit) edits
    it, and Action Cancel cancels it. Other actions and an action without an id are problems.
    """
    routing = Routing(cancels=list(cancels))
    for draft in drafts:
        action_cell = draft.header.get("action")
        action_text = to_text(action_cell.value) if action_cell is not None else None
        action = normalise_label(action_text) if action_text else None
        id_cell = draft.header.get("operation_id")
        has_id = id_cell is not None and not id_cell.is_empty
        if action is not None and action not in ACTIONS:
            routing.problems.append(_problem(
                file, action_cell, "unknown_action",
                f'action "{action_text}" is unknown; write Cancel to cancel the operation '
                "named by Operation id, or leave it empty to create or edit one",
            ))
        elif action is not None and not has_id:
            routing.problems.append(_problem(
                file, id_cell or action_cell, "missing_operation_id",
                f"Action {action_text} needs the id of the operation in Operation id; copy "
                "it from the result workbook that created the operation",
            ))
        elif action == "cancel":
            routing.cancels.append(
                CancelRequest(file, draft.sheet, id_cell, draft.header.get("version"))
            )
        elif has_id:
            routing.edits.append(EditRequest(draft, id_cell, draft.header.get("version")))
        else:
            routing.new.append(draft)
    return routing


def plan_changes(con: duckdb.DuckDBPyConnection, routing: Routing, validated: list[Operation],
                 catalogue: Catalogue, rights: Rights, file: str) -> ChangePlan:
    """Check every edit and cancellation against the ledger and the submitter's rights.

    `validated` are the operations that passed validation. An edit whose draft is not
    among them is left out of the plan, because validation reported its problems.
    """
    plan = ChangePlan()
    checker = _Checker(con, plan, rights, file)
    by_draft = {id(op.source): op for op in validated}
    for request in routing.edits:
        stored = checker.resolve(request.id_cell, request.version_cell, "edit")
        if stored is None:
            continue
        request.stored = stored
        if not checker.check_type(request, stored):
            continue
        request.operation = by_draft.get(id(request.draft))
        if request.operation is None:
            continue
        request.changes = diff_versions(stored, request.operation, catalogue,
                                        stored.version + 1)
        if request.changes and stored.type == "relocation":
            checker.problem(request.id_cell, "relocation_edit",
                            f"{stored.operation_id} is a relocation, and relocations can only "
                            "be cancelled; set Action to Cancel, then book a new relocation")
            continue
        (plan.edits if request.changes else plan.unchanged).append(request)
    for cancel in routing.cancels:
        stored = checker.resolve(cancel.id_cell, cancel.version_cell, "cancel")
        if stored is not None:
            plan.cancels.append(CancelItem(cancel, stored))
    return plan


class _Checker:
    """Resolves operation ids of one batch and records a problem for each failed check."""

    def __init__(self, con, plan: ChangePlan, rights: Rights, file: str) -> None:
        self.con = con
        self.plan = plan
        self.rights = rights
        self.file = file
        self.claimed: dict[str, Cell] = {}

    def problem(self, cell: Cell | None, code: str, message: str) -> None:
        self.plan.problems.append(_problem(self.file, cell, code, message))

    def resolve(self, id_cell: Cell, version_cell: Cell | None,
                action: str) -> StoredOperation | None:
        """Return the stored operation `id_cell` names when `action` may apply to it."""
        text = to_text(id_cell.value)
        operation_id = parse_operation_id(text)
        if operation_id is None:
            self.problem(id_cell, "invalid_operation_id",
                         f'"{text}" is not an operation id such as OP-000012; copy the id '
                         "from the result workbook, or leave the cell empty for a new operation")
            return None
        if operation_id in self.claimed:
            first = self.claimed[operation_id]
            self.problem(id_cell, "duplicate_operation_id",
                         f"{operation_id} is also named in {first.sheet}!{first.name}; an "
                         "operation can be edited or cancelled once per file, so keep one")
            return None
        self.claimed[operation_id] = id_cell
        stored = load_operation(self.con, operation_id)
        if stored is None:
            self.problem(id_cell, "unknown_operation",
                         f"the ledger has no operation {operation_id}; check the id, or leave "
                         "the cell empty to create a new operation")
            return None
        if stored.status == "cancelled":
            self._cancelled_problem(id_cell, stored, action)
            return None
        if not self.check_version(id_cell, version_cell, stored):
            return None
        self.plan.problems.extend(check_change_rights(
            self.rights, action, id_cell, stored.type, stored.storages, self.file))
        return stored

    def _cancelled_problem(self, cell: Cell, stored: StoredOperation, action: str) -> None:
        change = last_change(self.con, stored.operation_id)
        when = f" by {change.changed_by} on {change.changed_at:%Y-%m-%d %H:%M}" if change else ""
        if action == "cancel":
            self.problem(cell, "already_cancelled",
                         f"{stored.operation_id} was cancelled already{when}; remove it from "
                         "this file")
        else:
            self.problem(cell, "operation_cancelled",
                         f"{stored.operation_id} was cancelled{when} and cannot be edited; "
                         "leave Operation id empty to book it as a new operation")

    def check_version(self, id_cell: Cell, version_cell: Cell | None,
                      stored: StoredOperation) -> bool:
        """Check the form's Version against the current one; without it, add a note."""
        operation_id = stored.operation_id
        if version_cell is None or version_cell.is_empty:
            self.plan.notes.append(Note(
                id_cell.sheet, id_cell.name,
                f"no Version given for {operation_id}, so this file replaced its current "
                f"version {stored.version}; a form from a result workbook carries its Version",
            ))
            return True
        try:
            version = to_decimal(version_cell.value, 0)
        except CellValueError:
            version = None
        if version is None or not 1 <= version <= stored.version:
            self.problem(version_cell, "invalid_version",
                         f"Version must be a whole number from 1 to {stored.version}, the "
                         f"current version of {operation_id}; copy it from the result workbook")
            return False
        if version < stored.version:
            change = last_change(self.con, operation_id)
            by = (f" by {change.changed_by} on {change.changed_at:%Y-%m-%d %H:%M} "
                  f"({change.file_name})") if change else ""
            self.problem(version_cell, "version_conflict",
                         f"this form was made from version {version} of {operation_id}, which "
                         f"was changed since to version {stored.version}{by}; get the current "
                         f"form with `batchstock operation show {operation_id}` and make the "
                         "change there")
            return False
        return True

    def check_type(self, request: EditRequest, stored: StoredOperation) -> bool:
        """Check that an edit keeps the stored operation's type."""
        type_cell = request.draft.header.get("type")
        text = to_text(type_cell.value) if type_cell is not None else None
        new_type = TYPE_NAMES.get(normalise_label(text)) if text else None
        if new_type is None or new_type == stored.type:
            return True
        self.problem(type_cell, "type_change",
                     f"{stored.operation_id} is {_with_article(stored.type)} and its type "
                     f"cannot change to {new_type}; cancel {stored.operation_id} (Action "
                     f"Cancel) and create a new {new_type} instead")
        return False


def apply_plan(con: duckdb.DuckDBPyConnection, plan: ChangePlan,
               stamp: ledger.Stamp) -> list[Change]:
    """Append reversals, new versions and change-log rows for every change of the plan.

    Runs inside the caller's transaction and returns the change-log rows it wrote.
    """
    replaced = [(e.stored, -1) for e in plan.edits] + [(c.stored, -1) for c in plan.cancels]
    ledger.insert_movements(
        con, [(s.operation_no, s.version, s.operation, sign) for s, sign in replaced],
        stamp, reversal=True,
    )
    if plan.edits:
        ledger.insert_versions(
            con, [(e.stored.operation_no, e.stored.version + 1, e.operation) for e in plan.edits],
            stamp,
        )
    changes: list[Change] = []
    for edit in plan.edits:
        con.execute("UPDATE operation_heads SET version = ? WHERE operation_no = ?",
                    [edit.stored.version + 1, edit.stored.operation_no])
        changes.extend(edit.changes)
    for cancel in plan.cancels:
        con.execute("UPDATE operation_heads SET status = 'cancelled' WHERE operation_no = ?",
                    [cancel.stored.operation_no])
        changes.append(Change(cancel.stored.operation_id, cancel.stored.version, "cancelled",
                              "status", "active", "cancelled"))
    ledger.log_changes(
        con,
        [("operation", c.operation_id, c.version, c.action, c.field, c.old_value, c.new_value)
         for c in changes],
        stamp,
    )
    return changes


def change_stock_problems(con: duckdb.DuckDBPyConnection, batch_id: int, plan: ChangePlan,
                          new_operations: list[Operation], catalogue: Catalogue,
                          file: str) -> list[Problem]:
    """Turn shortfalls that the batch's edits and cancellations cause into problems.

    A shortfall in a storage where a new operation of the batch takes the same product is
    left to the check of new operations. Each other shortfall is reported at every change
    that touches it, naming the operations that took the stock after it.
    """
    covered = {
        (op.storage_id, line.product_id)
        for op in new_operations if op.type != "arrival" for line in op.lines
    }
    problems = []
    for shortfall in ledger.find_shortfalls(con, batch_id):
        key = (shortfall.storage_id, shortfall.product_id)
        if key in covered:
            continue
        dependents = _dependent_operations(con, batch_id, key)
        for cell, verb, operation_id in _changes_touching(plan, key):
            problems.append(_shortfall_problem(file, cell, verb, operation_id, shortfall,
                                               dependents, catalogue))
    return problems


def _changes_touching(plan: ChangePlan, key: tuple[int, int]):
    """Yield (cell, verb, operation id) for each change that moves the product in the storage."""
    for edit in plan.edits:
        new_line = _line_in(edit.operation, key)
        if new_line is not None or _line_in(edit.stored.operation, key) is not None:
            source = new_line.source if new_line is not None else None
            cell = source.cells.get("quantity") if source is not None else None
            yield cell or edit.id_cell, "this edit of", edit.stored.operation_id
    for cancel in plan.cancels:
        if _line_in(cancel.stored.operation, key) is not None:
            yield cancel.request.id_cell, "cancelling", cancel.stored.operation_id


def _line_in(op: Operation, key: tuple[int, int]):
    storage_id, product_id = key
    if storage_id not in (op.storage_id, op.to_storage_id):
        return None
    return next((line for line in op.lines if line.product_id == product_id), None)


def _dependent_operations(con, batch_id: int, key: tuple[int, int]) -> list[tuple[str, str]]:
    """Return (type, id) of active operations outside the batch that take the product from
    the storage between the batch's earliest movement there and the last negative balance."""
    rows = con.execute(
        """
        WITH running AS (
            SELECT occurred_at, sum(base_quantity) OVER (
                ORDER BY occurred_at, base_quantity DESC, movement_no
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS balance
            FROM movement_entries WHERE storage_id = $storage AND product_id = $product
        ),
        first_moved AS (
            SELECT min(occurred_at) AS moment FROM movement_entries
            WHERE batch_id = $batch AND storage_id = $storage AND product_id = $product
        ),
        last_short AS (
            SELECT max(r.occurred_at) AS moment FROM running r, first_moved f
            WHERE r.balance < 0 AND r.occurred_at >= f.moment
        )
        SELECT h.type, h.operation_id, min(m.occurred_at) AS taken_at
        FROM movement_entries m
        JOIN operation_heads h USING (operation_no), first_moved f, last_short l
        WHERE m.storage_id = $storage AND m.product_id = $product AND m.base_quantity < 0
          AND NOT m.is_reversal AND m.version = h.version AND h.status = 'active'
          AND m.batch_id <> $batch AND m.occurred_at >= f.moment AND m.occurred_at <= l.moment
        GROUP BY h.type, h.operation_id
        ORDER BY taken_at, h.operation_id
        """,
        {"storage": key[0], "product": key[1], "batch": batch_id},
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _shortfall_problem(file, cell, verb, operation_id, shortfall, dependents,
                       catalogue: Catalogue) -> Problem:
    product = catalogue.products[shortfall.product_id]
    storage = catalogue.storages[shortfall.storage_id]
    message = (
        f"{verb} {operation_id} leaves {product.sku} in {storage.name} at "
        f"{_quantity_text(shortfall.balance, product)} on "
        f"{shortfall.occurred_at:%Y-%m-%d %H:%M}, "
        f"{_quantity_text(-shortfall.balance, product)} short"
    )
    if dependents:
        named = ", ".join(f"{op_type} {op_id}" for op_type, op_id in dependents)
        message += f"; these operations took that stock since: {named}. Cancel or edit them first"
    else:
        message += "; lower the change, or book the missing arrival first"
    return _problem(file, cell, "insufficient_stock", message)


def _quantity_text(base: Decimal, product) -> str:
    """Return a write-off-unit quantity, with the sale-unit quantity when the units differ."""
    base_text = f"{format(base.normalize(), 'f')} {product.base_unit}"
    if product.sale_unit == product.base_unit and product.equals == 1:
        return base_text
    sale = (base / product.equals).quantize(Decimal("0.001")).normalize()
    return f"{format(sale, 'f')} {product.sale_unit} ({base_text})"


def summarise_plan(plan: ChangePlan, catalogue: Catalogue) -> list[OperationSummary]:
    """Return the result-workbook rows of the edited, cancelled and unchanged operations."""
    rows = []
    for edit in plan.edits:
        rows.append(_summary(edit.stored, edit.operation, edit.draft.sheet, "edited",
                             edit.stored.version + 1, catalogue))
    for cancel in plan.cancels:
        rows.append(_summary(cancel.stored, cancel.stored.operation, cancel.request.sheet,
                             "cancelled", cancel.stored.version, catalogue))
    for edit in plan.unchanged:
        rows.append(_summary(edit.stored, edit.stored.operation, edit.draft.sheet,
                             "no change", edit.stored.version, catalogue))
    return rows


def _summary(stored, op: Operation, sheet: str, action, version: int,
             catalogue: Catalogue) -> OperationSummary:
    total = None
    if op.type in ("arrival", "sale"):
        total = sum((line.subtotal for line in op.lines), Decimal(0))
    return OperationSummary(
        operation_id=stored.operation_id, type=op.type, sheet=sheet,
        occurred_at=op.occurred_at, storage=catalogue.storages[op.storage_id].name,
        to_storage=catalogue.storages[op.to_storage_id].name if op.to_storage_id else None,
        line_count=len(op.lines), total_amount=total, version=version, action=action,
    )


def _with_article(operation_type: str) -> str:
    return f"an {operation_type}" if operation_type == "arrival" else f"a {operation_type}"


def _problem(file: str, cell: Cell | None, code: str, message: str) -> Problem:
    return Problem(file, cell.sheet if cell else None, cell.name if cell else None, code,
                   message, display_text(cell.value) if cell else None)
