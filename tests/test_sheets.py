"""Reading workbooks: labels and aliases, where the table sits, blank and totals rows, the
table layout's grouping, and the problems of unreadable or ambiguous workbooks."""

from __future__ import annotations

from decimal import Decimal

import openpyxl
import pytest

from batchstock.sheets import match_header_field, match_line_field
from ingest_workbooks import (
    arrive,
    balance,
    form_rows,
    located,
    query,
    stocked,  # noqa: F401 (fixture)
    stocked_ledger,  # noqa: F401 (fixture)
    submit,
    write_rows,
)


def assert_applied(filed) -> None:
    assert filed.result.status == "applied", filed.result.problems


def problems_of(filed) -> set:
    assert filed.result.status == "rejected"
    return located(filed.result.problems)


def lines_of(workspace) -> list[tuple]:
    return query(workspace, "SELECT operation_id, line_no, sku, quantity FROM operation_lines "
                            "ORDER BY operation_id, line_no")


# Aliases and label matching

LINE_ALIASES = [
    ("SKU", "sku"), ("Article", "sku"), ("Code", "sku"), ("Item code", "sku"),
    ("Barcode", "barcode"), ("EAN", "barcode"),
    ("Product", "product"), ("Name", "product"), ("Product name", "product"),
    ("Description", "product"),
    ("Quantity", "quantity"), ("Qty", "quantity"),
    ("Unit", "unit"),
    ("Unit cost", "cost"), ("Cost", "cost"), ("Delivery cost", "cost"),
    ("Cost price", "cost"), ("Purchase price", "cost"),
    ("Price", "price"), ("Unit price", "price"), ("Sale price", "price"),
    ("Discount", "discount"), ("Discount %", "discount"),
    ("Subtotal", "subtotal"), ("Line total", "subtotal"), ("Total", "subtotal"),
    ("Sum", "subtotal"),
]
HEADER_ALIASES = [
    ("Storage", "storage"), ("From storage", "storage"), ("From", "storage"),
    ("To storage", "to_storage"), ("To", "to_storage"),
    ("Date", "date"), ("Date and time", "date"),
    ("Document no.", "document_no"), ("Document", "document_no"),
    ("Document number", "document_no"), ("Receipt", "document_no"),
    ("Operation", "type"), ("Operation type", "type"), ("Type", "type"),
    ("Operation id", "operation_id"), ("Action", "action"),
    ("Supplier", "supplier"), ("Client", "client"), ("Staff member", "staff_member"),
    ("Reason", "reason"), ("Comment", "comment"),
]


@pytest.mark.parametrize(("label", "field"), LINE_ALIASES)
def test_line_alias_matches(label, field):
    assert match_line_field(label) == field
    assert match_line_field(label.upper()) == field
    assert match_line_field(f"  {label.lower()}: ") == field
    assert match_line_field(f"\u00a0{label}\u00a0:") == field


@pytest.mark.parametrize(("label", "field"), HEADER_ALIASES)
def test_header_alias_matches(label, field):
    assert match_header_field(label) == field
    assert match_header_field(label.upper()) == field
    assert match_header_field(f" {label.lower()} :") == field


def test_form_labels_any_case_colon_spaces(stocked, tmp_path):
    rows = [
        ["  OPERATION TYPE:", "Relocation"],
        ["date and time :", "03.11.2026 14:30"],
        ["From:", "Products"],
        ["TO", "Branch 2 shelf"],
        [],
        ["Item code:", "Product name", " QTY "],
        ["COMB-CARB", "Carbon comb", 2],
    ]
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])

    filed = submit(stocked, write_rows(tmp_path / "r.xlsx", {"Move": rows}))

    assert_applied(filed)
    assert balance(stocked, "Branch 2 shelf", "COMB-CARB") == 2


def test_table_headers_by_alias(stocked, tmp_path):
    rows = [
        ["Date and time", "Receipt", "Type", "From", "Article", "Description", "Qty",
         "Unit price", "Discount %", "Line total"],
        ["2026-11-04 16:46", "R-1", "Sale", "Products", "COMB-CARB", "Carbon comb", 2, 6.5, 0,
         13],
    ]
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"Till": rows}))

    assert_applied(filed)
    assert query(stocked, "SELECT document_no, occurred_at::VARCHAR FROM operations "
                          "WHERE type = 'sale'") == [("R-1", "2026-11-04 16:46:00")]


