"""Write the result workbook that a submitter gets back for each batch.

This stage runs after validation and the ledger have produced a `BatchResult`, and before
the inbox moves the original file away. The workbook has a `Summary` sheet, and when the
batch has problems or notes, a `Problems` sheet plus a copy of every submitted sheet with
the affected cells filled and commented.

Every text from the input or from a problem is written with `write_string`, so a value such
as `=HYPERLINK(...)` stays text and never becomes a formula. Control characters that XML
cannot carry are replaced, and text longer than an Excel cell allows is truncated.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from batchstock.core import BatchResult, OperationSummary
from batchstock.forms import add_operation_forms
from batchstock.sheets import RESULT_FORMS_HEADING
from batchstock.workbook import SheetGrid

SUMMARY_SHEET = "Summary"
PROBLEMS_SHEET = "Problems"
CHANGES_SHEET = "Changes"
# Excel reserves "History" for its change tracking, and names compare case-insensitively.
_RESERVED_SHEET_NAMES = {
    SUMMARY_SHEET.lower(), PROBLEMS_SHEET.lower(), CHANGES_SHEET.lower(), "history",
}

MAX_SHEET_NAME_LENGTH = 31  # Excel limit, in UTF-16 code units
MAX_CELL_TEXT_LENGTH = 32_767  # Excel limit for a cell or a comment, in UTF-16 code units
MAX_ROW = 1_048_576
MAX_COLUMN = 16_384
MAX_LINKS_PER_SHEET = 65_530  # xlsxwriter 3.3 ignores further hyperlinks on a worksheet
TRUNCATION_MARKER = " [truncated]"

PROBLEM_FILL = "#FFC7CE"
NOTE_FILL = "#FFEB9C"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
TIME_FORMAT = "hh:mm:ss"
DURATION_FORMAT = "[h]:mm:ss"
MONEY_FORMAT = "0.00"

# Characters that XML 1.0 cannot carry: C0 controls other than tab, LF and CR,
# the non-characters U+FFFE and U+FFFF, and lone surrogates.
_UNSAFE_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_INVALID_SHEET_NAME_CHARACTERS = re.compile(r"[\[\]:*?/\\]")
_CELL_REFERENCE = re.compile(r"\$?([A-Z]{1,3})\$?([1-9][0-9]*)")

# The strings_to_* options are off so that even a stray `write` call cannot turn text into
# a formula, number or link. Excel dates have no timezone, so tzinfo is dropped, not converted.
_WORKBOOK_OPTIONS = {
    "constant_memory": False, "in_memory": True, "remove_timezone": True,
    "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False,
}
_OPERATION_HEADERS = (
    "Operation id", "Type", "Sheet", "Date", "Storage", "To storage", "Lines", "Total amount",
    "Version", "Action",
)
_CHANGE_HEADERS = ("Operation id", "Version", "Action", "Field", "Old value", "New value")
_PROBLEM_HEADERS = ("File", "Sheet", "Cell", "Code", "Value", "Message")
_REJECTED_ADVICE = (
    "Nothing from this file was recorded in the ledger. Correct the cells highlighted in "
    "the sheet copies of this workbook in your own file, then put the file in the inbox again."
)
_FILE_REJECTED_ADVICE = (
    "Nothing from this file was recorded in the ledger. Fix what the Problems sheet lists, "
    "then put the file in the inbox again."
)
_STATUS_TEXT = {
    "applied": "The operations below were recorded in the ledger.",
    "checked": "The file was only checked, so nothing was recorded in the ledger.",
    "no change": "Nothing in the ledger changed.",
}


def clean_text(value: str, max_length: int = MAX_CELL_TEXT_LENGTH) -> str:
    """Return `value` with XML-unsafe characters replaced by U+FFFD and cut to `max_length`.

    The length is counted in UTF-16 code units as Excel does. A cut text ends with
    TRUNCATION_MARKER and still fits in `max_length`.
    """
    text = _UNSAFE_CHARACTERS.sub("\ufffd", value)
    encoded = text.encode("utf-16-le")
    if len(encoded) <= 2 * max_length:
        return text
    kept_units = max_length - len(TRUNCATION_MARKER)
    # Decoding with "ignore" drops a surrogate pair that the cut split in half.
    return encoded[: 2 * kept_units].decode("utf-16-le", errors="ignore") + TRUNCATION_MARKER


def parse_cell_reference(reference: str | None) -> tuple[int, int] | None:
    """Return the zero-based (row, column) of an A1 reference, or None if it is not one.

    For a range such as `C7:D9` the first cell counts.
    """
    if not reference:
        return None
    match = _CELL_REFERENCE.fullmatch(reference.split(":")[0].strip().upper())
    if match is None:
        return None
    column = 0
    for letter in match.group(1):
        column = column * 26 + ord(letter) - 64
    row = int(match.group(2))
    if row > MAX_ROW or column > MAX_COLUMN:
        return None
    return row - 1, column - 1


def assign_sheet_names(names: list[str]) -> dict[str, str]:
    """Map each submitted sheet name to a valid, unique worksheet name for the result.

    Invalid characters become `_`, names are cut to 31 characters, and a name that is
    taken (case-insensitively, including `Summary` and `Problems`) gets a ` (2)` suffix.
    """
    used_names = set(_RESERVED_SHEET_NAMES)
    mapping: dict[str, str] = {}
    for original in names:
        if original in mapping:
            continue
        base = _valid_sheet_name(original)
        name = base
        counter = 1
        while name.lower() in used_names:
            counter += 1
            suffix = f" ({counter})"
            name = _valid_sheet_name(base, MAX_SHEET_NAME_LENGTH - len(suffix)) + suffix
        used_names.add(name.lower())
        mapping[original] = name
    return mapping


def _valid_sheet_name(name: str, max_length: int = MAX_SHEET_NAME_LENGTH) -> str:
    text = _INVALID_SHEET_NAME_CHARACTERS.sub("_", _UNSAFE_CHARACTERS.sub("", name))
    text = text.encode("utf-16-le")[: 2 * max_length].decode("utf-16-le", errors="ignore")
    text = text.strip("'")
    return text if text.strip() else "Sheet"


@dataclass
class _CellMarks:
    """Problem and note messages that point at one cell of a submitted sheet."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def comment(self) -> str:
        lines = self.problems + [f"Note: {note}" for note in self.notes]
        return clean_text("\n".join(lines))


