"""Process one batch: read, validate, apply whole or not at all, and build its result.

This is the stage that joins `workbook` → `sheets` → `validate` → `ledger`. It knows
nothing of folders: `inbox` decides which file to process, and where the original and the
result go. A batch with any problem changes nothing in the ledger but its batches row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb

from batchstock import catalog, ledger
from batchstock.core import (
    BatchResult,
    Catalogue,
    Note,
    Operation,
    OperationSummary,
    Problem,
)
from batchstock.sheets import LISTS_SHEET, is_catalogue, read_sheet
from batchstock.validate import validate_drafts
from batchstock.values import display_text
from batchstock.workbook import SheetGrid, WorkbookReadError, read_workbook

log = logging.getLogger(__name__)


@dataclass
class BatchInput:
    """A file to process and what is known about it before reading."""

    path: Path
    display_name: str
    submitter: str
    arrived_at: dt.datetime | None = None
    sha256: str = ""


@dataclass
class BatchOutcome:
    """A batch's result plus the grids read from it, for the result workbook."""

    result: BatchResult
    sheets: list[SheetGrid] = field(default_factory=list)
    kind: str = "operations"


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
    """
    sha = batch.sha256 or file_sha256(batch.path)
    result = BatchResult(batch.display_name, batch.submitter, "rejected", None, now)
    try:
        grids = read_workbook(batch.path)
    except WorkbookReadError as error:
        result.problems.append(
            Problem(
                batch.display_name, None, None, "not_a_workbook",
                f"the file cannot be read as an xlsx workbook ({error}); save it from your "
                "spreadsheet program as Excel 2007-365 (.xlsx) and drop it in again",
            )
        )
        return _record(con, batch, sha, BatchOutcome(result), apply)
    outcome = BatchOutcome(result, grids)

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
    drafts = []
    for grid in grids:
        if not grid.visible:
            if grid.name != LISTS_SHEET and grid.rows:
                result.problems.append(_hidden_sheet_problem(batch.display_name, grid))
            continue
        reading = read_sheet(batch.display_name, grid)
        drafts.extend(reading.operations)
        result.problems.extend(reading.problems)
        if reading.ignored_columns:
            result.ignored_columns[grid.name] = reading.ignored_columns
    if not drafts and not result.problems:
        result.problems.append(
            Problem(batch.display_name, None, None, "no_operations",
                    "the workbook holds no operation; fill in a form or a table of lines")
        )
    catalogue = ledger.load_catalogue(con)
    validation = validate_drafts(drafts, catalogue, now, batch.display_name)
    result.problems.extend(validation.problems)
    result.notes.extend(validation.notes)
    if result.problems:
        _record(con, batch, sha, outcome, apply)
        return
    if not apply:
        result.status = "checked"
        _check_stock_without_applying(con, batch, sha, validation.operations, catalogue,
                                      now, allow_negative, outcome)
        return
    _apply(con, batch, sha, validation.operations, catalogue, now, allow_negative, outcome)


def _hidden_sheet_problem(file: str, grid: SheetGrid) -> Problem:
    return Problem(
        file, grid.name, "A1", "hidden_sheet",
        f'sheet "{grid.name}" is hidden and holds data; unhide it to have it applied, or '
        "delete it",
    )


def _apply(con, batch, sha, operations, catalogue, now, allow_negative, outcome) -> None:
    result = outcome.result
    con.execute("BEGIN TRANSACTION")
    try:
        record = ledger.BatchRecord(batch.display_name, batch.submitter, sha, outcome.kind,
                                    batch.arrived_at, now)
        batch_id = ledger.insert_batch(con, record)
        stamp = ledger.Stamp(batch_id, batch.submitter, now, batch.display_name)
        ids = ledger.insert_operations(con, operations, stamp)
        problems = [] if allow_negative else stock_problems(
            con, batch_id, operations, catalogue, batch.display_name
        )
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
    log.info("applied %s from %s: %s", batch.display_name, batch.submitter, ", ".join(ids))


def _check_stock_without_applying(con, batch, sha, operations, catalogue, now,
                                  allow_negative, outcome) -> None:
    """Insert inside a transaction, run the stock check, and always roll back."""
    result = outcome.result
    con.execute("BEGIN TRANSACTION")
    try:
        record = ledger.BatchRecord(batch.display_name, batch.submitter, sha, "check",
                                    batch.arrived_at, now)
        batch_id = ledger.insert_batch(con, record)
        stamp = ledger.Stamp(batch_id, batch.submitter, now, batch.display_name)
        ids = ledger.insert_operations(con, operations, stamp)
        if not allow_negative:
            result.problems.extend(
                stock_problems(con, batch_id, operations, catalogue, batch.display_name)
            )
    finally:
        con.execute("ROLLBACK")
    if result.problems:
        result.status = "rejected"
    else:
        result.operations = summarise(operations, [f"(new) {i}" for i in ids], catalogue)


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
    log.info("rejected %s from %s: %d problems", batch.display_name, batch.submitter,
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
    log.info("duplicate %s from %s: same as batch %d", batch.display_name, batch.submitter,
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
        before = [pair for pair in taking if pair[0].occurred_at <= shortfall.occurred_at]
        op, line = (before or taking)[-1]
        requested = sum((ln.base_quantity for _, ln in taking), Decimal(0))
        gap = -shortfall.balance
        available = requested - gap
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