def test_arrival_cost_aliases(stocked, tmp_path):
    for index, header in enumerate(["Cost", "Delivery cost", "Cost price", "Purchase price"]):
        rows = form_rows("Arrival", "Products", ["Code", header], [])
        rows[4] = ["Code", "Quantity", header]
        rows.append(["COMB-CARB", 1, 2.25])

        assert_applied(submit(stocked, write_rows(tmp_path / f"a{index}.xlsx",
                                                  {"Arrival": rows})))

    prices = query(stocked, "SELECT DISTINCT price FROM operation_lines")
    assert prices == [(Decimal("2.25"),)]


# Unknown columns


def test_unknown_columns_listed_in_result(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Colour", "Quantity", "Shelf no."],
                     [["COMB-CARB", "black", 2, 14]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert_applied(filed)
    assert filed.result.ignored_columns == {"Arrival": ["Colour", "Shelf no."]}
    summary = openpyxl.load_workbook(filed.result_path)["Summary"]
    texts = {cell.value for row in summary.iter_rows() for cell in row}
    assert {"Colour", "Shelf no."} <= texts


# Where the table sits


def test_header_row_under_title_and_blank_rows(stocked, tmp_path):
    rows = [
        ["Delivery note from Beauty Wholesale Ltd"],
        [],
        ["Operation", "Arrival"],
        ["Date", "2026-11-02"],
        [],
        ["Storage", "Products"],
        [],
        [],
        ["SKU", "Quantity"],
        ["COMB-CARB", "x"],
    ]

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert problems_of(filed) == {("not_a_number", "Arrival", "B10")}


def test_blank_rows_between_lines_keep_row_numbers(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity"],
                     [["COMB-CARB", 1], [], [], ["COMB-CARB", 2], [None, "  "], ["SH-ARG-205", 1]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert problems_of(filed) == {("unknown_sku", "Arrival", "A11")}


def test_blank_rows_not_applied_as_lines(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity"],
                     [["COMB-CARB", 1], [], ["COMB-CARB", 2]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert_applied(filed)
    assert filed.result.operations[0].line_count == 2


def test_form_not_starting_at_a1(stocked, tmp_path):
    rows = [
        [],
        [None, None, "Operation", "Arrival"],
        [None, None, "Storage", "Products"],
        [],
        [None, "SKU", "Qty"],
        [None, "COMB-CARB", "x"],
    ]

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert problems_of(filed) == {("not_a_number", "Arrival", "C6")}


def test_table_under_title_not_starting_at_a1(stocked, tmp_path):
    rows = [
        ["Till export, November"],
        [],
        [None, "Date", "Operation", "Storage", "SKU", "Qty"],
        [None, "2026-11-03", "Arrival", "Products", "COMB-CARB", 1],
        [None, "2026-11-03", "Arrival", "Products", "COMB-CARB", "x"],
    ]

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"Export": rows}))

    assert problems_of(filed) == {("not_a_number", "Export", "F5")}


# Totals rows


def test_totals_row_checked_not_applied(stocked, tmp_path):
    labels = ["Total", "TOTAL:", "Sum", "Grand total"]
    columns = ["SKU", "Quantity", "Unit cost", "Subtotal"]
    sheets = {f"Sheet{index}": form_rows("Arrival", "Products", columns,
                                         [["SH-ARG-250", 12, 9.45, 113.4],
                                          ["COMB-CARB", 10, 2.1, 21], [label, 22, None, 134.4]])
              for index, label in enumerate(labels)}

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", sheets))

    assert_applied(filed)
    assert [op.line_count for op in filed.result.operations] == [2] * 4
    assert balance(stocked, "Products", "COMB-CARB") == 40


def test_totals_label_in_name_column(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Product", "Quantity", "Unit cost",
                                             "Subtotal"],
                     [["COMB-CARB", "Carbon comb", 10, 2.1, 21], [None, "Total", 10, None, 21]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert_applied(filed)
    assert len(lines_of(stocked)) == 1


def test_totals_label_in_other_column(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity", "Unit cost", "Subtotal"],
                     [["COMB-CARB", 10, 2.1, 21], [None, None, "Total", 21]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert_applied(filed)
    assert len(lines_of(stocked)) == 1


def test_total_mismatch_at_totals_cell(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity", "Unit cost", "Subtotal"],
                     [["SH-ARG-250", 12, 9.45, 113.4], ["COMB-CARB", 10, 2.1, 21],
                      ["Total", 22, None, 143.4]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert problems_of(filed) == {("total_mismatch", "Arrival", "D8")}


def test_total_quantity_mismatch(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity"],
                     [["SH-ARG-250", 12], ["COMB-CARB", 10], ["Total", 23]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert problems_of(filed) == {("total_mismatch", "Arrival", "B8")}


def test_total_without_subtotal_column_uses_prices(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity", "Unit cost", "Sum"],
                     [["SH-ARG-250", 12, 9.45, None], ["Total", None, None, 113.4]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert_applied(filed)


def test_rows_after_totals_row(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity"],
                     [["COMB-CARB", 1], ["Total", 1], ["COMB-CARB", 2]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert ("rows_after_totals", "Arrival", "A8") in problems_of(filed)


def test_table_totals_row_checked(stocked, tmp_path):
    rows = [
        ["Date", "Document no.", "Operation", "Storage", "SKU", "Qty", "Cost", "Subtotal"],
        ["2026-11-02", "DN-1", "Arrival", "Products", "COMB-CARB", 10, 2.1, 21],
        ["2026-11-02", "DN-2", "Arrival", "Products", "COMB-CARB", 5, 2.1, 10.5],
        ["Total", None, None, None, None, 15, None, 30],
    ]

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"Export": rows}))

    assert problems_of(filed) == {("total_mismatch", "Export", "H4")}


def test_table_totals_row_not_applied(stocked, tmp_path):
    rows = [
        ["Date", "Document no.", "Operation", "Storage", "SKU", "Qty", "Cost", "Subtotal"],
        ["2026-11-02", "DN-1", "Arrival", "Products", "COMB-CARB", 10, 2.1, 21],
        ["2026-11-02", "DN-2", "Arrival", "Products", "COMB-CARB", 5, 2.1, 10.5],
        ["Total", None, None, None, None, 15, None, 31.5],
    ]

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"Export": rows}))

    assert_applied(filed)
    assert balance(stocked, "Products", "COMB-CARB") == 15


# Table layout: grouping rows into operations


def test_table_grouped_by_document_number(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 10], ["SH-ARG-250", 10]])
    rows = [
        ["Date", "Document no.", "Operation", "Storage", "Client", "SKU", "Quantity", "Price"],
        ["2026-11-04 16:46", "R-00001", "Sale", "Products", None, "COMB-CARB", 1, 6.5],
        ["2026-11-04 16:46", "R-00001", "Sale", "Products", None, "SH-ARG-250", 1, 18.9],
        ["2026-11-05 10:00", "R-00002", "Sale", "Products", "Maria Stone", "COMB-CARB", 2, 6.5],
        ["2026-11-04 16:46", "R-00001", "Sale", "Products", None, "COMB-CARB", 1, 6.5],
    ]

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"sales.csv": rows}))

    assert_applied(filed)
    summaries = [(op.line_count, op.total_amount) for op in filed.result.operations]
    assert summaries == [(3, Decimal("31.9")), (1, Decimal("13"))]
    assert query(stocked, "SELECT document_no, client FROM operations WHERE type = 'sale' "
                          "ORDER BY operation_id") == [("R-00001", None),
                                                       ("R-00002", "Maria Stone")]


def test_table_grouped_by_equal_header_fields(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 10]])
    rows = [
        ["Date", "Operation", "Storage", "Staff member", "SKU", "Quantity"],
        ["2026-11-04 16:46", "Sale", "Products", "Anna", "COMB-CARB", 1],
        ["2026-11-04 16:46", "Sale", "Products", "Anna", "COMB-CARB", 2],
        ["2026-11-04 16:46", "Sale", "Products", "Ben", "COMB-CARB", 3],
        ["2026-11-05 09:00", "Write-off", "Products", "Anna", "COMB-CARB", 1],
    ]

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"Export": rows}))

    assert_applied(filed)
    assert [(op.type, op.line_count) for op in filed.result.operations] == [
        ("sale", 2), ("sale", 1), ("write-off", 1)]
    assert balance(stocked, "Products", "COMB-CARB") == 3