# Marks per submitted sheet name, then per zero-based row, then per zero-based column.
_SheetMarks = dict[str, dict[int, dict[int, _CellMarks]]]


def _collect_marks(result: BatchResult) -> _SheetMarks:
    marks: _SheetMarks = defaultdict(lambda: defaultdict(dict))
    located = [(p.sheet, p.cell, p.message, True) for p in result.problems]
    located += [(n.sheet, n.cell, n.message, False) for n in result.notes]
    for sheet, cell, message, is_problem in located:
        position = parse_cell_reference(cell)
        if sheet is None or position is None:
            continue
        row, column = position
        cell_marks = marks[sheet][row].setdefault(column, _CellMarks())
        (cell_marks.problems if is_problem else cell_marks.notes).append(message)
    return marks


class _Formats:
    """Cache of xlsxwriter formats, so that equal properties share one format."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self._workbook = workbook
        self._cache: dict[tuple[tuple[str, Any], ...], Format] = {}

    def get(self, **properties: Any) -> Format | None:
        if not properties:
            return None
        key = tuple(sorted(properties.items()))
        if key not in self._cache:
            self._cache[key] = self._workbook.add_format(properties)
        return self._cache[key]


class _SheetWriter:
    """Cell writer for one worksheet that tracks the text width of each column."""

    def __init__(self, worksheet: Worksheet, formats: _Formats) -> None:
        self.worksheet = worksheet
        self.formats = formats
        self.widths: dict[int, int] = defaultdict(int)

    def text(self, row: int, column: int, value: str, **properties: Any) -> None:
        text = clean_text(value)
        self.worksheet.write_string(row, column, text, self.formats.get(**properties))
        self._track(column, max((len(line) for line in text.split("\n")), default=0))

    def value(self, row: int, column: int, value: Any, **properties: Any) -> None:
        """Write a cell value of any type the workbook reader returns, keeping its type."""
        if isinstance(value, dt.date) and value.year < 1900:
            value = value.isoformat()  # Excel serial dates start in 1900
        if value is None:
            if properties:
                self.worksheet.write_blank(row, column, None, self.formats.get(**properties))
        elif isinstance(value, bool):
            self.worksheet.write_boolean(row, column, value, self.formats.get(**properties))
            self._track(column, 5)
        elif _is_finite_number(value):
            self.number(row, column, value, **properties)
        elif isinstance(value, (dt.datetime, dt.date, dt.time, dt.timedelta)):
            properties.setdefault("num_format", _date_format(value))
            self.worksheet.write_datetime(row, column, value, self.formats.get(**properties))
            self._track(column, len(properties["num_format"]))
        else:
            self.text(row, column, str(value), **properties)

    def number(self, row: int, column: int, value: float | Decimal, **properties: Any) -> None:
        self.worksheet.write_number(row, column, float(value), self.formats.get(**properties))
        is_money = properties.get("num_format") == MONEY_FORMAT
        display_text = f"{value:.2f}" if is_money else f"{value}"
        self._track(column, len(display_text))

    def link(self, row: int, column: int, sheet_name: str, cell: str) -> None:
        if self.worksheet.hlink_count >= MAX_LINKS_PER_SHEET:
            self.text(row, column, cell)
            return
        # Excel quotes a sheet name in a reference and doubles its apostrophes.
        url = "internal:'{}'!{}".format(sheet_name.replace("'", "''"), cell)
        link_format = self.formats.get(font_color="blue", underline=1)
        self.worksheet.write_url(row, column, url, link_format, clean_text(cell))
        self._track(column, len(cell))

    def _track(self, column: int, width: int) -> None:
        self.widths[column] = max(self.widths[column], width)

    def fit_columns(self, minimum: int = 8, maximum: int = 60) -> None:
        for column, width in sorted(self.widths.items()):
            self.worksheet.set_column(column, column, min(max(width + 2, minimum), maximum))


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, Decimal):
        return value.is_finite()
    return isinstance(value, (int, float)) and math.isfinite(value)


def _date_format(value: dt.date | dt.time | dt.timedelta) -> str:
    if isinstance(value, dt.datetime):
        return DATETIME_FORMAT
    if isinstance(value, dt.date):
        return DATE_FORMAT
    return TIME_FORMAT if isinstance(value, dt.time) else DURATION_FORMAT


def write_result_workbook(path: Path, result: BatchResult, sheets: list[SheetGrid]) -> None:
    """Write the result workbook of `result` to `path`, replacing any file there.

    `sheets` are the submitted sheets, copied with highlights when the result has
    problems or notes. The workbook is written to a hidden `.tmp` file in the same folder
    and then renamed, so `path` never contains a partly written workbook. The parent folder
    is created if needed. Raises OSError when the folder or file cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL so that a concurrent writer never shares the temporary file.
        descriptor = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            _write_workbook(handle, result, sheets)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def _write_workbook(handle: IO[bytes], result: BatchResult, sheets: list[SheetGrid]) -> None:
    workbook = xlsxwriter.Workbook(handle, _WORKBOOK_OPTIONS)
    formats = _Formats(workbook)
    # A note without a cell needs no sheet copy. Copying the sheets of an applied edit would
    # put a stale copy of the form beside its ready-to-edit successor.
    with_copies = bool(result.problems) or any(note.cell for note in result.notes)
    sheet_names = assign_sheet_names([grid.name for grid in sheets]) if with_copies else {}

    form_names = _form_sheet_names(result, sheet_names)

    summary = workbook.add_worksheet(SUMMARY_SHEET)
    _write_summary(_SheetWriter(summary, formats), result, sheet_names, form_names)
    summary.activate()
    if result.problems:
        problems = workbook.add_worksheet(PROBLEMS_SHEET)
        _write_problems(_SheetWriter(problems, formats), result, sheet_names)
    if result.changes:
        changes = workbook.add_worksheet(CHANGES_SHEET)
        _write_changes(_SheetWriter(changes, formats), result)
    if with_copies:
        marks = _collect_marks(result)
        copied: set[str] = set()
        for grid in sheets:
            if grid.name in copied:
                continue  # a workbook cannot contain two sheets of one name
            copied.add(grid.name)
            worksheet = workbook.add_worksheet(sheet_names[grid.name])
            _write_sheet_copy(_SheetWriter(worksheet, formats), grid, marks.get(grid.name))
    add_operation_forms(workbook, list(zip(form_names, result.forms)))
    workbook.close()


