"""Process one batch: read, validate, apply whole or not at all, and build its result.

This is the stage that joins `workbook` → `sheets` → `validate` → `ledger`. It knows
nothing of folders: `inbox` decides which file to process, and where the original and the
result go. A batch with any problem changes nothing in the ledger but its batches row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb

from batchstock import catalog, edits, history, ledger
from batchstock.access import Rights, check_draft_rights
from batchstock.core import (
    BatchResult,
    Catalogue,
    Note,
    Operation,
    OperationSummary,
    Problem,
)
from batchstock.sheetfacts import find_sheet_problems
from batchstock.sheets import LISTS_SHEET, find_result_forms, is_catalogue, read_sheet
from batchstock.validate import TYPE_NAMES, validate_drafts
from batchstock.values import normalise_label, to_text
from batchstock.values import display_text
from batchstock.workbook import SheetGrid, WorkbookReadError, read_workbook

log = logging.getLogger(__name__)

_CELL_NAME = re.compile(r"([A-Z]{1,3})([0-9]+)")


@dataclass
class BatchInput:
    """A file to process and what is known about it before reading."""

    path: Path
    display_name: str
    submitter: str
    arrived_at: dt.datetime | None = None
    sha256: str = ""
    rights: Rights | None = None  # None: the submitter may do everything


@dataclass
class BatchOutcome:
    """A batch's result plus the grids read from it, for the result workbook."""

    result: BatchResult
    sheets: list[SheetGrid] = field(default_factory=list)
    kind: str = "operations"
    # A checked export request, which `inbox` runs because it needs the workspace.
    export_request: tuple | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def process_batch(
    con: duckdb.DuckDBPyConnection,
    batch: BatchInput,
    now: dt.datetime,
    allow_negative_stock: bool = False,
    apply: bool = True,
) -> BatchOutcome:
    """Validate a workbook and, when `apply` is set and it has no problem, apply it.

    `now` is the processing time in the ledger's zone; it is the default business date.
    With `apply` False the ledger is left as it was (this is `batchstock check`).
    Problems come back in workbook order: by sheet, then row, then column.
    """
    outcome = _process_batch(con, batch, now, allow_negative_stock, apply)
    order = {grid.name: index for index, grid in enumerate(outcome.sheets)}
    outcome.result.problems.sort(key=lambda problem: _reading_order(problem, order))
    return outcome


def _reading_order(problem: Problem, sheet_order: dict[str, int]) -> tuple[int, int, int]:
    if problem.sheet is None:
        return (-1, 0, 0)
    match = _CELL_NAME.fullmatch(problem.cell or "")
    if match is None:
        return (sheet_order.get(problem.sheet, len(sheet_order)), 0, 0)
    column = 0
    for letter in match[1]:
        column = column * 26 + ord(letter) - 64
    return (sheet_order.get(problem.sheet, len(sheet_order)), int(match[2]), column)


def _process_batch(con, batch, now, allow_negative_stock, apply) -> BatchOutcome:
    sha = batch.sha256 or file_sha256(batch.path)
    result = BatchResult(batch.display_name, batch.submitter, "rejected", None, now)
    try:
        grids = read_workbook(batch.path)
    except WorkbookReadError as error:
        result.problems.extend(error.to_problems(batch.display_name))
        return _record(con, batch, sha, BatchOutcome(result), apply)
    outcome = BatchOutcome(result, grids)

    # Imported here because `export_requests` imports `inbox`, which imports this module.
    from batchstock.export_requests import is_export_request, read_request_batch

    # An export request runs whenever it arrives, even with the content of an earlier
    # one, because the ledger may have changed since.
    if is_export_request(grids):
        read_request_batch(con, grids, batch.display_name, batch.submitter, sha, now,
                           outcome, apply, arrived_at=batch.arrived_at)
        return outcome

    duplicate = ledger.find_applied_batch(con, sha) if apply else None
    if duplicate is not None:
        return _duplicate(con, batch, sha, outcome, duplicate)

    if is_catalogue(grids):
        outcome.kind = "catalogue"
        catalog.import_catalogue_grids(
            con, grids, batch.display_name, batch.submitter, now, sha, outcome, apply,
            arrived_at=batch.arrived_at,
        )
        return outcome

    _process_operations(con, batch, sha, grids, now, allow_negative_stock, apply, outcome)
    return outcome


