"""Tests for the form templates: layout, drop-downs, the hidden `Lists` sheet, reading back."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
import python_calamine
from openpyxl.utils.cell import range_boundaries
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from batchstock.forms import write_blank_templates, write_form_template
from batchstock.workbook import read_workbook

STORAGES = [
    ("Products", "sale"),
    ("Consumables", "consumables"),
    ("Branch 2 shelf", "sale"),
]
PRODUCTS = [
    ("000731", "Salon gift card sleeve", "pcs", "pcs"),
    ("OX-6-1000", "Oxidizing emulsion 6% 1 l", "pcs", "ml"),
    ("DYE-6.0", "Permanent hair dye 6.0 dark blonde 60 g", "pcs", "g"),
]
SKUS = ["000731", "OX-6-1000", "DYE-6.0"]

# The layout is spelled out here, not imported, so a change to the module shows up as a
# failing test.
LABELS = {
    "arrival": ["Storage", "Supplier", "Document no.", "Comment"],
    "sale": ["Storage", "Client", "Staff member", "Document no.", "Comment"],
    "relocation": ["From storage", "To storage", "Comment"],
    "write-off": ["Storage", "Reason", "Comment"],
}
COLUMNS = {
    "arrival": ["SKU", "Product", "Quantity", "Unit", "Unit cost", "Discount %", "Subtotal"],
    "sale": ["SKU", "Product", "Quantity", "Unit", "Price", "Discount %", "Subtotal"],
    "relocation": ["SKU", "Product", "Quantity", "Unit"],
    "write-off": ["SKU", "Product", "Quantity", "Unit", "Comment"],
}
TITLES = {
    "arrival": "Arrival",
    "sale": "Sale",
    "relocation": "Relocation",
    "write-off": "Write-off",
}
STORAGE_LABELS = {
    "arrival": ["Storage"],
    "sale": ["Storage"],
    "relocation": ["From storage", "To storage"],
    "write-off": ["Storage"],
}
OPERATION_TYPES = list(TITLES)


def all_labels(operation_type: str) -> list[str]:
    return ["Operation", "Date", *LABELS[operation_type], "Operation id", "Action"]


def header_row(operation_type: str) -> int:
    """Return the 1-based row of the lines table header: after the labels and a blank row."""
    return len(all_labels(operation_type)) + 2


def write_and_open(tmp_path: Path, operation_type: str) -> openpyxl.Workbook:
    path = tmp_path / f"{operation_type}.xlsx"
    write_form_template(path, operation_type, STORAGES, PRODUCTS)
    return openpyxl.load_workbook(path)


def validation_at(sheet: Worksheet, cell: str) -> DataValidation:
    found = [dv for dv in sheet.data_validations.dataValidation if cell in dv.sqref]
    assert len(found) == 1, f"{len(found)} data validations cover {cell}"
    return found[0]


def list_values(workbook: openpyxl.Workbook, reference: str) -> list[str]:
    """Return the values of a drop-down source such as `Lists!$C$2:$C$4`."""
    sheet_name, cells = reference.lstrip("=").split("!")
    min_col, min_row, max_col, max_row = range_boundaries(cells.replace("$", ""))
    sheet = workbook[sheet_name]
    rows = sheet.iter_rows(min_row, max_row, min_col, max_col, values_only=True)
    return [row[0] for row in rows]


def label_row(operation_type: str, label: str) -> int:
    return all_labels(operation_type).index(label) + 1


@pytest.mark.parametrize("operation_type", OPERATION_TYPES)
def test_form_labels_and_values(tmp_path: Path, operation_type: str) -> None:
    workbook = write_and_open(tmp_path, operation_type)
    sheet = workbook.worksheets[0]
    labels = all_labels(operation_type)

    assert sheet.title == TITLES[operation_type]
    assert [sheet.cell(row, 1).value for row in range(1, len(labels) + 1)] == labels
    assert all(sheet.cell(row, 1).font.b for row in range(1, len(labels) + 1))
    assert sheet["B1"].value == TITLES[operation_type]
    values = [sheet.cell(row, 2).value for row in range(2, len(labels) + 1)]
    assert values == [None] * (len(labels) - 1)
    assert sheet.cell(len(labels) + 1, 1).value is None


@pytest.mark.parametrize("operation_type", OPERATION_TYPES)
def test_form_lines_header(tmp_path: Path, operation_type: str) -> None:
    workbook = write_and_open(tmp_path, operation_type)
    sheet = workbook.worksheets[0]
    row = header_row(operation_type)
    columns = COLUMNS[operation_type]

    assert [sheet.cell(row, col).value for col in range(1, len(columns) + 1)] == columns
    assert sheet.cell(row, len(columns) + 1).value is None
    assert all(sheet.cell(row, col).font.b for col in range(1, len(columns) + 1))
    assert sheet.freeze_panes == f"A{row + 1}"
    assert sheet.column_dimensions["B"].width >= 30


@pytest.mark.parametrize("operation_type", OPERATION_TYPES)
def test_form_storage_dropdown(tmp_path: Path, operation_type: str) -> None:
    workbook = write_and_open(tmp_path, operation_type)
    sheet = workbook.worksheets[0]

    for label in STORAGE_LABELS[operation_type]:
        validation = validation_at(sheet, f"B{label_row(operation_type, label)}")
        assert validation.type == "list"
        assert validation.formula1.startswith("Lists!")
        expected = [name for name, _ in STORAGES]
        if operation_type == "sale":
            expected = ["Products", "Branch 2 shelf"]
        assert list_values(workbook, validation.formula1) == expected


def test_sale_form_lists_only_sale_storages(tmp_path: Path) -> None:
    workbook = write_and_open(tmp_path, "sale")
    lists = workbook["Lists"]
    values = {cell.value for row in lists.iter_rows() for cell in row}

    assert "Products" in values
    assert "Branch 2 shelf" in values
    assert "Consumables" not in values


@pytest.mark.parametrize("operation_type", OPERATION_TYPES)
def test_lists_sheet_hidden_with_skus(tmp_path: Path, operation_type: str) -> None:
    workbook = write_and_open(tmp_path, operation_type)
    sheet = workbook.worksheets[0]
    first_line = header_row(operation_type) + 1
    last_line = header_row(operation_type) + 500

    assert workbook.sheetnames == [TITLES[operation_type], "Lists"]
    assert workbook["Lists"].sheet_state == "hidden"
    assert workbook.active.title == TITLES[operation_type]

    validation = validation_at(sheet, f"A{first_line}")
    assert f"A{last_line}" in validation.sqref
    assert f"A{last_line + 1}" not in validation.sqref
    assert validation.type == "list"
    # The SKU may also be a barcode or a product name, so the list must not reject others.
    assert not validation.showErrorMessage
    assert list_values(workbook, validation.formula1) == SKUS


@pytest.mark.parametrize("operation_type", OPERATION_TYPES)
def test_unit_dropdown_allows_any_unit(tmp_path: Path, operation_type: str) -> None:
    workbook = write_and_open(tmp_path, operation_type)
    sheet = workbook.worksheets[0]

    validation = validation_at(sheet, f"D{header_row(operation_type) + 1}")
    assert validation.type == "list"
    assert not validation.showErrorMessage
    assert sorted(list_values(workbook, validation.formula1)) == ["g", "ml", "pcs"]


@pytest.mark.parametrize("operation_type", OPERATION_TYPES)
def test_date_cell_format_and_validation(tmp_path: Path, operation_type: str) -> None:
    workbook = write_and_open(tmp_path, operation_type)
    sheet = workbook.worksheets[0]

    assert sheet["B2"].number_format == "yyyy-mm-dd hh:mm"
    validation = validation_at(sheet, "B2")
    assert validation.type == "date"
    assert validation.promptTitle == "Date"


@pytest.mark.parametrize(
    ("operation_type", "column", "kind", "operator", "bounds"),
    [
        ("arrival", "C", "decimal", "greaterThan", ("0", None)),
        ("arrival", "E", "decimal", "greaterThanOrEqual", ("0", None)),
        ("arrival", "F", "decimal", None, ("0", "100")),
        ("arrival", "G", "decimal", "greaterThanOrEqual", ("0", None)),
        ("sale", "E", "decimal", "greaterThanOrEqual", ("0", None)),
        ("sale", "F", "decimal", None, ("0", "100")),
        ("relocation", "C", "decimal", "greaterThan", ("0", None)),
        ("write-off", "C", "decimal", "greaterThan", ("0", None)),
    ],
)
def test_number_columns_validated(
    tmp_path: Path,
    operation_type: str,
    column: str,
    kind: str,
    operator: str | None,
    bounds: tuple[str, str | None],
) -> None:
    workbook = write_and_open(tmp_path, operation_type)
    sheet = workbook.worksheets[0]
    last_line = header_row(operation_type) + 500

    validation = validation_at(sheet, f"{column}{last_line}")
    assert validation.type == kind
    assert validation.operator == operator
    assert (validation.formula1, validation.formula2) == bounds
    assert validation.prompt


def test_sku_with_leading_zeros_stays_text(tmp_path: Path) -> None:
    workbook = write_and_open(tmp_path, "arrival")

    assert workbook["Lists"]["A2"].value == "000731"
    assert workbook["Lists"]["A2"].data_type == "s"
    # The SKU column is formatted as text, so a typed 000731 keeps its zeros too.
    assert workbook["Arrival"].column_dimensions["A"].number_format == "@"


def test_storage_name_with_equals_sign_stays_text(tmp_path: Path) -> None:
    path = tmp_path / "arrival.xlsx"
    write_form_template(path, "arrival", [("=Backroom", "sale")], [])
    workbook = openpyxl.load_workbook(path)

    assert workbook["Lists"]["C2"].value == "=Backroom"
    assert workbook["Lists"]["C2"].data_type == "s"


def test_form_without_products(tmp_path: Path) -> None:
    path = tmp_path / "write-off.xlsx"
    write_form_template(path, "write-off", [], [])
    workbook = openpyxl.load_workbook(path)
    sheet = workbook["Write-off"]

    assert validation_at(sheet, "B3").type is None
    assert validation_at(sheet, "B3").prompt
    assert validation_at(sheet, "A10").type is None
    assert workbook["Lists"]["A2"].value is None


@pytest.mark.parametrize("operation_type", OPERATION_TYPES)
def test_calamine_reads_form(tmp_path: Path, operation_type: str) -> None:
    path = tmp_path / f"{operation_type}.xlsx"
    write_form_template(path, operation_type, STORAGES, PRODUCTS)

    workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    assert workbook.sheet_names == [TITLES[operation_type], "Lists"]
    rows = workbook.get_sheet_by_name(TITLES[operation_type]).to_python(skip_empty_area=False)
    assert rows[0][:2] == ["Operation", TITLES[operation_type]]
    header = [value for value in rows[header_row(operation_type) - 1] if value != ""]
    assert header == COLUMNS[operation_type]

    grids = read_workbook(path)
    assert [(grid.name, grid.visible) for grid in grids] == [
        (TITLES[operation_type], True),
        ("Lists", False),
    ]


def test_blank_templates(tmp_path: Path) -> None:
    paths = write_blank_templates(tmp_path / "templates")

    names = ["arrival.xlsx", "sale.xlsx", "relocation.xlsx", "write-off.xlsx"]
    assert [path.name for path in paths] == names
    assert sorted(p.name for p in (tmp_path / "templates").iterdir()) == sorted(names)
    arrival = openpyxl.load_workbook(paths[0])
    assert list_values(arrival, validation_at(arrival["Arrival"], "B3").formula1) == [
        "Products",
        "Consumables",
    ]
    sale = openpyxl.load_workbook(paths[1])
    assert list_values(sale, validation_at(sale["Sale"], "B3").formula1) == ["Products"]


def test_blank_templates_same_bytes(tmp_path: Path) -> None:
    first = [path.read_bytes() for path in write_blank_templates(tmp_path / "a")]
    second = [path.read_bytes() for path in write_blank_templates(tmp_path / "b")]

    assert first == second


def test_rewrite_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "sale.xlsx"
    path.write_bytes(b"old content")
    write_form_template(path, "sale", STORAGES, PRODUCTS)

    assert [p.name for p in tmp_path.iterdir()] == ["sale.xlsx"]
    assert openpyxl.load_workbook(path).sheetnames == ["Sale", "Lists"]


def test_unknown_operation_type_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="return"):
        write_form_template(tmp_path / "return.xlsx", "return", STORAGES, PRODUCTS)

    assert list(tmp_path.iterdir()) == []


def test_unknown_storage_type_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="warehouse"):
        write_form_template(tmp_path / "arrival.xlsx", "arrival", [("Back", "warehouse")], [])

    assert list(tmp_path.iterdir()) == []