def _form_sheet_names(result: BatchResult, sheet_names: dict[str, str]) -> list[str]:
    """Name each ready-to-edit form sheet after its operation id, clear of other sheets."""
    used_names = set(_RESERVED_SHEET_NAMES) | {name.lower() for name in sheet_names.values()}
    names = []
    for form in result.forms:
        name = _valid_sheet_name(form.operation_id)
        counter = 1
        while name.lower() in used_names:
            counter += 1
            name = f"{_valid_sheet_name(form.operation_id, MAX_SHEET_NAME_LENGTH - 4)} ({counter})"
        used_names.add(name.lower())
        names.append(name)
    return names


def _write_changes(writer: _SheetWriter, result: BatchResult) -> None:
    """List the change-log rows of the batch's edits and cancellations: old → new."""
    for column, header in enumerate(_CHANGE_HEADERS):
        writer.text(0, column, header, bold=True)
    for row, change in enumerate(result.changes, start=1):
        cells = (change.operation_id, change.version, change.action, change.field,
                 change.old_value, change.new_value)
        for column, value in enumerate(cells):
            writer.value(row, column, value)
    writer.worksheet.freeze_panes(1, 0)
    writer.fit_columns()


def _write_form_list(writer: _SheetWriter, row: int, result: BatchResult,
                     form_names: list[str]) -> int:
    """List the ready-to-edit form sheets under the heading the inbox reader looks for."""
    if not form_names:
        return row
    for column, header in enumerate((RESULT_FORMS_HEADING, "Operation id", "Version")):
        writer.text(row, column, header, bold=True)
    for name, form in zip(form_names, result.forms):
        row += 1
        url = "internal:'{}'!A1".format(name.replace("'", "''"))
        link_format = writer.formats.get(font_color="blue", underline=1)
        writer.worksheet.write_url(row, 0, url, link_format, clean_text(name))
        writer.text(row, 1, form.operation_id)
        writer.value(row, 2, form.version)
    writer.text(row + 2, 0, "Change a form and put this workbook in the inbox again to edit "
                "the operation, or set its Action to Cancel to cancel it.")
    return row + 4


