"""Exports of the operations list: rows, summary, cost columns, filters and rights,
re-creation as of a ledger position, the Excel row limit, flat memory, and export requests
dropped in the inbox."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from batchstock import export_workbook, ledger
from batchstock.cli import main
from batchstock.config import Workspace, load_settings
from batchstock.export_requests import write_export_request_template
from batchstock.exports import (
    ExportRequest,
    ExportRequestError,
    export_operations,
    request_from_entry,
)
from batchstock.watcher import run_pass
from conftest import REPO, apply_samples, drop
from export_helpers import fill_ledger, read_lines, read_summary, write_config

NOVEMBER = (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
HEADER = ("Operation id", "Line", "Type", "Status", "Version", "Date", "Storage", "To storage",
          "Supplier or client", "Document no.", "SKU", "Product", "Quantity", "Unit",
          "Unit price", "Unit cost", "Discount %", "Subtotal", "Cost subtotal")

USERS = """
[users.manager]
email = "manager@salon.example"
edit = true
cancel = true
export = true
download_others = true
see_costs = true

[users.anna]
email = "anna@salon.example"
export = true
see_costs = false

[users.ben]
email = "ben@salon.example"
export = false

[users.branch]
storages = ["Branch 2 shelf"]
types = ["relocation", "sale"]
export = true
see_costs = true
"""


@pytest.fixture(scope="module")
def sample_ledger(tmp_path_factory, samples) -> Path:
    """A workspace with the sample month applied, built once and copied per test."""
    from batchstock.config import init_workspace

    root = tmp_path_factory.mktemp("samples") / "ws"
    workspace = init_workspace(root)
    ledger.connect(workspace.ledger_path).close()
    apply_samples(workspace, samples)
    return root


@pytest.fixture(scope="module")
def samples() -> Path:
    from conftest import samples_dir

    return samples_dir()


@pytest.fixture
def sampled(sample_ledger, tmp_path) -> Workspace:
    root = tmp_path / "ws"
    shutil.copytree(sample_ledger, root)
    return write_config(Workspace(root, load_settings(root)), USERS)


def run_export(workspace: Workspace, user: str = "manager", period=NOVEMBER, **filters):
    con = ledger.connect(workspace.ledger_path)
    try:
        request = ExportRequest(period[0], period[1], user, **filters)
        return export_operations(workspace, con, request)
    finally:
        con.close()


def query(workspace: Workspace, sql: str, parameters: list | None = None) -> list[tuple]:
    con = ledger.connect(workspace.ledger_path)
    try:
        return con.execute(sql, parameters or []).fetchall()
    finally:
        con.close()


def as_number(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def row_amount(row: tuple) -> Decimal | None:
    """Return a row's Subtotal for sales, Cost subtotal for arrivals, and 0 otherwise."""
    if row[2] == "sale":
        return as_number(row[17])
    if row[2] == "arrival":
        return as_number(row[18])
    return Decimal(0)


# Rows and summary


def test_export_rows_match_ledger_lines(sampled):
    export = run_export(sampled)
    rows = read_lines(export.path)
    assert rows[0] == HEADER
    expected = query(sampled, """
        SELECT o.operation_id, l.line_no, o.type, l.sku, l.quantity, l.subtotal
        FROM operations o JOIN operation_lines l USING (operation_id)
        WHERE o.occurred_at >= '2026-11-01' AND o.occurred_at < '2026-12-01'
        ORDER BY o.occurred_at, o.operation_id, l.line_no""")
    assert len(rows) - 1 == len(expected) == export.row_count
    got = [(r[0], r[1], r[2], r[10], as_number(r[12]), row_amount(r)) for r in rows[1:]]
    wanted = [(op, line, kind, sku, quantity, subtotal if kind in ("sale", "arrival") else 0)
              for op, line, kind, sku, quantity, subtotal in expected]
    assert got == wanted


