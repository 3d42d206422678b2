"""Write the form workbooks that users fill in, one blank operation per workbook.

The forms sit before the pipeline: users fill them in and drop them in the inbox, which
reads them back through `workbook` and `sheets`. So the layout written here is the form
layout that the reader expects. Label/value rows fill columns A and B from A1 and end with
the `Operation id` and `Action` rows. One blank row follows, then the header row of the
lines table with `MAX_LINES_PER_OPERATION` prepared rows below it.

`write_operation_form` and `add_operation_forms` write the same layout filled in with a
stored operation, with a `Version` row after `Operation id`, so that a user can change the
operation and drop the form back.

Drop-down lists take their values from a hidden helper sheet named `Lists`, because Excel
limits an inline list to 255 characters. The form reader must skip that sheet.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from batchstock.core import (
    MAX_LINES_PER_OPERATION,
    OPERATION_TYPES,
    STORAGE_TYPES,
    FormLine,
    OperationForm,
    column_letter,
)

LISTS_SHEET = "Lists"
DATE_FORMAT = "yyyy-mm-dd hh:mm"
DEFAULT_STORAGES: list[tuple[str, str]] = [("Products", "sale"), ("Consumables", "consumables")]

TYPE_TITLES: dict[str, str] = {
    "arrival": "Arrival",
    "sale": "Sale",
    "relocation": "Relocation",
    "write-off": "Write-off",
}

# Labels between `Date` and `Operation id`, per operation type.
HEADER_LABELS: dict[str, tuple[str, ...]] = {
    "arrival": ("Storage", "Supplier", "Document no.", "Comment"),
    "sale": ("Storage", "Client", "Staff member", "Document no.", "Comment"),
    "relocation": ("From storage", "To storage", "Comment"),
    "write-off": ("Storage", "Reason", "Comment"),
}

LINE_COLUMNS: dict[str, tuple[str, ...]] = {
    "arrival": ("SKU", "Product", "Quantity", "Unit", "Unit cost", "Discount %", "Subtotal"),
    "sale": ("SKU", "Product", "Quantity", "Unit", "Price", "Discount %", "Subtotal"),
    "relocation": ("SKU", "Product", "Quantity", "Unit"),
    "write-off": ("SKU", "Product", "Quantity", "Unit", "Comment"),
}

_COLUMN_WIDTHS = {"SKU": 16, "Product": 40, "Comment": 40}
_DEFAULT_COLUMN_WIDTH = 12
_TEXT_COLUMNS = {"SKU", "Product", "Unit", "Comment"}
_MONEY_COLUMNS = {"Unit cost", "Price", "Subtotal"}

# Excel shows an input message when the cell is selected. Excel caps the title at 32
# characters and the message at 255, and xlsxwriter 3.3 skips a longer validation with a
# warning.
_STORAGE_MESSAGES = {
    ("arrival", "Storage"): "The storage the stock enters.",
    ("sale", "Storage"): "The storage the stock leaves. It must be of type sale.",
    ("write-off", "Storage"): "The storage the stock leaves.",
    ("relocation", "From storage"): "The storage the stock leaves.",
    ("relocation", "To storage"): (
        "The storage the stock enters. It must differ from From storage."
    ),
}
_STORAGE_NOT_LISTED = (
    "This storage was not in the list when the form was written. "
    "batchstock checks the name against the ledger when it processes the file."
)


@dataclass(frozen=True)
class _ListRanges:
    """References to the drop-down sources on the `Lists` sheet, None where a list is empty."""

    skus: str | None
    storages: str | None
    units: str | None


@dataclass(frozen=True)
class _Formats:
    label: Format
    header: Format
    text: Format
    date: Format
    money: Format


def write_form_template(
    path: Path,
    operation_type: str,
    storages: list[tuple[str, str]],
    products: list[tuple[str, str, str, str]],
) -> None:
    """Write an empty form for one operation of `operation_type` to the xlsx file `path`.

    `storages` are (name, type) pairs and `products` are (sku, name, sale unit, write-off
    unit) tuples. They fill the drop-downs of the storage cells, the SKU column and the
    Unit column. A sale form lists only storages of type `sale`. The file is written under
    a temporary name in the same folder and then renamed over `path`, so a reader never
    sees a half-written form.

    NOTE: the drop-down sources sit on a hidden worksheet named `Lists`. The form reader
    must skip that sheet, because it contains no operation.

    Raises ValueError for an invalid operation type or storage type.
    """
    _write_template(path, operation_type, storages, products, created=None)


def write_blank_templates(folder: Path) -> list[Path]:
    """Write `arrival.xlsx`, `sale.xlsx`, `relocation.xlsx` and `write-off.xlsx` to `folder`.

    The forms list only the two storages a new ledger starts with, `Products` and
    `Consumables`, and no products. Their creation date is fixed, so that writing them
    again gives the same bytes and the committed copies change only when the layout does.
    Returns the paths in that order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    created = dt.datetime(2026, 1, 1)
    paths = []
    for operation_type in OPERATION_TYPES:
        path = folder / f"{operation_type}.xlsx"
        _write_template(path, operation_type, DEFAULT_STORAGES, [], created=created)
        paths.append(path)
    return paths