def _write_summary(writer: _SheetWriter, result: BatchResult, sheet_names: dict[str, str],
                   form_names: list[str] = ()) -> None:
    fields: list[tuple[str, Any]] = [
        ("File", result.file),
        ("Submitter", result.submitter),
        ("Status", result.status),
        ("Batch id", result.batch_id),
        ("Processed at", result.processed_at),
    ]
    if result.duplicate_of is not None:
        fields.append(("Duplicate of", result.duplicate_of))
    if result.problems:
        fields.append(("Problems", len(result.problems)))
    for row, (label, value) in enumerate(fields):
        writer.text(row, 0, label, bold=True)
        writer.value(row, 1, value, align="left")
    row = len(fields) + 1

    writer.text(row, 0, _status_text(result))
    row += 2
    if result.status != "rejected":
        row = _write_operations(writer, row, result.operations) + 1
    row = _write_form_list(writer, row, result, form_names)
    row = _write_notes(writer, row, result, sheet_names)
    _write_ignored_columns(writer, row, result.ignored_columns)
    writer.fit_columns()


def _status_text(result: BatchResult) -> str:
    if result.status == "rejected" and not any(p.cell for p in result.problems):
        return _FILE_REJECTED_ADVICE
    if result.status == "rejected":
        return _REJECTED_ADVICE
    if result.status == "duplicate":
        return (
            f"This file has the same content as {result.duplicate_of}, which was "
            "processed before, so nothing was recorded again."
        )
    return _STATUS_TEXT.get(result.status, "")


def _write_operations(writer: _SheetWriter, row: int, operations: list[OperationSummary]) -> int:
    """Write the operations table with a totals row and return the next free row."""
    for column, header in enumerate(_OPERATION_HEADERS):
        writer.text(row, column, header, bold=True)
    for operation in operations:
        row += 1
        cells = (
            operation.operation_id, operation.type, operation.sheet, operation.occurred_at,
            operation.storage, operation.to_storage, operation.line_count,
        )
        for column, value in enumerate(cells):
            writer.value(row, column, value)
        if operation.total_amount is not None:
            writer.number(row, 7, operation.total_amount, num_format=MONEY_FORMAT)
        writer.value(row, 8, operation.version)
        writer.text(row, 9, operation.action)

    row += 1
    writer.text(row, 0, "Total", bold=True)
    writer.value(row, 6, sum(operation.line_count for operation in operations), bold=True)
    amounts = [op.total_amount for op in operations if op.total_amount is not None]
    if amounts:
        # The Decimal sum is exact, and only the final amount is converted for display.
        writer.number(row, 7, sum(amounts, Decimal(0)), num_format=MONEY_FORMAT, bold=True)
    return row + 1