def test_export_arrival_row_values(sampled):
    rows = read_lines(run_export(sampled).path)
    first = dict(zip(HEADER, rows[1]))
    assert first["Operation id"] == "OP-000001"
    assert first["Type"] == "arrival"
    assert first["Status"] == "active"
    assert first["Date"] == dt.datetime(2026, 11, 2, 10, 0)
    assert first["Storage"] == "Products"
    assert first["Supplier or client"] == "Beauty Wholesale Ltd"
    assert first["Document no."] == "DN-7781"
    assert first["SKU"] == "SH-ARG-250"
    assert first["Unit cost"] == 9.45
    assert first["Unit price"] is None
    assert first["Cost subtotal"] == 113.4


def test_summary_sheet_and_data_log(sampled):
    export = run_export(sampled, types=("sale",))
    summary = read_summary(export.path)
    assert summary["Requested by"] == "manager"
    assert summary["From"] == dt.datetime(2026, 11, 1)
    assert summary["To"] == dt.datetime(2026, 11, 30)
    assert summary["Types"] == "sale"
    assert summary["Rows"] == export.row_count
    assert summary["Ledger position"] == export.ledger_position
    assert summary["Cost columns"] == "included"
    logged = query(sampled, "SELECT kind, requested_by, row_count, ledger_position, sha256, "
                            "parameters, delivery_status FROM data_log WHERE entry_id = ?",
                   [export.entry_id])[0]
    assert logged[:5] == ("export", "manager", export.row_count, export.ledger_position,
                          export.sha256)
    assert json.loads(logged[5])["types"] == ["sale"]
    assert logged[6] == "pending"
    assert export.ledger_position == query(
        sampled, "SELECT max(change_no) FROM change_log")[0][0]


def test_export_file_in_manifest(sampled):
    export = run_export(sampled)
    lines = [json.loads(line) for line in sampled.manifest_path.read_text().splitlines()]
    mine = [line for line in lines if line.get("id") == export.entry_id and "kind" in line]
    assert mine[0]["kind"] == "export"
    assert mine[0]["sha256"] == export.sha256


def test_cost_columns_left_out(sampled):
    export = run_export(sampled, user="anna")
    rows = read_lines(export.path)
    assert "Unit cost" not in rows[0]
    assert "Cost subtotal" not in rows[0]
    assert "Unit price" in rows[0]
    assert len(rows[0]) == len(HEADER) - 2
    assert read_summary(export.path)["Cost columns"].startswith("left out")
    parameters = query(sampled, "SELECT parameters FROM data_log WHERE entry_id = ?",
                       [export.entry_id])[0][0]
    assert json.loads(parameters)["cost_columns"] is False


# Filters and rights


def test_type_filter(sampled):
    rows = read_lines(run_export(sampled, types=("write-off",)).path)
    assert {row[2] for row in rows[1:]} == {"write-off"}


def test_storage_filter_matches_either_side(sampled):
    rows = read_lines(run_export(sampled, storages=("branch 2 shelf",)).path)
    assert {row[2] for row in rows[1:]} == {"relocation", "sale"}
    assert all("Branch 2 shelf" in (row[6], row[7]) for row in rows[1:])


def test_period_filter(sampled):
    rows = read_lines(run_export(sampled, period=(dt.date(2026, 11, 2), dt.date(2026, 11, 3))).path)
    assert {row[5].date() for row in rows[1:]} == {dt.date(2026, 11, 2), dt.date(2026, 11, 3)}


def test_restricted_user_sees_own_storages(sampled):
    export = run_export(sampled, user="branch")
    rows = read_lines(export.path)
    assert rows[1:]
    assert all("Branch 2 shelf" in (row[6], row[7]) for row in rows[1:])
    assert {row[2] for row in rows[1:]} <= {"relocation", "sale"}
    assert read_summary(export.path)["Limited to storages"] == "Branch 2 shelf"