def _write_template(
    path: Path,
    operation_type: str,
    storages: list[tuple[str, str]],
    products: list[tuple[str, str, str, str]],
    created: dt.datetime | None,
) -> None:
    if operation_type not in OPERATION_TYPES:
        raise ValueError(
            f"invalid operation type {operation_type!r}, "
            f"expected one of {', '.join(OPERATION_TYPES)}"
        )
    storage_names = _form_storage_names(operation_type, storages)

    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        workbook = xlsxwriter.Workbook(str(temporary))
        if created is not None:
            workbook.set_properties({"created": created})
        _fill_workbook(workbook, operation_type, storage_names, products)
        workbook.close()
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _form_storage_names(operation_type: str, storages: list[tuple[str, str]]) -> list[str]:
    """Return the storage names the form's drop-downs offer, in the given order."""
    for name, storage_type in storages:
        if storage_type not in STORAGE_TYPES:
            raise ValueError(
                f"storage {name!r} has invalid type {storage_type!r}, "
                f"expected one of {', '.join(STORAGE_TYPES)}"
            )
    return [
        name
        for name, storage_type in storages
        if operation_type != "sale" or storage_type == "sale"
    ]


def _fill_workbook(
    workbook: Workbook,
    operation_type: str,
    storage_names: list[str],
    products: list[tuple[str, str, str, str]],
) -> None:
    # The form sheet is added first, so it is the active sheet when the file opens.
    form = workbook.add_worksheet(TYPE_TITLES[operation_type])
    lists_sheet = workbook.add_worksheet(LISTS_SHEET)
    lists_sheet.hide()
    lists = _write_lists_sheet(lists_sheet, storage_names, products)

    formats = _add_formats(workbook)
    header_row = _write_header_block(form, formats, operation_type, lists)
    _write_lines_table(form, formats, operation_type, header_row, lists)


def _add_formats(workbook: Workbook) -> _Formats:
    return _Formats(
        label=workbook.add_format({"bold": True}),
        header=workbook.add_format({"bold": True, "bottom": 1, "text_wrap": True}),
        text=workbook.add_format({"num_format": "@"}),
        date=workbook.add_format({"num_format": DATE_FORMAT, "align": "left"}),
        money=workbook.add_format({"num_format": "0.00"}),
    )


def _write_lists_sheet(
    sheet: Worksheet, storage_names: list[str], products: list[tuple[str, str, str, str]]
) -> _ListRanges:
    """Write the drop-down sources: SKU (A), product (B), storage (C) and unit (D)."""
    skus = list(dict.fromkeys(product[0] for product in products))
    names = [product[1] for product in products]
    units = sorted({unit for product in products for unit in product[2:4] if unit})

    sku_range = _write_list_column(sheet, 0, "SKU", skus)
    _write_list_column(sheet, 1, "Product", names)
    storage_range = _write_list_column(sheet, 2, "Storage", storage_names)
    unit_range = _write_list_column(sheet, 3, "Unit", units)
    sheet.set_column(0, 3, 24)
    return _ListRanges(skus=sku_range, storages=storage_range, units=unit_range)


def _write_list_column(sheet: Worksheet, col: int, title: str, values: list[str]) -> str | None:
    """Write `title` and `values` down column `col` and return their range, or None if empty."""
    sheet.write_string(0, col, title)
    # write_string keeps every value as text, so a SKU such as 000731 keeps its zeros and a
    # name that starts with "=" does not become a formula.
    for row, value in enumerate(values, start=1):
        sheet.write_string(row, col, value)
    if not values:
        return None
    letter = column_letter(col + 1)
    return f"={LISTS_SHEET}!${letter}$2:${letter}${len(values) + 1}"


def _write_header_block(
    sheet: Worksheet, formats: _Formats, operation_type: str, lists: _ListRanges,
    labels: tuple[str, ...] | None = None,
) -> int:
    """Write the label/value rows and return the 0-based row of the lines table header.

    `labels` defaults to the blank form's labels for `operation_type`.
    """
    if labels is None:
        labels = ("Operation", "Date", *HEADER_LABELS[operation_type], "Operation id", "Action")
    for row, label in enumerate(labels):
        sheet.write_string(row, 0, label, formats.label)
        if label == "Operation":
            sheet.write_string(row, 1, TYPE_TITLES[operation_type], formats.text)
        elif label == "Date":
            sheet.write_blank(row, 1, None, formats.date)
        else:
            sheet.write_blank(row, 1, None, formats.text)

        options = _header_validation(operation_type, label, lists)
        if options is not None:
            sheet.data_validation(row, 1, row, 1, options)
    return len(labels) + 1


