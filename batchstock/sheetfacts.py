"""Read what a worksheet's XML holds beyond the cell values that calamine returns.

`guard` runs this scan on every worksheet before calamine reads the workbook. It streams
the sheet XML in blocks cut at row boundaries and records, without building a tree: the
rows and columns that hold values (so that a stray value at row 1,048,576 is caught before
calamine allocates the whole range), hidden rows and columns, the auto-filter range, merged
ranges, formula cells without a saved value, error values such as `#N/A`, and text cells
longer than Excel allows. Cells that only carry a style hold no value and cost nothing,
so a sheet whose recorded dimension is A1:Z1048576 but that holds 10 rows reads quickly.

`find_sheet_problems` turns the facts of an operation sheet into problems at cells.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from batchstock.core import Problem, cell_name, column_letter

BLOCK_BYTES = 4 << 20
# A block is cut before the last row start it contains; a row alone larger than this is
# reported instead of buffered further.
MAX_ROW_BYTES = 64 << 20
MAX_CELL_CHARS = 32_767  # Excel's own limit for the text of one cell

_CELL = re.compile(rb"<(?:\w+:)?c\b((?:[^>/]|/(?!>))*)>(.*?)</(?:\w+:)?c>", re.S)
_ROW_TAG = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_HIDDEN_ROW = re.compile(rb"<(?:\w+:)?row\b[^>]*?\shidden=\"(?:1|true)\"[^>]*>")
_COL_TAG = re.compile(rb"<(?:\w+:)?col\b([^>]*)>")
_MERGE = re.compile(rb"<(?:\w+:)?mergeCell\b[^>]*?\sref=\"([^\"]+)\"")
_FILTER = re.compile(rb"<(?:\w+:)?autoFilter\b[^>]*?\sref=\"([^\"]+)\"")
_ATTRIBUTE = re.compile(rb"(?:^|\s)([\w:]+)=\"([^\"]*)\"")
_VALUE = re.compile(rb"<(?:\w+:)?v(?:\s[^>]*)?>(.*?)</(?:\w+:)?v>", re.S)
_TEXT = re.compile(rb"<(?:\w+:)?t(?:\s[^>]*)?>(.*?)</(?:\w+:)?t>", re.S)
_FORMULA = re.compile(rb"<(?:\w+:)?f\b")
_REFERENCE = re.compile(r"\$?([A-Z]{1,3})\$?(\d+)")
_REFERENCE_ATTRIBUTE = re.compile(rb"\sr=\"([A-Z]{1,3})(\d+)\"")
# A cell start tag without an `r` attribute: its position is then its coordinate.
_CELL_WITHOUT_REFERENCE = re.compile(rb"<(?:\w+:)?c(?=[\s>/])(?![^>]*\sr=\")[^>]*>")
_SHARED_STRING = re.compile(rb"<(?:\w+:)?si\b[^>]*>(.*?)</(?:\w+:)?si>", re.S)


@dataclass
class SheetFacts:
    """Facts from the XML of one worksheet, with 1-based rows and columns.

    `value_rows` counts rows holding at least one value; it stops growing once the scan
    stopped early (`stopped_at_row` is then the row where it stopped). `last_row` and
    `last_col` bound the cells holding values, and `far_cell` is the cell that set
    `last_row`. Formula cells count as holding a value even without a saved one.
    """

    value_rows: int = 0
    last_row: int = 0
    last_col: int = 0
    far_cell: str | None = None
    stopped_at_row: int | None = None
    oversized_row: int | None = None
    hidden_rows: list[int] = field(default_factory=list)
    hidden_columns: list[tuple[int, int]] = field(default_factory=list)
    filter_range: tuple[int, int, int, int] | None = None
    merged: list[tuple[int, int, int, int]] = field(default_factory=list)
    formulas_without_value: list[tuple[int, int, str]] = field(default_factory=list)
    error_cells: list[tuple[int, int, str]] = field(default_factory=list)
    long_cells: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def used_cells(self) -> int:
        """Cells in the rectangle from A1 to the last value: what calamine allocates."""
        return self.last_row * self.last_col


def column_number(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


def parse_reference(text: str) -> tuple[int, int] | None:
    """Return (row, column) of an A1 reference such as `C7` or `$C$7`, or None."""
    match = _REFERENCE.fullmatch(text.strip())
    if match is None or int(match.group(2)) < 1:
        return None
    return int(match.group(2)), column_number(match.group(1))


def parse_range(text: str) -> tuple[int, int, int, int] | None:
    """Return (first row, first column, last row, last column) of `A1:C9` or `B4`."""
    parts = text.split(" ")[0].split(":")
    first = parse_reference(parts[0])
    last = parse_reference(parts[-1])
    if first is None or last is None:
        return None
    return first[0], first[1], last[0], last[1]


def iter_blocks(stream: IO[bytes], token: bytes, pending: bytes = b"") -> Iterator[bytes]:
    """Yield `pending` and then the stream in blocks, each cut just before the last `token`
    it contains, so that an element starting with `token` is never split between blocks.

    Raises ValueError when more than MAX_ROW_BYTES pass without a cut.
    """
    while True:
        chunk = stream.read(BLOCK_BYTES)
        if not chunk:
            break
        pending += chunk
        cut = pending.rfind(token)
        if cut > 0:
            yield pending[:cut]
            pending = pending[cut:]
        elif len(pending) > MAX_ROW_BYTES:
            raise ValueError(f"more than {MAX_ROW_BYTES >> 20} MB without a row boundary")
    if pending:
        yield pending


def _attributes(raw: bytes) -> dict[bytes, bytes]:
    return {name.split(b":")[-1]: value for name, value in _ATTRIBUTE.findall(raw)}


def _text_length(inner: bytes) -> int:
    """Return the length in UTF-16 code units, as Excel counts, of the text runs in `inner`."""
    raw = b"".join(_TEXT.findall(inner))
    if len(raw) <= MAX_CELL_CHARS:
        return len(raw)
    text = html.unescape(raw.decode("utf-8", "replace"))
    return len(text.encode("utf-16-le")) // 2


def find_long_shared_strings(stream: IO[bytes]) -> dict[int, int]:
    """Return {index: length} of shared strings longer than MAX_CELL_CHARS."""
    long_strings: dict[int, int] = {}
    index = 0
    token = b"<si"
    for block in iter_blocks(stream, token):
        for match in _SHARED_STRING.finditer(block):
            length = _text_length(match.group(1))
            if length > MAX_CELL_CHARS:
                long_strings[index] = length
            index += 1
    return long_strings


@dataclass
class _ScanState:
    """Position and counters carried from one block of a sheet to the next."""

    facts: SheetFacts
    row_budget: int
    long_strings: dict[int, int]
    rows_seen: set[int] = field(default_factory=set)
    prefix: bytes = b""
    row: int = 0
    col: int = 0
    stopped: bool = False


def scan_sheet(stream: IO[bytes], row_budget: int, long_strings: dict[int, int]) -> SheetFacts:
    """Scan one worksheet's XML; stop counting rows once `row_budget` rows hold values."""
    state = _ScanState(SheetFacts(), row_budget, long_strings)
    head = stream.read(BLOCK_BYTES)
    state.prefix = _element_prefix(head)
    try:
        for block in iter_blocks(stream, b"<" + state.prefix + b"row", head):
            _scan_block(block, state)
            if state.stopped:
                break
    except ValueError:
        state.facts.oversized_row = state.row + 1
    return state.facts


