"""Inspect a dropped file before any parser reads it.

`workbook.read_workbook` calls `inspect_package` first; calamine only ever sees a file that
passed. The checks, in order, each cheap before the next costs more:

1. What the bytes are: an xlsx is a zip archive. An OLE compound file is an old binary
   `.xls` or a password-protected (encrypted) workbook; PDF, PNG, JPEG, HTML and CSV
   renamed to `.xlsx` are recognised and named in the problem. An empty file, or a zip
   without its closing directory, was cut off while being copied.
2. The zip directory, before anything is unpacked: at most MAX_PARTS parts, declared
   unpacked sizes within MAX_PART_BYTES and MAX_TOTAL_BYTES, and no part (nor the whole
   package) compressed more than MAX_RATIO times. This stops zip bombs.
3. Every part is unpacked as a stream, never past its declared size (Python's zipfile
   stops there and then checks the CRC), and searched for `<!DOCTYPE` and `<!ENTITY`,
   which Excel never writes and which entity-expansion attacks need.
4. The package type: the main part's content type must be a workbook. Macro-enabled
   workbooks (`.xlsm`, or any package with a VBA project or macro sheet) are rejected:
   batchstock never runs macros, and the values such a file shows may depend on them.
5. Each worksheet's XML is scanned (`sheetfacts`) for rows holding values, the far cell
   of the used area, and text cells longer than Excel allows.
"""

from __future__ import annotations

import posixpath
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from batchstock.core import Problem, cell_name
from batchstock.sheetfacts import (
    MAX_CELL_CHARS,
    SheetFacts,
    find_long_shared_strings,
    scan_sheet,
)

MAX_FILE_BYTES = 100 << 20
MAX_PARTS = 5_000
MAX_PART_BYTES = 256 << 20
MAX_TOTAL_BYTES = 256 << 20
MAX_RATIO = 200
RATIO_CHECK_BYTES = 1 << 20  # smaller parts may compress better without harm
# Rows holding values, all sheets of a workbook together. A valid 10,000-line table
# arrival peaked at about 390 MB through the whole pipeline, 25,000 lines at 660 MB
# (bench figures in docs/reliability.md), and the target is below 500 MB.
MAX_ROWS = 10_000
MAX_USED_CELLS = 1_000_000  # cells from A1 to the last value, all sheets together

CFB_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
END_OF_DIRECTORY = b"PK\x05\x06"
STREAM_BYTES = 1 << 20
_DTD_MARKERS = tuple(
    marker.encode(encoding)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for encoding in ("utf-8", "utf-16-le", "utf-16-be")
)

MAIN_TYPES = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml": "xltx",
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml": "xlsm",
    "application/vnd.ms-excel.template.macroEnabled.main+xml": "xltm",
    "application/vnd.ms-excel.addin.macroEnabled.main+xml": "xlam",
    "application/vnd.ms-excel.sheet.binary.macroEnabled.main": "xlsb",
}
MACRO_TYPES = {"xlsm", "xltm", "xlam"}
RELATIONSHIP_WORKSHEET = "/worksheet"
RELATIONSHIP_MACROSHEET = "/macrosheet"
SAVE_AS_XLSX = "save it from your spreadsheet program as Excel Workbook (.xlsx) and drop it in again"


@dataclass(frozen=True)
class Finding:
    """A problem found in a file before its cells are read; `to_problem` adds the file."""

    code: str
    message: str
    sheet: str | None = None
    cell: str | None = None
    value: str | None = None

    def to_problem(self, file: str) -> Problem:
        return Problem(file, self.sheet, self.cell, self.code, self.message, self.value)


@dataclass
class PackageReport:
    """The outcome of inspecting one file: findings that reject it, and sheet facts by name."""

    findings: list[Finding] = field(default_factory=list)
    sheets: dict[str, SheetFacts] = field(default_factory=dict)


class Rejected(Exception):
    """Inspection stopped at a finding that makes further checks pointless."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def inspect_package(path: Path) -> PackageReport:
    """Inspect `path` as an xlsx package; the report's findings are empty when it may be read."""
    report = PackageReport()
    try:
        _check_file_kind(path)
        with zipfile.ZipFile(path) as archive:
            _check_directory(archive, path.stat().st_size)
            _check_parts(archive)
            sheets = _find_worksheets(archive)
            _scan_worksheets(archive, sheets, report)
    except Rejected as stop:
        report.findings.insert(0, stop.finding)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ElementTree.ParseError,
            NotImplementedError, KeyError, UnicodeDecodeError) as error:
        report.findings.insert(0, _corrupt(str(error) or type(error).__name__))
    return report