def _header_validation(
    operation_type: str, label: str, lists: _ListRanges
) -> dict[str, Any] | None:
    """Return the xlsxwriter data validation options for the value cell of `label`, if any."""
    if label == "Date":
        return {
            "validate": "date",
            # 1900-01-01 is Excel's first date, so any date passes and text does not.
            "criteria": ">=",
            "value": dt.date(1900, 1, 1),
            "input_title": "Date",
            "input_message": (
                "Date and time of the operation, as yyyy-mm-dd hh:mm. "
                "Leave empty to use the time the file is processed."
            ),
            "error_title": "Invalid date",
            "error_message": "Enter a date and time, for example 2026-11-02 10:00.",
        }
    if (operation_type, label) in _STORAGE_MESSAGES:
        return _list_validation(
            lists.storages, label, _STORAGE_MESSAGES[(operation_type, label)], _STORAGE_NOT_LISTED
        )
    if label == "Operation id":
        return {
            "validate": "any",
            "input_title": "Operation id",
            "input_message": (
                "Leave empty for a new operation. "
                "Enter the id of an existing operation to edit or cancel it."
            ),
        }
    if label == "Version":
        return {
            "validate": "any",
            "input_title": "Version",
            "input_message": (
                "The version this form was made from. Keep it: batchstock rejects the edit "
                "when the operation was changed since."
            ),
        }
    if label == "Action":
        return {
            "validate": "list",
            "source": ["Edit", "Cancel"],
            "show_error": False,
            "input_title": "Action",
            "input_message": (
                "Leave empty to create the operation, or to edit the one named in "
                "Operation id. Cancel cancels that operation."
            ),
        }
    return None


def _list_validation(
    source: str | None, title: str, message: str, not_listed: str | None
) -> dict[str, Any]:
    """Return a drop-down over `source`, or only the input message when the list is empty.

    With `not_listed` set, a value outside the list gets a warning that the user may
    accept. Without it, any value is accepted silently.
    """
    options: dict[str, Any] = {"input_title": title, "input_message": message}
    if source is None:
        return {"validate": "any", **options}

    options.update({"validate": "list", "source": source})
    if not_listed is None:
        options["show_error"] = False
    else:
        options["error_type"] = "warning"
        options["error_title"] = "Not in the list"
        options["error_message"] = not_listed
    return options


def _write_lines_table(
    sheet: Worksheet, formats: _Formats, operation_type: str, header_row: int, lists: _ListRanges,
    columns: tuple[str, ...] | None = None,
) -> None:
    """Write the header row at 0-based `header_row` and prepare the line rows below it.

    `columns` defaults to the blank form's columns for `operation_type`.
    """
    first_line = header_row + 1
    last_line = header_row + MAX_LINES_PER_OPERATION
    for col, column in enumerate(columns or LINE_COLUMNS[operation_type]):
        sheet.write_string(header_row, col, column, formats.header)
        column_format = None
        if column in _TEXT_COLUMNS:
            column_format = formats.text
        elif column in _MONEY_COLUMNS:
            column_format = formats.money
        width = _COLUMN_WIDTHS.get(column, _DEFAULT_COLUMN_WIDTH)
        sheet.set_column(col, col, width, column_format)

        options = _line_validation(operation_type, column, lists)
        if options is not None:
            sheet.data_validation(first_line, col, last_line, col, options)
    sheet.freeze_panes(first_line, 0)


def _line_validation(
    operation_type: str, column: str, lists: _ListRanges
) -> dict[str, Any] | None:
    """Return the xlsxwriter data validation options for the line cells of `column`, if any."""
    if column == "SKU":
        message = "The product's SKU, barcode or exact name. Pick a SKU or type any of them."
        return _list_validation(lists.skus, "Product", message, not_listed=None)
    if column == "Unit":
        message = "Leave empty for the product's sale unit, or enter its write-off unit (e.g. ml)."
        return _list_validation(lists.units, "Unit", message, not_listed=None)
    if column == "Quantity":
        return _decimal_validation(
            ">", 0, "Quantity", "A number greater than 0, in the unit of the Unit column."
        )
    if column == "Unit cost":
        message = "Cost of one unit before discount. Leave empty to use the product's cost price."
        return _decimal_validation(">=", 0, "Unit cost", message)
    if column == "Price":
        message = "Price of one unit before discount. Leave empty to use the product's sale price."
        return _decimal_validation(">=", 0, "Price", message)
    if column == "Discount %":
        message = "Discount in percent, from 0 to 100. Leave empty for none."
        return _decimal_validation("between", (0, 100), "Discount %", message)
    if column == "Subtotal":
        price = "unit cost" if operation_type == "arrival" else "price"
        message = (
            f"Optional. When given, it must equal quantity × {price} × "
            "(1 − discount % / 100), to the cent."
        )
        return _decimal_validation(">=", 0, "Subtotal", message)
    return None


