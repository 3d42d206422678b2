"""The guard and the sheet scan on their own: what they find in a file before calamine reads it."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

import hostile_workbooks as hostile
from batchstock import guard
from batchstock.guard import describe_content, inspect_package, looks_incomplete
from batchstock.sheetfacts import find_long_shared_strings, scan_sheet
from batchstock.workbook import WorkbookReadError, read_workbook


def codes(path: Path) -> list[tuple[str, str | None, str | None]]:
    return [(f.code, f.sheet, f.cell) for f in inspect_package(path).findings]


def sheet_xml(rows: str, prefix: str = "", extra: str = "") -> bytes:
    name = f"{prefix}:" if prefix else ""
    namespace = f' xmlns{":" + prefix if prefix else ""}="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    return (f"<{name}worksheet{namespace}><{name}sheetData>{rows}</{name}sheetData>{extra}"
            f"</{name}worksheet>").encode()


def scan(xml: bytes, budget: int = 1000, long_strings: dict[int, int] | None = None):
    return scan_sheet(io.BytesIO(xml), budget, long_strings or {})


@pytest.mark.parametrize("builder, code", [
    (hostile.renamed_csv, "not_a_workbook"),
    (hostile.renamed_html, "not_a_workbook"),
    (hostile.renamed_pdf, "not_a_workbook"),
    (hostile.renamed_png, "not_a_workbook"),
    (hostile.old_xls, "old_excel_format"),
    (hostile.macro_workbook, "macro_workbook"),
    (hostile.password_protected, "password_protected"),
    (hostile.truncated, "incomplete_file"),
    (hostile.corrupt, "corrupt_workbook"),
    (hostile.zip_bomb, "package_too_large"),
    (hostile.entity_expansion, "xml_entities"),
])
def test_guard_rejects_package(tmp_path, builder, code):
    path = builder(tmp_path / "dropped.xlsx")

    assert codes(path) == [(code, None, None)]


def test_guard_accepts_valid_arrival(tmp_path):
    report = inspect_package(hostile.arrival(tmp_path / "arrival.xlsx"))

    assert report.findings == []
    assert report.sheets["Arrival"].value_rows == 6


@pytest.mark.parametrize("head, kind", [
    (b"SKU;Quantity\r\nA;1\r\n", "a CSV text file"),
    (b"\xef\xbb\xbfSKU\tQuantity\n", "a CSV text file"),
    (b"  <HTML><body>", "an HTML page"),
    (b"<?xml version='1.0'?><Workbook xmlns='urn:schemas-microsoft-com:office:spreadsheet'>",
     "an Excel 2003 XML spreadsheet"),
    (b"%PDF-1.7", "a PDF document"),
    (b"\xff\xd8\xff\xe0", "a JPEG image"),
    (b"\x00\x01\x02\x03\x04", "not a known document type"),
])
def test_describe_content_names_kind(head, kind):
    assert describe_content(head) == kind


def test_renamed_file_problem_names_kind(tmp_path):
    finding = inspect_package(hostile.renamed_pdf(tmp_path / "scan.xlsx")).findings[0]

    assert "PDF" in finding.message
    assert ".xlsx" in finding.message


def test_empty_file_is_incomplete(tmp_path):
    path = tmp_path / "empty.xlsx"
    path.write_bytes(b"")

    assert codes(path) == [("incomplete_file", None, None)]
    assert looks_incomplete(path)


def test_looks_incomplete_only_for_cut_zip(tmp_path):
    whole = hostile.arrival(tmp_path / "whole.xlsx")
    cut = hostile.truncated(tmp_path / "cut.xlsx")

    assert not looks_incomplete(whole)
    assert looks_incomplete(cut)
    assert not looks_incomplete(hostile.renamed_csv(tmp_path / "text.xlsx"))


def test_zip_without_workbook_is_not_workbook(tmp_path):
    path = tmp_path / "archive.xlsx"
    path.write_bytes(hostile.zip_bytes({"notes.txt": b"hello"}))

    assert codes(path) == [("not_a_workbook", None, None)]


def test_opendocument_is_not_workbook(tmp_path):
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(hostile.zip_bytes({
        "mimetype": b"application/vnd.oasis.opendocument.spreadsheet",
        "content.xml": b"<office:document-content/>",
    }))

    finding = inspect_package(path).findings[0]
    assert finding.code == "not_a_workbook"
    assert "OpenDocument" in finding.message


def test_file_over_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(guard, "MAX_FILE_BYTES", 1000)

    assert codes(hostile.arrival(tmp_path / "big.xlsx")) == [("package_too_large", None, None)]


def test_declared_size_over_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(guard, "MAX_PART_BYTES", 2000)

    finding = inspect_package(hostile.arrival(tmp_path / "big.xlsx")).findings[0]
    assert finding.code == "package_too_large"
    assert "2,000 bytes" in finding.message


def test_too_many_parts(tmp_path):
    parts = {f"part{i}.xml": b"<a/>" for i in range(guard.MAX_PARTS + 1)}
    path = tmp_path / "parts.xlsx"
    path.write_bytes(hostile.zip_bytes(parts))

    assert codes(path) == [("package_too_large", None, None)]


@pytest.mark.parametrize("part", ["xl/workbook.xml", "docProps/core.xml",
                                  "[Content_Types].xml", "xl/styles.xml"])
def test_entity_declaration_in_any_part(tmp_path, part):
    path = hostile.entity_expansion(tmp_path / "lol.xlsx", part=part)

    assert codes(path) == [("xml_entities", None, None)]


def test_utf16_doctype_is_found(tmp_path):
    source = hostile.arrival(tmp_path / "plain.xlsx")
    text = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'
    path = hostile.replace_parts(source, tmp_path / "utf16.xlsx",
                                 {"docProps/app.xml": text.encode("utf-16")})

    assert codes(path) == [("xml_entities", None, None)]


def test_stray_far_cell_states_cell(tmp_path):
    path = hostile.stray_far_cell(tmp_path / "far.xlsx")

    finding = inspect_package(path).findings[0]
    assert (finding.code, finding.sheet, finding.cell) == ("sheet_too_large", "Arrival",
                                                           "Z1048576")
    assert f"{guard.MAX_USED_CELLS:,}" in finding.message


def test_row_limit_states_limit(tmp_path):
    path = hostile.million_rows(tmp_path / "rows.xlsx", count=30_000)

    finding = inspect_package(path).findings[0]
    assert finding.code == "too_many_rows"
    assert f"{guard.MAX_ROWS:,}" in finding.message


def test_long_inline_cell_located(tmp_path):
    path = hostile.megabyte_cell(tmp_path / "long.xlsx", characters=40_000)

    assert codes(path) == [("cell_too_long", "Arrival", "C6")]


def test_long_shared_string_located_at_cell():
    strings = (b"<sst><si><t>short</t></si><si><t>" + b"y" * 40_000
               + b"</t></si><si><r><t>a</t></r><r><t>b</t></r></si></sst>")
    long_strings = find_long_shared_strings(io.BytesIO(strings))
    xml = sheet_xml('<row r="3"><c r="D3" t="s"><v>1</v></c><c r="E3" t="s"><v>0</v></c></row>')

    facts = scan(xml, long_strings=long_strings)

    assert long_strings == {1: 40_000}
    assert facts.long_cells == [(3, 4, 40_000)]


def test_scan_counts_only_cells_with_values():
    xml = sheet_xml('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
                    '<row r="2" s="3" customFormat="1"><c r="A2" s="3"/></row>'
                    '<row r="900000"><c r="C900000" s="1"/></row>'
                    '<row r="5"><c r="B5"><v>7</v></c></row>')

    facts = scan(xml)

    assert (facts.value_rows, facts.last_row, facts.last_col) == (2, 5, 2)


def test_scan_reads_prefixed_elements():
    rows = ('<x:row r="2"><x:c r="B2"><x:f>A1*2</x:f></x:c><x:c r="C2" t="e"><x:v>#N/A</x:v>'
            '</x:c></x:row><x:row r="9" hidden="1"><x:c r="A9"><x:v>1</x:v></x:c></x:row>')
    facts = scan(sheet_xml(rows, prefix="x"))

    assert facts.formulas_without_value == [(2, 2, "A1*2")]
    assert facts.error_cells == [(2, 3, "#N/A")]
    assert facts.hidden_rows == [9]
    assert facts.last_row == 9


def test_scan_numbers_cells_without_reference():
    rows = ('<row><c t="inlineStr"><is><t>SKU</t></is></c><c><v>1</v></c></row>'
            '<row hidden="1"><c/><c/><c><v>5</v></c></row>')

    facts = scan(sheet_xml(rows))

    assert (facts.value_rows, facts.last_row, facts.last_col) == (2, 2, 3)
    assert facts.hidden_rows == [2]


def test_scan_empty_string_formula_has_value():
    rows = '<row r="1"><c r="A1" t="str"><f>IF(B1="","",B1)</f><v></v></c></row>'

    assert scan(sheet_xml(rows)).formulas_without_value == []


def test_scan_stops_at_row_budget():
    rows = "".join(f'<row r="{r}"><c r="A{r}"><v>1</v></c></row>' for r in range(1, 51))

    facts = scan(sheet_xml(rows), budget=10)

    assert facts.stopped_at_row == 11
    assert facts.value_rows == 10


def test_scan_reads_merges_filter_and_hidden_columns():
    extra = ('<autoFilter ref="A5:C20"/><mergeCells count="1"><mergeCell ref="B6:B8"/>'
             '</mergeCells>')
    xml = sheet_xml('<row r="1"><c r="A1"><v>1</v></c></row>', extra=extra).replace(
        b"<sheetData>", b'<cols><col min="2" max="3" width="0" hidden="1"/></cols><sheetData>')

    facts = scan(xml)

    assert facts.merged == [(6, 2, 8, 2)]
    assert facts.filter_range == (5, 1, 20, 3)
    assert facts.hidden_columns == [(2, 3)]


def test_scan_splits_blocks_at_rows(monkeypatch):
    import batchstock.sheetfacts as sheetfacts

    monkeypatch.setattr(sheetfacts, "BLOCK_BYTES", 64)
    rows = "".join(f'<row r="{r}"><c r="B{r}"><f>1+1</f></c></row>' for r in range(1, 40))

    facts = scan(sheet_xml(rows))

    assert [cell[:2] for cell in facts.formulas_without_value] == [(r, 2) for r in range(1, 40)]


def test_read_workbook_raises_with_findings(tmp_path):
    with pytest.raises(WorkbookReadError) as raised:
        read_workbook(hostile.old_xls(tmp_path / "old.xlsx"))

    problems = raised.value.to_problems("inbox/anna/old.xlsx")
    assert [(p.file, p.code) for p in problems] == [("inbox/anna/old.xlsx", "old_excel_format")]


def test_read_workbook_restores_error_text(tmp_path):
    grids = read_workbook(hostile.error_values(tmp_path / "errors.xlsx"))

    assert grids[0].cell(6, 2).value == "#N/A"
    assert grids[0].cell(7, 2).value == "#VALUE!"


def test_read_workbook_attaches_facts(tmp_path):
    grids = read_workbook(hostile.hidden_line(tmp_path / "hidden.xlsx"))

    assert grids[0].facts is not None
    assert grids[0].facts.hidden_rows == [7]


def test_workbook_without_shared_strings_part(tmp_path):
    path = hostile.arrival(tmp_path / "plain.xlsx")
    with zipfile.ZipFile(path) as package:
        assert not any("sharedStrings" in name for name in package.namelist())

    assert inspect_package(path).findings == []
