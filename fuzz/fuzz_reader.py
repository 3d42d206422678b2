"""Coverage-guided fuzzing of the workbook reader with atheris.

Each input is written to a file and read by `workbook.read_workbook`, guard included. The
reader may reject a file only with WorkbookReadError; any other exception is a finding.
The first byte picks what the rest of the input is: the whole file, or the worksheet XML
or the shared strings of an otherwise valid package. Mutated zip files mostly fail their
CRC check early, so the second and third modes are what reach the XML scanning. The seed
corpus is an arrival workbook written by openpyxl, in each mode.

    python fuzz/fuzz_reader.py -max_total_time=600      # ten minutes, by hand
    python fuzz/fuzz_reader.py -runs=200                # a short run, as the test does

Options after the script name go to libFuzzer; a corpus folder may be given as well.
"""

from __future__ import annotations

import io
import sys
import tempfile
import zipfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from batchstock import guard, sheetfacts, workbook

SCRATCH = Path(tempfile.mkdtemp(prefix="fuzz-reader-")) / "input.xlsx"


def seed_workbooks() -> list[bytes]:
    """Small valid packages: an openpyxl arrival and a minimal hand-written workbook."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Arrival"
    for row in (["Operation", "Arrival"], ["Storage", "Products"], [],
                ["SKU", "Quantity"], ["COMB-CARB", 3], ["SH-ARG-250", "=1+1"]):
        sheet.append(row)
    sheet.merge_cells("A1:B1")
    buffer = io.BytesIO()
    book.save(buffer)
    return [buffer.getvalue()]


BASE_PACKAGE = seed_workbooks()[0]
MODES = ("file", "xl/worksheets/sheet1.xml", "xl/sharedStrings.xml")


def build_input(data: bytes) -> bytes:
    """Turn a fuzzer input into file bytes, following the mode its first byte picks."""
    if not data:
        return data
    mode = MODES[data[0] % len(MODES)]
    if mode == "file":
        return data[1:]
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(BASE_PACKAGE)) as base, \
            zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as package:
        for info in base.infolist():
            if info.filename != mode:
                package.writestr(info.filename, base.read(info.filename))
        package.writestr(mode, data[1:])
    return buffer.getvalue()


def test_one_input(data: bytes) -> None:
    SCRATCH.write_bytes(build_input(data))
    try:
        workbook.read_workbook(SCRATCH)
    except workbook.WorkbookReadError:
        pass


def seed_inputs() -> list[bytes]:
    """One seed per mode, each taken from BASE_PACKAGE."""
    with zipfile.ZipFile(io.BytesIO(BASE_PACKAGE)) as package:
        sheet = package.read(MODES[1])
    strings = (b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
               b"<si><t>SKU</t></si><si><r><t>a</t></r></si></sst>")
    return [bytes([0]) + BASE_PACKAGE, bytes([1]) + sheet, bytes([2]) + strings]


def write_seed_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(seed_inputs()):
        (folder / f"seed-{index}.xlsx").write_bytes(data)


def main() -> None:
    """Run libFuzzer; seed the corpus folder given (or a temporary one) when it is empty.

    Given files instead of a folder, libFuzzer runs each of them once.
    """
    arguments = list(sys.argv)
    folders = [Path(a) for a in arguments[1:] if not a.startswith("-")]
    if not folders:
        folders = [Path(tempfile.mkdtemp(prefix="fuzz-corpus-"))]
        arguments.append(str(folders[0]))
    if not folders[0].is_file() and (not folders[0].is_dir() or not any(folders[0].iterdir())):
        write_seed_corpus(folders[0])
    atheris.Setup(arguments, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
