"""The `batchstock` command as a user runs it, and the result workbooks it leaves behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from click.testing import CliRunner

from batchstock.cli import main
from conftest import drop
from ingest_workbooks import (
    arrive,
    balance,
    form_rows,
    query,
    stocked,  # noqa: F401 (fixture)
    stocked_ledger,  # noqa: F401 (fixture)
    submit,
    write_rows,
)

PROBLEM_KEYS = {"file", "sheet", "cell", "code", "message", "value"}


def run(*arguments: str, env: dict | None = None):
    """Run the command in this process; stdout and stderr are kept apart."""
    return CliRunner().invoke(main, list(arguments), env=env)


def run_process(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the command as a separate program, as a shell would."""
    return subprocess.run([sys.executable, "-m", "batchstock.cli", *arguments], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def good_arrival(tmp_path: Path, name: str = "delivery.xlsx") -> Path:
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity", "Unit cost"],
                     [["COMB-CARB", 10, 2.1], ["SH-ARG-250", 2, 9.45]])
    return write_rows(tmp_path / name, {"Arrival": rows})


def bad_arrival(tmp_path: Path, name: str = "bad.xlsx") -> Path:
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity", "Unit cost"],
                     [["COMB-CARB", "12,5", 2.1], ["SH-ARG-205", 2, 9.45]])
    return write_rows(tmp_path / name, {"Arrival": rows})


def ledger_state(workspace) -> list:
    return query(workspace, "SELECT (SELECT count(*) FROM operations), "
                            "(SELECT count(*) FROM movements), (SELECT count(*) FROM batches)")


def sheet_values(worksheet) -> list[list]:
    return [list(row) for row in worksheet.iter_rows(values_only=True)]


# process


def test_process_all_applied_exits_0(stocked, tmp_path):
    drop(stocked, good_arrival(tmp_path), user="anna")

    outcome = run("process", "--workspace", str(stocked.root))

    assert outcome.exit_code == 0, outcome.output
    assert "OP-000001" in outcome.stdout
    assert (stocked.outbox / "anna" / "delivery.result.xlsx").exists()
    assert (stocked.archive / "anna" / "delivery.xlsx").exists()


def test_process_any_rejected_exits_1(stocked, tmp_path):
    drop(stocked, good_arrival(tmp_path), user="anna")
    drop(stocked, bad_arrival(tmp_path), user="ben")

    outcome = run("process", "--workspace", str(stocked.root))

    assert outcome.exit_code == 1
    assert (stocked.archive / "anna" / "delivery.xlsx").exists()
    assert (stocked.rejected / "ben" / "bad.xlsx").exists()
    assert (stocked.outbox / "ben" / "bad.result.xlsx").exists()


def test_process_empty_inbox_exits_0(stocked):
    outcome = run("process", "--workspace", str(stocked.root))

    assert outcome.exit_code == 0


def test_process_oldest_file_first(stocked, tmp_path):
    sale = form_rows("Sale", "Products", ["SKU", "Quantity"], [["COMB-CARB", 3]],
                     date="2026-11-05")
    drop(stocked, good_arrival(tmp_path), user="anna")
    drop(stocked, write_rows(tmp_path / "a-sale.xlsx", {"Sale": sale}), user="anna")

    outcome = run("process", "--workspace", str(stocked.root))

    assert outcome.exit_code == 0, outcome.output
    assert balance(stocked, "Products", "COMB-CARB") == 7


def test_process_json_one_object_per_problem(stocked, tmp_path):
    drop(stocked, good_arrival(tmp_path), user="anna")
    drop(stocked, bad_arrival(tmp_path), user="anna")

    outcome = run("process", "--json", "--workspace", str(stocked.root))

    assert outcome.exit_code == 1
    objects = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert all(set(item) == PROBLEM_KEYS for item in objects)
    assert {(o["file"], o["sheet"], o["cell"], o["code"], o["value"]) for o in objects} == {
        ("inbox/anna/bad.xlsx", "Arrival", "B6", "not_a_number", "12,5"),
        ("inbox/anna/bad.xlsx", "Arrival", "A7", "unknown_sku", "SH-ARG-205"),
    }


def test_process_json_as_program(stocked, tmp_path):
    drop(stocked, bad_arrival(tmp_path))

    completed = run_process("process", "--json", "--workspace", str(stocked.root),
                            cwd=tmp_path)

    assert completed.returncode == 1, completed.stderr
    objects = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [o["code"] for o in objects] == ["not_a_number", "unknown_sku"]


# check