def test_inconsistent_header_at_differing_cell(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 10]])
    rows = [
        ["Date", "Receipt", "Operation", "Storage", "SKU", "Quantity"],
        ["2026-11-04 16:46", "R-1", "Sale", "Products", "COMB-CARB", 1],
        ["2026-11-04 16:46", "R-1", "Sale", "Branch 2 shelf", "COMB-CARB", 1],
        ["2026-11-04 16:47", "R-1", "Sale", "Products", "COMB-CARB", 1],
    ]

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"Export": rows}))

    assert problems_of(filed) == {("inconsistent_header", "Export", "D3"),
                                  ("inconsistent_header", "Export", "A4")}


def test_table_row_problem_at_its_row(stocked, tmp_path):
    rows = [
        ["Date", "Operation", "Storage", "SKU", "Quantity"],
        ["2026-11-02", "Arrival", "Products", "COMB-CARB", 1],
        ["2026-11-02", "Arrival", "Products", "COMB-CARB", 1],
        ["02/11/2026", "Arrival", "Products", "COMB-CARB", 1],
        ["2026-11-02", "Delivery", "Products", "COMB-CARB", 1],
    ]

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"Export": rows}))

    assert problems_of(filed) == {("invalid_date", "Export", "A4"),
                                  ("unknown_type", "Export", "B5")}


