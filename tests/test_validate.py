"""Validation rules end to end: each workbook is written inline, dropped in the inbox, and
the test pins the problem code and the cell it points at.

Form sheets come from `form_rows`: Operation in B1, Date in B2, Storage in B3, the lines
table header on row 5 and the first line on row 6.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import xlsxwriter

from batchstock.config import open_workspace
from ingest_workbooks import (
    PRODUCTS,
    arrive,
    balance,
    catalogue_sheets,
    find_problem,
    form_rows,
    located,
    query,
    stocked,  # noqa: F401 (fixture)
    stocked_ledger,  # noqa: F401 (fixture)
    submit,
    write_rows,
)


def numbers_in(message: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", message))


def submit_form(workspace, tmp_path, operation, storage, columns, lines, sheet=None,
                **options):
    sheet = sheet or operation
    rows = form_rows(operation, storage, columns, lines, **options)
    return submit(workspace, write_rows(tmp_path / f"{sheet}.xlsx", {sheet: rows}))


def problems_of(filed) -> set:
    assert filed.result.status == "rejected"
    return located(filed.result.problems)


def assert_applied(filed) -> None:
    assert filed.result.status == "applied", filed.result.problems


# Operation type


def test_missing_type_at_empty_value(stocked, tmp_path):
    rows = [["Operation", None], ["Storage", "Products"], [], ["SKU", "Quantity"],
            ["COMB-CARB", 1]]
    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert ("missing_type", "Arrival", "B1") in problems_of(filed)


def test_missing_type_without_label(stocked, tmp_path):
    rows = [["Storage", "Products"], [], ["SKU", "Quantity"], ["COMB-CARB", 1]]
    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert ("missing_type", "Arrival", "A1") in problems_of(filed)


def test_unknown_type_at_value(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Transfer", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 1]], sheet="Arrival")

    assert problems_of(filed) == {("unknown_type", "Arrival", "B1")}


def test_type_case_and_spaces_ignored(stocked, tmp_path):
    spellings = ["ARRIVAL", " arrival ", "Arrival"]
    sheets = {f"Sheet{index}": form_rows(spelling, "Products", ["SKU", "Quantity"],
                                         [["COMB-CARB", 1]])
              for index, spelling in enumerate(spellings)}

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", sheets))

    assert_applied(filed)
    assert [op.type for op in filed.result.operations] == ["arrival"] * 3


def test_write_off_spellings(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])
    spellings = ["Write-off", "write off", "WRITE-OFF"]
    sheets = {f"Sheet{index}": form_rows(spelling, "Products", ["SKU", "Quantity"],
                                         [["COMB-CARB", 1]], date="2026-11-05")
              for index, spelling in enumerate(spellings)}

    filed = submit(stocked, write_rows(tmp_path / "w.xlsx", sheets))

    assert_applied(filed)
    assert [op.type for op in filed.result.operations] == ["write-off"] * 3
    assert balance(stocked, "Products", "COMB-CARB") == 2


# Number of lines


def test_no_lines_at_header_row(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"], [])

    assert problems_of(filed) == {("no_lines", "Arrival", "A5")}


def test_500_lines_applied(stocked, tmp_path):
    lines = [["COMB-CARB", 1]] * 500

    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"], lines)

    assert_applied(filed)
    assert filed.result.operations[0].line_count == 500


def test_501_lines_too_many_at_line_501(stocked, tmp_path):
    lines = [["COMB-CARB", 1]] * 501

    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"], lines)

    assert problems_of(filed) == {("too_many_lines", "Arrival", "A506")}


# Products: SKU, barcode, name


def test_unknown_sku_at_sku_cell(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 1], ["SH-ARG-205", 2]])

    assert problems_of(filed) == {("unknown_sku", "Arrival", "A7")}
    assert find_problem(filed.result.problems, "unknown_sku").value == "SH-ARG-205"


def test_sku_with_leading_zeros_as_text(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["000731", 3]])

    assert_applied(filed)
    assert filed.result.notes == []
    assert balance(stocked, "Products", "000731") == 3


def test_numeric_sku_matches_zero_padded_with_note(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [[731, 3]])

    assert_applied(filed)
    assert [(n.sheet, n.cell) for n in filed.result.notes] == [("Arrival", "A6")]
    assert "000731" in filed.result.notes[0].message
    assert balance(stocked, "Products", "000731") == 3


def test_text_sku_without_zeros_unknown(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["731", 3]])

    assert problems_of(filed) == {("unknown_sku", "Arrival", "A6")}


def test_numeric_sku_two_zero_padded_matches_ambiguous(stocked, tmp_path):
    extra = ["0731", "Gift card sleeve, small", None, "Retail", "pcs", "pcs", 1, 1, 0.2,
             None, None]
    catalogue = write_rows(tmp_path / "catalogue.xlsx", catalogue_sheets([*PRODUCTS, extra]))
    assert_applied(submit(stocked, catalogue))

    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [[731, 3]])

    assert problems_of(filed) == {("ambiguous_sku", "Arrival", "A6")}
    message = find_problem(filed.result.problems, "ambiguous_sku").message
    assert "000731" in message
    assert "0731" in message


def test_sku_with_nbsp_matches(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "\u00a0Products\u00a0",
                        ["SKU", "Quantity"], [["\u00a0COMB-CARB\u00a0", 2]])

    assert_applied(filed)
    assert balance(stocked, "Products", "COMB-CARB") == 2


def test_barcode_finds_product(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["Barcode", "Quantity"],
                        [["4601234500208", 2], [4601234500017, 1]])

    assert_applied(filed)
    assert balance(stocked, "Products", "COMB-CARB") == 2
    assert balance(stocked, "Products", "SH-ARG-250") == 1


def test_unknown_barcode_at_cell(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["EAN", "Quantity"],
                        [["4601234500208", 2], ["4600000000000", 1]])

    assert problems_of(filed) == {("unknown_barcode", "Arrival", "A7")}


def test_shared_barcode_ambiguous(stocked, tmp_path):
    extra = ["COMB-CARB-2", "Carbon comb, second supplier", "4601234500208", "Tools", "pcs",
             "pcs", 1, 6.5, 2.0, None, None]
    catalogue = write_rows(tmp_path / "catalogue.xlsx", catalogue_sheets([*PRODUCTS, extra]))
    assert_applied(submit(stocked, catalogue))

    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["Barcode", "Quantity"],
                        [["4601234500208", 2]])

    assert problems_of(filed) == {("ambiguous_barcode", "Arrival", "A6")}


def test_fourteen_digit_numeric_barcode_unknown(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["Barcode", "Quantity"],
                        [[14601234500014, 2]])

    assert problems_of(filed) == {("unknown_barcode", "Arrival", "A6")}
    assert filed.result.problems[0].value == "14601234500014"


def test_name_finds_product(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["Product", "Quantity"],
                        [["carbon COMB", 2]])

    assert_applied(filed)
    assert balance(stocked, "Products", "COMB-CARB") == 2


def test_unknown_product_at_name_cell(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["Product", "Quantity"],
                        [["Carbon comb", 2], ["Plastic comb", 1]])

    assert problems_of(filed) == {("unknown_product", "Arrival", "A7")}


def test_ambiguous_name_never_guessed(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["Product", "Quantity"],
                        [["Hair clip", 2]])

    assert problems_of(filed) == {("ambiguous_product", "Arrival", "A6")}


def test_ambiguous_name_with_sku_applies(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Product", "Quantity"], [["CLIP-BLUE", "Hair clip", 2]])

    assert_applied(filed)
    assert balance(stocked, "Products", "CLIP-BLUE") == 2


def test_sku_name_mismatch_at_name_cell(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Product", "Quantity"],
                        [["COMB-CARB", "Carbon comb", 1], ["COMB-CARB", "Argan oil 100 ml", 1]])

    assert problems_of(filed) == {("sku_name_mismatch", "Arrival", "B7")}


def test_decomposed_accents_match_catalogue_name(stocked, tmp_path):
    decomposed = "Cre\u0300me bru\u0302le\u0301e mask"

    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Product", "Quantity"], [["MASK-CB", decomposed, 1],
                                                         [None, decomposed, 1]])

    assert_applied(filed)
    assert balance(stocked, "Products", "MASK-CB") == 2


def test_name_with_nbsp_and_case_matches_sku(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Product", "Quantity"],
                        [["COMB-CARB", "\u00a0CARBON COMB\u00a0", 1]])

    assert_applied(filed)


def test_missing_product_at_first_column(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Product", "Quantity"], [["COMB-CARB", None, 1], [None, None, 4]])

    assert problems_of(filed) == {("missing_product", "Arrival", "A7")}


# Storages


def test_missing_storage_at_empty_value(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", None, ["SKU", "Quantity"],
                        [["COMB-CARB", 1]])

    assert problems_of(filed) == {("missing_storage", "Arrival", "B3")}


def test_unknown_storage_at_value(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Attic", ["SKU", "Quantity"],
                        [["COMB-CARB", 1]])

    assert problems_of(filed) == {("unknown_storage", "Arrival", "B3")}


def test_storage_name_case_ignored(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "branch 2 SHELF", ["SKU", "Quantity"],
                        [["COMB-CARB", 1]])

    assert_applied(filed)
    assert balance(stocked, "Branch 2 shelf", "COMB-CARB") == 1


def test_sale_from_consumables_rejected(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5]], storage="Consumables")

    filed = submit_form(stocked, tmp_path, "Sale", "Consumables", ["SKU", "Quantity"],
                        [["COMB-CARB", 1]], date="2026-11-05")

    assert problems_of(filed) == {("sale_storage_type", "Sale", "B3")}


def relocation_rows(source, target, lines):
    return [["Operation", "Relocation"], ["Date", "2026-11-05"], ["From storage", source],
            ["To storage", target], [], ["SKU", "Quantity"], *lines]


def test_relocation_to_same_storage_at_target(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])
    rows = relocation_rows("Products", "products", [["COMB-CARB", 1]])

    filed = submit(stocked, write_rows(tmp_path / "r.xlsx", {"Relocation": rows}))

    assert problems_of(filed) == {("same_storage", "Relocation", "B4")}


def test_relocation_without_target(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])
    rows = relocation_rows("Products", None, [["COMB-CARB", 1]])

    filed = submit(stocked, write_rows(tmp_path / "r.xlsx", {"Relocation": rows}))

    assert problems_of(filed) == {("missing_storage", "Relocation", "B4")}


def test_relocation_moves_stock(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])
    rows = relocation_rows("Products", "Branch 2 shelf", [["COMB-CARB", 2]])

    filed = submit(stocked, write_rows(tmp_path / "r.xlsx", {"Relocation": rows}))

    assert_applied(filed)
    assert balance(stocked, "Products", "COMB-CARB") == 3
    assert balance(stocked, "Branch 2 shelf", "COMB-CARB") == 2


# Quantities


def test_missing_quantity_at_cell(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 1], ["COMB-CARB", None]])

    assert problems_of(filed) == {("missing_quantity", "Arrival", "B7")}


def test_quantity_not_positive(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 0], ["COMB-CARB", -3], ["COMB-CARB", "-3"],
                         ["COMB-CARB", "0"]])

    assert problems_of(filed) == {("not_positive", "Arrival", f"B{row}") for row in range(6, 10)}


def test_quantity_text_not_a_number(stocked, tmp_path):
    texts_and_hints = [("12,5", "12.5"), ("1 000", "1000"), ("(5)", "(5)"), ("n/a", "n/a")]
    lines = [["COMB-CARB", text] for text, _ in texts_and_hints]

    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"], lines)

    assert problems_of(filed) == {("not_a_number", "Arrival", f"B{row}") for row in range(6, 10)}
    by_cell = {problem.cell: problem for problem in filed.result.problems}
    for row, (text, hint) in enumerate(texts_and_hints, start=6):
        assert by_cell[f"B{row}"].value == text
        assert hint in by_cell[f"B{row}"].message


def test_quantity_plain_text_number_applied(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["SH-ARG-250", "12.5"]])

    assert_applied(filed)
    assert balance(stocked, "Products", "SH-ARG-250") == Decimal("12.5")


def test_quantity_too_many_decimals(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["SH-ARG-250", 1.5], ["SH-ARG-250", 1.2345]])

    assert problems_of(filed) == {("too_many_decimals", "Arrival", "B7")}


def test_quantity_too_large(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 1e15]])

    assert problems_of(filed) == {("too_large", "Arrival", "B6")}


def test_amount_too_large_at_quantity(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Quantity", "Unit cost"], [["COMB-CARB", 10_000_000, 90_000_000]])

    assert problems_of(filed) == {("too_large", "Arrival", "B6")}


# Units


def test_write_off_in_write_off_unit(stocked, tmp_path):
    arrive(stocked, tmp_path, [["SH-ARG-250", 12]])

    filed = submit_form(stocked, tmp_path, "Write-off", "Products",
                        ["SKU", "Quantity", "Unit"], [["SH-ARG-250", 3, "ml"]], date="2026-11-05")

    assert_applied(filed)
    rows = query(stocked, "SELECT base_quantity, quantity FROM stock_balance "
                          "WHERE storage = 'Products' AND sku = 'SH-ARG-250'")
    assert rows == [(Decimal("2997"), Decimal("11.988"))]


def test_sale_unit_or_empty_unit(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity", "Unit"],
                        [["SH-ARG-250", 2, "pcs"], ["SH-ARG-250", 2, "PCS"],
                         ["SH-ARG-250", 2, None]])

    assert_applied(filed)
    rows = query(stocked, "SELECT base_quantity FROM operation_lines ORDER BY line_no")
    assert rows == [(Decimal(500),)] * 3


def test_write_off_unit_case_ignored(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity", "Unit"],
                        [["GL-NIT-M", 150, "PCS"]])

    assert_applied(filed)
    assert balance(stocked, "Products", "GL-NIT-M") == Decimal("1.5")


def test_unknown_unit_at_unit_cell(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity", "Unit"],
                        [["SH-ARG-250", 1, "ml"], ["SH-ARG-250", 1, "l"]])

    assert problems_of(filed) == {("unknown_unit", "Arrival", "C7")}


# Prices, discounts, subtotals


def test_negative_cost_at_cell(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Quantity", "Unit cost"],
                        [["COMB-CARB", 1, 0], ["COMB-CARB", 1, -2]])

    assert problems_of(filed) == {("negative_price", "Arrival", "C7")}


def test_negative_sale_price_at_cell(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])

    filed = submit_form(stocked, tmp_path, "Sale", "Products", ["SKU", "Qty", "Price"],
                        [["COMB-CARB", 1, "-6.5"]], date="2026-11-05")

    assert problems_of(filed) == {("negative_price", "Sale", "C6")}


def test_price_too_many_decimals(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Quantity", "Unit cost"], [["COMB-CARB", 1, 2.12345]])

    assert problems_of(filed) == {("too_many_decimals", "Arrival", "C6")}


def test_discount_out_of_range(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])

    filed = submit_form(stocked, tmp_path, "Sale", "Products",
                        ["SKU", "Quantity", "Price", "Discount %"],
                        [["COMB-CARB", 1, 6.5, 150], ["COMB-CARB", 1, 6.5, -5],
                         ["COMB-CARB", 1, 6.5, "100.5"]], date="2026-11-05")

    assert problems_of(filed) == {("discount_out_of_range", "Sale", f"D{row}")
                                  for row in range(6, 9)}


def test_discount_bounds_accepted(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5]])

    filed = submit_form(stocked, tmp_path, "Sale", "Products",
                        ["SKU", "Quantity", "Price", "Discount"],
                        [["COMB-CARB", 1, 6.5, 0], ["COMB-CARB", 1, 6.5, 100],
                         ["COMB-CARB", 1, 6.5, 15]], date="2026-11-05")

    assert_applied(filed)
    rows = query(stocked, "SELECT subtotal FROM operation_lines WHERE operation_type = 'sale' "
                          "ORDER BY line_no")
    assert rows == [(Decimal("6.5"),), (Decimal(0),), (Decimal("5.525"),)]


def test_subtotal_within_one_cent(stocked, tmp_path):
    subtotals = [113.4, 113.41, 113.39, "113.40"]

    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Quantity", "Unit cost", "Subtotal"],
                        [["SH-ARG-250", 12, 9.45, subtotal] for subtotal in subtotals])

    assert_applied(filed)


def test_subtotal_mismatch_at_cell(stocked, tmp_path):
    subtotals = [113.42, 113.38, 11.34]

    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Quantity", "Unit cost", "Subtotal"],
                        [["SH-ARG-250", 12, 9.45, subtotal] for subtotal in subtotals])

    assert problems_of(filed) == {("subtotal_mismatch", "Arrival", f"D{row}")
                                  for row in range(6, 9)}
    assert all("113.40" in problem.message for problem in filed.result.problems)


def test_subtotal_with_discount(stocked, tmp_path):
    arrive(stocked, tmp_path, [["SH-ARG-250", 5]])

    filed = submit_form(stocked, tmp_path, "Sale", "Products",
                        ["SKU", "Quantity", "Price", "Discount %", "Subtotal"],
                        [["SH-ARG-250", 2, 15.9, 15, 27.03]], date="2026-11-05")

    assert_applied(filed)
    rows = query(stocked, "SELECT subtotal FROM operation_lines WHERE operation_type = 'sale'")
    assert rows == [(Decimal("27.03"),)]


def test_sale_price_defaults_to_catalogue(stocked, tmp_path):
    arrive(stocked, tmp_path, [["SH-ARG-250", 5]])

    filed = submit_form(stocked, tmp_path, "Sale", "Products", ["SKU", "Quantity", "Subtotal"],
                        [["SH-ARG-250", 2, 37.8]], date="2026-11-05")

    assert_applied(filed)
    rows = query(stocked, "SELECT price FROM operation_lines WHERE operation_type = 'sale'")
    assert rows == [(Decimal("18.9"),)]


def test_cost_keeps_shown_decimals(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products",
                        ["SKU", "Quantity", "Unit cost", "Subtotal"],
                        [["SH-ARG-250", 12, 9.45, 113.4], ["000731", 1, 0.29, 0.29]])

    assert_applied(filed)
    rows = query(stocked, "SELECT price, subtotal FROM operation_lines ORDER BY line_no")
    assert rows == [(Decimal("9.45"), Decimal("113.4")), (Decimal("0.29"), Decimal("0.29"))]


def test_formula_cached_value_read_as_shown(stocked, tmp_path):
    path = tmp_path / "formula.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Arrival")
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity", "Unit cost", "Subtotal"], [])
    for row, values in enumerate(rows):
        for col, value in enumerate(values):
            sheet.write(row, col, value)
    sheet.write_string(5, 0, "COMB-CARB")
    sheet.write_number(5, 1, 10)
    sheet.write_formula(5, 2, "=0.1+0.2", None, 0.30000000000000004)
    sheet.write_formula(5, 3, "=B6*C6", None, 3.0000000000000004)
    workbook.close()

    filed = submit(stocked, path)

    assert_applied(filed)
    rows = query(stocked, "SELECT price, subtotal FROM operation_lines")
    assert rows == [(Decimal("0.3"), Decimal("3"))]


# Dates


def test_invalid_date_at_value(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 1]], date="11/03/2026")

    assert problems_of(filed) == {("invalid_date", "Arrival", "B2")}


def test_impossible_dotted_date_invalid(stocked, tmp_path):
    filed = submit_form(stocked, tmp_path, "Arrival", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 1]], date="31.02.2026")

    assert problems_of(filed) == {("invalid_date", "Arrival", "B2")}


def test_date_forms_accepted(stocked, tmp_path):
    dates = [
        (dt.datetime(2026, 11, 3, 14, 30), "2026-11-03 14:30:00"),
        (dt.date(2026, 11, 4), "2026-11-04 00:00:00"),
        ("2026-11-05", "2026-11-05 00:00:00"),
        ("2026-11-06 14:30", "2026-11-06 14:30:00"),
        ("07.11.2026", "2026-11-07 00:00:00"),
        ("08.11.2026 14:30", "2026-11-08 14:30:00"),
    ]
    sheets = {f"Sheet{index}": form_rows("Arrival", "Products", ["SKU", "Quantity"],
                                         [["COMB-CARB", 1]], date=date)
              for index, (date, _) in enumerate(dates)}

    filed = submit(stocked, write_rows(tmp_path / "dates.xlsx", sheets))

    assert_applied(filed)
    stored = query(stocked, "SELECT occurred_at::VARCHAR FROM operations ORDER BY operation_id")
    assert stored == [(text,) for _, text in dates]


def test_missing_date_defaults_to_processing_time(stocked, tmp_path):
    rows = [["Operation", "Arrival"], ["Storage", "Products"], [], ["SKU", "Quantity"],
            ["COMB-CARB", 1]]

    filed = submit(stocked, write_rows(tmp_path / "a.xlsx", {"Arrival": rows}))

    assert_applied(filed)
    assert filed.result.operations[0].occurred_at == filed.result.processed_at


# Stock never negative


def test_insufficient_stock_states_requested_available_gap(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 10]])

    filed = submit_form(stocked, tmp_path, "Sale", "Products", ["SKU", "Quantity"],
                        [["SH-ARG-250", 0.5], ["COMB-CARB", 25]], date="2026-11-05")

    assert ("insufficient_stock", "Sale", "B7") in problems_of(filed)
    problem = [p for p in filed.result.problems if p.cell == "B7"][0]
    assert {"25", "10", "15"} <= numbers_in(problem.message)
    assert balance(stocked, "Products", "COMB-CARB") == 10


def test_back_dated_sale_breaks_later_balance(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 10]], date="2026-11-02 10:00")
    later = submit_form(stocked, tmp_path, "Sale", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 8]], sheet="Later", date="2026-11-05 12:00")
    assert_applied(later)

    filed = submit_form(stocked, tmp_path, "Sale", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 5]], date="2026-11-03 12:00")

    assert problems_of(filed) == {("insufficient_stock", "Sale", "B6")}
    message = find_problem(filed.result.problems, "insufficient_stock").message
    assert {"5", "2", "3"} <= numbers_in(message)
    assert balance(stocked, "Products", "COMB-CARB") == 2


def test_insufficient_stock_counts_only_its_line(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 10]], date="2026-11-02 10:00")
    existing = submit_form(stocked, tmp_path, "Sale", "Products", ["SKU", "Quantity"],
                           [["COMB-CARB", 4]], sheet="Existing", date="2026-11-04 12:00")
    assert_applied(existing)
    sheets = {
        "Early": form_rows("Sale", "Products", ["SKU", "Quantity"], [["COMB-CARB", 5]],
                           date="2026-11-03 12:00"),
        "Late": form_rows("Sale", "Products", ["SKU", "Quantity"], [["COMB-CARB", 5]],
                          date="2026-11-05 12:00"),
    }

    filed = submit(stocked, write_rows(tmp_path / "two-sales.xlsx", sheets))

    assert problems_of(filed) == {("insufficient_stock", "Late", "B6")}
    message = find_problem(filed.result.problems, "insufficient_stock").message
    assert {"5", "1", "4"} <= numbers_in(message)


def test_write_off_beyond_stock_in_write_off_units(stocked, tmp_path):
    arrive(stocked, tmp_path, [["SH-ARG-250", 1]])

    filed = submit_form(stocked, tmp_path, "Write-off", "Products",
                        ["SKU", "Quantity", "Unit"], [["SH-ARG-250", 300, "ml"]], date="2026-11-05")

    assert problems_of(filed) == {("insufficient_stock", "Write-off", "B6")}
    assert {"300", "250", "50"} <= numbers_in(filed.result.problems[0].message)


def test_relocation_from_empty_storage(stocked, tmp_path):
    rows = relocation_rows("Products", "Branch 2 shelf", [["COMB-CARB", 1]])

    filed = submit(stocked, write_rows(tmp_path / "r.xlsx", {"Relocation": rows}))

    assert problems_of(filed) == {("insufficient_stock", "Relocation", "B7")}


def test_arrival_and_sale_in_one_batch(stocked, tmp_path):
    arrival = form_rows("Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", 3]],
                        date="2026-11-02")
    sale = form_rows("Sale", "Products", ["SKU", "Quantity"], [["COMB-CARB", 2]],
                     date="2026-11-03")

    filed = submit(stocked, write_rows(tmp_path / "b.xlsx", {"In": arrival, "Out": sale}))

    assert_applied(filed)
    assert balance(stocked, "Products", "COMB-CARB") == 1


def test_negative_stock_allowed_by_setting(stocked, tmp_path):
    config = stocked.root / "batchstock.toml"
    config.write_text("[ledger]\nallow_negative_stock = true\n", encoding="utf-8")
    workspace = open_workspace(stocked.root)

    filed = submit_form(workspace, tmp_path, "Sale", "Products", ["SKU", "Quantity"],
                        [["COMB-CARB", 4]])

    assert_applied(filed)
    assert balance(workspace, "Products", "COMB-CARB") == -4


# Whole batches


def test_all_problems_found_in_one_run(stocked, tmp_path):
    first = form_rows("Arrival", "Attic", ["SKU", "Quantity", "Unit cost"],
                      [["SH-ARG-205", 1, 1], ["COMB-CARB", "12,5", -1]], date="yesterday")
    second = form_rows("Sale", "Consumables", ["SKU", "Quantity", "Unit"],
                       [["COMB-CARB", 0, "kg"]])

    filed = submit(stocked, write_rows(tmp_path / "b.xlsx", {"One": first, "Two": second}))

    assert problems_of(filed) == {
        ("invalid_date", "One", "B2"), ("unknown_storage", "One", "B3"),
        ("unknown_sku", "One", "A6"), ("not_a_number", "One", "B7"),
        ("negative_price", "One", "C7"), ("sale_storage_type", "Two", "B3"),
        ("not_positive", "Two", "B6"), ("unknown_unit", "Two", "C6"),
    }


def test_batch_with_one_problem_changes_nothing(stocked, tmp_path):
    good = form_rows("Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", 3]])
    bad = form_rows("Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", -3]])

    filed = submit(stocked, write_rows(tmp_path / "b.xlsx", {"Good": good, "Bad": bad}))

    assert problems_of(filed) == {("not_positive", "Bad", "B6")}
    assert query(stocked, "SELECT count(*) FROM operations") == [(0,)]
    assert query(stocked, "SELECT count(*) FROM movements") == [(0,)]
