"""Report workbooks: the formatting and streaming that every report shares.

A report queries the ledger and writes each row as it arrives (xlsxwriter's constant_memory
mode flushes every finished row to a temporary file), so memory stays flat however large
the ledger grows. Each table sheet has a header row that stays in view, number and date
formats, column widths fitted to what was written, and a totals row. Each workbook ends
with a Parameters sheet that states the request, when the report was made and which
ledger position it reflects. The workbook is written under a temporary name, renamed into
`outbox/reports/`, and registered in the data log.

The report modules (`reports_stock`, `reports_movements`, `reports_sales`) build on this.
Money is Decimal until a cell is written; only then is it rounded to cents.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import duckdb
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from batchstock import ledger
from batchstock.access import rights_for
from batchstock.config import Workspace
from batchstock.core import BatchstockError
from batchstock.inbox import now_in_zone, register_file, unique_path
from batchstock.results import clean_text
from batchstock.valuation import refresh_costs

REPORTS_FOLDER = "reports"
FETCH_ROWS = 10_000
MAX_DATA_ROWS = 1_048_574  # Excel's 1,048,576 rows, less the header and the totals row
CENTS = Decimal("0.01")

_WORKBOOK_OPTIONS = {
    "constant_memory": True, "remove_timezone": True, "strings_to_formulas": False,
    "strings_to_numbers": False, "strings_to_urls": False,
}
# Column kind → number format. Quantities use General so that 6.2 pcs and 0.016666 pcs
# both show as they are, without padding zeros.
NUMBER_FORMATS = {
    "text": None,
    "integer": "#,##0",
    "quantity": "General",
    "money": "#,##0.00",
    "cost": "#,##0.0000",
    "percent": "0.0%",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
}
_MAX_WIDTH = 60


class ReportError(BatchstockError):
    """A report cannot be made as asked (unknown storage, too many rows for one sheet)."""


@dataclass(frozen=True)
class Column:
    """One column of a report table.

    `kind` picks the number format (see NUMBER_FORMATS). `total` puts a SUM in the totals
    row. `cost` marks cost prices and values, which are left out for a user whose
    `see_costs` right is false.
    """

    title: str
    kind: str = "text"
    total: bool = False
    cost: bool = False


@dataclass
class ReportRequest:
    """The user who requests a report, and when. `parameters` are the options as given.

    `see_costs` overrides the user's `see_costs` right when set; `watch` sets it for the
    stock report it keeps current, which no user asked for.
    """

    workspace: Workspace
    user: str
    parameters: dict[str, Any] = field(default_factory=dict)
    requested_at: dt.datetime | None = None
    see_costs: bool | None = None

    @property
    def may_see_costs(self) -> bool:
        if self.see_costs is not None:
            return self.see_costs
        return rights_for(self.workspace.settings.users, self.user).has("see_costs")


@dataclass
class ReportFile:
    """A finished report: where it is, its data-log entry and how many rows it has.

    `differences` is the number its check found, None for a report without a check.
    """

    path: Path
    entry_id: int
    row_count: int
    differences: int | None = None


def to_cell(value: Any, kind: str) -> Any:
    """Convert a ledger value to what a cell holds: money rounded to cents (half up),
    other Decimals as floats, None as an empty cell."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        if kind == "money":
            return float(value.quantize(CENTS, rounding=ROUND_HALF_UP))
        return float(value)
    return value