def _element_prefix(block: bytes) -> bytes:
    """Return the namespace prefix of the sheet's elements, such as `x:`, or b"" without."""
    match = _ROW_TAG.search(block) or re.search(rb"<(\w+:)?worksheet\b", block)
    if match is None:
        return b""
    tag = match.group(0)[1:]
    return tag.split(b":")[0] + b":" if b":" in tag.split(b" ")[0] else b""


def _scan_block(block: bytes, state: _ScanState) -> None:
    prefix = state.prefix
    if _all_cells_referenced(block, prefix):
        _scan_cells(block, state)
    else:
        _scan_positionally(block, state)
    if b'hidden="1"' in block or b'hidden="true"' in block:
        for match in _HIDDEN_ROW.finditer(block):
            number = _attributes(match.group(0)).get(b"r")
            if number is not None and number.isdigit():
                state.facts.hidden_rows.append(int(number))
    _scan_sheet_elements(block, state.facts)


def _all_cells_referenced(block: bytes, prefix: bytes) -> bool:
    """Return whether every cell start tag in `block` begins with its `r` attribute.

    Counting substrings runs at memory speed; the regex runs only when the counts differ.
    """
    start = b"<" + prefix + b"c"
    plain = block.count(start + b" ") == block.count(start + b' r="')
    if plain and not any(start + end in block for end in (b">", b"/", b"\t", b"\n", b"\r")):
        return True
    return _CELL_WITHOUT_REFERENCE.search(block) is None


