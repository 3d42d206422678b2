"""Hostile and broken files dropped in the inbox: each gets its problem and its result
workbook, leaves the ledger untouched, and is handled in bounded time and memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hostile_workbooks as hostile
from ingest_workbooks import (
    query,
    stocked,  # noqa: F401 (fixture)
    stocked_ledger,  # noqa: F401 (fixture)
    submit,
)

# Seconds one hostile file may take from drop to result on a loaded 2-core CI machine;
# the measured times are in docs/reliability.md.
TIME_LIMIT = 30.0
MEMORY_LIMIT_MB = 500

REJECTED_PACKAGES = [
    ("renamed_csv", "not_a_workbook", None, None),
    ("renamed_html", "not_a_workbook", None, None),
    ("renamed_pdf", "not_a_workbook", None, None),
    ("renamed_png", "not_a_workbook", None, None),
    ("old_xls", "old_excel_format", None, None),
    ("macro_workbook", "macro_workbook", None, None),
    ("password_protected", "password_protected", None, None),
    ("corrupt", "corrupt_workbook", None, None),
    ("zip_bomb", "package_too_large", None, None),
    ("entity_expansion", "xml_entities", None, None),
    ("stray_far_cell", "sheet_too_large", "Arrival", "Z1048576"),
    ("megabyte_cell", "cell_too_long", "Arrival", "C6"),
]

SUSPICIOUS_SHEETS = [
    ("formula_without_value", "formula_without_value", "Arrival", "B6"),
    ("error_values", "error_value", "Arrival", "B6"),
    ("merged_lines", "merged_cells", "Arrival", "A6"),
    ("hidden_line", "hidden_row", "Arrival", "A7"),
    ("filtered_line", "filtered_row", "Arrival", "A7"),
    ("hidden_quantity_column", "hidden_column", "Arrival", "B5"),
    ("hidden_sheet", "hidden_sheet", "More", "A1"),
    ("duplicate_header", "duplicate_header", "Arrival", "C5"),
]


@pytest.fixture(scope="session")
def heavy_files(tmp_path_factory) -> dict[str, Path]:
    """The files that take seconds to build, built once."""
    folder = tmp_path_factory.mktemp("heavy")
    return {
        "million_rows": hostile.million_rows(folder / "million-rows.xlsx"),
        "huge_dimension": hostile.huge_dimension(folder / "huge-dimension.xlsx"),
    }


def movement_count(workspace) -> int:
    return query(workspace, "SELECT count(*) FROM movement_entries")[0][0]


def submit_timed(workspace, path: Path):
    started = time.monotonic()
    filed = submit(workspace, path)
    return filed, time.monotonic() - started


def assert_rejected_whole(workspace, filed, code, sheet, cell) -> None:
    result = filed.result
    assert result.status == "rejected"
    assert (code, sheet, cell) in {(p.code, p.sheet, p.cell) for p in result.problems}
    assert filed.result_path.is_file()
    assert filed.original_path.parent == workspace.rejected / "anna"
    assert filed.original_path.is_file()
    assert movement_count(workspace) == 0


@pytest.mark.parametrize("builder, code, sheet, cell", REJECTED_PACKAGES)
def test_hostile_package_rejected(stocked, tmp_path, builder, code, sheet, cell):
    path = getattr(hostile, builder)(tmp_path / f"{builder}.xlsx")

    filed, seconds = submit_timed(stocked, path)

    assert_rejected_whole(stocked, filed, code, sheet, cell)
    assert seconds < TIME_LIMIT


@pytest.mark.parametrize("builder, code, sheet, cell", SUSPICIOUS_SHEETS)
def test_suspicious_sheet_rejected(stocked, tmp_path, builder, code, sheet, cell):
    path = getattr(hostile, builder)(tmp_path / f"{builder}.xlsx")

    filed = submit(stocked, path)

    assert_rejected_whole(stocked, filed, code, sheet, cell)


def test_error_values_located(stocked, tmp_path):
    filed = submit(stocked, hostile.error_values(tmp_path / "errors.xlsx"))

    errors = {(p.cell, p.value) for p in filed.result.problems if p.code == "error_value"}
    assert errors == {("B6", "#N/A"), ("B7", "#VALUE!")}


def test_truncated_file_rejected_as_incomplete(stocked, tmp_path):
    stocked.root.joinpath("batchstock.toml").write_text(
        "[inbox]\nincomplete_after_seconds = 0\n", encoding="utf-8")
    from batchstock.config import open_workspace

    workspace = open_workspace(stocked.root)
    filed = submit(workspace, hostile.truncated(tmp_path / "cut.xlsx"))

    assert_rejected_whole(workspace, filed, "incomplete_file", None, None)


def test_million_rows_rejected_with_limit(stocked, heavy_files):
    filed, seconds = submit_timed(stocked, heavy_files["million_rows"])

    assert_rejected_whole(stocked, filed, "too_many_rows", "Arrival", "A10002")
    assert "10,000" in filed.result.problems[0].message
    assert seconds < TIME_LIMIT


def test_huge_dimension_reads_real_rows(stocked, heavy_files):
    filed, seconds = submit_timed(stocked, heavy_files["huge_dimension"])

    assert filed.result.status == "applied", filed.result.problems
    assert [op.line_count for op in filed.result.operations] == [2]
    assert seconds < TIME_LIMIT


def test_hidden_sheet_never_applied(stocked, tmp_path):
    filed = submit(stocked, hostile.hidden_sheet(tmp_path / "hidden.xlsx"))

    assert filed.result.status == "rejected"
    assert movement_count(stocked) == 0


def test_internal_error_rejects_file(stocked, tmp_path, monkeypatch):
    from batchstock import pipeline

    def explode(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(pipeline, "validate_drafts", explode)
    filed = submit(stocked, hostile.arrival(tmp_path / "arrival.xlsx"))

    assert filed.result.status == "rejected"
    assert [p.code for p in filed.result.problems] == ["internal_error"]
    assert "simulated bug" in filed.result.problems[0].message
    assert filed.result_path.is_file()
    assert movement_count(stocked) == 0


def test_internal_error_keeps_next_file(stocked, tmp_path, monkeypatch):
    from batchstock import pipeline
    from batchstock.watcher import run_pass
    from conftest import drop

    original = pipeline.validate_drafts
    calls = []

    def fail_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated bug")
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "validate_drafts", fail_first)
    drop(stocked, hostile.arrival(tmp_path / "first.xlsx"), user="anna")
    drop(stocked, hostile.arrival(tmp_path / "second.xlsx", [["COMB-CARB", 5]]), user="anna")
    report = run_pass(stocked)

    assert [f.result.status for f in report.filed] == ["rejected", "applied"]


MEASURE_SCRIPT = """
import json, sys, time
from pathlib import Path
from batchstock.config import open_workspace
from batchstock.watcher import run_pass
from conftest import drop

