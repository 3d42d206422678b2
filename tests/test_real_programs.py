"""Workbooks saved by real spreadsheet programs: LibreOffice Calc and Gnumeric.

Each test writes a CSV or an xlsx file inline, has the program convert it to xlsx the way a
user's "Save as" would, drops the result in the inbox, and checks what was applied. Both
programs turn `000731` into the number 731 and evaluate `=…` cells on CSV import, so these
files carry the quirks real exports have. A test is skipped only when its program is not
installed; `.ci/run` installs both from Debian's packages.
"""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

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

SALES_CSV = """\
Date,Document no.,Operation,Storage,Client,SKU,Product,Quantity,Price,Discount %,Subtotal
2026-11-04 16:46,R-00001,Sale,Products,,COMB-CARB,Carbon comb,1,6.50,0,6.50
2026-11-04 16:46,R-00001,Sale,Products,,000731,Salon gift card sleeve,2,1.00,15,1.70
2026-11-05 09:10,R-00002,Sale,Products,Maria Stone,SH-ARG-250,Argan repair shampoo 250 ml,1,18.90,10,17.01
"""

ARRIVAL_CSV = """\
Operation,Arrival
Date,2026-11-03 14:30
Storage,Products
Supplier,Beauty Wholesale Ltd

SKU,Product,Quantity,Unit cost,Subtotal
COMB-CARB,Carbon comb,10,=0.1+0.2,3
000731,Salon gift card sleeve,10,0.29,2.9
SH-ARG-250,Argan repair shampoo 250 ml,12,9.45,113.4
Total,,32,,119.3
"""

BROKEN_CSV = """\
Operation,Arrival
Storage,Products

SKU,Quantity
COMB-CARB,=1/0
"""

PROGRAMS = {
    "libreoffice": "soffice",
    "gnumeric": "ssconvert",
}


def convert_with_libreoffice(sources: list[Path], folder: Path) -> None:
    """Convert every source to xlsx in one LibreOffice run with a private profile, so that
    a LibreOffice started elsewhere does not block it."""
    profile = folder / "profile"
    command = [
        "soffice", f"-env:UserInstallation=file://{profile}", "--headless",
        "--convert-to", "xlsx", "--infilter=CSV:44,34,76,1", "--outdir", str(folder),
        *map(str, sources),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def convert_with_gnumeric(sources: list[Path], folder: Path) -> None:
    for source in sources:
        target = folder / f"{source.stem}.xlsx"
        subprocess.run(["ssconvert", str(source), str(target)], check=True,
                       capture_output=True, timeout=120)


CONVERTERS = {"libreoffice": convert_with_libreoffice, "gnumeric": convert_with_gnumeric}


@pytest.fixture(scope="module", params=sorted(PROGRAMS))
def converted(request, tmp_path_factory) -> dict[str, Path]:
    """The inline sources converted by one program: name → xlsx path."""
    program = request.param
    if shutil.which(PROGRAMS[program]) is None:
        pytest.skip(f"{PROGRAMS[program]} ({program}) is not installed; .ci/run installs it "
                    "with apt-get")
    sources_folder = tmp_path_factory.mktemp(f"{program}-sources")
    sources = []
    for name, text in (("sales", SALES_CSV), ("arrival", ARRIVAL_CSV), ("broken", BROKEN_CSV)):
        path = sources_folder / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        sources.append(path)
    form = form_rows("Arrival", "Products", ["SKU", "Quantity", "Unit cost"],
                     [["000731", 5, 0.29], ["DYE-6.0", 2, 4.1]])
    sources.append(write_rows(sources_folder / "form.xlsx", {"Arrival": form}))

    output = tmp_path_factory.mktemp(f"{program}-output")
    CONVERTERS[program](sources, output)
    converted = {source.stem: output / f"{source.stem}.xlsx" for source in sources}
    for path in converted.values():
        assert path.exists(), f"{program} wrote no {path.name}"
    return converted


def test_table_export_applies(stocked, converted, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5], ["000731", 5], ["SH-ARG-250", 5]])

    filed = submit(stocked, converted["sales"])

    assert filed.result.status == "applied", filed.result.problems
    assert [op.line_count for op in filed.result.operations] == [2, 1]
    assert balance(stocked, "Products", "000731") == 3
    sold = query(stocked, "SELECT sku, quantity, subtotal FROM operation_lines "
                          "WHERE operation_type = 'sale' ORDER BY sku")
    assert sold == [("000731", Decimal(2), Decimal("1.7")),
                    ("COMB-CARB", Decimal(1), Decimal("6.5")),
                    ("SH-ARG-250", Decimal(1), Decimal("17.01"))]
    occurred = query(stocked, "SELECT occurred_at::VARCHAR FROM operations "
                              "WHERE type = 'sale' ORDER BY 1")
    assert occurred == [("2026-11-04 16:46:00",), ("2026-11-05 09:10:00",)]


def test_numeric_sku_noted(stocked, converted, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 5], ["000731", 5], ["SH-ARG-250", 5]])

    filed = submit(stocked, converted["sales"])

    assert filed.result.status == "applied", filed.result.problems

    notes = [(note.cell, note.message) for note in filed.result.notes]
    assert len(notes) == 1
    assert notes[0][0] == "F3"
    assert "000731" in notes[0][1]


def test_form_csv_applies_with_formula_value(stocked, converted):
    filed = submit(stocked, converted["arrival"])

    assert filed.result.status == "applied", filed.result.problems
    lines = query(stocked, "SELECT sku, quantity, price, subtotal FROM operation_lines "
                           "ORDER BY line_no")
    assert lines == [("COMB-CARB", Decimal(10), Decimal("0.3"), Decimal(3)),
                     ("000731", Decimal(10), Decimal("0.29"), Decimal("2.9")),
                     ("SH-ARG-250", Decimal(12), Decimal("9.45"), Decimal("113.4"))]
    assert query(stocked, "SELECT occurred_at::VARCHAR, supplier FROM operations") == [
        ("2026-11-03 14:30:00", "Beauty Wholesale Ltd")]
    assert balance(stocked, "Products", "000731") == 10


def test_formula_error_is_problem(stocked, converted):
    filed = submit(stocked, converted["broken"])

    assert filed.result.status == "rejected"
    sheet = filed.result.problems[0].sheet
    assert ("error_value", sheet, "B5") in located(filed.result.problems)
    assert {p.value for p in filed.result.problems if p.cell == "B5"} == {"#DIV/0!"}
    assert {p.cell for p in filed.result.problems} == {"B5"}


def test_resaved_openpyxl_form_applies(stocked, converted):
    filed = submit(stocked, converted["form"])

    assert filed.result.status == "applied", filed.result.problems
    assert balance(stocked, "Products", "000731") == 5
    assert balance(stocked, "Products", "DYE-6.0") == 2