def _iter_cells(block: bytes, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield (attributes, content) of each cell that has an end tag, so has content."""
    start_tag, end_tag = b"<" + prefix + b"c", b"</" + prefix + b"c>"
    previous = 0
    end = block.find(end_tag)
    while end >= 0:
        start = max(block.rfind(start_tag + b" ", previous, end),
                    block.rfind(start_tag + b">", previous, end))
        if start >= 0:
            close = block.find(b">", start)
            yield block[start + len(start_tag):close], block[close + 1:end]
        previous = end + len(end_tag)
        end = block.find(end_tag, previous)


def _scan_cells(block: bytes, state: _ScanState) -> None:
    """Visit each row that has a cell with content.

    The cells of a row are parsed one by one only when the row contains a formula, an
    error, long inline text or a reference to an over-long shared string.
    """
    prefix = state.prefix
    row_start, row_end = b"<" + prefix + b"row", b"</" + prefix + b"row>"
    end_cell = b"</" + prefix + b"c>"
    special = (b"<" + prefix + b"f", b't="e"') + ((b't="s"',) if state.long_strings else ())
    position = block.find(end_cell)
    while position >= 0:
        start = block.rfind(row_start, 0, position)
        finish = block.find(row_end, position)
        finish = len(block) if finish < 0 else finish
        row = block[max(start, 0):finish]
        # Inline text can only pass the cell limit in a row longer than that limit.
        if any(marker in row for marker in special) or len(row) > MAX_CELL_CHARS:
            _scan_row_cells(row, state)
        else:
            _record_plain_row(row, state)
        if state.stopped:
            return
        position = block.find(end_cell, finish)


def _record_plain_row(row: bytes, state: _ScanState) -> None:
    """Count a row of plain values: its number, and the column of its last cell."""
    start_tag = b"<" + state.prefix + b"c "
    last = row.rfind(b"</" + state.prefix + b"c>")
    start = row.rfind(start_tag, 0, last)
    reference = _REFERENCE_ATTRIBUTE.search(row, start)
    if reference is None:
        return
    _count_value(state, int(reference.group(2)), column_number(reference.group(1).decode()))


def _scan_row_cells(row: bytes, state: _ScanState) -> None:
    for raw, inner in _iter_cells(row, state.prefix):
        attributes = _attributes(raw)
        reference = parse_reference(attributes.get(b"r", b"").decode("ascii", "replace"))
        if reference is None:
            continue
        _record_cell(state, reference[0], reference[1], attributes, inner)
        if state.stopped:
            return


def _scan_positionally(block: bytes, state: _ScanState) -> None:
    """Walk row and cell tags in order, numbering those without `r` by position."""
    combined = re.compile(rb"<(?:\w+:)?(row|c)\b((?:[^>/]|/(?!>))*)(/?)>", re.S)
    end_cell = re.compile(rb"</(?:\w+:)?c>")
    for match in combined.finditer(block):
        attributes = _attributes(match.group(2))
        if match.group(1) == b"row":
            number = attributes.get(b"r", b"")
            state.row = int(number) if number.isdigit() else state.row + 1
            state.col = 0
            if attributes.get(b"hidden") in (b"1", b"true") and not number.isdigit():
                state.facts.hidden_rows.append(state.row)
            continue
        reference = parse_reference(attributes.get(b"r", b"").decode("ascii", "replace"))
        row, col = reference if reference else (state.row, state.col + 1)
        state.col = col
        if match.group(3) == b"/":
            continue
        close = end_cell.search(block, match.end())
        inner = block[match.end():close.start()] if close else b""
        _record_cell(state, row, col, attributes, inner)
        if state.stopped:
            return


def _record_cell(state: _ScanState, row: int, col: int, attributes: dict[bytes, bytes],
                 inner: bytes) -> None:
    if row < 1 or col < 1:  # a cell outside any row element, which no reader places
        return
    facts = state.facts
    kind = attributes.get(b"t", b"n")
    value = _VALUE.search(inner)
    value_text = value.group(1) if value else b""
    has_formula = _FORMULA.search(inner) is not None
    if kind == b"inlineStr":
        length = _text_length(inner)
        if length > MAX_CELL_CHARS:
            facts.long_cells.append((row, col, length))
        if length == 0 and not has_formula:
            return
    elif not value_text and not has_formula:
        return
    if has_formula and value is None or (has_formula and not value_text and kind != b"str"):
        formula = re.search(rb"<(?:\w+:)?f\b[^>]*>(.*?)</(?:\w+:)?f>", inner, re.S)
        text = html.unescape(formula.group(1).decode("utf-8", "replace")) if formula else ""
        facts.formulas_without_value.append((row, col, text[:200]))
    if kind == b"e":
        facts.error_cells.append((row, col, value_text.decode("utf-8", "replace")[:40]))
    if kind == b"s" and value_text.strip().isdigit():
        length = state.long_strings.get(int(value_text))
        if length is not None:
            facts.long_cells.append((row, col, length))
    _count_value(state, row, col)


def _count_value(state: _ScanState, row: int, col: int) -> None:
    facts = state.facts
    if row not in state.rows_seen:
        if len(state.rows_seen) >= state.row_budget:
            state.stopped = True
            facts.stopped_at_row = row
            return
        state.rows_seen.add(row)
        facts.value_rows += 1
    if row > facts.last_row:
        facts.last_row = row
        facts.far_cell = cell_name(row, col)
    facts.last_col = max(facts.last_col, col)


def _scan_sheet_elements(block: bytes, facts: SheetFacts) -> None:
    """Record merged ranges, the auto-filter range and hidden columns found in `block`."""
    if b"mergeCell" not in block and b"autoFilter" not in block and b"col" not in block:
        return
    for match in _MERGE.finditer(block):
        bounds = parse_range(match.group(1).decode("ascii", "replace"))
        if bounds is not None:
            facts.merged.append(bounds)
    match = _FILTER.search(block)
    if match is not None:
        facts.filter_range = parse_range(match.group(1).decode("ascii", "replace"))
    if b"<cols>" not in block and b":cols>" not in block:
        return
    for match in _COL_TAG.finditer(block):
        attributes = _attributes(match.group(1))
        if attributes.get(b"hidden") not in (b"1", b"true"):
            continue
        first, last = attributes.get(b"min", b""), attributes.get(b"max", b"")
        if first.isdigit() and last.isdigit():
            facts.hidden_columns.append((int(first), int(last)))


# ---------------------------------------------------------------- problems in a sheet


def find_sheet_problems(file: str, grid, reading) -> list[Problem]:
    """Return problems for what the sheet's XML holds inside its operations' area.

    `grid` is a SheetGrid with `facts`, and `reading` the SheetReading of that grid. The
    area is the label block above the lines table and the table's columns from its header
    row down. Formulas without a saved value and error values are reported there; hidden
    or filtered rows and hidden columns are reported when they hold values; merged cells
    when they touch the lines table.
    """
    facts = getattr(grid, "facts", None)
    drafts = list(getattr(reading, "operations", []))
    if facts is None or not drafts:
        return []
    header_row = min(draft.header_row for draft in drafts)
    columns = _table_columns(drafts)
    area = _Area(header_row, min(columns), max(columns), columns)
    problems = _value_problems(file, grid, facts, area)
    problems += _hidden_problems(file, grid, facts, area)
    problems += _merge_problems(file, grid, facts, area)
    return problems


@dataclass
class _Area:
    header_row: int
    first_col: int
    last_col: int
    columns: set[int]

    def covers(self, row: int, col: int) -> bool:
        return row <= self.header_row or col in self.columns


def _table_columns(drafts) -> set[int]:
    columns: set[int] = set()
    for draft in drafts:
        columns.update(draft.line_columns.values())
        if draft.layout == "table":
            columns.update(cell.col for cell in draft.header.values())
    return columns or {1}


def _value_problems(file: str, grid, facts: SheetFacts, area: _Area) -> list[Problem]:
    problems = []
    for row, col, formula in facts.formulas_without_value:
        if area.covers(row, col):
            problems.append(Problem(
                file, grid.name, cell_name(row, col), "formula_without_value",
                f"the formula ={formula} has no saved value, so its result cannot be read; "
                "open the file in Excel or LibreOffice, let it recalculate, save it and drop "
                "it in again, or type the value instead of the formula", f"={formula}",
            ))
    for row, col, error in facts.error_cells:
        if area.covers(row, col):
            problems.append(Problem(
                file, grid.name, cell_name(row, col), "error_value",
                f"the cell shows the error {error}; correct the formula or type the value",
                error,
            ))
    return problems


def _row_has_values(grid, row: int) -> bool:
    if row < 1 or row > len(grid.rows):
        return False
    return any(value is not None and str(value).strip() for value in grid.rows[row - 1])


def _hidden_problems(file: str, grid, facts: SheetFacts, area: _Area) -> list[Problem]:
    problems = []
    filtered = facts.filter_range
    for row in sorted(set(facts.hidden_rows)):
        if not _row_has_values(grid, row):
            continue
        if filtered is not None and filtered[0] < row <= filtered[2]:
            code = "filtered_row"
            message = (f"row {row} is hidden by a filter and contains data; clear the filter so "
                       "every row shows, then drop the file in again")
        else:
            code = "hidden_row"
            message = (f"row {row} is hidden and contains data; unhide it to have it applied, or "
                       "delete it")
        problems.append(Problem(file, grid.name, cell_name(row, 1), code, message))
    for first, last in facts.hidden_columns:
        for col in sorted(c for c in area.columns if first <= c <= last):
            problems.append(Problem(
                file, grid.name, cell_name(area.header_row, col), "hidden_column",
                f"column {column_letter(col)} of the lines table is hidden; unhide it so "
                "that every value that is applied can be seen",
            ))
    return problems


def _merge_problems(file: str, grid, facts: SheetFacts, area: _Area) -> list[Problem]:
    problems = []
    for first_row, first_col, last_row, last_col in facts.merged:
        touches_rows = last_row >= area.header_row
        touches_cols = first_col <= area.last_col and last_col >= area.first_col
        if not (touches_rows and touches_cols):
            continue
        first = cell_name(first_row, first_col)
        problems.append(Problem(
            file, grid.name, first, "merged_cells",
            f"cells {first}:{cell_name(last_row, last_col)} are merged inside the lines table; "
            "a merged cell keeps its value in the first cell only, so unmerge them and fill "
            "in every row", first,
        ))
    return problems
