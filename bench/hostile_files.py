"""Measure time and peak memory of each hostile test file through the inbox.

Each file is built by tests/hostile_workbooks.py, dropped in a fresh workspace with the
test catalogue, and processed by `watcher.run_pass` in its own Python process, whose peak
resident memory (VmHWM, which includes the interpreter and imported libraries) is read
from /proc. Prints one Markdown table row per file.

    python bench/hostile_files.py            # from the repository root
    python bench/hostile_files.py --rows 9999   # a valid table arrival of 9,999 lines
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
BUILDERS = [
    "renamed_csv", "renamed_html", "renamed_pdf", "renamed_png", "old_xls", "macro_workbook",
    "password_protected", "truncated", "corrupt", "zip_bomb", "entity_expansion",
    "huge_dimension", "stray_far_cell", "million_rows", "megabyte_cell",
    "formula_without_value", "error_values", "merged_lines", "hidden_line", "filtered_line",
    "hidden_quantity_column",
    "hidden_sheet", "duplicate_header",
]

ONE_FILE = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from batchstock.config import init_workspace
from batchstock.watcher import run_pass
from conftest import drop

workspace = init_workspace(Path(sys.argv[1]))
(workspace.root / "batchstock.toml").write_text("[inbox]\\nincomplete_after_seconds = 0\\n")
from batchstock.config import open_workspace
workspace = open_workspace(workspace.root)
drop(workspace, Path(sys.argv[2]), user="anna")
started = time.monotonic()
result = run_pass(workspace).filed[0].result
seconds = time.monotonic() - started
status = Path("/proc/self/status").read_text()
peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) // 1024
codes = sorted({p.code for p in result.problems})
print(json.dumps({"status": result.status, "codes": codes, "seconds": seconds, "mb": peak}))
"""


def build(folder: Path, name: str) -> Path:
    sys.path.insert(0, str(TESTS))
    import hostile_workbooks

    return getattr(hostile_workbooks, name)(folder / f"{name}.xlsx")


def write_table_arrival(path: Path, lines: int) -> Path:
    """A table-layout arrival of `lines` lines of one product, 7 columns, by xlsxwriter."""
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("Arrivals")
    sheet.write_row(0, 0, ["Date", "Document no.", "Operation", "Storage", "SKU", "Quantity",
                           "Unit cost"])
    for row in range(1, lines + 1):
        day = (row // 3) % 28 + 1
        sheet.write_row(row, 0, [f"2026-11-{day:02d} 10:00", f"R-{row // 3:06d}", "Arrival",
                                 "Products", "SH-ARG-250", 1, 9.45])
    workbook.close()
    return path


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="hostile-"))
    catalogue = build_catalogue(folder)
    if "--rows" in sys.argv:
        lines = int(sys.argv[sys.argv.index("--rows") + 1])
        builders = [("table_arrival", write_table_arrival(folder / "table.xlsx", lines))]
    else:
        builders = [(name, build(folder, name)) for name in BUILDERS]
    print("| file | size | status | problem codes | seconds | peak MB |")
    print("|---|---|---|---|---|---|")
    for name, path in builders:
        root = folder / f"ws-{name}"
        root.mkdir()
        (root / "ledger.duckdb").write_bytes(catalogue.read_bytes())
        completed = subprocess.run(
            [sys.executable, "-c", ONE_FILE, str(root), str(path), str(TESTS)],
            capture_output=True, text=True, cwd=TESTS, check=True)
        measured = json.loads(completed.stdout.strip().splitlines()[-1])
        print(f"| {name} | {path.stat().st_size:,} B | {measured['status']} | "
              f"{', '.join(measured['codes']) or '-'} | {measured['seconds']:.2f} | "
              f"{measured['mb']} |")


def build_catalogue(folder: Path) -> Path:
    """A ledger with the tests' catalogue imported, copied into each workspace."""
    sys.path.insert(0, str(TESTS))
    from batchstock.config import init_workspace
    from ingest_workbooks import catalogue_sheets, submit, write_rows

    workspace = init_workspace(folder / "catalogue")
    filed = submit(workspace, write_rows(folder / "catalogue.xlsx", catalogue_sheets()),
                   user="manager")
    assert filed.result.status == "applied"
    return workspace.ledger_path


if __name__ == "__main__":
    main()