@pytest.mark.parametrize(("user", "filters", "code", "field"), [
    ("ben", {}, "export_denied", None),
    ("../manager", {}, "invalid_user", None),
    ("stranger", {}, "export_denied", None),
    ("manager", {"types": ("sales",)}, "unknown_type", "type"),
    ("manager", {"storages": ("Attic",)}, "unknown_storage", "storage"),
    ("branch", {"storages": ("Products",)}, "storage_denied", "storage"),
    ("branch", {"types": ("arrival",)}, "type_denied", "type"),
    ("manager", {"period": (dt.date(2026, 11, 30), dt.date(2026, 11, 1))}, "invalid_period",
     "from"),
])
def test_request_rejected(sampled, user, filters, code, field):
    with pytest.raises(ExportRequestError) as caught:
        run_export(sampled, user=user, **filters)
    assert caught.value.code == code
    assert caught.value.field == field
    assert query(sampled, "SELECT count(*) FROM data_log WHERE kind = 'export'")[0][0] == 0


# Re-creating an export as of its ledger position


def recreate(workspace: Workspace, entry_id: int):
    con = ledger.connect(workspace.ledger_path)
    try:
        request, position = request_from_entry(con, entry_id)
        return export_operations(workspace, con, request, as_of=position,
                                 recreated_from=entry_id)
    finally:
        con.close()


def write_rows(path: Path, sheets: dict[str, list[list]]) -> Path:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def submit(workspace: Workspace, path: Path, user: str = "manager") -> str:
    drop(workspace, path, user=user)
    report = run_pass(workspace)
    result = report.filed[0].result
    assert result.status == "applied", result.problems
    return result.status


def arrival_rows(quantity: int, day: int, operation_id: str | None = None,
                 version: int | None = None) -> list[list]:
    rows = [["Operation", "Arrival"], ["Date", dt.datetime(2026, 11, day, 9, 0)],
            ["Storage", "Products"], ["Supplier", "Late Supplier"]]
    if operation_id:
        rows += [["Operation id", operation_id], ["Version", version]]
    return rows + [[], ["SKU", "Quantity", "Unit cost"], ["SH-ARG-250", quantity, 9.45]]


def test_recreate_after_later_operations(sampled, tmp_path):
    first = run_export(sampled)
    submit(sampled, write_rows(tmp_path / "late.xlsx", {"Arrival": arrival_rows(5, 20)}))
    fresh = run_export(sampled)
    assert fresh.row_count == first.row_count + 1
    again = recreate(sampled, first.entry_id)
    assert again.ledger_position == first.ledger_position
    assert read_lines(again.path) == read_lines(first.path)
    assert read_summary(again.path)["Re-created from"] == f"data log entry {first.entry_id}"
    assert query(sampled, "SELECT ledger_position FROM data_log WHERE entry_id = ?",
                 [again.entry_id])[0][0] == first.ledger_position


def test_recreate_after_edit_and_cancel(sampled, tmp_path):
    submit(sampled, write_rows(tmp_path / "late.xlsx", {"Arrival": arrival_rows(5, 20)}))
    new_id = query(sampled, "SELECT max(operation_id) FROM operations")[0][0]
    first = run_export(sampled)
    edited = arrival_rows(7, 21, operation_id=new_id, version=1)
    submit(sampled, write_rows(tmp_path / "late-edit.xlsx", {"Arrival": edited}))
    assert query(sampled, "SELECT version, status FROM operations WHERE operation_id = ?",
                 [new_id]) == [(2, "active")]
    middle = run_export(sampled)
    submit(sampled, write_rows(tmp_path / "cancel.xlsx",
                               {"Cancel": [["Operation id", "Version"], [new_id, 2]]}))
    assert query(sampled, "SELECT status FROM operations WHERE operation_id = ?",
                 [new_id]) == [("cancelled",)]

    first_rows = read_lines(first.path)
    middle_rows = read_lines(middle.path)
    assert read_lines(recreate(sampled, first.entry_id).path) == first_rows
    assert read_lines(recreate(sampled, middle.entry_id).path) == middle_rows
    by_id = {row[0]: row for row in first_rows[1:]}
    assert by_id[new_id][3:5] == ("active", 1)
    assert by_id[new_id][12] == 5
    moved = {row[0]: row for row in middle_rows[1:]}
    assert moved[new_id][3:6] == ("active", 2, dt.datetime(2026, 11, 21, 9, 0))
    assert moved[new_id][12] == 7
    latest = {row[0]: row for row in read_lines(run_export(sampled).path)[1:]}
    assert latest[new_id][3:5] == ("cancelled", 2)