def _decimal_validation(
    criteria: str, bounds: float | tuple[float, float], title: str, message: str
) -> dict[str, Any]:
    """Return options that accept a number within `criteria` and `bounds`."""
    options: dict[str, Any] = {
        "validate": "decimal",
        "criteria": criteria,
        "input_title": title,
        "input_message": message,
        "error_title": f"Invalid {title.lower()}",
    }
    if isinstance(bounds, tuple):
        options["minimum"], options["maximum"] = bounds
        options["error_message"] = f"Enter a number from {bounds[0]} to {bounds[1]}."
    elif criteria == ">":
        options["value"] = bounds
        options["error_message"] = f"Enter a number greater than {bounds}."
    else:
        options["value"] = bounds
        options["error_message"] = f"Enter a number of {bounds} or more."
    return options


def write_operation_form(
    path: Path,
    form: OperationForm,
    storages: list[tuple[str, str]],
    products: list[tuple[str, str, str, str]],
) -> None:
    """Write the ready-to-edit form of one stored operation to the xlsx file `path`.

    The sheet is the blank form of the operation's type, filled in, with `Operation id`
    and `Version` set and drop-downs as `write_form_template` makes them. A user changes
    it and drops it in the inbox to edit the operation, or sets Action to Cancel. The
    file is written under a temporary name and renamed, like the templates.
    """
    storage_names = _form_storage_names(form.type, storages)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        workbook = xlsxwriter.Workbook(str(temporary))
        sheet = workbook.add_worksheet(form.operation_id)
        lists_sheet = workbook.add_worksheet(LISTS_SHEET)
        lists_sheet.hide()
        lists = _write_lists_sheet(lists_sheet, storage_names, products)
        _write_filled_form(sheet, _add_formats(workbook), form, lists)
        workbook.close()
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def add_operation_forms(workbook: Workbook, named_forms: list[tuple[str, OperationForm]]) -> None:
    """Add a filled-in form sheet per (sheet name, form) to an open workbook.

    The result workbook uses this; its forms have input messages but no drop-down lists,
    because the result writer does not read the catalogue.
    """
    if not named_forms:
        return
    formats = _add_formats(workbook)
    no_lists = _ListRanges(skus=None, storages=None, units=None)
    for name, form in named_forms:
        _write_filled_form(workbook.add_worksheet(name), formats, form, no_lists)


def _write_filled_form(
    sheet: Worksheet, formats: _Formats, form: OperationForm, lists: _ListRanges
) -> None:
    labels = ("Operation", "Date", *form.fields, "Operation id", "Version", "Action")
    header_row = _write_header_block(sheet, formats, form.type, lists, labels)
    for row, label in enumerate(labels):
        value = form.fields.get(label)
        if label == "Date":
            sheet.write_datetime(row, 1, form.occurred_at, formats.date)
        elif label == "Operation id":
            sheet.write_string(row, 1, form.operation_id, formats.text)
        elif label == "Version":
            sheet.write_number(row, 1, form.version)
        elif value is not None:
            sheet.write_string(row, 1, value, formats.text)

    columns = LINE_COLUMNS[form.type]
    if "Comment" not in columns and any(line.comment for line in form.lines):
        columns = (*columns, "Comment")
    _write_lines_table(sheet, formats, form.type, header_row, lists, columns)
    for row, line in enumerate(form.lines, start=header_row + 1):
        for col, column in enumerate(columns):
            _write_line_cell(sheet, formats, row, col, column, line)


def _write_line_cell(
    sheet: Worksheet, formats: _Formats, row: int, col: int, column: str, line: FormLine
) -> None:
    texts = {"SKU": line.sku, "Product": line.product, "Unit": line.unit,
             "Comment": line.comment}
    numbers = {"Quantity": line.quantity, "Unit cost": line.price, "Price": line.price,
               "Discount %": line.discount or None}
    if texts.get(column) is not None:
        sheet.write_string(row, col, texts[column], formats.text)
    elif numbers.get(column) is not None:
        number_format = formats.money if column in _MONEY_COLUMNS else None
        sheet.write_number(row, col, float(numbers[column]), number_format)
    # Subtotal stays empty: a stale subtotal would fail the check after a quantity change.