def _write_notes(
    writer: _SheetWriter, row: int, result: BatchResult, sheet_names: dict[str, str]
) -> int:
    if not result.notes:
        return row
    for column, header in enumerate(("Notes: sheet", "Cell", "Message")):
        writer.text(row, column, header, bold=True)
    for note in result.notes:
        row += 1
        writer.value(row, 0, note.sheet)
        _write_cell_reference(writer, row, 1, note.sheet, note.cell, sheet_names)
        writer.text(row, 2, note.message)
    return row + 2


def _write_ignored_columns(writer: _SheetWriter, row: int, ignored: dict[str, list[str]]) -> int:
    if not any(ignored.values()):
        return row
    for column, header in enumerate(("Ignored columns: sheet", "Column header")):
        writer.text(row, column, header, bold=True)
    for sheet, headers in ignored.items():
        for header in headers:
            row += 1
            writer.text(row, 0, sheet)
            writer.value(row, 1, header)
    return row + 2


def _write_cell_reference(
    writer: _SheetWriter, row: int, column: int, sheet: str | None, cell: str | None,
    sheet_names: dict[str, str],
) -> None:
    """Write `cell` as a link to its sheet copy when the copy exists and `cell` is valid."""
    if cell is None:
        return
    if sheet in sheet_names and parse_cell_reference(cell) is not None:
        writer.link(row, column, sheet_names[sheet], cell.strip().upper())
    else:
        writer.text(row, column, cell)


def _write_problems(writer: _SheetWriter, result: BatchResult, sheet_names: dict[str, str]) -> None:
    for column, header in enumerate(_PROBLEM_HEADERS):
        writer.text(0, column, header, bold=True)
    for row, problem in enumerate(result.problems, start=1):
        writer.text(row, 0, problem.file)
        writer.value(row, 1, problem.sheet)
        _write_cell_reference(writer, row, 2, problem.sheet, problem.cell, sheet_names)
        writer.text(row, 3, problem.code)
        writer.value(row, 4, problem.value)
        writer.text(row, 5, problem.message)
    writer.worksheet.autofilter(0, 0, len(result.problems), len(_PROBLEM_HEADERS) - 1)
    writer.worksheet.freeze_panes(1, 0)
    writer.fit_columns()


def _write_sheet_copy(
    writer: _SheetWriter, grid: SheetGrid, marks: dict[int, dict[int, _CellMarks]] | None
) -> None:
    """Copy `grid` cell by cell, filling and commenting the cells that `marks` point at."""
    marks = marks or {}
    last_row = max([len(grid.rows) - 1, *marks.keys()])
    for row in range(last_row + 1):
        values = grid.rows[row] if row < len(grid.rows) else []
        row_marks = marks.get(row, {})
        last_column = max([len(values) - 1, *row_marks.keys()])
        for column in range(last_column + 1):
            value = values[column] if column < len(values) else None
            cell_marks = row_marks.get(column)
            if cell_marks is None:
                writer.value(row, column, value)
                continue
            fill = PROBLEM_FILL if cell_marks.problems else NOTE_FILL
            writer.value(row, column, value, bg_color=fill, pattern=1)
            comment = cell_marks.comment()
            writer.worksheet.write_comment(row, column, comment, _comment_box(comment))
    if marks:
        has_problems = any(m.problems for columns in marks.values() for m in columns.values())
        writer.worksheet.set_tab_color(PROBLEM_FILL if has_problems else NOTE_FILL)
    elif not grid.visible:
        writer.worksheet.hide()
    writer.fit_columns(maximum=50)


def _comment_box(text: str) -> dict[str, Any]:
    """Return comment box options sized to the text, estimating 45 characters per line."""
    characters_per_line = 45
    lines = sum(1 + len(line) // characters_per_line for line in text.split("\n"))
    return {"width": 320, "height": min(20 + 15 * lines, 600)}