def test_recreate_keeps_product_name(sampled, tmp_path):
    first = run_export(sampled)
    products = [["SKU", "Name", "Sale unit", "Write-off unit", "Equals"],
                ["SH-ARG-250", "Argan shampoo (new label)", "pcs", "ml", 250]]
    storages = [["Name", "Type"], ["Products", "sale"]]
    submit(sampled, write_rows(tmp_path / "rename.xlsx",
                               {"Products": products, "Storages": storages}))
    renamed = {row[11] for row in read_lines(run_export(sampled).path)[1:]}
    assert "Argan shampoo (new label)" in renamed
    assert read_lines(recreate(sampled, first.entry_id).path) == read_lines(first.path)


def test_recreate_unknown_entry(sampled):
    with pytest.raises(ExportRequestError) as caught:
        recreate(sampled, 1)
    assert caught.value.code == "unknown_export"


# Large exports


def test_rows_continue_on_next_sheet(workspace, monkeypatch):
    monkeypatch.setattr(export_workbook, "MAX_DATA_ROWS", 7)
    con = ledger.connect(workspace.ledger_path)
    fill_ledger(con, 4, 5)
    con.close()
    export = run_export(workspace, period=(dt.date(2026, 11, 1), dt.date(2026, 11, 2)))
    workbook = openpyxl.load_workbook(export.path, read_only=True)
    assert workbook.sheetnames == ["Summary", "Lines", "Lines 2", "Lines 3"]
    assert [workbook[name].max_row for name in workbook.sheetnames[1:]] == [8, 8, 7]
    workbook.close()
    rows = read_lines(export.path)
    assert len(rows) == 21
    assert [row[:2] for row in rows[1:7]] == [("OP-000001", n) for n in range(1, 6)] + [
        ("OP-000002", 1)]


def test_progress_reports_every_page(workspace, monkeypatch):
    from batchstock import exports

    monkeypatch.setattr(exports, "PAGE_ROWS", 30)
    con = ledger.connect(workspace.ledger_path)
    fill_ledger(con, 20, 5)
    calls = []
    request = ExportRequest(dt.date(2026, 11, 1), dt.date(2026, 11, 30), "manager")
    export = export_operations(workspace, con, request, lambda done, total: calls.append(
        (done, total)))
    con.close()
    assert export.row_count == 100
    assert calls[-1] == (100, 100)
    assert len(calls) == 4
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


MEMORY_SCRIPT = textwrap.dedent("""
    import datetime as dt, resource, sys
    from pathlib import Path
    from batchstock import ledger
    from batchstock.config import init_workspace
    from batchstock.exports import ExportRequest, export_operations
    sys.path.insert(0, sys.argv[3])
    from export_helpers import fill_ledger
    workspace = init_workspace(Path(sys.argv[1]))
    con = ledger.connect(workspace.ledger_path)
    fill_ledger(con, int(sys.argv[2]), 10)
    # The first export, of 1,000 operations (two pages), warms up imports and caches.
    export_operations(workspace, con, ExportRequest(dt.date(2026, 1, 1),
                                                    dt.date(2026, 12, 12), "manager"))
    request = ExportRequest(dt.date(2026, 1, 1), dt.date(2040, 1, 1), "manager")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    export = export_operations(workspace, con, request)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("result", export.row_count, (after - before) // 1024)
""")