def test_table_without_rows_no_lines(stocked, tmp_path):
    rows = [["Date", "Operation", "Storage", "SKU", "Quantity"]]

    filed = submit(stocked, write_rows(tmp_path / "t.xlsx", {"Export": rows}))

    assert problems_of(filed) == {("no_lines", "Export", "A1")}


# Unreadable or ambiguous workbooks


def test_duplicate_header_at_second_column(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity", "Qty"], [["COMB-CARB", 1, 2]])

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert problems_of(filed) == {("duplicate_header", "Arrival", "C5")}


def test_no_lines_table(stocked, tmp_path):
    rows = [["Operation", "Arrival"], ["Storage", "Products"], [], ["Comb", 12]]

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert problems_of(filed) == {("no_lines_table", "Arrival", "A1")}


def test_hidden_sheet_with_data_rejected(stocked, tmp_path):
    path = tmp_path / "a.xlsx"
    write_rows(path, {
        "Arrival": form_rows("Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", 1]]),
        "Old": form_rows("Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", 50]]),
    })
    workbook = openpyxl.load_workbook(path)
    workbook["Old"].sheet_state = "hidden"
    workbook.save(path)

    filed = submit(stocked, path)

    assert problems_of(filed) == {("hidden_sheet", "Old", "A1")}
    assert balance(stocked, "Products", "COMB-CARB") is None


def test_not_a_workbook(stocked, tmp_path):
    path = tmp_path / "delivery.xlsx"
    path.write_text("SKU;Quantity\nCOMB-CARB;1\n", encoding="utf-8")

    filed = submit(stocked, path)

    assert problems_of(filed) == {("not_a_workbook", None, None)}
    assert (stocked.rejected / "anna" / "delivery.xlsx").exists()


def test_workbook_without_operations(stocked, tmp_path):
    filed = submit(stocked, write_rows(tmp_path / "empty.xlsx", {"Sheet1": []}))

    assert problems_of(filed) == {("no_operations", None, None)}


def test_empty_sheet_beside_form_ignored(stocked, tmp_path):
    sheets = {"Arrival": form_rows("Arrival", "Products", ["SKU", "Quantity"],
                                   [["COMB-CARB", 1]]),
              "Sheet2": []}

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", sheets))

    assert_applied(filed)