def _process_operations(con, batch, sha, grids, now, allow_negative, apply, outcome) -> None:
    result = outcome.result
    drafts, cancels = _read_drafts(batch, grids, result)
    catalogue = ledger.load_catalogue(con)
    operations, plan = _check_drafts(con, batch, drafts, cancels, catalogue, now, result)
    if result.problems:
        _record(con, batch, sha, outcome, apply)
        return

    if not operations and not plan.changes_ledger:
        _no_change(con, batch, sha, plan, catalogue, outcome, apply)
        return
    if not apply:
        result.status = "checked"
        _check_stock_without_applying(con, batch, sha, operations, plan, catalogue,
                                      now, allow_negative, outcome)
        return
    _apply(con, batch, sha, operations, plan, catalogue, now, allow_negative, outcome)


def _read_drafts(batch, grids, result):
    """Read the operation drafts and cancel requests of every visible sheet.

    From a result workbook only the ready-to-edit forms its Summary lists are read.
    """
    drafts, cancels = [], []
    forms = find_result_forms(grids)
    for grid in grids:
        if not grid.visible:
            if grid.name != LISTS_SHEET and grid.rows:
                result.problems.append(_hidden_sheet_problem(batch.display_name, grid))
            continue
        if forms is not None and grid.name not in forms:
            continue
        reading = read_sheet(batch.display_name, grid)
        drafts.extend(reading.operations)
        cancels.extend(reading.cancels)
        result.problems.extend(reading.problems)
        result.problems.extend(find_sheet_problems(batch.display_name, grid, reading))
        if reading.ignored_columns:
            result.ignored_columns[grid.name] = reading.ignored_columns

    if forms is not None:
        result.notes.append(_result_workbook_note(forms))
    if not drafts and not cancels and not result.problems:
        result.problems.append(
            Problem(batch.display_name, None, None, "no_operations",
                    "the workbook holds no operation; fill in a form or a table of lines")
        )
    return drafts, cancels


def _check_drafts(con, batch, drafts, cancels, catalogue, now, result):
    """Validate new operations and edits, check changes against the ledger and the
    submitter's rights, and return (new operations, change plan)."""
    file = batch.display_name
    routing = edits.route_drafts(drafts, cancels, file)
    validation = validate_drafts(routing.drafts_to_validate, catalogue, now, file)
    rights = batch.rights or Rights(batch.submitter)
    plan = edits.plan_changes(con, routing, validation.operations, catalogue, rights, file)
    result.problems.extend(routing.problems + validation.problems + plan.problems)
    for draft in routing.drafts_to_validate:
        result.problems.extend(check_draft_rights(rights, draft, _draft_type(draft), file))
    result.notes.extend(validation.notes + plan.notes)

    new_drafts = {id(draft) for draft in routing.new}
    operations = [op for op in validation.operations if id(op.source) in new_drafts]
    return operations, plan


def _draft_type(draft) -> str | None:
    cell = draft.header.get("type")
    text = to_text(cell.value) if cell is not None else None
    return TYPE_NAMES.get(normalise_label(text)) if text else None


def _result_workbook_note(forms: list[str]) -> Note:
    read = ", ".join(forms) or "none"
    return Note(None, None,
                "this is a batchstock result workbook, so only its ready-to-edit forms were "
                f"read ({read}); its Summary and sheet copies were skipped")


def _no_change(con, batch, sha, plan, catalogue, outcome, apply) -> None:
    """Report a batch whose edits all match the stored versions; record it, change nothing."""
    result = outcome.result
    result.status = "no change"
    result.operations = edits.summarise_plan(plan, catalogue)
    result.forms = [history.form_of(edit.stored) for edit in plan.unchanged]
    if apply:
        record = ledger.BatchRecord(batch.display_name, batch.submitter, sha, outcome.kind,
                                    batch.arrived_at, result.processed_at, status="no change")
        result.batch_id = ledger.insert_batch(con, record)
    log.debug("no change from %s (%s)", batch.display_name, batch.submitter)


