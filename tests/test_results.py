"""Tests for the result workbook: they write it to tmp_path and read it back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
import python_calamine

from batchstock import results
from batchstock.core import BatchResult, Note, OperationSummary, Problem
from batchstock.results import (
    MAX_CELL_TEXT_LENGTH,
    TRUNCATION_MARKER,
    assign_sheet_names,
    clean_text,
    parse_cell_reference,
    write_result_workbook,
)
from batchstock.workbook import SheetGrid, read_workbook

PROCESSED_AT = dt.datetime(2024, 5, 6, 14, 30)
FILE = "inbox/anna/delivery.xlsx"


def lines_sheet() -> SheetGrid:
    return SheetGrid(
        name="Lines",
        visible=True,
        rows=[
            ["SKU", "Quantity", "Price", "Date", "Paid"],
            ["SH-100", 12, 4.5, dt.datetime(2024, 5, 1, 9, 15), True],
            ["SH-200", "12,5", None, dt.date(2024, 5, 2), False],
        ],
    )


def problem(sheet: str | None, cell: str | None, code: str, message: str, value=None) -> Problem:
    return Problem(FILE, sheet, cell, code, message, value)


def rejected(problems: list[Problem], notes: list[Note] | None = None) -> BatchResult:
    return BatchResult(
        file=FILE,
        submitter="anna",
        status="rejected",
        batch_id=None,
        processed_at=PROCESSED_AT,
        problems=problems,
        notes=notes or [],
    )


def operation(operation_id: str, amount: Decimal | None, line_count: int = 2) -> OperationSummary:
    return OperationSummary(
        operation_id=operation_id,
        type="arrival",
        sheet="Lines",
        occurred_at=dt.datetime(2024, 5, 1, 9, 0),
        storage="Main hall",
        to_storage=None,
        line_count=line_count,
        total_amount=amount,
    )


def write_and_open(tmp_path: Path, result: BatchResult, sheets: list[SheetGrid]):
    path = tmp_path / "outbox" / "delivery.result.xlsx"
    write_result_workbook(path, result, sheets)
    return openpyxl.load_workbook(path)


def column_values(worksheet, column: int) -> list:
    return [row[column - 1] for row in worksheet.iter_rows(values_only=True)]


def fill_color(cell) -> str:
    return cell.fill.fgColor.rgb


# Sheet names


def test_rejected_result_sheet_names(tmp_path):
    result = rejected([problem("Lines", "B3", "quantity-not-number", "not a number")])

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    assert workbook.sheetnames == ["Summary", "Problems", "Lines"]
    assert workbook.active.title == "Summary"


def test_sheet_names_sanitised_and_unique(tmp_path):
    long_name = "Arrivals from the main supplier in May 2024"
    sheets = [
        SheetGrid("Summary", True, [["a"]]),
        SheetGrid("In/Out", True, [["b"]]),
        SheetGrid(long_name, True, [["c"]]),
        SheetGrid("'Quoted'", True, [["d"]]),
    ]
    result = rejected([problem(long_name, "A1", "quantity-not-number", "bad")])

    workbook = write_and_open(tmp_path, result, sheets)

    names = workbook.sheetnames
    assert names[:2] == ["Summary", "Problems"]
    assert names[2] == "Summary (2)"
    assert names[3] == "In_Out"
    assert names[4] == long_name[:31]
    assert names[5] == "Quoted"
    assert len({name.lower() for name in names}) == len(names)


def test_assign_sheet_names_deduplicates_truncated_names():
    first = "A" * 40
    second = "A" * 35

    mapping = assign_sheet_names([first, second, "problems", "x:y*z?"])

    assert mapping[first] == "A" * 31
    assert mapping[second] == "A" * 27 + " (2)"
    assert mapping["problems"] == "problems (2)"
    assert mapping["x:y*z?"] == "x_y_z_"
    assert all(len(name) <= 31 for name in mapping.values())


def test_assign_sheet_names_empty_after_cleaning():
    mapping = assign_sheet_names(["''", "\x01"])

    assert mapping["''"] == "Sheet"
    assert mapping["\x01"] == "Sheet (2)"


# Highlights and comments


def test_problem_cell_has_fill_and_comment(tmp_path):
    message = 'quantity "12,5" is not a number'
    result = rejected([problem("Lines", "B3", "quantity-not-number", message)])

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    cell = workbook["Lines"]["B3"]
    assert cell.value == "12,5"
    assert cell.comment is not None
    assert message in cell.comment.text
    assert fill_color(cell).endswith(results.PROBLEM_FILL.lstrip("#"))
    assert workbook["Lines"]["A3"].comment is None


def test_several_problems_share_one_comment(tmp_path):
    result = rejected([
        problem("Lines", "C3", "price-missing", "first message"),
        problem("Lines", "c3", "price-negative", "second message"),
    ])

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    comment = workbook["Lines"]["C3"].comment.text
    assert "first message" in comment
    assert "second message" in comment


def test_note_cell_has_yellow_fill(tmp_path):
    result = BatchResult(
        FILE, "anna", "applied", 7, PROCESSED_AT,
        notes=[Note("Lines", "D2", "date taken as 1 May 2024")],
    )

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    cell = workbook["Lines"]["D2"]
    assert "date taken as 1 May 2024" in cell.comment.text
    assert fill_color(cell).endswith(results.NOTE_FILL.lstrip("#"))
    assert "Problems" not in workbook.sheetnames


def test_problem_outside_grid_is_highlighted(tmp_path):
    result = rejected([problem("Lines", "G9", "date-missing", "date is missing")])

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    cell = workbook["Lines"]["G9"]
    assert cell.value is None
    assert "date is missing" in cell.comment.text
    assert fill_color(cell).endswith(results.PROBLEM_FILL.lstrip("#"))


def test_hidden_sheet_shown_only_when_marked(tmp_path):
    sheets = [lines_sheet(), SheetGrid("Lists", False, [["x"]]), SheetGrid("Old", False, [["y"]])]
    result = rejected([problem("Lists", "A1", "unknown-storage", "unknown storage")])

    workbook = write_and_open(tmp_path, result, sheets)

    assert workbook["Lists"].sheet_state == "visible"
    assert workbook["Old"].sheet_state == "hidden"


# Problems sheet


def test_problems_sheet_links_to_copied_cell(tmp_path):
    result = rejected([
        problem("Lines", "B3", "quantity-not-number", "not a number", "12,5"),
        problem(None, None, "file-empty", "no operations"),
    ])

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    sheet = workbook["Problems"]
    assert [c.value for c in sheet[1]] == ["File", "Sheet", "Cell", "Code", "Value", "Message"]
    assert sheet["B2"].value == "Lines"
    assert sheet["C2"].value == "B3"
    assert sheet["C2"].hyperlink.location == "'Lines'!B3"
    assert sheet["D2"].value == "quantity-not-number"
    assert sheet["E2"].value == "12,5"
    assert sheet["D3"].value == "file-empty"
    assert sheet["C3"].hyperlink is None
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:F3"


def test_problem_link_follows_renamed_sheet(tmp_path):
    sheets = [SheetGrid("Stock/May", True, [["a"]]), SheetGrid("Anna's", True, [["b"]])]
    result = rejected([
        problem("Stock/May", "A1", "sku-unknown", "unknown SKU"),
        problem("Anna's", "A1", "sku-unknown", "unknown SKU"),
    ])

    workbook = write_and_open(tmp_path, result, sheets)

    problems_sheet = workbook["Problems"]
    assert problems_sheet["C2"].hyperlink.location == "'Stock_May'!A1"
    assert problems_sheet["C3"].hyperlink.location == "'Anna''s'!A1"
    assert "unknown SKU" in workbook["Stock_May"]["A1"].comment.text


def test_problem_on_unknown_sheet_has_no_link(tmp_path):
    result = rejected([problem("Gone", "A1", "sheet-missing", "no such sheet")])

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    assert workbook["Problems"]["C2"].value == "A1"
    assert workbook["Problems"]["C2"].hyperlink is None


# Safety of text


@pytest.mark.parametrize("text", ['=HYPERLINK("x")', "@SUM(A1)", "-1+2", "+A1"])
def test_formula_like_text_stays_text(tmp_path, text):
    sheets = [SheetGrid("Lines", True, [[text, "ok"]])]
    result = rejected([problem("Lines", "A1", "sku-unknown", text, text)])

    workbook = write_and_open(tmp_path, result, sheets)

    copied = workbook["Lines"]["A1"]
    assert copied.data_type == "s"
    assert copied.value == text
    problems_sheet = workbook["Problems"]
    assert problems_sheet["E2"].data_type == "s"
    assert problems_sheet["E2"].value == text
    assert problems_sheet["F2"].data_type == "s"
    assert problems_sheet["F2"].value == text


def test_control_characters_do_not_break_file(tmp_path):
    text = "SH\x00-1\x01\x0b\x1f00\ufffe"
    sheets = [SheetGrid("Li\x02nes", True, [[text, "tab\tand\nnewline"]])]
    result = rejected([problem("Li\x02nes", "A1", "sku-unknown", f"unknown {text}", text)])
    path = tmp_path / "result.xlsx"

    write_result_workbook(path, result, sheets)

    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == ["Summary", "Problems", "Lines"]
    copied = workbook["Lines"]["A1"].value
    assert copied.startswith("SH")
    assert all(ord(c) >= 0x20 for c in copied)
    assert workbook["Lines"]["B1"].value == "tab\tand\nnewline"
    calamine = python_calamine.CalamineWorkbook.from_path(str(path))
    assert calamine.sheet_names == ["Summary", "Problems", "Lines"]
    assert calamine.get_sheet_by_name("Problems").to_python()[1][3] == "sku-unknown"


def test_long_text_is_truncated(tmp_path):
    text = "x" * (MAX_CELL_TEXT_LENGTH + 100)
    sheets = [SheetGrid("Lines", True, [[text]])]
    result = rejected([problem("Lines", "A1", "comment-too-long", text, text)])

    workbook = write_and_open(tmp_path, result, sheets)

    copied = workbook["Lines"]["A1"].value
    assert len(copied) == MAX_CELL_TEXT_LENGTH
    assert copied.endswith(TRUNCATION_MARKER)
    assert len(workbook["Problems"]["E2"].value) == MAX_CELL_TEXT_LENGTH


def test_clean_text_counts_utf16_units():
    text = "\U0001F600" * MAX_CELL_TEXT_LENGTH  # each emoji is two UTF-16 units

    cleaned = clean_text(text)

    assert len(cleaned.encode("utf-16-le")) <= 2 * MAX_CELL_TEXT_LENGTH
    assert cleaned.endswith(TRUNCATION_MARKER)
    assert "\ufffd" not in cleaned


def test_clean_text_replaces_lone_surrogate():
    assert clean_text("a\ud800b\x00") == "a\ufffdb\ufffd"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [("A1", (0, 0)), ("c7", (6, 2)), ("$AA$10", (9, 26)), ("B2:D4", (1, 1)),
     ("XFD1048576", (1048575, 16383)), ("XFE1", None), ("A0", None), ("A1048577", None),
     ("", None), (None, None), ("Lines!A1", None)],
)
def test_parse_cell_reference(reference, expected):
    assert parse_cell_reference(reference) == expected


# Types of copied cells


def test_copied_cells_keep_types(tmp_path):
    result = rejected([problem("Lines", "B3", "quantity-not-number", "not a number")])

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    sheet = workbook["Lines"]
    assert sheet["B2"].value == 12
    assert sheet["B2"].data_type == "n"
    assert sheet["C2"].value == 4.5
    assert sheet["D2"].value == dt.datetime(2024, 5, 1, 9, 15)
    assert sheet["D2"].is_date
    assert sheet["D3"].value == dt.datetime(2024, 5, 2)
    assert sheet["D3"].number_format == "yyyy-mm-dd"
    assert sheet["E2"].value is True
    assert sheet["E2"].data_type == "b"
    assert sheet["C3"].value is None


def test_output_opens_with_calamine(tmp_path):
    result = rejected([problem("Lines", "B3", "quantity-not-number", "not a number")])
    path = tmp_path / "result.xlsx"

    write_result_workbook(path, result, [lines_sheet()])

    calamine = python_calamine.CalamineWorkbook.from_path(str(path))
    assert calamine.sheet_names == ["Summary", "Problems", "Lines"]
    rows = calamine.get_sheet_by_name("Lines").to_python()
    assert rows[1][0] == "SH-100"
    assert rows[1][1] == 12
    assert rows[1][3] == dt.datetime(2024, 5, 1, 9, 15)
    assert rows[1][4] is True
    assert rows[2][1] == "12,5"


def test_copy_reads_back_unchanged(tmp_path):
    original = lines_sheet()
    result = rejected([problem("Lines", "B3", "quantity-not-number", "not a number")])
    path = tmp_path / "result.xlsx"

    write_result_workbook(path, result, [original])

    copies = {grid.name: grid for grid in read_workbook(path)}
    assert copies["Lines"].rows == original.rows


# Summary


def summary_rows(workbook) -> dict:
    """Return the Summary label cells mapped to the value beside them."""
    return {row[0]: row[1] for row in workbook["Summary"].iter_rows(values_only=True) if row[0]}


def test_applied_summary_lists_operations_and_totals(tmp_path):
    result = BatchResult(
        FILE, "anna", "applied", 42, PROCESSED_AT,
        operations=[operation("OP-1", Decimal("10.10"), 2), operation("OP-2", Decimal("0.20"), 3),
                    operation("OP-3", None, 1)],
    )

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    assert workbook.sheetnames == ["Summary"]
    labels = summary_rows(workbook)
    assert labels["File"] == FILE
    assert labels["Status"] == "applied"
    assert labels["Batch id"] == 42
    assert labels["Processed at"] == PROCESSED_AT
    rows = list(workbook["Summary"].iter_rows(values_only=True))
    header_index = next(i for i, row in enumerate(rows) if row[0] == "Operation id")
    assert [row[0] for row in rows[header_index + 1 : header_index + 4]] == ["OP-1", "OP-2", "OP-3"]
    total_row = rows[header_index + 4]
    assert total_row[0] == "Total"
    assert total_row[6] == 6
    assert total_row[7] == pytest.approx(10.30)
    sheet = workbook["Summary"]
    assert sheet.cell(header_index + 2, 8).number_format == "0.00"
    assert sheet.cell(header_index + 2, 4).is_date
    assert sheet.cell(header_index + 1, 1).font.b


def test_rejected_summary_counts_problems(tmp_path):
    result = rejected([
        problem("Lines", "B3", "quantity-not-number", "not a number"),
        problem("Lines", "C3", "price-missing", "price is missing"),
    ])

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    assert summary_rows(workbook)["Problems"] == 2
    assert "Operation id" not in column_values(workbook["Summary"], 1)


def test_duplicate_summary_names_earlier_batch(tmp_path):
    result = BatchResult(
        FILE, "anna", "duplicate", None, PROCESSED_AT,
        operations=[operation("OP-9", Decimal("5.00"))], duplicate_of="batch 17",
    )

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    assert summary_rows(workbook)["Duplicate of"] == "batch 17"
    assert "OP-9" in column_values(workbook["Summary"], 1)


def test_summary_lists_notes_and_ignored_columns(tmp_path):
    result = BatchResult(
        FILE, "anna", "checked", None, PROCESSED_AT,
        notes=[Note("Lines", "D2", "date taken as 1 May"), Note(None, None, "whole-file note")],
        ignored_columns={"Lines": ["Colour", "=cmd"]},
    )

    workbook = write_and_open(tmp_path, result, [lines_sheet()])

    rows = list(workbook["Summary"].iter_rows(values_only=True))
    note_row = next(row for row in rows if row[2] == "date taken as 1 May")
    assert note_row[:2] == ("Lines", "D2")
    assert any(row[2] == "whole-file note" for row in rows)
    ignored = [row[1] for row in rows if row[0] == "Lines" and row[1] in ("Colour", "=cmd")]
    assert ignored == ["Colour", "=cmd"]
    links = [c for c in workbook["Summary"]["B"] if c.hyperlink is not None]
    assert [c.hyperlink.location for c in links] == ["'Lines'!D2"]


# Writing the file


def test_write_leaves_no_temporary_file(tmp_path):
    result = rejected([problem("Lines", "B3", "quantity-not-number", "not a number")])
    path = tmp_path / "new" / "folder" / "result.xlsx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"old content")

    write_result_workbook(path, result, [lines_sheet()])

    assert [p.name for p in path.parent.iterdir()] == ["result.xlsx"]
    assert openpyxl.load_workbook(path).sheetnames[0] == "Summary"


def test_write_creates_parent_folder(tmp_path):
    path = tmp_path / "outbox" / "anna" / "result.xlsx"

    write_result_workbook(path, rejected([]), [])

    assert path.is_file()


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "result.xlsx"
    path.write_bytes(b"old content")

    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(results, "_write_workbook", fail)
    with pytest.raises(RuntimeError):
        write_result_workbook(path, rejected([]), [])

    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["result.xlsx"]
