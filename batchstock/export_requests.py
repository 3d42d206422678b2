"""Export requests dropped in the inbox: a workbook with a sheet `Export` of label/value rows.

```text
Export    operations
From      2026-11-01
To        2026-11-30
Type      sale, arrival      (empty: all types)
Storage   Products           (empty: all storages)
```

`pipeline` recognises the sheet and calls `read_request_batch`, which checks the cells and
leaves the request on the batch outcome. `inbox` then calls `run_requested_export`, which
has the workspace: it checks the submitter's rights, writes the export, emails the link,
and records the batch. Problems point at the value cells, like any batch's problems.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import xlsxwriter

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.core import Cell, Note, Problem
from batchstock.exports import ExportRequest, ExportRequestError, export_operations
from batchstock.values import CellValueError, display_text, normalise_label, to_datetime, to_text
from batchstock.workbook import SheetGrid

log = logging.getLogger(__name__)

EXPORT_SHEET = "Export"
BATCH_KIND = "export request"
LABEL_ROWS = 30

_LABELS = {
    "export": "export", "export of": "export",
    "from": "from", "date from": "from", "from date": "from", "period from": "from",
    "to": "to", "date to": "to", "to date": "to", "period to": "to", "until": "to",
    "type": "type", "types": "type", "operation type": "type", "operation types": "type",
    "storage": "storage", "storages": "storage",
}


def _export_sheet(grids: list[SheetGrid]) -> SheetGrid | None:
    for grid in grids:
        if grid.visible and normalise_label(grid.name) == "export":
            return grid
    return None


def _label_cells(grid: SheetGrid) -> dict[str, tuple[Cell, Cell]]:
    """Map each known label in column A to its (label cell, value cell in column B)."""
    found: dict[str, tuple[Cell, Cell]] = {}
    for row in range(1, min(len(grid.rows), LABEL_ROWS) + 1):
        label = grid.cell(row, 1)
        text = to_text(label.value) if isinstance(label.value, str) else None
        name = _LABELS.get(normalise_label(text)) if text else None
        if name is not None and name not in found:
            found[name] = (label, grid.cell(row, 2))
    return found


def is_export_request(grids: list[SheetGrid]) -> bool:
    """Return whether a workbook is an export request: a visible sheet `Export` with
    `From` and `To` labels in column A.

    Both labels are required, because a till's own export may name its sheet Export.
    """
    grid = _export_sheet(grids)
    return grid is not None and {"from", "to"} <= set(_label_cells(grid))


def _problem(file: str, cell: Cell, code: str, message: str) -> Problem:
    return Problem(file, cell.sheet, cell.name, code, message, display_text(cell.value))


def _read_date(file: str, cells: tuple[Cell, Cell], label: str,
               problems: list[Problem]) -> dt.date | None:
    value_cell = cells[1]
    try:
        moment = to_datetime(value_cell.value)
    except CellValueError as error:
        problems.append(_problem(file, value_cell, error.code, f"{label}: {error}"))
        return None
    if moment is None:
        problems.append(_problem(file, value_cell, "missing_date",
                                 f"{label} is missing; enter a date such as 2026-11-01"))
        return None
    return moment.date()


def _names(cell: Cell) -> tuple[str, ...]:
    text = to_text(cell.value)
    if text is None:
        return ()
    parts = [part.strip() for part in text.replace(";", ",").split(",")]
    return tuple(part for part in parts if part and part.casefold() not in ("all", "*"))


def read_export_request(grids: list[SheetGrid], file: str, submitter: str
                        ) -> tuple[ExportRequest | None, list[Problem], dict[str, Cell]]:
    """Read the request in a workbook's Export sheet.

    Returns the request (None when it has problems), the problems, and the value cell of
    each field, so that later problems can point at them too.
    """
    grid = _export_sheet(grids)
    assert grid is not None, "call is_export_request first"
    labels = _label_cells(grid)
    problems: list[Problem] = []
    cells = {name: value for name, (_, value) in labels.items()}
    if "export" in labels:
        kind = to_text(cells["export"].value)
        if kind is not None and normalise_label(kind) not in ("operations", "operations list"):
            problems.append(_problem(file, cells["export"], "unknown_export",
                                     f"{kind!r} cannot be exported; write operations"))
    date_from = _read_date(file, labels["from"], "From", problems)
    date_to = _read_date(file, labels["to"], "To", problems)
    types = _names(cells["type"]) if "type" in cells else ()
    storages = _names(cells["storage"]) if "storage" in cells else ()
    if problems or date_from is None or date_to is None:
        return None, problems, cells
    return ExportRequest(date_from, date_to, submitter, types, storages), problems, cells


def read_request_batch(con, grids: list[SheetGrid], file: str, submitter: str, sha: str,
                       now: dt.datetime, outcome, apply: bool,
                       arrived_at: dt.datetime | None = None) -> None:
    """Check an export request workbook and leave the request on `outcome` to be run.

    A request with problems is rejected and recorded as a batch here; a valid one is
    recorded by `run_requested_export` once it has run. With `apply` False the request is
    only checked.
    """
    outcome.kind = BATCH_KIND
    result = outcome.result
    request, problems, cells = read_export_request(grids, file, submitter)
    result.problems.extend(problems)
    if problems:
        result.status = "rejected"
        if apply:
            _record_batch(con, outcome, sha, arrived_at, "rejected")
        return
    if not apply:
        result.status = "checked"
        return
    outcome.export_request = (request, cells, sha, arrived_at)


def _record_batch(con, outcome, sha: str, arrived_at: dt.datetime | None, status: str) -> int:
    result = outcome.result
    record = ledger.BatchRecord(result.file, result.submitter, sha, BATCH_KIND, arrived_at,
                                result.processed_at, status=status,
                                problem_count=len(result.problems))
    result.batch_id = ledger.insert_batch(con, record)
    return result.batch_id


def run_requested_export(workspace: Workspace, con, outcome) -> None:
    """Run the export a request workbook asked for, email its link, and record the batch.

    On success the result notes where the export went and how the email was delivered.
    A request the submitter may not make becomes a problem at the cell concerned.
    """
    from batchstock.mail import deliver_export

    request, cells, sha, arrived_at = outcome.export_request
    result = outcome.result
    try:
        batch_id = _record_batch(con, outcome, sha, arrived_at, "applied")
        export = export_operations(workspace, con, request, source_batch=batch_id)
    except ExportRequestError as error:
        cell = cells.get(error.field or "", Cell(EXPORT_SHEET, 1, 1, None))
        result.problems.append(_problem(result.file, cell, error.code, str(error)))
        result.status = "rejected"
        con.execute("UPDATE batches SET status = 'rejected', problem_count = ? "
                    "WHERE batch_id = ?", [len(result.problems), result.batch_id])
        return
    status = deliver_export(workspace, con, export)
    result.status = "applied"
    result.notes.append(Note(None, None, (
        f"export written to {export.path.relative_to(workspace.root)}: {export.row_count} "
        f"lines as of ledger position {export.ledger_position}, data log entry "
        f"{export.entry_id}; email {status}")))
    log.info("export request %s from %s: data log entry %d", result.file, result.submitter,
             export.entry_id)


def write_export_request_template(path: Path) -> None:
    """Write a blank export request to `path`, with hints beside each value cell.

    The creation date is fixed, so writing it again gives the same bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = xlsxwriter.Workbook(str(path))
    workbook.set_properties({"title": "batchstock export request",
                             "created": dt.datetime(2026, 1, 1)})
    sheet = workbook.add_worksheet(EXPORT_SHEET)
    bold = workbook.add_format({"bold": True})
    date = workbook.add_format({"num_format": "yyyy-mm-dd", "bg_color": "#FFF2CC"})
    value = workbook.add_format({"bg_color": "#FFF2CC"})
    hint = workbook.add_format({"italic": True, "font_color": "#666666"})
    sheet.set_column(0, 0, 12)
    sheet.set_column(1, 1, 28)
    sheet.set_column(2, 2, 70)
    rows = (
        ("Export", "operations", value, "what to export: the operations list, one row per line"),
        ("From", None, date, "first business date, such as 2026-11-01"),
        ("To", None, date, "last business date, included, such as 2026-11-30"),
        ("Type", None, value, "empty for all, or arrival, sale, relocation, write-off "
                              "(several with commas)"),
        ("Storage", None, value, "empty for all, or storage names (several with commas)"),
    )
    for row, (label, content, style, text) in enumerate(rows):
        sheet.write_string(row, 0, label, bold)
        if content is None:
            sheet.write_blank(row, 1, None, style)
        else:
            sheet.write_string(row, 1, content, style)
        sheet.write_string(row, 2, text, hint)
    for row in (1, 2):
        sheet.data_validation(row, 1, row, 1, {
            "validate": "date", "criteria": ">=", "value": dt.datetime(2000, 1, 1),
            "error_message": "Enter a date such as 2026-11-01."})
    sheet.write_string(6, 0, "Drop this file in the inbox: the link to the export arrives "
                             "by email, and the export is listed in the data log.", hint)
    workbook.close()
