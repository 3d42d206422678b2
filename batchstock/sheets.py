"""Find operations in worksheet grids: the form layout and the table layout.

Second stage of the pipeline, after `workbook` has read the cells. It recognises labels
and column headers by alias, finds the lines table, skips blank rows, spots a totals row,
and groups table rows into operations. It converts no values: every field stays a `Cell`
with its coordinates, so that validation can point at the exact cell.

Form layout: label/value rows (Operation, Date, Storage, …) above a lines table; each
worksheet is one operation. Table layout: one header row whose columns include header
fields (Operation, Date, Storage, Document no., …); rows with the same document number,
or with equal header fields where there is none, form one operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchstock.core import Cell, LineDraft, OperationDraft, Problem
from batchstock.values import normalise_label, to_text
from batchstock.workbook import SheetGrid

LINE_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "sku": ("sku", "article", "code", "item code", "article no.", "sku code"),
    "barcode": ("barcode", "ean", "bar code"),
    "product": ("product", "name", "product name", "description"),
    "quantity": ("quantity", "qty", "amount of units"),
    "unit": ("unit", "units", "uom"),
    "cost": ("unit cost", "cost", "delivery cost", "cost price", "purchase price"),
    "price": ("price", "unit price", "sale price"),
    "discount": ("discount", "discount %", "discount, %", "discount (%)"),
    "subtotal": ("subtotal", "line total", "total", "sum", "amount"),
    "line_comment": ("line comment",),
}

HEADER_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "type": ("operation", "operation type", "type"),
    "date": ("date", "date and time", "date/time", "datetime"),
    "storage": ("storage", "from storage", "from"),
    "to_storage": ("to storage", "to"),
    "supplier": ("supplier", "vendor"),
    "client": ("client", "customer"),
    "staff_member": ("staff member", "staff", "employee"),
    "reason": ("reason", "write-off reason"),
    "document_no": (
        "document no.", "document no", "document", "document number", "receipt", "receipt no.",
    ),
    "comment": ("comment", "note"),
    # No shorter alias: an operation id edits a stored operation, so a till export's own
    # `ID` or `Operation no.` column must not be read as one.
    "operation_id": ("operation id",),
    "version": ("version",),
    "action": ("action",),
}

TOTALS_LABELS = frozenset({"total", "totals", "sum", "grand total", "total:", "sum total"})

# Header fields whose presence as a column marks the table layout.
TABLE_MARKERS = frozenset({"type", "date", "storage", "document_no"})

# The template writer keeps its drop-down lists on this hidden sheet.
LISTS_SHEET = "Lists"

# A sheet of this name without a lines table lists operations to cancel, one id per row.
CANCEL_SHEET = "cancel"

# Column A of a result workbook's Summary sheet, as `results` writes it: the first labels,
# and the heading above the names of the ready-to-edit form sheets.
RESULT_SUMMARY_SHEET = "Summary"
RESULT_SUMMARY_LABELS = ("File", "Submitter", "Status")
RESULT_FORMS_HEADING = "Ready-to-edit form"

HEADER_SCAN_ROWS = 60

_LINE_LOOKUP = {alias: name for name, aliases in LINE_FIELD_ALIASES.items() for alias in aliases}
_HEADER_LOOKUP = {
    alias: name for name, aliases in HEADER_FIELD_ALIASES.items() for alias in aliases
}


def match_line_field(label: str) -> str | None:
    return _LINE_LOOKUP.get(normalise_label(label))


def match_header_field(label: str) -> str | None:
    return _HEADER_LOOKUP.get(normalise_label(label))


@dataclass
class CancelRequest:
    """A request to cancel the operation named in `id_cell`, from a `Cancel` sheet row or
    a form whose Action is Cancel. `version_cell` is None when no Version was given."""

    file: str
    sheet: str
    id_cell: Cell
    version_cell: Cell | None = None


@dataclass
class SheetReading:
    """What one worksheet yielded: operations, cancellations, problems, and headers that
    were not understood."""

    operations: list[OperationDraft] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    cancels: list[CancelRequest] = field(default_factory=list)


def _label_of(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def find_header_row(grid: SheetGrid) -> int | None:
    """Return the 1-based row of the lines table header: the first row with Quantity and a
    product column (SKU, barcode or product name)."""
    for index, row in enumerate(grid.rows[:HEADER_SCAN_ROWS], start=1):
        fields = set()
        for value in row:
            label = _label_of(value)
            if label:
                name = match_line_field(label) or match_header_field(label)
                if name:
                    fields.add(name)
        if "quantity" in fields and fields & {"sku", "barcode", "product"}:
            return index
    return None


def _header_columns(grid: SheetGrid, header_row: int, table: bool):
    """Map canonical fields to columns in the header row; list headers not understood."""
    line_columns: dict[str, int] = {}
    header_columns: dict[str, int] = {}
    ignored: list[str] = []
    duplicates: list[tuple[str, int]] = []
    for col, value in enumerate(grid.rows[header_row - 1], start=1):
        label = _label_of(value)
        if label is None:
            continue
        line_name = match_line_field(label)
        header_name = match_header_field(label) if table else None
        if line_name is None and not table and normalise_label(label) == "comment":
            line_name = "line_comment"
        if line_name and line_name not in line_columns:
            line_columns[line_name] = col
        elif header_name and header_name not in header_columns:
            header_columns[header_name] = col
        elif line_name or header_name:
            duplicates.append((label, col))
        else:
            ignored.append(label)
    return line_columns, header_columns, ignored, duplicates


def read_sheet(file: str, grid: SheetGrid) -> SheetReading:
    """Find the operations of one worksheet."""
    reading = SheetReading()
    if not grid.rows:
        return reading
    header_row = find_header_row(grid)
    if header_row is None and normalise_label(grid.name) == CANCEL_SHEET:
        return read_cancel_sheet(file, grid)
    if header_row is None:
        reading.problems.append(_no_table_problem(file, grid))
        return reading

    table = any(
        match_header_field(label) in TABLE_MARKERS
        for label in (_label_of(v) for v in grid.rows[header_row - 1])
        if label and not match_line_field(label)
    )
    line_columns, header_columns, ignored, duplicates = _header_columns(grid, header_row, table)
    reading.ignored_columns = ignored
    for label, col in duplicates:
        reading.problems.append(
            Problem(
                file, grid.name, grid.cell(header_row, col).name, "duplicate_header",
                f'column "{label}" appears twice in the header row; rename or delete one',
                label,
            )
        )
    lines, totals, blank_problems = _read_lines(file, grid, header_row, line_columns)
    reading.problems.extend(blank_problems)
    if table:
        reading.operations = _group_table_rows(
            file, grid, header_row, line_columns, header_columns, lines, ignored
        )
        # One totals row under a table sums the lines of every operation in it.
        for draft in reading.operations:
            draft.totals = totals
        if not lines:
            reading.problems.append(_empty_table_problem(file, grid, header_row))
    else:
        header, labels = _read_label_block(grid, header_row)
        reading.operations = [
            OperationDraft(
                file=file, sheet=grid.name, layout="form", header=header, lines=lines,
                header_row=header_row, line_columns=line_columns, header_label_cells=labels,
                totals=totals, ignored_columns=ignored, first_row=1,
            )
        ]
    return reading


def _no_table_problem(file: str, grid: SheetGrid) -> Problem:
    return Problem(
        file, grid.name, "A1", "no_lines_table",
        "no lines table found: expected a header row with a Quantity column and an SKU or "
        "Product column in the first 60 rows",
    )


def _read_label_block(grid: SheetGrid, header_row: int):
    """Read the label/value rows above the lines table of a form sheet."""
    header: dict[str, Cell] = {}
    labels: dict[str, Cell] = {}
    for row in range(1, header_row):
        cells = grid.rows[row - 1]
        for col, value in enumerate(cells, start=1):
            label = _label_of(value)
            if label is None:
                continue
            name = match_header_field(label)
            if name and name not in header:
                labels[name] = grid.cell(row, col)
                header[name] = _value_right_of(grid, row, col)
            break
    return header, labels


def _value_right_of(grid: SheetGrid, row: int, col: int) -> Cell:
    """Return the first non-empty cell right of a label, or the cell next to it when empty."""
    cells = grid.rows[row - 1]
    for next_col in range(col + 1, min(len(cells), col + 3) + 1):
        cell = grid.cell(row, next_col)
        if not cell.is_empty:
            return cell
    return grid.cell(row, col + 1)


def _read_lines(file: str, grid: SheetGrid, header_row: int, columns: dict[str, int]):
    """Collect non-blank rows under the header; split off a trailing totals row."""
    lines: list[LineDraft] = []
    totals: LineDraft | None = None
    problems: list[Problem] = []
    product_columns = [columns[n] for n in ("sku", "barcode", "product") if n in columns]
    for row in range(header_row + 1, len(grid.rows) + 1):
        values = grid.rows[row - 1]
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        draft = LineDraft(grid.name, row, {n: grid.cell(row, c) for n, c in columns.items()})
        has_product = any(_names_product(grid.cell(row, c)) for c in product_columns)
        if not has_product and _is_totals_row(values):
            if totals is not None:
                problems.append(_after_totals_problem(file, grid, totals.row))
            totals = draft
            continue
        if totals is not None:
            problems.append(_after_totals_problem(file, grid, row))
            totals = None
        lines.append(draft)
    return lines, totals, problems


def _names_product(cell: Cell) -> bool:
    """Return whether a product cell names a product. A totals label such as `Total` in the
    SKU or name column does not, so a product named "Total" is read as a totals row."""
    if cell.is_empty:
        return False
    return not (isinstance(cell.value, str) and normalise_label(cell.value) in TOTALS_LABELS)


def _empty_table_problem(file: str, grid: SheetGrid, header_row: int) -> Problem:
    return Problem(
        file, grid.name, grid.cell(header_row, 1).name, "no_lines",
        "the table has a header row but no lines; add the lines under it, or delete the sheet",
    )


def _is_totals_row(values: list[object]) -> bool:
    return any(
        isinstance(v, str) and normalise_label(v) in TOTALS_LABELS for v in values
    )


def _after_totals_problem(file: str, grid: SheetGrid, row: int) -> Problem:
    return Problem(
        file, grid.name, grid.cell(row, 1).name, "rows_after_totals",
        "a totals row must be the last row of the lines table; move it below the lines",
    )


def _group_key(header: dict[str, Cell]) -> tuple:
    document = to_text(header["document_no"].value) if "document_no" in header else None
    if document:
        return ("document", document)
    return ("fields",) + tuple(
        (name, to_text(cell.value)) for name, cell in sorted(header.items())
    )


def _group_table_rows(file, grid, header_row, line_columns, header_columns, lines, ignored):
    """Group table rows into operations by document number, else by equal header fields."""
    groups: dict[tuple, OperationDraft] = {}
    for line in lines:
        header = {name: grid.cell(line.row, col) for name, col in header_columns.items()}
        key = _group_key(header)
        draft = groups.get(key)
        if draft is None:
            draft = OperationDraft(
                file=file, sheet=grid.name, layout="table", header=header, lines=[],
                header_row=header_row, line_columns=line_columns,
                ignored_columns=ignored, first_row=line.row,
            )
            groups[key] = draft
        line.cells.update({f"row_{name}": cell for name, cell in header.items()})
        draft.lines.append(line)
    return list(groups.values())


def is_catalogue(grids: list[SheetGrid]) -> bool:
    """Return whether a workbook is a catalogue: it has sheets Products and Storages."""
    names = {normalise_label(g.name) for g in grids}
    return {"products", "storages"} <= names


def read_cancel_sheet(file: str, grid: SheetGrid) -> SheetReading:
    """Read a `Cancel` sheet: a header row with an `Operation id` column (and optionally
    `Version`), then one operation id per row. Other columns are ignored."""
    reading = SheetReading()
    found = _find_cancel_header(grid)
    if found is None:
        reading.problems.append(
            Problem(
                file, grid.name, "A1", "no_operation_id_column",
                "a Cancel sheet needs a header row with an Operation id column in the first "
                "60 rows, and the ids to cancel below it",
            )
        )
        return reading
    header_row, id_col, version_col = found
    for row in range(header_row + 1, len(grid.rows) + 1):
        values = grid.rows[row - 1]
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        id_cell = grid.cell(row, id_col)
        if id_cell.is_empty:
            reading.problems.append(
                Problem(
                    file, grid.name, id_cell.name, "missing_operation_id",
                    "the row names no operation id; enter the id to cancel, such as "
                    "OP-000012, or delete the row",
                )
            )
            continue
        version_cell = grid.cell(row, version_col) if version_col else None
        reading.cancels.append(CancelRequest(file, grid.name, id_cell, version_cell))
    return reading


def _find_cancel_header(grid: SheetGrid) -> tuple[int, int, int | None] | None:
    """Return (header row, id column, version column or None) of a Cancel sheet."""
    for index, row in enumerate(grid.rows[:HEADER_SCAN_ROWS], start=1):
        columns: dict[str, int] = {}
        for col, value in enumerate(row, start=1):
            label = _label_of(value)
            name = match_header_field(label) if label else None
            if name in ("operation_id", "version") and name not in columns:
                columns[name] = col
        if "operation_id" in columns:
            return index, columns["operation_id"], columns.get("version")
    return None


def find_result_forms(grids: list[SheetGrid]) -> list[str] | None:
    """Return the ready-to-edit form sheets a result workbook lists in its Summary sheet,
    or None when the workbook is not a batchstock result workbook.

    A result workbook starts with a Summary sheet whose column A begins File, Submitter,
    Status. Its other sheets are copies of what was submitted, so only the listed forms
    may be read back.
    """
    summary = next((g for g in grids if g.name == RESULT_SUMMARY_SHEET), None)
    if summary is None:
        return None
    first_labels = tuple(to_text(summary.cell(row, 1).value) for row in (1, 2, 3))
    if first_labels != RESULT_SUMMARY_LABELS:
        return None
    names: list[str] = []
    listing = False
    for row in range(1, len(summary.rows) + 1):
        text = to_text(summary.cell(row, 1).value)
        if text == RESULT_FORMS_HEADING:
            listing = True
        elif listing and text is None:
            break
        elif listing:
            names.append(text)
    return names