def test_check_leaves_ledger_unchanged(stocked, tmp_path):
    arrive(stocked, tmp_path, [["COMB-CARB", 1]])
    before = ledger_state(stocked)

    outcome = run("check", "--workspace", str(stocked.root), str(good_arrival(tmp_path)))

    assert outcome.exit_code == 0, outcome.output
    assert ledger_state(stocked) == before
    assert balance(stocked, "Products", "COMB-CARB") == 1
    results = list((stocked.outbox / "manager").glob("delivery.check*.xlsx"))
    assert len(results) == 1
    summary = sheet_values(openpyxl.load_workbook(results[0])["Summary"])
    assert ["Status", "checked"] in [row[:2] for row in summary]


def test_check_reports_problems_exits_1(stocked, tmp_path):
    before = ledger_state(stocked)

    outcome = run("check", "--json", "--user", "anna", "--workspace", str(stocked.root),
                  str(bad_arrival(tmp_path)))

    assert outcome.exit_code == 1
    codes = {(o["cell"], o["code"]) for o in map(json.loads, outcome.stdout.splitlines())}
    assert codes == {("B6", "not_a_number"), ("A7", "unknown_sku")}
    assert list((stocked.outbox / "anna").glob("bad.check*.xlsx"))
    assert ledger_state(stocked) == before


def test_check_finds_insufficient_stock(stocked, tmp_path):
    sale = form_rows("Sale", "Products", ["SKU", "Quantity"], [["COMB-CARB", 3]])
    path = write_rows(tmp_path / "sale.xlsx", {"Sale": sale})
    before = ledger_state(stocked)

    outcome = run("check", "--json", "--workspace", str(stocked.root), str(path))

    assert outcome.exit_code == 1
    found = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert [(o["sheet"], o["cell"], o["code"]) for o in found] == [
        ("Sale", "B6", "insufficient_stock")]
    assert ledger_state(stocked) == before


# template


def fill_form(path: Path, labels: dict[str, object], lines: list[dict[str, object]]) -> None:
    """Fill a form template as a user would: values right of labels, lines under the header."""
    workbook = openpyxl.load_workbook(path)
    sheet = workbook.worksheets[0]
    header_row = None
    for row in range(1, sheet.max_row + 1):
        label = sheet.cell(row, 1).value
        if label in labels:
            sheet.cell(row, 2).value = labels[label]
        if label == "SKU":
            header_row = row
    assert header_row is not None
    columns = {sheet.cell(header_row, col).value: col
               for col in range(1, sheet.max_column + 1)}
    for offset, line in enumerate(lines, start=1):
        for header, value in line.items():
            sheet.cell(header_row + offset, columns[header]).value = value
    workbook.save(path)


def test_template_filled_and_processed(stocked, tmp_path):
    target = tmp_path / "arrival-form.xlsx"

    outcome = run("template", "arrival", "--output", str(target), "--workspace",
                  str(stocked.root))
    assert outcome.exit_code == 0, outcome.output
    fill_form(target, {"Date": "2026-11-02 10:00", "Storage": "Products",
                       "Supplier": "Beauty Wholesale Ltd"},
              [{"SKU": "000731", "Quantity": 4, "Unit cost": 0.29},
               {"SKU": "SH-ARG-250", "Quantity": 2, "Unit": "pcs", "Subtotal": 18.9}])
    drop(stocked, target, user="anna")
    processed = run("process", "--workspace", str(stocked.root))

    assert processed.exit_code == 0, processed.output
    assert balance(stocked, "Products", "000731") == 4
    assert balance(stocked, "Products", "SH-ARG-250") == 2
    assert query(stocked, "SELECT supplier FROM operations") == [("Beauty Wholesale Ltd",)]


def test_template_default_location(stocked):
    outcome = run("template", "write-off", "--workspace", str(stocked.root))

    assert outcome.exit_code == 0, outcome.output
    workbook = openpyxl.load_workbook(stocked.outbox / "templates" / "write-off.xlsx")
    assert workbook.worksheets[0]["B1"].value == "Write-off"


# init, demo and choosing the workspace


def test_init_creates_workspace(tmp_path):
    outcome = run("init", str(tmp_path / "salon"))

    assert outcome.exit_code == 0, outcome.output
    for folder in ("inbox", "outbox", "archive", "rejected"):
        assert (tmp_path / "salon" / folder).is_dir()
    assert (tmp_path / "salon" / "batchstock.toml").exists()
    assert (tmp_path / "salon" / "ledger.duckdb").exists()


