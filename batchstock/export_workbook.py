"""Write an export workbook row by row, with flat memory, for `exports`.

xlsxwriter's constant_memory mode writes each finished row to a temporary file, so memory
stays flat however many rows an export has. Rows must arrive in sheet order, and the paged
query in `exports` delivers them so. A sheet has room for 1,048,575 data rows under its header
(the Excel row limit), so longer exports continue on `Lines 2`, `Lines 3` and so on. The
summary sheet comes first in the workbook but is written last, once the row count is known.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

SUMMARY_SHEET = "Summary"
LINES_SHEET = "Lines"
MAX_DATA_ROWS = 1_048_575  # Excel's 1,048,576 rows, less the header row
ZIP64_ABOVE_ROWS = 1_500_000  # past this size a sheet's XML may exceed the 4 GiB of plain ZIP


@dataclass(frozen=True)
class Column:
    """One column of the Lines sheet. `cost` columns are left out for a requester who may
    not see cost prices. `kind` is text, integer, number, money or datetime."""

    title: str
    width: int
    kind: str = "text"
    cost: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("Operation id", 12),
    Column("Line", 6, "integer"),
    Column("Type", 11),
    Column("Status", 10),
    Column("Version", 8, "integer"),
    Column("Date", 17, "datetime"),
    Column("Storage", 16),
    Column("To storage", 16),
    Column("Supplier or client", 24),
    Column("Document no.", 14),
    Column("SKU", 14),
    Column("Product", 36),
    Column("Quantity", 10, "number"),
    Column("Unit", 6),
    Column("Unit price", 11, "money"),
    Column("Unit cost", 11, "money", cost=True),
    Column("Discount %", 10, "number"),
    Column("Subtotal", 12, "money"),
    Column("Cost subtotal", 13, "money", cost=True),
)

_WORKBOOK_OPTIONS = {
    "constant_memory": True, "remove_timezone": True, "strings_to_formulas": False,
    "strings_to_numbers": False, "strings_to_urls": False,
}
_NUMBER_FORMATS = {"datetime": "yyyy-mm-dd hh:mm", "money": "0.00##", "number": "0.######",
                   "date": "yyyy-mm-dd"}

Progress = Callable[[int, int], None]


class _LinesWriter:
    """Writes data rows, opening `Lines 2` and so on at the Excel row limit."""

    def __init__(self, workbook: xlsxwriter.Workbook, columns: list[int]) -> None:
        self.workbook = workbook
        self.columns = columns
        self.formats = {kind: workbook.add_format({"num_format": code})
                        for kind, code in _NUMBER_FORMATS.items()}
        self.bold = workbook.add_format({"bold": True})
        self.sheets: list[Worksheet] = []
        self.row = MAX_DATA_ROWS

    def _next_sheet(self) -> Worksheet:
        if self.sheets:
            self._finish_sheet()
        name = LINES_SHEET if not self.sheets else f"{LINES_SHEET} {len(self.sheets) + 1}"
        sheet = self.workbook.add_worksheet(name)
        for position, index in enumerate(self.columns):
            column = COLUMNS[index]
            sheet.set_column(position, position, column.width)
            sheet.write_string(0, position, column.title, self.bold)
        sheet.freeze_panes(1, 0)
        self.sheets.append(sheet)
        self.row = 0
        return sheet

    def _finish_sheet(self) -> None:
        self.sheets[-1].autofilter(0, 0, max(self.row, 1), len(self.columns) - 1)

    def write(self, values: tuple) -> None:
        sheet = self._next_sheet() if self.row >= MAX_DATA_ROWS else self.sheets[-1]
        self.row += 1
        for position, index in enumerate(self.columns):
            value = values[index]
            if value is None:
                continue
            kind = COLUMNS[index].kind
            if kind == "text":
                sheet.write_string(self.row, position, str(value))
            elif kind == "datetime":
                sheet.write_datetime(self.row, position, value, self.formats["datetime"])
            elif kind == "integer":
                sheet.write_number(self.row, position, value)
            else:
                sheet.write_number(self.row, position, float(value), self.formats[kind])

    def close(self) -> None:
        if not self.sheets:
            self._next_sheet()
        self._finish_sheet()


def write_export_workbook(path: Path, pages: Iterable[list[tuple]],
                          summary: list[tuple[str, Any]], cost_columns: bool, total: int,
                          progress: Progress | None, scratch: Path) -> int:
    """Write an export to `path` and return its row count.

    `pages` yield rows holding one value per entry of COLUMNS. `summary` contains the label
    and value rows of the Summary sheet, to which the row count and sheet names are added.
    `progress` is called with (rows written, total) after each page. The workbook is
    written under a temporary name beside `path` and renamed, so `path` never contains a
    partly written file; xlsxwriter's row files go to the folder `scratch`.
    """
    columns = [i for i, column in enumerate(COLUMNS) if cost_columns or not column.cost]
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    options = _WORKBOOK_OPTIONS | {"tmpdir": str(scratch),
                                   "use_zip64": total > ZIP64_ABOVE_ROWS}
    try:
        workbook = xlsxwriter.Workbook(str(temp_path), options)
        summary_sheet = workbook.add_worksheet(SUMMARY_SHEET)
        lines = _LinesWriter(workbook, columns)
        written = 0
        for page in pages:
            for values in page:
                lines.write(values)
            written += len(page)
            if progress is not None:
                progress(written, total)
        lines.close()
        sheet_names = ", ".join(sheet.name for sheet in lines.sheets)
        _write_summary(workbook, summary_sheet, summary + [("Rows", written),
                                                           ("Sheets", sheet_names)])
        summary_sheet.activate()
        workbook.close()
        with open(temp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    return written


def _write_summary(workbook: xlsxwriter.Workbook, sheet: Worksheet,
                   fields: list[tuple[str, Any]]) -> None:
    bold = workbook.add_format({"bold": True})
    formats = {kind: workbook.add_format({"num_format": code, "align": "left"})
               for kind, code in _NUMBER_FORMATS.items()}
    sheet.set_column(0, 0, 20)
    sheet.set_column(1, 1, 60)
    for row, (label, value) in enumerate(fields):
        sheet.write_string(row, 0, label, bold)
        if isinstance(value, dt.datetime):
            sheet.write_datetime(row, 1, value, formats["datetime"])
        elif isinstance(value, dt.date):
            sheet.write_datetime(row, 1, dt.datetime.combine(value, dt.time()), formats["date"])
        elif isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            sheet.write_number(row, 1, value, formats["number"])
        else:
            sheet.write_string(row, 1, str(value))
