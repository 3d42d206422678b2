"""Access rights from `[users]` in batchstock.toml: storages, types, edit and cancel are
enforced on every batch, and an invalid `[users]` table is a clear workspace error."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from click.testing import CliRunner

from batchstock.access import check_users, rights_for
from batchstock.cli import main
from batchstock.config import load_settings, open_workspace
from batchstock.core import WorkspaceError
from edit_workbooks import (
    balances,
    install_clock,
    load_catalogue,
    problem_cells,
    process,
    write_form,
    write_sheets,
)

ARGAN = "SH-ARG-250"
WHEN = dt.datetime(2026, 11, 2, 10, 0)

USERS = """
[users.manager]
edit = true
cancel = true
export = true
download_others = true
see_costs = true

[users.anna]
email = "anna@example.com"
storages = ["Products"]
types = ["arrival", "sale"]
edit = true
cancel = false
see_costs = false

[users.olga]
storages = "*"
types = "*"
edit = false
cancel = true
"""


@pytest.fixture
def ruled_ws(workspace, tmp_path, monkeypatch):
    """A workspace with the catalogue, the users above, and one arrival by the manager."""
    install_clock(monkeypatch)
    (workspace.root / "batchstock.toml").write_text(USERS, encoding="utf-8")
    workspace.settings = load_settings(workspace.root)
    load_catalogue(workspace, tmp_path)
    first = arrival(tmp_path, "first.xlsx", "Products", 10)
    assert process(workspace, first, user="manager").status == "applied"
    return workspace


def arrival(tmp_path, name, storage, quantity, **options):
    fields = [("Date", WHEN), ("Storage", storage), ("Supplier", "Beauty Wholesale")]
    return write_form(tmp_path / name, "arrival", fields, [[ARGAN, quantity, 9.45]], **options)


def test_no_users_allows_everything():
    rights = rights_for({}, "anyone")

    assert rights.may_use_storage("Products")
    assert rights.may_create("relocation")
    assert all(rights.has(flag) for flag in ("edit", "cancel", "export", "see_costs"))


def test_storage_denied_at_storage_cell(ruled_ws, tmp_path):
    result = process(ruled_ws, arrival(tmp_path, "in.xlsx", "Consumables", 1), user="anna")

    assert result.status == "rejected"
    assert problem_cells(result) == [("storage_denied", "Arrival", "B3")]
    assert '"anna"' in result.problems[0].message
    assert "storages" in result.problems[0].message
    assert balances(ruled_ws) == {("Products", ARGAN): Decimal(10)}


def test_type_denied_at_type_cell(ruled_ws, tmp_path):
    fields = [("Date", WHEN), ("Storage", "Products"), ("Reason", "broken")]
    path = write_form(tmp_path / "off.xlsx", "write-off", fields, [[ARGAN, 1]])

    result = process(ruled_ws, path, user="anna")

    assert problem_cells(result) == [("type_denied", "Write-off", "B1")]
    assert "types" in result.problems[0].message


def test_relocation_target_storage_denied(ruled_ws, tmp_path):
    (ruled_ws.root / "batchstock.toml").write_text(
        USERS.replace('types = ["arrival", "sale"]', 'types = "*"'), encoding="utf-8")
    ruled_ws.settings = load_settings(ruled_ws.root)
    fields = [("Date", WHEN), ("From storage", "Products"), ("To storage", "Branch 2 shelf")]
    path = write_form(tmp_path / "move.xlsx", "relocation", fields, [[ARGAN, 1]])

    result = process(ruled_ws, path, user="anna")

    assert problem_cells(result) == [("storage_denied", "Relocation", "B4")]


def test_allowed_user_applies(ruled_ws, tmp_path):
    result = process(ruled_ws, arrival(tmp_path, "in.xlsx", "products", 2), user="anna")

    assert result.status == "applied", result.problems
    assert balances(ruled_ws) == {("Products", ARGAN): Decimal(12)}


def test_edit_denied_at_id_cell(ruled_ws, tmp_path):
    path = arrival(tmp_path, "fix.xlsx", "Products", 9, operation_id="OP-000001", version=1)

    result = process(ruled_ws, path, user="olga")

    assert problem_cells(result) == [("edit_denied", "Arrival", "B5")]
    assert '"olga"' in result.problems[0].message


def test_edit_needs_rights_on_stored_storage(ruled_ws, tmp_path):
    move = write_form(tmp_path / "in.xlsx", "arrival",
                      [("Date", WHEN), ("Storage", "Consumables")], [[ARGAN, 1, 9.45]])
    assert process(ruled_ws, move, user="manager").status == "applied"
    path = arrival(tmp_path, "fix.xlsx", "Products", 1, operation_id="OP-000002", version=1)

    result = process(ruled_ws, path, user="anna")

    assert problem_cells(result) == [("storage_denied", "Arrival", "B5")]
    assert "Consumables" in result.problems[0].message


def test_cancel_denied_at_id_cell(ruled_ws, tmp_path):
    path = write_sheets(tmp_path / "cancel.xlsx", {"Cancel": [["Operation id"], ["OP-000001"]]})

    result = process(ruled_ws, path, user="anna")

    assert problem_cells(result) == [("cancel_denied", "Cancel", "A2")]
    assert "cancel" in result.problems[0].message


def test_cancel_allowed_for_user_with_right(ruled_ws, tmp_path):
    path = write_sheets(tmp_path / "cancel.xlsx", {"Cancel": [["Operation id"], ["OP-000001"]]})

    result = process(ruled_ws, path, user="olga")

    assert result.status == "applied", result.problems
    assert balances(ruled_ws) == {}


def test_unlisted_user_has_no_rights(ruled_ws, tmp_path):
    result = process(ruled_ws, arrival(tmp_path, "in.xlsx", "Products", 1), user="zoe")

    assert problem_cells(result) == [("type_denied", "Arrival", "B1"),
                                     ("storage_denied", "Arrival", "B3")]
    assert "not listed" in result.problems[0].message


def test_check_command_enforces_rights(ruled_ws, tmp_path):
    path = arrival(tmp_path, "in.xlsx", "Consumables", 1)

    run = CliRunner().invoke(main, ["check", str(path), "--user", "anna", "--json",
                                    "--workspace", str(ruled_ws.root)])

    assert run.exit_code == 1
    assert '"storage_denied"' in run.output


def test_operation_show_needs_see_costs(ruled_ws):
    run = CliRunner().invoke(main, ["operation", "show", "OP-000001", "--user", "anna",
                                    "--workspace", str(ruled_ws.root)])

    assert run.exit_code == 1
    assert "see_costs" in run.output


@pytest.mark.parametrize(("table", "fragment"), [
    ('[users.anna]\ntypes = ["sales"]\n', "sales"),
    ("[users.anna]\nedit = \"yes\"\n", "edit"),
    ("[users.anna]\ncancell = true\n", "cancell"),
    ("[users.anna]\nstorages = 3\n", "storages"),
    ('users = "anna"\n', "[users]"),
    ("[users]\nanna = 1\n", "users.anna"),
])
def test_invalid_users_config_is_workspace_error(workspace, table, fragment):
    (workspace.root / "batchstock.toml").write_text(table, encoding="utf-8")

    with pytest.raises(WorkspaceError) as raised:
        open_workspace(workspace.root)

    assert fragment in str(raised.value)
    assert "batchstock.toml" in str(raised.value)


def test_invalid_users_config_exits_3(workspace):
    (workspace.root / "batchstock.toml").write_text('[users.anna]\ntypes = ["sales"]\n',
                                                    encoding="utf-8")

    run = CliRunner().invoke(main, ["process", "--workspace", str(workspace.root)])

    assert run.exit_code == 3
    assert "[users.anna]" in run.output


def test_check_users_accepts_valid_tables():
    check_users({"anna": {"storages": ["Products"], "types": "*", "edit": False,
                          "email": "anna@example.com"}})
    check_users({})
