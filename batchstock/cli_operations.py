"""The `batchstock history` and `batchstock operation show` commands.

`history OP-…` prints an operation's change log: who created, edited or cancelled it,
when, from which file, and each field's old → new value. `operation show OP-…` writes the
current version as a ready-to-edit form to the user's outbox. Changed and dropped in the
inbox, the form edits the operation, or cancels it when its Action is Cancel.
Exit codes as for every command: 0 done, 1 unknown operation or a missing right,
3 environment failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import duckdb

from batchstock import ledger
from batchstock.access import rights_for
from batchstock.config import open_workspace
from batchstock.core import BatchstockError, LedgerBusyError
from batchstock.forms import write_operation_form
from batchstock.history import format_history, load_form, parse_operation_id, read_history
from batchstock.inbox import now_in_zone, register_file, unique_path

EXIT_PROBLEMS = 1
EXIT_ENVIRONMENT = 3

workspace_option = click.option(
    "--workspace", "-w", "workspace_dir", envvar="BATCHSTOCK_WORKSPACE",
    type=click.Path(file_okay=False), default=None,
    help="Workspace folder (default: $BATCHSTOCK_WORKSPACE, else the current folder).",
)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _connect(workspace) -> duckdb.DuckDBPyConnection:
    try:
        return ledger.connect(workspace.ledger_path)
    except duckdb.IOException as error:
        raise LedgerBusyError(
            f"the ledger {workspace.ledger_path} is in use by another process ({error}); "
            "try again when it has finished"
        ) from error


def _canonical_id(text: str) -> str:
    operation_id = parse_operation_id(text)
    if operation_id is None:
        _fail(f'"{text}" is not an operation id such as OP-000012', EXIT_PROBLEMS)
    return operation_id


@click.command()
@workspace_option
@click.argument("operation_id")
def history(workspace_dir: str | None, operation_id: str) -> None:
    """Print the change history of OPERATION_ID, oldest change first.

    Example: batchstock history OP-000012
    """
    operation_id = _canonical_id(operation_id)
    try:
        workspace = open_workspace(workspace_dir)
        con = _connect(workspace)
        try:
            entries = read_history(con, operation_id)
        finally:
            con.close()
    except BatchstockError as error:
        _fail(str(error), EXIT_ENVIRONMENT)
    if not entries:
        _fail(f"the ledger has no operation {operation_id}", EXIT_PROBLEMS)
    for line in format_history(operation_id, entries):
        click.echo(line)


@click.group()
def operation() -> None:
    """Look at stored operations."""


@operation.command("show")
@workspace_option
@click.argument("operation_id")
@click.option("--user", default=None,
              help="Whose outbox gets the form (default: the default user).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Where to write the form (default: outbox/USER/OPERATION_ID.xlsx).")
def show(workspace_dir: str | None, operation_id: str, user: str | None,
         output: str | None) -> None:
    """Write the current version of OPERATION_ID as a ready-to-edit form.

    Change the form and drop it in the inbox to edit the operation, or set its Action to
    Cancel to cancel it. Example: batchstock operation show OP-000012
    """
    operation_id = _canonical_id(operation_id)
    try:
        workspace = open_workspace(workspace_dir)
        requester = user or workspace.settings.default_user
        con = _connect(workspace)
        try:
            target = _write_form(workspace, con, operation_id, requester, output)
        finally:
            con.close()
    except BatchstockError as error:
        _fail(str(error), EXIT_ENVIRONMENT)
    click.echo(f"{operation_id} written to {target}")


def _write_form(workspace, con, operation_id: str, requester: str, output: str | None) -> Path:
    form = load_form(con, operation_id)
    if form is None:
        _fail(f"the ledger has no operation {operation_id}", EXIT_PROBLEMS)
    rights = rights_for(workspace.settings.users, requester)
    if form.type == "arrival" and not rights.has("see_costs"):
        _fail(f'user "{requester}" may not see cost prices (right: see_costs in '
              f"[users.{requester}]), and an arrival form shows them", EXIT_PROBLEMS)
    storages = con.execute("SELECT name, type FROM storages ORDER BY name").fetchall()
    products = con.execute(
        "SELECT sku, name, sale_unit, base_unit FROM products ORDER BY sku"
    ).fetchall()
    if output:
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
    else:
        target = unique_path(workspace.user_outbox(requester), f"{operation_id}.xlsx")
    write_operation_form(target, form, storages, products)
    # The data log stores paths relative to the workspace, so a form written outside it
    # is not registered.
    if target.resolve().is_relative_to(workspace.root):
        register_file(workspace, con, kind="operation form", requested_by=requester,
                      requested_at=now_in_zone(workspace), path=target.resolve(),
                      parameters={"operation_id": operation_id, "version": form.version})
    return target