def looks_incomplete(path: Path) -> bool:
    """Return whether a file looks cut off: empty, or a zip without its closing directory.

    The closing directory is at most 64 KiB of comment plus 22 bytes before the end.
    """
    try:
        size = path.stat().st_size
        if size == 0:
            return True
        with path.open("rb") as stream:
            head = stream.read(4)
            if head not in ZIP_SIGNATURES:
                return False
            stream.seek(max(0, size - (65_536 + 22)))
            return END_OF_DIRECTORY not in stream.read()
    except OSError:
        return False


def size_text(size: int) -> str:
    """Return a byte count as people read it: `2,000 bytes` or `256 MB`."""
    return f"{size:,} bytes" if size < 1 << 20 else f"{size / (1 << 20):,.0f} MB"


def _corrupt(detail: str) -> Finding:
    return Finding(
        "corrupt_workbook",
        f"the file is damaged and cannot be unpacked ({detail}); {SAVE_AS_XLSX}",
    )


def _check_file_kind(path: Path) -> None:
    """Raise Rejected unless the file starts like a complete zip archive."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise Rejected(Finding(
            "package_too_large",
            f"the file is {size_text(size)}; batchstock reads workbooks of at most "
            f"{size_text(MAX_FILE_BYTES)}: split it into several files",
            value=str(size),
        ))
    with path.open("rb") as stream:
        head = stream.read(4096)
    if not head:
        raise Rejected(Finding("incomplete_file", "the file is empty; copy it again"))
    if head.startswith(CFB_SIGNATURE):
        raise Rejected(_inspect_compound_file(path))
    if head.startswith(ZIP_SIGNATURES):
        if looks_incomplete(path):
            raise Rejected(Finding(
                "incomplete_file",
                "the file ends before its zip directory, so it was cut off while being "
                "copied or saved; copy the complete file again",
            ))
        return
    kind = describe_content(head)
    raise Rejected(Finding(
        "not_a_workbook",
        f"the file is {kind}, not an Excel workbook{_despite_name(path)}; {SAVE_AS_XLSX}",
    ))


def _despite_name(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xltx", ".xls"):
        return f", although its name ends in {path.suffix}"
    return ""


def _inspect_compound_file(path: Path) -> Finding:
    """Tell an encrypted workbook from an old binary Excel file by their stream names."""
    names = {
        "EncryptedPackage": "password",
        "Workbook": "xls",
        "Book": "xls",
        "WordDocument": "a Word 97-2003 document",
        "PowerPoint Document": "a PowerPoint 97-2003 presentation",
    }
    found = _find_utf16_names(path, list(names))
    if "EncryptedPackage" in found:
        return Finding(
            "password_protected",
            "the workbook is protected with a password to open it, so it cannot be read; "
            "remove the password (File > Info > Protect Workbook in Excel), save and drop it "
            "in again",
        )
    if "Workbook" in found or "Book" in found:
        return Finding(
            "old_excel_format",
            "the file is an Excel 97-2003 workbook (.xls), a binary format batchstock does not "
            f"read; {SAVE_AS_XLSX}",
        )
    for name, kind in names.items():
        if name in found and not kind.startswith(("password", "xls")):
            return Finding("not_a_workbook", f"the file is {kind}, not an Excel workbook; "
                           f"{SAVE_AS_XLSX}")
    return Finding("not_a_workbook", "the file is an OLE compound file of an old Office "
                   f"format, not an xlsx workbook; {SAVE_AS_XLSX}")


def _find_utf16_names(path: Path, names: list[str]) -> set[str]:
    """Return which of `names` occur as UTF-16LE directory entry names in the file."""
    patterns = {name: name.encode("utf-16-le") + b"\x00\x00" for name in names}
    found: set[str] = set()
    tail = b""
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(STREAM_BYTES), b""):
            window = tail + chunk
            found.update(name for name, pattern in patterns.items() if pattern in window)
            tail = window[-64:]
    return found


def describe_content(head: bytes) -> str:
    """Name what the first bytes of a non-zip file look like, for the problem message."""
    signatures = (
        (b"%PDF-", "a PDF document"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
        (b"GIF8", "a GIF image"), (b"{\\rtf", "an RTF document"), (b"Rar!", "a RAR archive"),
        (b"\x1f\x8b", "a gzip archive"), (b"7z\xbc\xaf", "a 7-Zip archive"),
    )
    for signature, kind in signatures:
        if head.startswith(signature):
            return kind
    text = _decode_text(head)
    if text is None:
        return "not a known document type"
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html", "<table", "<head", "<body")):
        return "an HTML page"
    if lowered.startswith("<?xml"):
        if "urn:schemas-microsoft-com:office:spreadsheet" in lowered:
            return "an Excel 2003 XML spreadsheet"
        return "an XML document"
    first_line = lowered.splitlines()[0] if lowered else ""
    if any(separator in first_line for separator in (",", ";", "\t")):
        return "a CSV text file"
    return "a plain text file"


def _decode_text(head: bytes) -> str | None:
    """Return `head` as text when it reads as UTF-8, UTF-16 or printable Latin-1, else None."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "ignore")
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 4:
            return head[:error.start].decode("utf-8")
    text = head.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if printable >= 0.95 * len(text) else None