class TableSheet:
    """A worksheet that receives rows in order and ends with a totals row."""

    def __init__(self, workbook: xlsxwriter.Workbook, name: str, columns: list[Column],
                 formats: dict[str, Any], keep: list[int] | None = None) -> None:
        self.sheet: Worksheet = workbook.add_worksheet(name)
        self.keep = keep if keep is not None else list(range(len(columns)))
        columns = [columns[i] for i in self.keep]
        self.columns = columns
        self.formats = formats
        self.widths = [len(column.title) + 2 for column in columns]
        self.totals = [Decimal(0) if column.total else None for column in columns]
        for col, column in enumerate(columns):
            self.sheet.write_string(0, col, column.title, formats["header"])
        self.sheet.freeze_panes(1, 0)
        # Printed: landscape, one page wide, the header repeated on every page.
        self.sheet.set_landscape()
        self.sheet.fit_to_pages(1, 0)
        self.sheet.repeat_rows(0)
        self.row = 1

    @property
    def data_rows(self) -> int:
        return self.row - 1

    def write_row(self, values: tuple | list) -> None:
        """Write one data row. `values` line up with all the columns the sheet was made
        with, including those left out for the user."""
        if self.data_rows >= MAX_DATA_ROWS:
            raise ReportError(
                f"the report has more than {MAX_DATA_ROWS:,} rows, the maximum for one sheet; "
                "narrow it (the stock and order reports take --storage)"
            )
        for col, (column, index) in enumerate(zip(self.columns, self.keep)):
            self._write_cell(col, column, values[index])
        self.row += 1

    def column_letter(self, title: str) -> str:
        """Return the letter of the column titled `title`, as written."""
        index = [column.title for column in self.columns].index(title)
        return xlsxwriter.utility.xl_col_to_name(index)

    def _write_cell(self, col: int, column: Column, value: Any) -> None:
        cell = to_cell(value, column.kind)
        if cell is None:
            return
        fmt = self.formats.get(column.kind)
        if isinstance(cell, str):
            text = clean_text(cell)
            self.sheet.write_string(self.row, col, text, fmt)
            shown = len(text)
        elif isinstance(cell, (dt.datetime, dt.date)):
            self.sheet.write_datetime(self.row, col, cell, fmt)
            shown = 16 if isinstance(cell, dt.datetime) else 10
        elif isinstance(cell, bool):
            self.sheet.write_boolean(self.row, col, cell, fmt)
            shown = 5
        else:
            self.sheet.write_number(self.row, col, cell, fmt)
            shown = len(f"{cell:,.2f}") if column.kind == "money" else len(repr(cell))
            if self.totals[col] is not None:
                self.totals[col] += Decimal(repr(cell))
        self.widths[col] = max(self.widths[col], shown + 2)

    def finish(self, label: str = "Total") -> int:
        """Write the totals row and fit the column widths; return the data row count."""
        first, last = 2, self.row  # 1-based rows of the data
        self.sheet.write_string(self.row, 0, label, self.formats["total_label"])
        for col, column in enumerate(self.columns):
            if col == 0 or self.totals[col] is None:
                continue
            letter = xlsxwriter.utility.xl_col_to_name(col)
            formula = f"=SUM({letter}{first}:{letter}{last})" if last >= first else "=0"
            self.sheet.write_formula(
                self.row, col, formula, self.formats[f"total_{column.kind}"],
                float(self.totals[col]),
            )
        for col, width in enumerate(self.widths):
            self.sheet.set_column(col, col, min(width, _MAX_WIDTH))
        return self.data_rows