def _hidden_sheet_problem(file: str, grid: SheetGrid) -> Problem:
    return Problem(
        file, grid.name, "A1", "hidden_sheet",
        f'sheet "{grid.name}" is hidden and holds data; unhide it to have it applied, or '
        "delete it",
    )


def _apply(con, batch, sha, operations, plan, catalogue, now, allow_negative, outcome) -> None:
    result = outcome.result
    con.execute("BEGIN TRANSACTION")
    try:
        record = ledger.BatchRecord(batch.display_name, batch.submitter, sha, outcome.kind,
                                    batch.arrived_at, now)
        batch_id = ledger.insert_batch(con, record)
        stamp = ledger.Stamp(batch_id, batch.submitter, now, batch.display_name)
        ids, changes, problems = _insert_all(con, stamp, operations, plan, catalogue,
                                             allow_negative)
        if problems:
            con.execute("ROLLBACK")
            result.problems.extend(problems)
            _record(con, batch, sha, outcome, True)
            return
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    result.status = "applied"
    result.batch_id = batch_id
    result.operations = summarise(operations, ids, catalogue)
    result.operations += edits.summarise_plan(plan, catalogue)
    result.changes = changes
    result.forms = _ready_forms(ids, operations, plan, catalogue)
    log.debug("applied %s from %s: %s", batch.display_name, batch.submitter,
             ", ".join(summary.operation_id for summary in result.operations))


def _ready_forms(ids, operations, plan, catalogue):
    """Return a ready-to-edit form of each operation the batch created, edited or left
    unchanged, as the ledger now stores it."""
    forms = [
        history.form_of_operation(op_id, 1, op, catalogue) for op_id, op in zip(ids, operations)
    ]
    for edit in plan.edits:
        forms.append(history.form_of_operation(
            edit.stored.operation_id, edit.stored.version + 1, edit.operation, catalogue))
    forms += [history.form_of(edit.stored) for edit in plan.unchanged]
    return forms


def _insert_all(con, stamp, operations, plan, catalogue, allow_negative):
    """Insert new operations and apply the plan's changes; return (new ids, change-log
    rows, stock problems). Runs inside the caller's transaction."""
    ids = ledger.insert_operations(con, operations, stamp) if operations else []
    changes = edits.apply_plan(con, plan, stamp)
    if allow_negative:
        return ids, changes, []
    problems = stock_problems(con, stamp.batch_id, operations, catalogue, stamp.file_name)
    if plan.changes_ledger:
        # Without edits or cancellations there is no change to blame a shortfall on, and
        # skipping the call saves a second run of the shortfall query.
        problems += edits.change_stock_problems(con, stamp.batch_id, plan, operations,
                                                catalogue, stamp.file_name)
    return ids, changes, problems


def _check_stock_without_applying(con, batch, sha, operations, plan, catalogue, now,
                                  allow_negative, outcome) -> None:
    """Insert inside a transaction, run the stock check, and always roll back."""
    result = outcome.result
    con.execute("BEGIN TRANSACTION")
    try:
        record = ledger.BatchRecord(batch.display_name, batch.submitter, sha, "check",
                                    batch.arrived_at, now)
        batch_id = ledger.insert_batch(con, record)
        stamp = ledger.Stamp(batch_id, batch.submitter, now, batch.display_name)
        ids, changes, problems = _insert_all(con, stamp, operations, plan, catalogue,
                                             allow_negative)
        result.problems.extend(problems)
    finally:
        con.execute("ROLLBACK")
    if result.problems:
        result.status = "rejected"
    else:
        # The ids were rolled back, so the result numbers the operations instead.
        placeholders = [f"new #{number}" for number in range(1, len(ids) + 1)]
        result.operations = summarise(operations, placeholders, catalogue)
        result.operations += edits.summarise_plan(plan, catalogue)
        result.changes = changes


