"""Hostile and broken files for the guard and pipeline tests, each built on demand.

Every builder writes one file to a given path and returns it. Most start from a valid
arrival workbook (form layout, sheet `Arrival`, lines table header on row 5) written by
openpyxl, then change its XML parts, so that each file differs from a good one only by the
fault it carries.
"""

from __future__ import annotations

import io
import random
import re
import string
import zipfile
import zlib
from pathlib import Path

import openpyxl

from ingest_workbooks import FIRST_LINE_ROW, form_rows, write_rows

SHEET_PART = "xl/worksheets/sheet1.xml"
LINES = [["COMB-CARB", 3], ["SH-ARG-250", 2]]


def arrival(path: Path, lines: list[list] | None = None) -> Path:
    """A valid arrival of the test catalogue's products into Products."""
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity"], lines or LINES)
    return write_rows(path, {"Arrival": rows})


def replace_parts(source: Path, target: Path, parts: dict[str, bytes | None],
                  compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """Copy a zip package, replacing (bytes) or dropping (None) the named parts and adding
    the named parts it lacks."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for info in old.infolist():
            if info.filename in parts:
                if parts[info.filename] is not None:
                    new.writestr(info.filename, parts[info.filename])
                continue
            new.writestr(info.filename, old.read(info.filename))
        for name, data in parts.items():
            if data is not None and name not in old.namelist():
                new.writestr(name, data)
    return target


def edit_sheet(path: Path, edit) -> Path:
    """Rewrite the first worksheet's XML of `path` in place with `edit(text) -> text`."""
    with zipfile.ZipFile(path) as package:
        text = package.read(SHEET_PART).decode("utf-8")
    temporary = path.with_name(path.name + ".new")
    replace_parts(path, temporary, {SHEET_PART: edit(text).encode("utf-8")})
    temporary.replace(path)
    return path


def insert_rows(text: str, rows_xml: str) -> str:
    return text.replace("</sheetData>", rows_xml + "</sheetData>")


# ------------------------------------------------------------------ not a workbook


def renamed_csv(path: Path) -> Path:
    path.write_text("SKU,Quantity\nCOMB-CARB,3\n", encoding="utf-8")
    return path


def renamed_html(path: Path) -> Path:
    path.write_text("<!DOCTYPE html><html><body><table><tr><td>SKU</td></tr></table>"
                    "</body></html>", encoding="utf-8")
    return path


def renamed_pdf(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n")
    return path


def renamed_png(path: Path) -> Path:
    header = b"\x89PNG\r\n\x1a\n"
    chunk = b"IHDR" + (1).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    ihdr = len(chunk[4:]).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
    path.write_bytes(header + ihdr)
    return path


def old_xls(path: Path) -> Path:
    """A real Excel 97-2003 file, written by xlwt."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Arrival")
    for row, values in enumerate(form_rows("Arrival", "Products", ["SKU", "Quantity"], LINES)):
        for col, value in enumerate(values):
            sheet.write(row, col, value)
    book.save(str(path))
    return path


def macro_workbook(path: Path) -> Path:
    """An arrival saved the way Excel saves an .xlsm: macro content type and a VBA part."""
    source = arrival(path.with_name("plain-" + path.name))
    with zipfile.ZipFile(source) as package:
        types = package.read("[Content_Types].xml").decode("utf-8")
    types = types.replace(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    ).replace("</Types>", '<Default Extension="bin" '
              'ContentType="application/vnd.ms-office.vbaProject"/></Types>')
    parts = {"[Content_Types].xml": types.encode("utf-8"),
             "xl/vbaProject.bin": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504}
    return replace_parts(source, path, parts)


def password_protected(path: Path) -> Path:
    """An arrival encrypted with a password to open, by msoffcrypto-tool (ECMA-376 agile)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    source = arrival(path.with_name("plain-" + path.name))
    with source.open("rb") as plain, path.open("wb") as encrypted:
        OOXMLFile(plain).encrypt("secret", encrypted)
    return path


def truncated(path: Path) -> Path:
    data = arrival(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt(path: Path) -> Path:
    """An arrival whose sheet part was stored uncompressed and then overwritten: the zip
    directory is intact but the part fails its CRC check."""
    source = arrival(path.with_name("plain-" + path.name))
    replace_parts(source, path, {}, compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    start = data.find(b"<sheetData>")
    data[start + 1: start + 10] = b"XXXXXXXXX"
    path.write_bytes(bytes(data))
    return path


# ------------------------------------------------------------------ too large or expanding


def zip_bomb(path: Path, unpacked_mb: int = 64) -> Path:
    """An arrival whose sheet part unpacks to `unpacked_mb` MB of spaces (ratio ~1000)."""
    source = arrival(path.with_name("plain-" + path.name))
    with zipfile.ZipFile(source) as package:
        text = package.read(SHEET_PART)
    padding = b" " * (unpacked_mb << 20)
    bomb = text.replace(b"</worksheet>", padding + b"</worksheet>")
    return replace_parts(source, path, {SHEET_PART: bomb})


def entity_expansion(path: Path, part: str = "xl/workbook.xml") -> Path:
    """An arrival whose `part` starts with a billion-laughs DTD."""
    source = arrival(path.with_name("plain-" + path.name))
    with zipfile.ZipFile(source) as package:
        text = package.read(part).decode("utf-8")
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    ]
    dtd = f'<!DOCTYPE lolz [{"".join(entities)}]>'
    text = re.sub(r"^(<\?xml[^>]*\?>)?", lambda m: (m.group(0) or "") + dtd, text, count=1)
    return replace_parts(source, path, {part: text.encode("utf-8")})


def huge_dimension(path: Path) -> Path:
    """An arrival whose sheet records A1:Z1048576 and styles every one of those rows."""
    arrival(path)
    rows = "".join(f'<row r="{r}" s="1" customFormat="1"><c r="A{r}" s="1"/></row>'
                   for r in range(FIRST_LINE_ROW + len(LINES), 1_048_577))

    def edit(text: str) -> str:
        text = re.sub(r'<dimension ref="[^"]*"\s*/>', '<dimension ref="A1:Z1048576"/>', text)
        return insert_rows(text, rows)

    return edit_sheet(path, edit)


def stray_far_cell(path: Path) -> Path:
    """An arrival with one value at Z1048576, far below its lines."""
    arrival(path)
    return edit_sheet(path, lambda text: insert_rows(
        text, '<row r="1048576"><c r="Z1048576" t="n"><v>1</v></c></row>'))


def million_rows(path: Path, count: int = 1_000_000) -> Path:
    """An arrival followed by `count` rows of lines (SKU and quantity)."""
    arrival(path)
    first = FIRST_LINE_ROW + len(LINES)
    rows = "".join([
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>COMB-CARB</t></is></c>'
        f'<c r="B{r}"><v>1</v></c></row>' for r in range(first, first + count)])
    with zipfile.ZipFile(path) as package:
        text = package.read(SHEET_PART).decode("utf-8")
    temporary = path.with_name(path.name + ".new")
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED,
                                                       compresslevel=1) as new:
        for info in old.infolist():
            data = insert_rows(text, rows).encode() if info.filename == SHEET_PART else \
                old.read(info.filename)
            new.writestr(info.filename, data)
    temporary.replace(path)
    return path


def megabyte_cell(path: Path, characters: int = 2_000_000) -> Path:
    """An arrival whose cell C6 holds `characters` random letters of inline text."""
    arrival(path)
    text = "".join(random.Random(7).choices(string.ascii_letters + " ", k=characters))
    cell = f'<c r="C{FIRST_LINE_ROW}" t="inlineStr"><is><t>{text}</t></is></c>'
    pattern = re.compile(rf'(<row r="{FIRST_LINE_ROW}"[^>]*>.*?)(</row>)', re.S)
    return edit_sheet(path, lambda text: pattern.sub(lambda m: m.group(1) + cell + m.group(2),
                                                    text, count=1))


# ------------------------------------------------------------------ readable, but suspicious


def formula_without_value(path: Path) -> Path:
    """Quantity B6 is a formula saved without its value, as openpyxl saves formulas."""
    return write_rows(path, {"Arrival": form_rows(
        "Arrival", "Products", ["SKU", "Quantity"], [["COMB-CARB", "=1+2"], ["SH-ARG-250", 2]])})


def error_values(path: Path) -> Path:
    """Quantity B6 shows #N/A and B7 shows #VALUE!, both saved as formula results."""
    arrival(path)
    row, next_row = FIRST_LINE_ROW, FIRST_LINE_ROW + 1

    def edit(text: str) -> str:
        text = re.sub(rf'<c r="B{row}"[^>]*>.*?</c>',
                      f'<c r="B{row}" t="e"><f>VLOOKUP(A{row},Z:Z,2,0)</f><v>#N/A</v></c>', text)
        return re.sub(rf'<c r="B{next_row}"[^>]*>.*?</c>',
                      f'<c r="B{next_row}" t="e"><f>"a"+1</f><v>#VALUE!</v></c>', text)

    return edit_sheet(path, edit)


def with_worksheet(path: Path, change) -> Path:
    """An arrival written by openpyxl after `change(worksheet)` ran on its sheet."""
    workbook = openpyxl.Workbook()
    worksheet = workbook.active
    worksheet.title = "Arrival"
    for values in form_rows("Arrival", "Products", ["SKU", "Quantity"], LINES):
        worksheet.append(values)
    change(worksheet)
    workbook.save(path)
    return path


def merged_lines(path: Path) -> Path:
    """Cells A6:A7 (the SKU of both lines) merged."""
    def change(worksheet) -> None:
        worksheet.merge_cells(f"A{FIRST_LINE_ROW}:A{FIRST_LINE_ROW + 1}")

    return with_worksheet(path, change)


def hidden_line(path: Path) -> Path:
    """The second line, row 7, hidden."""
    def change(worksheet) -> None:
        worksheet.row_dimensions[FIRST_LINE_ROW + 1].hidden = True

    return with_worksheet(path, change)


def filtered_line(path: Path) -> Path:
    """An auto-filter over the lines table that hides row 7."""
    def change(worksheet) -> None:
        worksheet.auto_filter.ref = f"A5:B{FIRST_LINE_ROW + 1}"
        worksheet.row_dimensions[FIRST_LINE_ROW + 1].hidden = True

    return with_worksheet(path, change)


def hidden_quantity_column(path: Path) -> Path:
    """The Quantity column, B, hidden."""
    def change(worksheet) -> None:
        worksheet.column_dimensions["B"].hidden = True

    return with_worksheet(path, change)


def hidden_sheet(path: Path) -> Path:
    """A visible arrival plus a hidden sheet holding a second arrival."""
    workbook = openpyxl.Workbook()
    visible = workbook.active
    visible.title = "Arrival"
    hidden = workbook.create_sheet("More")
    for values in form_rows("Arrival", "Products", ["SKU", "Quantity"], LINES):
        visible.append(values)
        hidden.append(values)
    hidden.sheet_state = "hidden"
    workbook.save(path)
    return path


def duplicate_header(path: Path) -> Path:
    """A lines table with two Quantity columns."""
    return write_rows(path, {"Arrival": form_rows(
        "Arrival", "Products", ["SKU", "Quantity", "Qty"], [["COMB-CARB", 3, 4]])})


def zip_bytes(parts: dict[str, bytes]) -> bytes:
    """A zip archive of `parts`, in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(name, data)
    return buffer.getvalue()