workspace = open_workspace(sys.argv[1])
timings = {}
for name in sys.argv[2:]:
    drop(workspace, Path(name), user="anna")
    started = time.monotonic()
    report = run_pass(workspace)
    timings[Path(name).name] = [round(time.monotonic() - started, 2),
                                report.filed[0].result.status]
# VmHWM is this program's own peak; ru_maxrss would include the parent's size at fork.
status = Path("/proc/self/status").read_text()
peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) // 1024
print(json.dumps({"peak_mb": peak, "seconds": timings}))
"""


def test_hostile_files_memory_bound(stocked, heavy_files, tmp_path):
    files = [heavy_files["million_rows"], heavy_files["huge_dimension"],
             hostile.zip_bomb(tmp_path / "bomb.xlsx"),
             hostile.megabyte_cell(tmp_path / "long-cell.xlsx"),
             hostile.stray_far_cell(tmp_path / "far-cell.xlsx"),
             hostile.entity_expansion(tmp_path / "entities.xlsx")]
    tests_folder = Path(__file__).resolve().parent
    completed = subprocess.run(
        [sys.executable, "-c", MEASURE_SCRIPT, str(stocked.root), *map(str, files)],
        capture_output=True, text=True, timeout=600, cwd=tests_folder,
        env={**os.environ, "PYTHONPATH": str(tests_folder)},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    measured = json.loads(completed.stdout.strip().splitlines()[-1])

    assert measured["peak_mb"] < MEMORY_LIMIT_MB, measured
    assert all(seconds < TIME_LIMIT for seconds, _ in measured["seconds"].values()), measured


def test_catalog_import_rejects_hostile_file(stocked, tmp_path):
    path = hostile.macro_workbook(tmp_path / "catalogue.xlsx")

    completed = subprocess.run(
        [sys.executable, "-m", "batchstock.cli", "catalog", "import", str(path),
         "--workspace", str(stocked.root)], capture_output=True, text=True, timeout=120)

    assert completed.returncode == 1
    assert "macros" in completed.stderr