def peak_growth_mib(tmp_path: Path, operations: int) -> tuple[int, int]:
    """Export `operations` × 10 lines in a fresh process; return (rows, peak RSS growth)."""
    output = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / f"ws{operations}"),
         str(operations), str(REPO / "tests")],
        capture_output=True, text=True, check=True, timeout=3600,
    ).stdout
    result = [line.split() for line in output.splitlines() if line.startswith("result ")]
    return int(result[-1][1]), int(result[-1][2])


def test_memory_stays_flat(tmp_path):
    """Peak memory of a long export is no higher than of a short one, within noise.

    CI exports 20,000 lines; BATCHSTOCK_FULL=1 exports a million.
    """
    full = os.environ.get("BATCHSTOCK_FULL") == "1"
    long_operations = 100_000 if full else 2_000
    rows, growth = peak_growth_mib(tmp_path, long_operations)
    assert rows == long_operations * 10
    # The warm-up export already reached the peak that a page needs, so a longer export
    # must not raise it by more than allocator noise.
    assert growth < 40, f"peak RSS grew by {growth} MiB while exporting {rows} lines"


# The command line


def test_export_command(sampled):
    result = CliRunner().invoke(main, [
        "export", "operations", "--workspace", str(sampled.root), "--from", "2026-11-01",
        "--to", "2026-11-30", "--type", "sale", "--requested-by", "anna"])
    assert result.exit_code == 0, result.output
    assert "saved: outbox/mail/" in result.output
    rows = query(sampled, "SELECT requested_by, row_count FROM data_log WHERE kind = 'export'")
    assert rows[0][0] == "anna"
    assert rows[0][1] > 0


def test_export_command_denied(sampled):
    result = CliRunner().invoke(main, [
        "export", "operations", "--workspace", str(sampled.root), "--from", "2026-11-01",
        "--to", "2026-11-30", "--requested-by", "ben"])
    assert result.exit_code == 1
    assert "may not export" in result.output


def test_recreate_command(sampled):
    first = run_export(sampled)
    result = CliRunner().invoke(main, [
        "export", "recreate", "--workspace", str(sampled.root), str(first.entry_id)])
    assert result.exit_code == 0, result.output
    latest = query(sampled, "SELECT max(entry_id) FROM data_log WHERE kind = 'export'")[0][0]
    path = sampled.root / query(sampled, "SELECT path FROM data_log WHERE entry_id = ?",
                                [latest])[0][0]
    assert read_lines(path) == read_lines(first.path)