def test_init_current_folder_as_program(tmp_path):
    completed = run_process("init", cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert (tmp_path / "inbox").is_dir()


def test_demo_applies_samples(tmp_path):
    outcome = run("demo", "--workspace", str(tmp_path / "demo"))

    assert outcome.exit_code == 0, outcome.output
    assert str(tmp_path / "demo" / "ledger.duckdb") in outcome.stdout
    archived = sorted(p.name for p in (tmp_path / "demo" / "archive").rglob("*.xlsx"))
    assert "till-sales-november.xlsx" in archived
    assert len(archived) == 5


def test_workspace_variable_names_workspace(stocked, tmp_path):
    drop(stocked, good_arrival(tmp_path))

    outcome = run("process", env={"BATCHSTOCK_WORKSPACE": str(stocked.root)})

    assert outcome.exit_code == 0, outcome.output
    assert balance(stocked, "Products", "COMB-CARB") == 10


def test_workspace_option_before_command(stocked, tmp_path):
    drop(stocked, good_arrival(tmp_path))

    outcome = run("--workspace", str(stocked.root), "process")

    assert outcome.exit_code == 0, outcome.output
    assert balance(stocked, "Products", "COMB-CARB") == 10


def test_workspace_option_wins_over_variable(stocked, tmp_path):
    drop(stocked, good_arrival(tmp_path))

    outcome = run("process", "--workspace", str(stocked.root),
                  env={"BATCHSTOCK_WORKSPACE": str(tmp_path / "elsewhere")})

    assert outcome.exit_code == 0, outcome.output


def test_current_folder_is_default_workspace(stocked, tmp_path):
    drop(stocked, good_arrival(tmp_path))

    completed = run_process("process", cwd=stocked.root)

    assert completed.returncode == 0, completed.stderr
    assert balance(stocked, "Products", "COMB-CARB") == 10


@pytest.mark.parametrize("command", [["process"], ["watch"], ["template", "sale"],
                                     ["catalog", "import", "{file}"], ["check", "{file}"]])
def test_missing_workspace_exits_3(tmp_path, command):
    file = str(good_arrival(tmp_path))
    arguments = [part.replace("{file}", file) for part in command]

    completed = run_process(*arguments, "--workspace", str(tmp_path / "nowhere"), cwd=tmp_path)

    assert completed.returncode == 3
    assert "not a batchstock workspace" in completed.stderr
    assert "batchstock init" in completed.stderr
    assert not (tmp_path / "nowhere").exists()


# Result workbooks


def operations_table(rows: list[list]) -> dict[str, dict]:
    """Read the Summary sheet's operations table: the rows under `Operation id` up to Total."""
    start = next(i for i, row in enumerate(rows) if row[0] == "Operation id")
    headers = rows[start]
    table = {}
    for row in rows[start + 1:]:
        if row[0] in (None, "Total"):
            break
        table[row[0]] = dict(zip(headers, row))
    return table


def test_applied_result_lists_operations(stocked, tmp_path):
    sheets = {"In": form_rows("Arrival", "Products", ["SKU", "Quantity", "Unit cost"],
                              [["COMB-CARB", 10, 2.1], ["SH-ARG-250", 2, 9.45]]),
              "Out": form_rows("Write-off", "Products", ["SKU", "Quantity"],
                               [["COMB-CARB", 1]], date="2026-11-03")}

    filed = submit(stocked, write_rows(tmp_path / "month.xlsx", sheets))

    assert filed.result.status == "applied", filed.result.problems
    workbook = openpyxl.load_workbook(filed.result_path)
    assert workbook.sheetnames[0] == "Summary"
    assert "Problems" not in workbook.sheetnames
    rows = sheet_values(workbook["Summary"])
    assert ["Status", "applied"] in [row[:2] for row in rows]
    operations = operations_table(rows)
    assert set(operations) == {"OP-000001", "OP-000002"}
    assert operations["OP-000001"]["Lines"] == 2
    assert Decimal(str(operations["OP-000001"]["Total amount"])) == Decimal("39.9")
    assert operations["OP-000002"]["Lines"] == 1
    assert operations["OP-000002"]["Type"] == "write-off"


def test_rejected_result_highlights_cells(stocked, tmp_path):
    filed = submit(stocked, bad_arrival(tmp_path))

    workbook = openpyxl.load_workbook(filed.result_path)
    assert workbook.sheetnames == ["Summary", "Problems", "Arrival"]
    copy = workbook["Arrival"]
    assert copy["B6"].value == "12,5"
    assert copy["B6"].fill.fgColor.rgb.endswith("FFC7CE")
    assert copy["B6"].comment is not None
    assert copy["A7"].comment is not None
    assert copy["C6"].comment is None
    assert copy["C6"].value == 2.1


def test_rejected_result_problems_link_to_cells(stocked, tmp_path):
    filed = submit(stocked, bad_arrival(tmp_path))

    problems = openpyxl.load_workbook(filed.result_path)["Problems"]
    rows = list(problems.iter_rows(min_row=2))
    by_code = {row[3].value: row for row in rows}
    assert set(by_code) == {"not_a_number", "unknown_sku"}
    assert by_code["not_a_number"][2].value == "B6"
    assert by_code["not_a_number"][2].hyperlink.location == "'Arrival'!B6"
    assert by_code["unknown_sku"][2].hyperlink.location == "'Arrival'!A7"
    summary = sheet_values(openpyxl.load_workbook(filed.result_path)["Summary"])
    assert ["Problems", 2] in [row[:2] for row in summary]


def write_text_cells(path: Path, rows: list[list]) -> Path:
    """Write every text as a text cell, the way a user types `=1+1` into a text column."""
    workbook = xlsxwriter.Workbook(str(path))
    worksheet = workbook.add_worksheet("Arrival")
    for row, values in enumerate(rows):
        for col, value in enumerate(values):
            if isinstance(value, str):
                worksheet.write_string(row, col, value)
            elif value is not None:
                worksheet.write(row, col, value)
    workbook.close()
    return path


def test_formula_like_text_written_back_as_text(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity", "Comment"],
                     [["=1+1", 1, "@x"], ["COMB-CARB", "+7", "-x"], ["@SUM(A1)", 1, "=A1"]])
    path = write_text_cells(tmp_path / "formulas.xlsx", rows)

    filed = submit(stocked, path)

    assert filed.result.status == "rejected"
    workbook = openpyxl.load_workbook(filed.result_path)
    copy = workbook["Arrival"]
    for name, text in (("A6", "=1+1"), ("C6", "@x"), ("B7", "+7"), ("C7", "-x"),
                       ("A8", "@SUM(A1)"), ("C8", "=A1")):
        assert copy[name].value == text
        assert copy[name].data_type == "s"
    values = [cell.value for row in workbook["Problems"].iter_rows() for cell in row]
    assert "=1+1" in values
    assert all(cell.data_type != "f" for sheet in workbook for row in sheet.iter_rows()
               for cell in row)


def test_control_characters_do_not_break_result(stocked, tmp_path):
    rows = form_rows("Arrival", "Products", ["SKU", "Quantity"], [["COMB\x07CARB", 1]])
    path = write_text_cells(tmp_path / "bell.xlsx", rows)

    filed = submit(stocked, path)

    assert filed.result.status == "rejected"
    copy = openpyxl.load_workbook(filed.result_path)["Arrival"]
    assert copy["A6"].value.startswith("COMB")


def test_same_content_again_is_duplicate(stocked, tmp_path):
    first = submit(stocked, good_arrival(tmp_path))
    drop(stocked, first.original_path, user="ben", name="again.xlsx")

    outcome = run("process", "--workspace", str(stocked.root))

    assert outcome.exit_code == 0, outcome.output
    assert balance(stocked, "Products", "COMB-CARB") == 10
    again = openpyxl.load_workbook(stocked.outbox / "ben" / "again.result.xlsx")
    texts = " ".join(str(value) for row in sheet_values(again["Summary"]) for value in row)
    assert "duplicate" in texts
    assert "OP-000001" in texts
    assert (stocked.rejected / "ben" / "again.xlsx").exists()


def test_manifest_lists_every_result(stocked, tmp_path):
    drop(stocked, good_arrival(tmp_path), user="anna")
    drop(stocked, bad_arrival(tmp_path), user="ben")

    run("process", "--workspace", str(stocked.root))

    lines = [json.loads(line) for line in
             stocked.manifest_path.read_text(encoding="utf-8").splitlines()]
    results = {line["path"]: line for line in lines if line["kind"] == "result"}
    assert set(results) >= {"outbox/anna/delivery.result.xlsx", "outbox/ben/bad.result.xlsx"}
    for path, line in results.items():
        assert {"id", "kind", "submitter", "time", "source_batch", "path", "sha256"} <= set(line)
        digest = hashlib.sha256((stocked.root / path).read_bytes()).hexdigest()
        assert line["sha256"] == digest
    logged = query(stocked, "SELECT path, sha256 FROM data_log")
    assert {(path, line["sha256"]) for path, line in results.items()} <= set(logged)


def test_name_clash_gets_suffix(stocked, tmp_path):
    first = submit(stocked, bad_arrival(tmp_path, "same.xlsx"))
    second = submit(stocked, bad_arrival(tmp_path / "again", "same.xlsx"))

    assert first.result_path.name == "same.result.xlsx"
    assert second.result_path.name == "same.result-2.xlsx"
    assert sorted(p.name for p in (stocked.rejected / "anna").iterdir()) == [
        "same-2.xlsx", "same.xlsx"]