def _record(con, batch: BatchInput, sha: str, outcome: BatchOutcome, apply: bool) -> BatchOutcome:
    """Record a rejected batch (outside any transaction) so the data log can name it."""
    result = outcome.result
    result.status = "rejected"
    if apply:
        record = ledger.BatchRecord(
            batch.display_name, batch.submitter, sha, outcome.kind, batch.arrived_at,
            result.processed_at, status="rejected", problem_count=len(result.problems),
        )
        result.batch_id = ledger.insert_batch(con, record)
    log.debug("rejected %s from %s: %d problems", batch.display_name, batch.submitter,
             len(result.problems))
    return outcome


def _duplicate(con, batch, sha, outcome, duplicate) -> BatchOutcome:
    earlier_id, earlier_file = duplicate
    result = outcome.result
    result.status = "duplicate"
    result.duplicate_of = f"batch {earlier_id} ({earlier_file})"
    ids = ledger.batch_operation_ids(con, earlier_id)
    result.notes.append(
        Note(None, None,
             f"the same content was applied as batch {earlier_id} from {earlier_file}; "
             f"nothing was applied again. Its operations: {', '.join(ids) or 'none'}")
    )
    record = ledger.BatchRecord(batch.display_name, batch.submitter, sha, outcome.kind,
                                batch.arrived_at, result.processed_at, status="duplicate")
    result.batch_id = ledger.insert_batch(con, record)
    log.debug("duplicate %s from %s: same as batch %d", batch.display_name, batch.submitter,
             earlier_id)
    return outcome


def summarise(operations: list[Operation], ids: list[str], catalogue: Catalogue):
    summaries = []
    for op, op_id in zip(operations, ids):
        amounts = [line.subtotal for line in op.lines]
        summaries.append(
            OperationSummary(
                operation_id=op_id, type=op.type,
                sheet=op.source.sheet if op.source else "",
                occurred_at=op.occurred_at,
                storage=catalogue.storages[op.storage_id].name,
                to_storage=catalogue.storages[op.to_storage_id].name
                if op.to_storage_id else None,
                line_count=len(op.lines),
                total_amount=sum(amounts, Decimal(0)) if op.type in ("arrival", "sale")
                else None,
            )
        )
    return summaries


def stock_problems(con, batch_id: int, operations: list[Operation], catalogue: Catalogue,
                   file: str) -> list[Problem]:
    """Turn shortfalls after a batch into problems at the quantity cell of the line that
    takes the stock, stating the quantity requested, the quantity available and the gap."""
    problems = []
    for shortfall in ledger.find_shortfalls(con, batch_id):
        product = catalogue.products[shortfall.product_id]
        storage = catalogue.storages[shortfall.storage_id]
        taking = [
            (op, line) for op in operations for line in op.lines
            if line.product_id == product.product_id and op.storage_id == storage.storage_id
            and op.type != "arrival"
        ]
        if not taking:
            continue
        taking.sort(key=lambda pair: pair[0].occurred_at)
        before = [pair for pair in taking if pair[0].occurred_at <= shortfall.occurred_at]
        op, line = (before or taking)[-1]
        # The lowest balance is reached right after this line, so the line found this much
        # in stock; earlier lines may already have emptied it.
        requested = line.base_quantity
        available = max(requested + shortfall.balance, Decimal(0))
        gap = requested - available
        cell = line.source.cells.get("quantity") if line.source else None
        problems.append(
            Problem(
                file, op.source.sheet if op.source else None, cell.name if cell else None,
                "insufficient_stock",
                f"{product.sku} in {storage.name}: {_both_units(requested, product)} requested, "
                f"only {_both_units(available, product)} available on "
                f"{shortfall.occurred_at:%Y-%m-%d %H:%M}, {_both_units(gap, product)} short; "
                "lower the quantity, or book the missing arrival first",
                display_text(cell.value) if cell else None,
            )
        )
    return problems


def _both_units(base: Decimal, product) -> str:
    base_text = f"{_plain(base)} {product.base_unit}"
    if product.sale_unit == product.base_unit and product.equals == 1:
        return base_text
    sale = (base / product.equals).quantize(Decimal("0.001")).normalize()
    return f"{_plain(sale)} {product.sale_unit} ({base_text})"


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text