class ReportWorkbook:
    """An xlsx report being written: table sheets first, then the Parameters sheet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.workbook = xlsxwriter.Workbook(str(path), _WORKBOOK_OPTIONS)
        self.formats = self._make_formats()

    def _make_formats(self) -> dict[str, Any]:
        add = self.workbook.add_format
        formats: dict[str, Any] = {
            "header": add({"bold": True, "bg_color": "#DDEBF7", "bottom": 1,
                           "text_wrap": True, "valign": "top"}),
            "total_label": add({"bold": True, "top": 1}),
            "label": add({"bold": True}),
            "critical": add({"bg_color": "#FFC7CE", "font_color": "#9C0006"}),
            "below": add({"bg_color": "#FFEB9C", "font_color": "#9C5700"}),
            "difference": add({"bg_color": "#FFC7CE"}),
        }
        for kind, number_format in NUMBER_FORMATS.items():
            formats[kind] = add({"num_format": number_format}) if number_format else None
            total = {"bold": True, "top": 1}
            if number_format:
                total["num_format"] = number_format
            formats[f"total_{kind}"] = add(total)
        return formats

    def add_table(self, name: str, columns: list[Column],
                  request: ReportRequest | None = None) -> TableSheet:
        """Add a table sheet; with a request, cost columns follow its `see_costs` right."""
        keep = None
        if request is not None and not request.may_see_costs:
            keep = [i for i, column in enumerate(columns) if not column.cost]
        return TableSheet(self.workbook, name, columns, self.formats, keep)

    def add_parameters(self, rows: list[tuple[str, Any]]) -> None:
        """Write the Parameters sheet: one label and value per row."""
        sheet = self.workbook.add_worksheet("Parameters")
        sheet.write_string(0, 0, "Parameter", self.formats["header"])
        sheet.write_string(0, 1, "Value", self.formats["header"])
        sheet.freeze_panes(1, 0)
        width = 12
        for index, (label, value) in enumerate(rows, start=1):
            sheet.write_string(index, 0, label, self.formats["label"])
            if isinstance(value, dt.datetime):
                sheet.write_datetime(index, 1, value, self.formats["datetime"])
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                sheet.write_number(index, 1, value)
            else:
                sheet.write_string(index, 1, clean_text("" if value is None else str(value)))
            width = max(width, len(str(value)) + 2)
        sheet.set_column(0, 0, max(len(label) for label, _ in rows) + 2)
        sheet.set_column(1, 1, min(width, 100))

    def close(self) -> None:
        self.workbook.close()


def stream_rows(con: duckdb.DuckDBPyConnection, sql: str,
                parameters: dict[str, Any] | list | None = None) -> Iterator[tuple]:
    """Yield the rows of a query in batches of FETCH_ROWS, so no result is held whole.

    The connection must not run another query until the iterator is exhausted.
    """
    result = con.execute(sql, parameters or {})
    while True:
        batch = result.fetchmany(FETCH_ROWS)
        if not batch:
            return
        yield from batch


def prepare_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the moving-average costs up to date before a report reads them."""
    con.execute("BEGIN TRANSACTION")
    try:
        refresh_costs(con)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def start_report(request: ReportRequest, file_name: str,
                 replace: bool = False) -> tuple[ReportWorkbook, Path]:
    """Open a report workbook under a temporary name, and return it with its final path.

    The final path gets a suffix when the name is taken, unless `replace` is set.
    """
    folder = request.workspace.outbox / REPORTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name if replace else unique_path(folder, file_name)
    temporary = folder / f".{target.name}.tmp"
    return ReportWorkbook(temporary), target


def finish_report(con: duckdb.DuckDBPyConnection, request: ReportRequest,
                  report: ReportWorkbook, target: Path, kind_name: str,
                  row_count: int, extra: list[tuple[str, Any]] | None = None) -> ReportFile:
    """Write the Parameters sheet, close the workbook, move it into place and register it.

    `target` may be an existing file (the report `watch` keeps current). It is replaced in
    one rename, so a reader never sees half a workbook.
    """
    requested_at = request.requested_at or now_in_zone(request.workspace)
    position = ledger.ledger_position(con)
    rows: list[tuple[str, Any]] = [("Report", kind_name)]
    rows += [(name, _parameter_text(value)) for name, value in request.parameters.items()]
    rows += [
        ("Made at", requested_at),
        ("Made by", request.user),
        ("Ledger position", position),
        ("Rows", row_count),
        ("Valuation", "moving-average cost per product across all storages"),
        ("Rounding", "amounts are carried unrounded and rounded to cents only in cells"),
    ]
    rows += extra or []
    report.add_parameters(rows)
    report.close()
    os.replace(report.path, target)
    entry_id = register_file(
        request.workspace, con, kind="report", requested_by=request.user,
        requested_at=requested_at, path=target, row_count=row_count,
        parameters={"report": kind_name} | {k: _parameter_text(v)
                                            for k, v in request.parameters.items()},
    )
    return ReportFile(target, entry_id, row_count)


def _parameter_text(value: Any) -> str:
    if value is None:
        return "(all)"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def storage_id_by_name(con: duckdb.DuckDBPyConnection, name: str | None) -> int | None:
    """Return the id of the storage called `name` (any case), or raise ReportError."""
    if name is None:
        return None
    rows = con.execute(
        "SELECT storage_id FROM storages WHERE lower(name) = lower(?)", [name.strip()]
    ).fetchall()
    if not rows:
        known = [row[0] for row in con.execute("SELECT name FROM storages ORDER BY name")
                 .fetchall()]
        raise ReportError(f'storage "{name}" not found; use one of: '
                          f"{', '.join(known)}")
    return rows[0][0]
