"""Edits and cancellations: forms with an Operation id, Action Cancel, the Cancel sheet,
the ready-to-edit copies, conflicts, reversing movements, the stock check, the change log,
the as-of balance, and the `history` and `operation show` commands."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import openpyxl
import pytest
from click.testing import CliRunner

from batchstock.cli import main
from batchstock.workbook import read_workbook
from edit_workbooks import (
    balances,
    balances_at,
    edit_form,
    install_clock,
    load_catalogue,
    operation_log,
    problem_cells,
    process,
    query,
    write_form,
    write_sheets,
)

ARGAN = "SH-ARG-250"
COMB = "COMB-CARB"
NOV = dt.datetime(2026, 11, 1)


def day(number: int, hour: int = 10) -> dt.datetime:
    return NOV.replace(day=number, hour=hour)


@pytest.fixture
def ledger_ws(workspace, tmp_path, monkeypatch):
    """A workspace with the catalogue, a fake clock, and nothing else."""
    clock = install_clock(monkeypatch)
    load_catalogue(workspace, tmp_path)
    workspace.clock = clock
    return workspace


def arrival(tmp_path, name, quantity, when=None, storage="Products", **options):
    fields = [("Date", when or day(2)), ("Storage", storage), ("Supplier", "Beauty Wholesale")]
    return write_form(tmp_path / name, "arrival", fields, [[ARGAN, quantity, 9.45]], **options)


def sale(tmp_path, name, quantity, when, sku=ARGAN, **options):
    fields = [("Date", when), ("Storage", "Products")]
    return write_form(tmp_path / name, "sale", fields, [[sku, quantity, 18.9]], **options)


def relocation(tmp_path, name, quantity, when, **options):
    fields = [("Date", when), ("From storage", "Products"), ("To storage", "Branch 2 shelf")]
    return write_form(tmp_path / name, "relocation", fields, [[ARGAN, quantity]], **options)


def cancel_sheet(tmp_path, name, rows):
    return write_sheets(tmp_path / name, {"Cancel": [["Operation id", "Version"], *rows]})


def outbox(ws, name):
    return ws.user_outbox("anna") / name


# The scenario


def test_scenario_edit_and_cancel(ledger_ws, tmp_path):
    ws = ledger_ws

    # 1. An arrival of 10 bottles, two sales and a relocation.
    assert process(ws, arrival(tmp_path, "arrival.xlsx", 10)).status == "applied"
    assert process(ws, sale(tmp_path, "sale-1.xlsx", 3, day(5))).status == "applied"
    assert process(ws, relocation(tmp_path, "move.xlsx", 2, day(6))).status == "applied"
    assert process(ws, sale(tmp_path, "sale-2.xlsx", 4, day(10))).status == "applied"
    arrival_recorded = ws.clock.now - dt.timedelta(hours=3)
    assert balances(ws) == {("Products", ARGAN): Decimal(1), ("Branch 2 shelf", ARGAN): 2}
    assert operation_log(ws) == [
        ("OP-000001", 1, "created", None, None, None, "anna"),
        ("OP-000002", 1, "created", None, None, None, "anna"),
        ("OP-000003", 1, "created", None, None, None, "anna"),
        ("OP-000004", 1, "created", None, None, None, "anna"),
    ]
    created_log = operation_log(ws)

    # 2. The delivery held 12 bottles: edit the arrival's ready-to-edit copy.
    before_edit = ws.clock.now
    edited = edit_form(outbox(ws, "arrival.result.xlsx"), "OP-000001",
                       tmp_path / "arrival-fixed.xlsx", lines={(1, "Quantity"): 12})
    result = process(ws, edited)
    assert result.status == "applied", result.problems
    assert balances(ws) == {("Products", ARGAN): Decimal(3), ("Branch 2 shelf", ARGAN): 2}
    assert operation_log(ws) == created_log + [
        ("OP-000001", 2, "edited", f"line {ARGAN} quantity", "10", "12", "anna"),
    ]
    edited_log = operation_log(ws)

    # 3. A relocation cannot be edited.
    moved = edit_form(outbox(ws, "move.result.xlsx"), "OP-000003",
                      tmp_path / "move-fixed.xlsx", lines={(1, "Quantity"): 1})
    result = process(ws, moved)
    assert result.status == "rejected"
    assert problem_cells(result) == [("relocation_edit", "OP-000003", "B6")]
    assert balances(ws) == {("Products", ARGAN): Decimal(3), ("Branch 2 shelf", ARGAN): 2}
    assert operation_log(ws) == edited_log

    # 4. It can be cancelled, with Action Cancel on the same copy.
    cancelled = edit_form(outbox(ws, "move.result.xlsx"), "OP-000003",
                          tmp_path / "move-cancel.xlsx", labels={"Action": "Cancel"})
    result = process(ws, cancelled)
    assert result.status == "applied", result.problems
    assert balances(ws) == {("Products", ARGAN): Decimal(5)}
    assert operation_log(ws) == edited_log + [
        ("OP-000003", 1, "cancelled", "status", "active", "cancelled", "anna"),
    ]
    cancelled_log = operation_log(ws)

    # 5. The arrival cannot be cancelled: the sales took its bottles.
    result = process(ws, cancel_sheet(tmp_path, "cancel-arrival.xlsx", [["OP-000001"]]))
    assert result.status == "rejected"
    assert problem_cells(result) == [("insufficient_stock", "Cancel", "A2")]
    assert "sale OP-000002" in result.problems[0].message
    assert "sale OP-000004" in result.problems[0].message
    assert balances(ws) == {("Products", ARGAN): Decimal(5)}
    assert operation_log(ws) == cancelled_log

    # As of 7 November, as known now: 12 in, 3 sold; the relocation is cancelled.
    now = ws.clock.now
    assert balances_at(ws, day(7), now) == {("Products", ARGAN): Decimal(9)}
    # As of 7 November, as known before the edit: 10 in, 3 sold, 2 relocated.
    assert balances_at(ws, day(7), before_edit) == {
        ("Products", ARGAN): Decimal(5), ("Branch 2 shelf", ARGAN): 2,
    }
    # As of 3 November, between the arrival and the first sale.
    assert balances_at(ws, day(3), now) == {("Products", ARGAN): Decimal(12)}
    assert balances_at(ws, day(3), arrival_recorded) == {("Products", ARGAN): Decimal(10)}
    # Before the arrival was recorded, the ledger knew of no stock at all.
    assert balances_at(ws, day(30), arrival_recorded - dt.timedelta(minutes=1)) == {}


# Edits


def test_edit_replaces_header_and_lines(ledger_ws, tmp_path):
    ws = ledger_ws
    fields = [("Date", day(2)), ("Storage", "Products"), ("Supplier", "Beauty Wholesale"),
              ("Document no.", "DN-1")]
    first = write_form(tmp_path / "in.xlsx", "arrival", fields,
                       [[ARGAN, 10, 9.45], ["GL-NIT-M", 2, 6.2]])
    assert process(ws, first).status == "applied"

    fields = [("Date", day(3, 9)), ("Storage", "Consumables"), ("Supplier", "Hair Depot"),
              ("Document no.", "DN-1")]
    second = write_form(tmp_path / "in-2.xlsx", "arrival", fields,
                        [[ARGAN, 10, 9.5], [COMB, 5, 2.1]], operation_id="OP-000001",
                        version=1)
    result = process(ws, second)

    assert result.status == "applied", result.problems
    assert [(s.operation_id, s.version, s.action) for s in result.operations] == [
        ("OP-000001", 2, "edited")]
    assert balances(ws) == {("Consumables", ARGAN): Decimal(10), ("Consumables", COMB): 5}
    assert query(ws, "SELECT version, storage, supplier, occurred_at FROM operations") == [
        (2, "Consumables", "Hair Depot", day(3, 9))]
    assert query(ws, "SELECT sku, quantity, price FROM operation_lines ORDER BY line_no") == [
        (ARGAN, Decimal(10), Decimal("9.5")), (COMB, Decimal(5), Decimal("2.1"))]
    assert [row[3:6] for row in operation_log(ws)[1:]] == [
        ("date", "2026-11-02 10:00", "2026-11-03 09:00"),
        ("storage", "Products", "Consumables"),
        ("supplier", "Beauty Wholesale", "Hair Depot"),
        (f"line {ARGAN} price", "9.45", "9.5"),
        ("line GL-NIT-M removed", "2 box at 6.2", None),
        (f"line {COMB} added", None, "5 pcs at 2.1"),
    ]
    assert {(c.field, c.old_value, c.new_value) for c in result.changes} == {
        row[3:6] for row in operation_log(ws)[1:]}


def test_edit_reverses_old_movements(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    process(ws, arrival(tmp_path, "in-2.xlsx", 7, when=day(4), operation_id="OP-000001",
                        version=1))

    rows = query(ws, "SELECT operation_version, quantity, occurred_at, is_reversal "
                     "FROM movements ORDER BY movement_no")
    assert rows == [
        (1, Decimal(10), day(2), False),
        (1, Decimal(-10), day(2), True),
        (2, Decimal(7), day(4), False),
    ]
    recorded = query(ws, "SELECT DISTINCT batch_id, recorded_at FROM movements ORDER BY 1")
    assert recorded[0][1] < recorded[1][1]


def test_type_change_rejected_at_type_cell(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    fields = [("Date", day(5)), ("Storage", "Products")]
    as_sale = write_form(tmp_path / "sale.xlsx", "sale", fields, [[ARGAN, 1, 18.9]],
                         operation_id="OP-000001", version=1)

    result = process(ws, as_sale)

    assert result.status == "rejected"
    assert problem_cells(result) == [("type_change", "Sale", "B1")]
    assert result.problems[0].value == "Sale"


def test_edit_that_changes_nothing_logs_nothing(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    movements_before = query(ws, "SELECT count(*) FROM movement_entries")
    log_before = operation_log(ws)

    result = process(ws, outbox(ws, "in.result.xlsx"))

    assert result.status == "no change", result.problems
    assert [(s.operation_id, s.action) for s in result.operations] == [("OP-000001", "no change")]
    assert operation_log(ws) == log_before
    assert query(ws, "SELECT count(*) FROM movement_entries") == movements_before
    assert query(ws, "SELECT version FROM operations") == [(1,)]
    assert list((ws.archive / "anna").iterdir())[-1].name.startswith("in.result")


def test_result_workbook_holds_ready_to_edit_form(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))

    workbook = openpyxl.load_workbook(outbox(ws, "in.result.xlsx"))

    assert workbook.sheetnames == ["Summary", "OP-000001"]
    form = workbook["OP-000001"]
    labels = {form.cell(row, 1).value: form.cell(row, 2).value for row in range(1, 10)}
    assert labels["Operation"] == "Arrival"
    assert labels["Date"] == day(2)
    assert labels["Storage"] == "Products"
    assert labels["Supplier"] == "Beauty Wholesale"
    assert labels["Operation id"] == "OP-000001"
    assert labels["Version"] == 1
    assert labels["Action"] is None
    assert [c.value for c in form[12][:5]] == [ARGAN, "Argan repair shampoo 250 ml", 10, "pcs",
                                               9.45]
    summary = [row[0] for row in workbook["Summary"].iter_rows(values_only=True)]
    assert summary[summary.index("Ready-to-edit form") + 1] == "OP-000001"


def test_result_copies_of_submitted_sheets_not_read_back(ledger_ws, tmp_path):
    ws = ledger_ws
    assert process(ws, arrival(tmp_path, "in.xlsx", 10)).status == "applied"
    # A result with notes also contains copies of the submitted sheets, without an id.
    workbook = openpyxl.load_workbook(outbox(ws, "in.result.xlsx"))
    workbook.copy_worksheet(workbook["OP-000001"]).title = "Arrival"
    workbook["Arrival"]["B7"] = None
    workbook.save(tmp_path / "back.xlsx")

    result = process(ws, tmp_path / "back.xlsx")

    assert result.status == "no change", result.problems
    assert query(ws, "SELECT count(*) FROM operations") == [(1,)]


def test_edit_conflict_when_copy_is_stale(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    copy = outbox(ws, "in.result.xlsx")
    first = edit_form(copy, "OP-000001", tmp_path / "a.xlsx", lines={(1, "Quantity"): 11})
    second = edit_form(copy, "OP-000001", tmp_path / "b.xlsx", lines={(1, "Quantity"): 9})
    assert process(ws, first).status == "applied"

    result = process(ws, second)

    assert result.status == "rejected"
    assert problem_cells(result) == [("version_conflict", "OP-000001", "B8")]
    assert balances(ws) == {("Products", ARGAN): Decimal(11)}


def test_edit_without_version_applies_with_note(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))

    result = process(ws, arrival(tmp_path, "in-2.xlsx", 8, operation_id="op-1"))

    assert result.status == "applied", result.problems
    assert [(n.sheet, n.cell) for n in result.notes] == [("Arrival", "B5")]
    assert balances(ws) == {("Products", ARGAN): Decimal(8)}


@pytest.mark.parametrize(("version", "code"), [(5, "invalid_version"), ("one", "invalid_version"),
                                               (1.5, "invalid_version")])
def test_invalid_version_rejected(ledger_ws, tmp_path, version, code):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))

    result = process(ws, arrival(tmp_path, "in-2.xlsx", 8, operation_id="OP-000001",
                                 version=version))

    assert problem_cells(result) == [(code, "Arrival", "B6")]


def test_edit_of_cancelled_operation_rejected(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    process(ws, cancel_sheet(tmp_path, "cancel.xlsx", [["OP-000001", 1]]))

    result = process(ws, arrival(tmp_path, "in-2.xlsx", 8, operation_id="OP-000001",
                                 version=1))

    assert problem_cells(result) == [("operation_cancelled", "Arrival", "B5")]


def test_edit_raising_sale_checks_stock(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 5))
    process(ws, sale(tmp_path, "sale.xlsx", 2, day(5)))
    process(ws, sale(tmp_path, "sale-2.xlsx", 2, day(6)))

    result = process(ws, sale(tmp_path, "sale-fix.xlsx", 4, day(5), operation_id="OP-000002",
                              version=1))

    assert result.status == "rejected"
    assert problem_cells(result) == [("insufficient_stock", "Sale", "B8")]
    assert "sale OP-000003" in result.problems[0].message
    assert balances(ws) == {("Products", ARGAN): Decimal(1)}


def test_edit_moving_arrival_after_sale_rejected(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 5))
    process(ws, sale(tmp_path, "sale.xlsx", 2, day(5)))

    result = process(ws, arrival(tmp_path, "in-2.xlsx", 5, when=day(9),
                                 operation_id="OP-000001", version=1))

    assert result.status == "rejected"
    assert problem_cells(result) == [("insufficient_stock", "Arrival", "B9")]
    assert "sale OP-000002" in result.problems[0].message


def test_table_layout_edits_by_operation_id_column(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    table = write_sheets(tmp_path / "till.xlsx", {"Receipts": [
        ["Operation", "Date", "Storage", "Receipt", "SKU", "Qty", "Price", "Operation id",
         "Version"],
        ["Sale", day(5), "Products", "R-1", ARGAN, 2, 18.9, None, None],
        ["Sale", day(6), "Products", "R-2", ARGAN, 1, 18.9, None, None],
    ]})
    assert process(ws, table).status == "applied"
    fixed = write_sheets(tmp_path / "till-fix.xlsx", {"Receipts": [
        ["Operation", "Date", "Storage", "Receipt", "SKU", "Qty", "Price", "Operation id",
         "Version"],
        ["Sale", day(6), "Products", "R-2", ARGAN, 3, 18.9, "OP-000003", 1],
    ]})

    result = process(ws, fixed)

    assert result.status == "applied", result.problems
    assert balances(ws) == {("Products", ARGAN): Decimal(5)}
    assert operation_log(ws)[-1][:6] == (
        "OP-000003", 2, "edited", f"line {ARGAN} quantity", "1", "3")


def test_unknown_action_and_missing_id(ledger_ws, tmp_path):
    ws = ledger_ws
    path = write_sheets(tmp_path / "bad.xlsx", {
        "A": [["Operation", "Arrival"], ["Storage", "Products"], ["Action", "Delete"], [],
              ["SKU", "Quantity"], [ARGAN, 1]],
        "B": [["Operation", "Arrival"], ["Storage", "Products"], ["Operation id", None],
              ["Action", "Cancel"], [], ["SKU", "Quantity"], [ARGAN, 1]],
    })

    result = process(ws, path)

    assert problem_cells(result) == [("unknown_action", "A", "B3"),
                                     ("missing_operation_id", "B", "B3")]


def test_same_operation_twice_in_one_file(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))

    result = process(ws, cancel_sheet(tmp_path, "cancel.xlsx", [["OP-000001"], ["OP-1"]]))

    assert problem_cells(result) == [("duplicate_operation_id", "Cancel", "A3")]


# Cancellations


def test_cancel_sheet_cancels_several(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    process(ws, sale(tmp_path, "sale.xlsx", 2, day(5)))
    process(ws, sale(tmp_path, "sale-2.xlsx", 3, day(6)))

    result = process(ws, cancel_sheet(tmp_path, "cancel.xlsx", [["OP-000002", 1], ["OP-000003"]]))

    assert result.status == "applied", result.problems
    assert [(s.operation_id, s.action) for s in result.operations] == [
        ("OP-000002", "cancelled"), ("OP-000003", "cancelled")]
    assert balances(ws) == {("Products", ARGAN): Decimal(10)}
    assert query(ws, "SELECT operation_id, status FROM operations ORDER BY 1") == [
        ("OP-000001", "active"), ("OP-000002", "cancelled"), ("OP-000003", "cancelled")]
    assert query(ws, "SELECT count(*) FROM movements WHERE is_reversal") == [(2,)]


@pytest.mark.parametrize(("rows", "code"), [
    ([["OP-000009"]], "unknown_operation"),
    ([["OP-abc"]], "invalid_operation_id"),
    ([[None, 1]], "missing_operation_id"),
])
def test_cancel_sheet_problems(ledger_ws, tmp_path, rows, code):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))

    result = process(ws, cancel_sheet(tmp_path, "cancel.xlsx", rows))

    assert problem_cells(result) == [(code, "Cancel", "A2")]


def test_cancel_twice_rejected(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    assert process(ws, cancel_sheet(tmp_path, "c1.xlsx", [["OP-000001"]])).status == "applied"

    # Different content from the first file, which would be a duplicate otherwise.
    result = process(ws, cancel_sheet(tmp_path, "c2.xlsx", [["OP-1"]]))

    assert problem_cells(result) == [("already_cancelled", "Cancel", "A2")]
    assert query(ws, "SELECT count(*) FROM movements WHERE is_reversal") == [(1,)]


def test_cancel_sheet_without_id_column(ledger_ws, tmp_path):
    path = write_sheets(tmp_path / "cancel.xlsx", {"Cancel": [["Id of op"], ["OP-000001"]]})

    result = process(ledger_ws, path)

    assert problem_cells(result) == [("no_operation_id_column", "Cancel", "A1")]


def test_cancel_arrival_allowed_with_negative_stock_setting(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 3))
    process(ws, sale(tmp_path, "sale.xlsx", 2, day(5)))
    ws.settings.allow_negative_stock = True

    result = process(ws, cancel_sheet(tmp_path, "cancel.xlsx", [["OP-000001"]]))

    assert result.status == "applied", result.problems
    assert balances(ws) == {("Products", ARGAN): Decimal(-2)}


def test_cancel_result_shows_change_sheet(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    process(ws, arrival(tmp_path, "in-2.xlsx", 8, operation_id="OP-000001", version=1))

    sheets = {grid.name: grid for grid in read_workbook(outbox(ws, "in-2.result.xlsx"))}

    assert sheets["Changes"].rows[:2] == [
        ["Operation id", "Version", "Action", "Field", "Old value", "New value"],
        ["OP-000001", 2.0, "edited", f"line {ARGAN} quantity", "10", "8"],
    ]
    assert "OP-000001" in sheets


# The catalogue's change log


def test_catalogue_changes_logged_by_field(ledger_ws, tmp_path):
    ws = ledger_ws
    products = [
        ["SKU", "Name", "Sale unit", "Write-off unit", "Equals", "Sale price", "Cost price"],
        ["SH-ARG-250", "Argan repair shampoo 250 ml", "pcs", "ml", 250, 19.5, 9.45],
    ]
    path = write_sheets(tmp_path / "catalogue-2.xlsx",
                        {"Products": products, "Storages": [["Name", "Type"]]})
    assert process(ws, path, user="manager").status == "applied"

    rows = query(ws, "SELECT entity, entity_id, action, field, old_value, new_value, "
                     "changed_by, file_name FROM change_log WHERE action = 'edited'")
    assert rows == [("product", ARGAN, "edited", "sale_price", "18.9000", "19.5", "manager",
                     "inbox/manager/catalogue-2.xlsx")]


# Commands


def test_history_command_prints_changes(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    process(ws, arrival(tmp_path, "in-2.xlsx", 8, operation_id="OP-000001", version=1))

    run = CliRunner().invoke(main, ["history", "OP-1", "--workspace", str(ws.root)])

    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert "OP-000001 version 1  created by anna" in lines[0]
    assert "OP-000001 version 2  edited by anna" in lines[1]
    assert "inbox/anna/in-2.xlsx" in lines[1]
    assert lines[2] == f"    line {ARGAN} quantity: 10 → 8"


def test_history_command_unknown_operation(ledger_ws):
    run = CliRunner().invoke(main, ["history", "OP-000042", "--workspace", str(ledger_ws.root)])

    assert run.exit_code == 1


def test_operation_show_writes_form_that_reads_back(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    process(ws, arrival(tmp_path, "in-2.xlsx", 8, operation_id="OP-000001", version=1))

    run = CliRunner().invoke(main, ["operation", "show", "OP-000001", "--user", "anna",
                                    "--workspace", str(ws.root)])

    assert run.exit_code == 0, run.output
    path = outbox(ws, "OP-000001.xlsx")
    form = openpyxl.load_workbook(path)["OP-000001"]
    labels = {form.cell(row, 1).value: form.cell(row, 2).value for row in range(1, 10)}
    assert labels["Version"] == 2
    assert query(ws, "SELECT kind, requested_by FROM data_log WHERE kind = 'operation form'") == [
        ("operation form", "anna")]
    assert process(ws, path).status == "no change"
    cancel = edit_form(path, "OP-000001", tmp_path / "cancel.xlsx", labels={"Action": "Cancel"})
    assert process(ws, cancel).status == "applied"
    assert balances(ws) == {}


def test_operation_show_unknown_operation(ledger_ws):
    run = CliRunner().invoke(main, ["operation", "show", "OP-000042",
                                    "--workspace", str(ledger_ws.root)])

    assert run.exit_code == 1


def test_check_command_reports_edit_without_applying(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    path = arrival(tmp_path, "fix.xlsx", 7, operation_id="OP-000001", version=1)

    run = CliRunner().invoke(main, ["check", str(path), "--user", "anna",
                                    "--workspace", str(ws.root)])

    assert run.exit_code == 0, run.output
    assert "OP-000001" in run.output
    assert balances(ws) == {("Products", ARGAN): Decimal(10)}
    assert query(ws, "SELECT version FROM operations") == [(1,)]


def test_template_offers_action_words(tmp_path):
    from batchstock.forms import write_form_template

    path = tmp_path / "arrival.xlsx"
    write_form_template(path, "arrival", [("Products", "sale")], [])
    sheet = openpyxl.load_workbook(path)["Arrival"]
    action_row = next(row for row in range(1, 12) if sheet.cell(row, 1).value == "Action")
    found = [dv for dv in sheet.data_validations.dataValidation
             if f"B{action_row}" in dv.sqref]

    assert len(found) == 1
    assert found[0].type == "list"
    assert found[0].formula1 == '"Edit,Cancel"'


def test_every_type_round_trips_unchanged(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    sheets = {
        "Sale": [["Operation", "Sale"], ["Date", day(5, 14)], ["Storage", "Products"],
                 ["Client", "Maria"], ["Staff member", "Olga"], ["Document no.", "R-17"],
                 ["Comment", "gift"], [],
                 ["SKU", "Quantity", "Unit", "Price", "Discount %"],
                 [ARGAN, 2, None, 18.9, 10], [ARGAN, 50, "ml", 0.08, None]],
        "Move": [["Operation", "Relocation"], ["Date", day(6)], ["From storage", "Products"],
                 ["To storage", "Consumables"], [], ["SKU", "Quantity", "Unit"],
                 [ARGAN, 125, "ml"]],
        "Off": [["Operation", "Write-off"], ["Date", day(7)], ["Storage", "Consumables"],
                ["Reason", "used in service"], ["Document no.", "W-1"], [],
                ["SKU", "Quantity", "Unit", "Comment"], [ARGAN, 25, "ml", "colour service"]],
    }
    first = process(ws, write_sheets(tmp_path / "month.xlsx", sheets))
    assert first.status == "applied", first.problems
    log_before = operation_log(ws)

    again = process(ws, outbox(ws, "month.result.xlsx"))

    assert again.status == "no change", again.problems
    assert [(s.operation_id, s.action) for s in again.operations] == [
        ("OP-000002", "no change"), ("OP-000003", "no change"), ("OP-000004", "no change")]
    assert operation_log(ws) == log_before


def test_till_id_column_is_not_operation_id(ledger_ws, tmp_path):
    ws = ledger_ws
    process(ws, arrival(tmp_path, "in.xlsx", 10))
    table = write_sheets(tmp_path / "till.xlsx", {"Receipts": [
        ["ID", "Operation", "Date", "Storage", "Receipt", "SKU", "Qty", "Price"],
        [1, "Sale", day(5), "Products", "R-1", ARGAN, 2, 18.9],
    ]})

    result = process(ws, table)

    assert result.status == "applied", result.problems
    assert [(s.operation_id, s.action) for s in result.operations] == [("OP-000002", "created")]
    assert query(ws, "SELECT version FROM operations WHERE operation_id = 'OP-000001'") == [(1,)]