def _check_directory(archive: zipfile.ZipFile, file_size: int) -> None:
    """Raise Rejected when the declared sizes or ratios look like a zip bomb."""
    infos = archive.infolist()
    if len(infos) > MAX_PARTS:
        raise Rejected(_too_large(f"the package contains {len(infos)} parts; at most {MAX_PARTS} "
                                  "are read"))
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise Rejected(Finding(
                "password_protected",
                f"part {info.filename} of the file is encrypted, so it cannot be read; "
                f"remove the password and {SAVE_AS_XLSX}",
            ))
        if info.file_size > MAX_PART_BYTES:
            raise Rejected(_too_large(
                f"part {info.filename} unpacks to {size_text(info.file_size)}; at most "
                f"{size_text(MAX_PART_BYTES)} per part is read"))
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_BYTES and ratio > MAX_RATIO:
            raise Rejected(_too_large(
                f"part {info.filename} is compressed {ratio:.0f} times; at most {MAX_RATIO} "
                "times is accepted, since higher ratios are the mark of a zip bomb"))
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise Rejected(_too_large(f"the package unpacks to {size_text(total)}; at most "
                                  f"{size_text(MAX_TOTAL_BYTES)} is read"))
    if total > RATIO_CHECK_BYTES and total / max(file_size, 1) > MAX_RATIO:
        raise Rejected(_too_large(
            f"the package is compressed {total / max(file_size, 1):.0f} times; at most "
            f"{MAX_RATIO} times is accepted, since higher ratios are the mark of a zip bomb"))


def _too_large(detail: str) -> Finding:
    return Finding(
        "package_too_large",
        f"the workbook is too large to read safely: {detail}. A workbook may hold at most "
        f"{MAX_ROWS:,} rows with data; split it into several files",
    )


def _check_parts(archive: zipfile.ZipFile) -> None:
    """Stream every part within its declared size, rejecting DTDs; then check the type."""
    for info in archive.infolist():
        if info.is_dir():
            continue
        tail = b""
        with archive.open(info) as stream:
            for chunk in iter(lambda: stream.read(STREAM_BYTES), b""):
                window = tail + chunk
                if any(marker in window for marker in _DTD_MARKERS):
                    raise Rejected(Finding(
                        "xml_entities",
                        f"part {info.filename} declares a DOCTYPE or XML entities, which "
                        f"Excel never writes and which can make a reader expand data without "
                        f"limit; {SAVE_AS_XLSX}",
                    ))
                tail = window[-32:]
    _check_package_type(archive)


def _check_package_type(archive: zipfile.ZipFile) -> None:
    names = set(archive.namelist())
    if "mimetype" in names:
        mimetype = archive.read("mimetype")[:200].decode("ascii", "replace")
        raise Rejected(Finding("not_a_workbook", f"the file is an OpenDocument file "
                               f"({mimetype}), not an Excel workbook; {SAVE_AS_XLSX}"))
    if "[Content_Types].xml" not in names:
        raise Rejected(Finding("not_a_workbook", "the file is a zip archive, not an Excel "
                               f"workbook; {SAVE_AS_XLSX}"))
    main = _main_content_type(archive)
    kind = MAIN_TYPES.get(main or "")
    if kind is None:
        found = "a Word document" if "word/document.xml" in names else (
            "a PowerPoint presentation" if "ppt/presentation.xml" in names
            else f"an Office package of type {main or 'unknown'}")
        raise Rejected(Finding("not_a_workbook", f"the file is {found}, not an Excel "
                               f"workbook; {SAVE_AS_XLSX}"))
    if kind == "xlsb":
        raise Rejected(Finding("not_a_workbook", "the file is an Excel binary workbook "
                               f"(.xlsb), which batchstock does not read; {SAVE_AS_XLSX}"))
    has_vba = any(name.lower().endswith("vbaproject.bin") for name in names)
    if kind in MACRO_TYPES or has_vba:
        raise Rejected(_macro_finding())


