"""Report workbooks, from the sample month and from small ledgers built in each test.

The sample month's movements close at the expected balances. Each report has its header,
formats, totals and Parameters sheet, converts in LibreOffice, and is registered in the
data log. Stock flags, order quantities and sales margins match hand-worked figures.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import threading
import time
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from batchstock import ledger
from batchstock.cli import main
from batchstock.config import init_workspace
from batchstock.pipeline import file_sha256
from batchstock.reports import ReportRequest
from batchstock.reports_stock import CURRENT_STOCK_FILE, stock_refresher
from batchstock.watcher import run_pass, watch
from conftest import apply_samples, drop, samples_dir
from report_workbooks import Ledger, day, process, write_sheets

D = Decimal
REPORT_COMMANDS = {
    "stock": ["report", "stock"],
    "stock at": ["report", "stock", "--at", "2026-11-10", "--storage", "Products"],
    "movements": ["report", "movements", "--from", "2026-11-01", "--to", "2026-11-30"],
    "order": ["report", "order"],
    "sales": ["report", "sales", "--from", "2026-11-01", "--to", "2026-11-30"],
}


def run(workspace, *arguments: str):
    return CliRunner().invoke(main, [*arguments, "--workspace", str(workspace.root)])


def written_path(workspace, output: str) -> Path:
    """The report path a report command printed: "Report written to PATH (…"."""
    relative = output.split("Report written to ", 1)[1].split(" (", 1)[0]
    return workspace.root / relative


def table(path: Path, sheet: str) -> list[dict]:
    """The rows of a report sheet as dicts keyed by header, without the totals row."""
    rows = list(openpyxl.load_workbook(path)[sheet].iter_rows(values_only=True))
    header = rows[0]
    return [dict(zip(header, row)) for row in rows[1:-1]]


def parameters(path: Path) -> dict:
    rows = openpyxl.load_workbook(path)["Parameters"].iter_rows(min_row=2, values_only=True)
    return dict(rows)


@pytest.fixture(scope="module")
def sample_reports(tmp_path_factory) -> tuple:
    """The sample month applied once, and every report written from it."""
    workspace = init_workspace(tmp_path_factory.mktemp("samples") / "ws")
    ledger.connect(workspace.ledger_path).close()
    apply_samples(workspace, samples_dir())
    paths = {}
    for name, command in REPORT_COMMANDS.items():
        result = run(workspace, *command)
        assert result.exit_code == 0, result.output
        paths[name] = written_path(workspace, result.output)
    return workspace, paths


def test_movements_report_closes_at_expected_balances(sample_reports):
    _, paths = sample_reports
    with (samples_dir() / "expected-balances.csv").open(newline="") as stream:
        expected = {(row["storage"], row["sku"]): (D(row["base_quantity"]), D(row["quantity"]))
                    for row in csv.DictReader(stream)}

    rows = table(paths["movements"], "Movements")
    closing = {(row["Storage"], row["SKU"]): (D(str(row["Closing in write-off units"])),
                                              D(str(row["Closing"])))
               for row in rows}
    for key, (base, quantity) in expected.items():
        assert closing.get(key) == (base, quantity), key
    for key, (base, _) in closing.items():
        if key not in expected:
            assert base == 0, key


def test_movements_check_sheet_shows_no_difference(sample_reports):
    _, paths = sample_reports
    sheet = openpyxl.load_workbook(paths["movements"])["Check"]
    rows = list(sheet.iter_rows(values_only=True))

    assert rows[1][0] == "No difference"
    assert rows[1][7] == 0
    assert rows[-1][0] == "33 rows checked, 0 differences"
    assert parameters(paths["movements"])["Check"] == "no difference"


def test_movements_flows_add_up_per_row(sample_reports):
    _, paths = sample_reports
    for row in table(paths["movements"], "Movements"):
        flows = (row["Opening value"] + row["Arrivals value"] - row["Sales value"]
                 - row["Write-offs value"] + row["Relocations in value"]
                 - row["Relocations out value"] + row["Revaluation"])
        assert abs(flows - row["Closing value"]) < 0.03, row


def test_reports_convert_with_libreoffice(sample_reports, tmp_path):
    if shutil.which("soffice") is None:
        pytest.skip("soffice (LibreOffice) is not installed; .ci/run installs it with apt-get")
    _, paths = sample_reports
    command = ["soffice", f"-env:UserInstallation=file://{tmp_path / 'profile'}",
               "--headless", "--convert-to", "pdf", "--outdir", str(tmp_path),
               *map(str, paths.values())]
    completed = subprocess.run(command, capture_output=True, timeout=300)

    assert completed.returncode == 0, completed.stderr
    for path in paths.values():
        pdf = tmp_path / f"{path.stem}.pdf"
        assert pdf.exists(), path.name
        assert pdf.read_bytes().startswith(b"%PDF"), path.name


def test_report_layout_header_totals_parameters(sample_reports):
    workspace, paths = sample_reports
    workbook = openpyxl.load_workbook(paths["stock"])
    sheet = workbook["Stock"]
    rows = list(sheet.iter_rows(values_only=True))

    assert workbook.sheetnames == ["Stock", "Parameters"]
    assert sheet.freeze_panes == "A2"
    assert rows[0][:3] == ("Storage", "SKU", "Product")
    assert rows[-1][0] == "Total"
    assert rows[-1][8] == f"=SUM(I2:I{len(rows) - 1})"
    assert sheet["I2"].number_format == "#,##0.00"
    assert sheet.column_dimensions["C"].width > len("Permanent hair dye 6.0 dark blonde 60 g")
    info = parameters(paths["stock"])
    assert info["Report"] == "stock balance"
    assert info["Rows"] == len(rows) - 2
    con = ledger.connect(workspace.ledger_path)
    try:
        assert info["Ledger position"] == ledger.ledger_position(con)
    finally:
        con.close()


def test_reports_registered_in_data_log(sample_reports):
    workspace, paths = sample_reports
    con = ledger.connect(workspace.ledger_path)
    try:
        rows = con.execute(
            "SELECT path, sha256, row_count, requested_by FROM data_log WHERE kind = 'report'"
        ).fetchall()
    finally:
        con.close()
    logged = {path: (sha, count, user) for path, sha, count, user in rows}
    for path in paths.values():
        relative = str(path.relative_to(workspace.root))
        assert relative.startswith("outbox/reports/")
        assert logged[relative][0] == file_sha256(path)
        assert logged[relative][2] == "manager"


@pytest.fixture
def book(workspace, tmp_path) -> Ledger:
    return Ledger(workspace, tmp_path)


def test_stock_report_flags_critical_and_below_desired(book):
    book.arrival(day(1), "COMB", 5, 2)        # 5 pieces: below desired 6, above critical 2
    book.arrival(day(1), "SHAMPOO", 2, 10)
    book.sale(day(2), "SHAMPOO", 1, 20)       # 1 bottle: at critical 1

    result = run(book.workspace, "report", "stock")
    path = written_path(book.workspace, result.output)
    rows = {row["SKU"]: row for row in table(path, "Stock")}

    assert result.exit_code == 0, result.output
    assert rows["COMB"]["Status"] == "below desired"
    assert rows["COMB"]["Cost value"] == 10
    assert rows["COMB"]["Sale value"] == 30
    assert rows["SHAMPOO"]["Status"] == "critical"
    assert rows["SHAMPOO"]["Quantity in write-off units"] == 250
    assert rows["SHAMPOO"]["Unit cost"] == 10
    rules = openpyxl.load_workbook(path)["Stock"].conditional_formatting
    formulas = {rule.formula[0] for ranges in rules for rule in ranges.rules}
    assert formulas == {'$N2="critical"', '$N2="negative"', '$N2="below desired"'}


def test_stock_report_at_date_and_storage(book):
    book.arrival(day(1), "COMB", 10, 2)
    book.relocation(day(2), "COMB", 4)
    book.arrival(day(3), "COMB", 6, 4)

    result = run(book.workspace, "report", "stock", "--at", "02.11.2026", "--storage",
                 "branch")
    rows = table(written_path(book.workspace, result.output), "Stock")

    assert result.exit_code == 0, result.output
    assert [(r["Storage"], r["Quantity"], r["Cost value"]) for r in rows] == [
        ("Branch", 4, 8)]


def test_order_report_lists_critical_first(book):
    book.arrival(day(1), "COMB", 3, 2)        # desired 6: order 3
    book.arrival(day(1), "SHAMPOO", 1, 10)    # critical 1, desired 4: order 3
    book.write_off(day(2), "SHAMPOO", 100, unit="ml")  # 0.6 bottles left: order 4

    result = run(book.workspace, "report", "order")
    rows = table(written_path(book.workspace, result.output), "Order")

    assert result.exit_code == 0, result.output
    assert [(r["SKU"], r["Quantity"], r["To order"], r["Status"]) for r in rows] == [
        ("SHAMPOO", 0.6, 4, "critical"), ("COMB", 3, 3, "below desired")]
    assert [r["Estimated cost"] for r in rows] == [40, 6]


def test_sales_report_revenue_discount_cost_margin(book):
    book.arrival(day(1), "COMB", 10, 2)
    book.form("sale", day(2), [["COMB", 4, 6, None]])
    discounted = [["Operation", "Sale"], ["Date", day(3)], ["Storage", "Products"], [],
                  ["SKU", "Quantity", "Price", "Discount %"], ["COMB", 2, 6, 25]]
    process(book.workspace, write_sheets(book.folder / "discount.xlsx", {"Sale": discounted}))
    cancelled = book.sale(day(4), "COMB", 1, 6)
    book.cancel(cancelled)

    result = run(book.workspace, "report", "sales", "--from", "2026-11-01", "--to",
                 "2026-11-30")
    path = written_path(book.workspace, result.output)
    rows = table(path, "Sales")

    # 4 × 6 + 2 × 6 × 0.75 = 33.00 revenue, 3.00 discount; 6 pieces at 2.00 cost 12.00.
    assert result.exit_code == 0, result.output
    assert [(r["SKU"], r["Quantity"], r["Revenue"], r["Discount"], r["Cost"], r["Margin"])
            for r in rows] == [("COMB", 6, 33, 3, 12, 21)]
    assert rows[0]["Margin %"] == pytest.approx(21 / 33)
    with zipfile.ZipFile(path) as archive:
        charts = [name for name in archive.namelist() if name.startswith("xl/charts/")]
    assert sorted(charts) == ["xl/charts/chart1.xml", "xl/charts/chart2.xml"]


def test_cost_columns_left_out_without_see_costs(book):
    book.arrival(day(1), "COMB", 10, 2)
    (book.workspace.root / "batchstock.toml").write_text(
        "[users.anna]\nsee_costs = false\n[users.manager]\nsee_costs = true\n")

    result = run(book.workspace, "report", "stock", "--user", "anna")
    header = table(written_path(book.workspace, result.output), "Stock")[0].keys()

    assert result.exit_code == 0, result.output
    assert "Sale value" in header
    assert "Unit cost" not in header
    assert "Cost value" not in header


def test_check_sheet_lists_every_difference(book):
    book.arrival(day(1), "COMB", 10, 2)
    # A movement of a kind the report does not know: the independent balance counts it.
    book.query("INSERT INTO movement_entries SELECT movement_no + 100, operation_no, "
               "version, line_no, storage_id, product_id, 'stocktake', -1, occurred_at, "
               "recorded_at, batch_id, false FROM movement_entries")

    result = run(book.workspace, "report", "movements", "--from", "2026-11-01", "--to",
                 "2026-11-30")
    rows = table(written_path(book.workspace, result.output), "Check")

    assert result.exit_code == 1, result.output
    assert [(r["SKU"], r["Measure"], r["Balance"], r["Report"], r["Independent"],
             r["Difference"]) for r in rows] == [
        ("COMB", "quantity", "closing", 10, 9, 1), ("COMB", "value", "closing", 20, 18, 2)]


@pytest.mark.parametrize(("arguments", "code"), [
    (["report", "movements", "--from", "2026-11-31", "--to", "2026-12-01"], 2),
    (["report", "movements", "--from", "2026-11-30", "--to", "2026-11-01"], 2),
    (["report", "sales", "--from", "yesterday", "--to", "2026-11-01"], 2),
    (["report", "stock", "--storage", "Attic"], 2),
    (["report", "order", "--storage", "Attic"], 2),
    (["report", "stock", "--at", "2026-11-30 18:00"], 0),
])
def test_report_command_exit_codes(workspace, arguments, code):
    result = run(workspace, *arguments)
    assert result.exit_code == code, result.output


def test_report_without_workspace_exits_3(tmp_path):
    result = CliRunner().invoke(main, ["report", "order", "--workspace", str(tmp_path)])
    assert result.exit_code == 3


def test_stock_refresher_rewrites_current_report(book):
    seen = []
    refresh = stock_refresher(book.workspace, seen.append)
    book.arrival(day(1), "COMB", 10, 2)
    target = book.workspace.outbox / "reports" / CURRENT_STOCK_FILE

    drop(book.workspace, book.folder / "001-arrival.xlsx", user="anna", name="again.xlsx")
    run_pass(book.workspace, on_file=refresh)
    assert [f.result.status for f in seen] == ["duplicate"]
    assert not target.exists()

    rows = [["Operation", "Arrival"], ["Date", day(2)], ["Storage", "Products"], [],
            ["SKU", "Quantity", "Unit cost"], ["COMB", 5, 2]]
    drop(book.workspace, write_sheets(book.folder / "more.xlsx", {"Arrival": rows}))
    run_pass(book.workspace, on_file=refresh)
    refresh(seen[-1])  # a second refresh replaces the file rather than adding one

    assert [f.result.status for f in seen] == ["duplicate", "applied", "applied"]
    assert [(r["SKU"], r["Quantity"]) for r in table(target, "Stock")] == [("COMB", 15)]
    assert sorted(p.name for p in target.parent.iterdir()) == [CURRENT_STOCK_FILE]


def test_watch_refreshes_stock_report_when_set(book):
    (book.workspace.root / "batchstock.toml").write_text(
        "[inbox]\nsettle_seconds = 0.1\n[reports]\nrefresh_stock_after_batch = true\n")
    from batchstock.config import open_workspace
    workspace = open_workspace(book.workspace.root)
    assert workspace.settings.refresh_stock_after_batch
    target = workspace.outbox / "reports" / CURRENT_STOCK_FILE
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(workspace, 0.2),
                               kwargs={"stop_event": stop})
    watcher.start()
    try:
        rows = [["Operation", "Arrival"], ["Date", day(1)], ["Storage", "Products"], [],
                ["SKU", "Quantity", "Unit cost"], ["COMB", 7, 2]]
        drop(workspace, write_sheets(book.folder / "watched.xlsx", {"Arrival": rows}))
        deadline = time.monotonic() + 60
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert [(r["SKU"], r["Quantity"]) for r in table(target, "Stock")] == [("COMB", 7)]


def test_report_request_user_rights(workspace):
    (workspace.root / "batchstock.toml").write_text("[users.anna]\nsee_costs = false\n")
    from batchstock.config import open_workspace
    opened = open_workspace(workspace.root)
    assert not ReportRequest(opened, "anna").may_see_costs
    assert not ReportRequest(opened, "stranger").may_see_costs
    assert ReportRequest(opened, "stranger", see_costs=True).may_see_costs