def test_log_command_filters(sampled):
    run_export(sampled, user="anna")
    runner = CliRunner()
    result = runner.invoke(main, ["log", "--workspace", str(sampled.root), "--kind", "export"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert "export" in lines[1]
    assert "anna" in lines[1]
    assert not any(" result " in line for line in lines)
    result = runner.invoke(main, ["log", "--workspace", str(sampled.root), "--user", "nobody"])
    assert result.output.strip() == "The data log has no matching entries."


# Export requests dropped in the inbox


def request_rows(**values) -> list[list]:
    rows = [["Export", "operations"], ["From", dt.datetime(2026, 11, 1)],
            ["To", dt.datetime(2026, 11, 30)], ["Type", None], ["Storage", None]]
    for row in rows:
        key = row[0].lower()
        if key in values:
            row[1] = values[key]
    return rows


def drop_request(workspace: Workspace, tmp_path: Path, user: str, **values):
    path = write_rows(tmp_path / "request.xlsx", {"Export": request_rows(**values)})
    drop(workspace, path, user=user)
    report = run_pass(workspace)
    assert len(report.filed) == 1
    return report.filed[0]


def test_request_in_inbox_runs_export(sampled, tmp_path):
    filed = drop_request(sampled, tmp_path, "anna", type="sale, write-off")
    assert filed.result.status == "applied", filed.result.problems
    entry = query(sampled, "SELECT entry_id, path, requested_by, parameters, delivery_status, "
                           "source_batch FROM data_log WHERE kind = 'export'")
    assert len(entry) == 1
    entry_id, path, requester, parameters, delivery, batch_id = entry[0]
    assert requester == "anna"
    assert json.loads(parameters)["types"] == ["sale", "write-off"]
    assert delivery.startswith("saved: outbox/mail/")
    assert batch_id == filed.result.batch_id
    assert query(sampled, "SELECT kind, status FROM batches WHERE batch_id = ?",
                 [batch_id]) == [("export request", "applied")]
    rows = read_lines(sampled.root / path)
    assert {row[2] for row in rows[1:]} == {"sale", "write-off"}
    assert "Unit cost" not in rows[0]
    assert any(f"data log entry {entry_id}" in note.message for note in filed.result.notes)
    assert (sampled.archive / "anna" / "request.xlsx").exists()


def test_same_request_runs_again(sampled, tmp_path):
    assert drop_request(sampled, tmp_path, "anna").result.status == "applied"
    assert drop_request(sampled, tmp_path, "anna").result.status == "applied"
    assert query(sampled, "SELECT count(*) FROM data_log WHERE kind = 'export'")[0][0] == 2


@pytest.mark.parametrize(("values", "user", "expected"), [
    ({"from": None}, "anna", [("missing_date", "Export", "B2")]),
    ({"to": "30.13.2026"}, "anna", [("invalid_date", "Export", "B3")]),
    ({"type": "sales"}, "anna", [("unknown_type", "Export", "B4")]),
    ({"storage": "Attic"}, "anna", [("unknown_storage", "Export", "B5")]),
    ({"export": "products"}, "anna", [("unknown_export", "Export", "B1")]),
    ({"from": dt.datetime(2026, 12, 1)}, "anna", [("invalid_period", "Export", "B2")]),
    ({}, "ben", [("export_denied", "Export", "A1")]),
])
def test_request_problems_located(sampled, tmp_path, values, user, expected):
    filed = drop_request(sampled, tmp_path, user, **values)
    assert filed.result.status == "rejected"
    assert [(p.code, p.sheet, p.cell) for p in filed.result.problems] == expected
    assert query(sampled, "SELECT count(*) FROM data_log WHERE kind = 'export'")[0][0] == 0
    assert query(sampled, "SELECT status FROM batches WHERE batch_id = ?",
                 [filed.result.batch_id]) == [("rejected",)]
    assert (sampled.rejected / user / "request.xlsx").exists()


def test_check_does_not_run_request(sampled, tmp_path):
    path = write_rows(tmp_path / "request.xlsx", {"Export": request_rows()})
    result = CliRunner().invoke(main, ["check", "--workspace", str(sampled.root), str(path)])
    assert result.exit_code == 0, result.output
    assert query(sampled, "SELECT count(*) FROM data_log WHERE kind = 'export'")[0][0] == 0


def test_export_sheet_without_period_ignored(sampled, tmp_path):
    rows = [["Date", "Storage", "SKU", "Quantity", "Price"],
            [dt.datetime(2026, 11, 20, 12, 0), "Products", "SH-ARG-250", 1, 18.9]]
    path = write_rows(tmp_path / "till.xlsx", {"Export": rows})
    drop(sampled, path, user="manager")
    result = run_pass(sampled).filed[0].result
    assert result.status == "rejected"
    assert "missing_type" in {p.code for p in result.problems}


def test_blank_request_template_committed(tmp_path):
    path = tmp_path / "export-request.xlsx"
    write_export_request_template(path)
    committed = REPO / "templates" / "export-request.xlsx"
    assert committed.read_bytes() == path.read_bytes(), (
        "templates/export-request.xlsx is stale; rewrite it with "
        "write_export_request_template")


def test_blank_request_reports_missing_dates(sampled):
    drop(sampled, REPO / "templates" / "export-request.xlsx", user="anna")
    result = run_pass(sampled).filed[0].result
    assert [(p.code, p.cell) for p in result.problems] == [("missing_date", "B2"),
                                                          ("missing_date", "B3")]