def _macro_finding() -> Finding:
    return Finding(
        "macro_workbook",
        "the workbook contains macros (.xlsm); batchstock never runs macros and does not read "
        "macro-enabled workbooks, because the values they show may depend on macros that did "
        "not run; save it as Excel Workbook (.xlsx), which drops the macros, and drop it in "
        "again",
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _main_content_type(archive: zipfile.ZipFile) -> str | None:
    types = ElementTree.fromstring(archive.read("[Content_Types].xml"))
    main_part = "/" + _main_part_name(archive)
    for element in types:
        if _local(element.tag) == "Override" and element.get("PartName") == main_part:
            return element.get("ContentType")
    return None


def _main_part_name(archive: zipfile.ZipFile) -> str:
    """Return the zip name of the workbook part, from the package relationships."""
    try:
        rels = ElementTree.fromstring(archive.read("_rels/.rels"))
    except KeyError:
        return "xl/workbook.xml"
    for element in rels:
        if (element.get("Type") or "").endswith("/officeDocument"):
            return posixpath.normpath((element.get("Target") or "").lstrip("/"))
    return "xl/workbook.xml"


def _find_worksheets(archive: zipfile.ZipFile) -> list[tuple[str, str]]:
    """Return (sheet name, zip part name) of each worksheet, in workbook order."""
    main = _main_part_name(archive)
    folder = posixpath.dirname(main)
    rels_name = posixpath.join(folder, "_rels", posixpath.basename(main) + ".rels")
    targets: dict[str, tuple[str, str]] = {}
    for element in ElementTree.fromstring(archive.read(rels_name)):
        target = element.get("Target") or ""
        part = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
        targets[element.get("Id") or ""] = (element.get("Type") or "", posixpath.normpath(part))
    sheets = []
    for element in ElementTree.fromstring(archive.read(main)).iter():
        if _local(element.tag) != "sheet":
            continue
        relation = next((v for k, v in element.attrib.items() if _local(k) == "id"), "")
        kind, part = targets.get(relation, ("", ""))
        if kind.endswith(RELATIONSHIP_MACROSHEET):
            raise Rejected(_macro_finding())
        if kind.endswith(RELATIONSHIP_WORKSHEET):
            sheets.append((element.get("name") or "", part))
    return sheets


def _scan_worksheets(archive: zipfile.ZipFile, sheets: list[tuple[str, str]],
                     report: PackageReport) -> None:
    """Scan each worksheet; add findings for rows, used area and long text over the limits."""
    names = set(archive.namelist())
    long_strings: dict[int, int] = {}
    shared = next((n for n in names if n.lower().endswith("sharedstrings.xml")), None)
    if shared is not None:
        with archive.open(shared) as stream:
            long_strings = find_long_shared_strings(stream)
    rows_left, cells_left = MAX_ROWS, MAX_USED_CELLS
    for name, part in sheets:
        if part not in names:
            continue
        with archive.open(part) as stream:
            facts = scan_sheet(stream, rows_left, long_strings)
        report.sheets[name] = facts
        report.findings.extend(_limit_findings(name, facts, rows_left, cells_left))
        rows_left = max(rows_left - facts.value_rows, 0)
        cells_left = max(cells_left - facts.used_cells, 0)


def _limit_findings(name: str, facts: SheetFacts, rows_left: int,
                    cells_left: int) -> list[Finding]:
    findings = []
    if facts.stopped_at_row is not None:
        findings.append(Finding(
            "too_many_rows",
            f"the workbook holds more than {MAX_ROWS:,} rows with data (this sheet passes the "
            f"limit at row {facts.stopped_at_row:,}); split it into files of at most "
            f"{MAX_ROWS:,} rows", name, f"A{facts.stopped_at_row}",
        ))
    elif facts.used_cells > cells_left:
        findings.append(Finding(
            "sheet_too_large",
            f"the used area runs from A1 to {facts.far_cell}, {facts.last_row:,} rows by "
            f"{facts.last_col:,} columns; a workbook may use at most {MAX_USED_CELLS:,} cells. "
            f"Delete the far cells such as {facts.far_cell} if they are stray, or split the "
            "file", name, facts.far_cell,
        ))
    if facts.oversized_row is not None:
        findings.append(Finding(
            "sheet_too_large",
            f"row {facts.oversized_row} holds more data than batchstock reads in one row; "
            f"cells hold at most {MAX_CELL_CHARS:,} characters", name,
        ))
    for row, col, length in facts.long_cells:
        findings.append(Finding(
            "cell_too_long",
            f"the cell holds {length:,} characters; a cell may hold at most "
            f"{MAX_CELL_CHARS:,}, as in Excel; shorten it", name, cell_name(row, col),
        ))
    return findings
