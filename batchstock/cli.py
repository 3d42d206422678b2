"""The `batchstock` command line.

Each command parses its options, calls one library function and renders the outcome.
Exit codes: 0 success, 1 problems in the data (a rejected batch, a failed check),
2 usage errors (click's own), 3 environment failures (no workspace, ledger busy).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from batchstock import ledger
from batchstock.access import rights_for
from batchstock.config import init_workspace, open_workspace
from batchstock.core import BatchstockError, Problem
from batchstock.inbox import FiledBatch, now_in_zone, register_file
from batchstock.pipeline import BatchInput, process_batch
from batchstock.results import write_result_workbook

EXIT_PROBLEMS = 1
EXIT_ENVIRONMENT = 3

workspace_option = click.option(
    "--workspace", "-w", "workspace_dir", envvar="BATCHSTOCK_WORKSPACE",
    type=click.Path(file_okay=False), default=None,
    help="Workspace folder (default: $BATCHSTOCK_WORKSPACE, else the current folder).",
)


def _fail(error: BatchstockError) -> None:
    click.echo(f"Error: {error}", err=True)
    sys.exit(EXIT_ENVIRONMENT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchstock")
@click.option("--verbose", "-v", is_flag=True, help="Log every step, with timings.")
@click.option(
    "--workspace", "-w", "workspace_dir", type=click.Path(file_okay=False), default=None,
    help="Workspace folder for the command that follows, as its own --workspace option sets.",
)
def main(verbose: bool, workspace_dir: str | None) -> None:
    """batchstock: apply inventory operations from Excel workbooks to a DuckDB ledger."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
    )
    if workspace_dir is not None:
        _set_workspace_variable(workspace_dir)


def _set_workspace_variable(directory: str) -> None:
    """Set BATCHSTOCK_WORKSPACE, which every command reads as its default workspace, until
    the command ends; a command's own --workspace option still wins."""
    previous = os.environ.get("BATCHSTOCK_WORKSPACE")
    os.environ["BATCHSTOCK_WORKSPACE"] = directory

    def restore() -> None:
        if previous is None:
            os.environ.pop("BATCHSTOCK_WORKSPACE", None)
        else:
            os.environ["BATCHSTOCK_WORKSPACE"] = previous

    click.get_current_context().call_on_close(restore)


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def init(directory: str | None) -> None:
    """Create a workspace in DIRECTORY (default: the current folder).

    Example: batchstock init salon
    """
    try:
        workspace = init_workspace(directory)
        ledger.connect(workspace.ledger_path).close()
    except BatchstockError as error:
        _fail(error)
    click.echo(f"Workspace ready in {workspace.root}")
    click.echo(f"  drop workbooks in {workspace.inbox}/<user>/")
    click.echo(f"  results appear in {workspace.outbox}/<user>/")


def _print_problems(problems: list[Problem], as_json: bool) -> None:
    for problem in problems:
        if as_json:
            click.echo(json.dumps(problem.to_json(), ensure_ascii=False))
        else:
            click.echo(f"  {problem}", err=True)


def _render_filed(filed: FiledBatch, as_json: bool, root: Path) -> None:
    result = filed.result
    if as_json:
        _print_problems(result.problems, True)
        return
    ids = ", ".join(op.operation_id for op in result.operations)
    where = filed.result_path.relative_to(root)
    click.echo(f"{result.status:9} {result.file} → {where}" + (f"  [{ids}]" if ids else ""))
    _print_problems(result.problems, False)


@main.command()
@workspace_option
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per problem on stdout instead of a summary.")
def process(workspace_dir: str | None, as_json: bool) -> None:
    """Process every file in the inbox once, oldest first.

    Exits 0 when every file was applied (or was a duplicate) and 1 when any was rejected.
    """
    from rich.progress import Progress

    from batchstock.watcher import run_pass

    try:
        workspace = open_workspace(workspace_dir)
        with Progress(transient=True, disable=as_json or not sys.stderr.isatty()) as bar:
            def progress(total: int):
                task = bar.add_task("processing", total=total, visible=total > 1)
                return lambda: bar.advance(task)

            report = run_pass(
                workspace, on_file=lambda f: _render_filed(f, as_json, workspace.root),
                progress=progress,
            )
    except BatchstockError as error:
        _fail(error)
    for path in report.waiting:
        if not as_json:
            click.echo(f"waiting   {path.relative_to(workspace.root)}: still being copied or "
                       "cut off; run again later")
    if not report.filed and not report.waiting and not as_json:
        click.echo("The inbox is empty.")
    sys.exit(0 if report.all_applied else EXIT_PROBLEMS)


@main.command()
@workspace_option
@click.option("--poll", default=2.0, show_default=True,
              help="Seconds between inbox checks when no file event arrives.")
def watch(workspace_dir: str | None, poll: float) -> None:
    """Keep processing files as they arrive, until Ctrl-C or SIGTERM."""
    from batchstock.watcher import watch as watch_inbox

    try:
        workspace = open_workspace(workspace_dir)
        watch_inbox(workspace, poll_seconds=poll)
    except BatchstockError as error:
        _fail(error)


@main.command()
@workspace_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", default=None, help="Check as this user (default: the default user).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per problem.")
def check(workspace_dir: str | None, file: str, user: str | None, as_json: bool) -> None:
    """Validate FILE against the current ledger without applying it.

    Writes the result workbook to the user's outbox and exits 1 when FILE has problems.
    """
    try:
        workspace = open_workspace(workspace_dir)
        submitter = user or workspace.settings.default_user
        path = Path(file)
        con = ledger.connect(workspace.ledger_path)
        try:
            now = now_in_zone(workspace)
            rights = rights_for(workspace.settings.users, submitter)
            outcome = process_batch(
                con, BatchInput(path, path.name, submitter, rights=rights), now,
                workspace.settings.allow_negative_stock, apply=False,
            )
            from batchstock.inbox import unique_path

            target = unique_path(workspace.user_outbox(submitter), f"{path.stem}.check.xlsx")
            write_result_workbook(target, outcome.result, outcome.sheets)
            register_file(workspace, con, kind="check", requested_by=submitter,
                          requested_at=now, path=target, parameters={"file": path.name})
        finally:
            con.close()
    except BatchstockError as error:
        _fail(error)
    filed = FiledBatch(outcome.result, target, path)
    _render_filed(filed, as_json, workspace.root)
    sys.exit(0 if not outcome.result.problems else EXIT_PROBLEMS)


@main.group()
def catalog() -> None:
    """Manage products and storages."""


@catalog.command("import")
@workspace_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--user", default=None, help="Who makes the change (default: the default user).")
def catalog_import(workspace_dir: str | None, file: str, user: str | None) -> None:
    """Load products and storages from FILE (sheets Products and Storages).

    Products are updated by SKU and storages by name; every change is logged.
    """
    from batchstock.workbook import WorkbookReadError, read_workbook
    from batchstock.sheets import is_catalogue

    try:
        workspace = open_workspace(workspace_dir)
        path = Path(file)
        try:
            grids = read_workbook(path)
        except WorkbookReadError as error:
            _print_problems(error.to_problems(path.name), False)
            sys.exit(EXIT_PROBLEMS)
        if not is_catalogue(grids):
            click.echo(f"Error: {path.name} has no Products and Storages sheets", err=True)
            sys.exit(EXIT_PROBLEMS)
        con = ledger.connect(workspace.ledger_path)
        try:
            outcome = process_batch(con, BatchInput(path, path.name,
                                    user or workspace.settings.default_user),
                                    now_in_zone(workspace))
        finally:
            con.close()
    except BatchstockError as error:
        _fail(error)
    result = outcome.result
    for note in result.notes:
        click.echo(note.message)
    _print_problems(result.problems, False)
    if result.status == "duplicate":
        click.echo(f"{path.name} was imported before as {result.duplicate_of}; nothing changed")
    sys.exit(0 if result.status in ("applied", "duplicate") else EXIT_PROBLEMS)


@main.command()
@workspace_option
@click.argument("operation_type", type=click.Choice(["arrival", "sale", "relocation",
                                                     "write-off"]))
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Where to write the template (default: outbox/templates/TYPE.xlsx).")
def template(workspace_dir: str | None, operation_type: str, output: str | None) -> None:
    """Write a form template for OPERATION_TYPE with drop-downs of storages and SKUs."""
    from batchstock.forms import write_form_template

    try:
        workspace = open_workspace(workspace_dir)
        con = ledger.connect(workspace.ledger_path)
        try:
            storages = con.execute("SELECT name, type FROM storages ORDER BY name").fetchall()
            products = con.execute(
                "SELECT sku, name, sale_unit, base_unit FROM products ORDER BY sku"
            ).fetchall()
        finally:
            con.close()
    except BatchstockError as error:
        _fail(error)
    target = Path(output) if output else workspace.outbox / "templates" / f"{operation_type}.xlsx"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_form_template(target, operation_type, storages, products)
    click.echo(f"Template written to {target}")


@main.command()
@workspace_option
def demo(workspace_dir: str | None) -> None:
    """Apply the bundled sample month to a workspace and show where everything went.

    Creates the workspace when needed, drops the sample workbooks in its inbox in order,
    processes them, and prints the stock balance. Running it again shows that identical
    files are recognised as duplicates and not applied twice.
    """
    from batchstock.demo import run_demo

    try:
        summary = run_demo(workspace_dir)
    except BatchstockError as error:
        _fail(error)
    for line in summary:
        click.echo(line)


from batchstock.cli_operations import history, operation  # noqa: E402

main.add_command(history)
main.add_command(operation)

from batchstock.cli_reports import reconcile, report  # noqa: E402

main.add_command(report)
main.add_command(reconcile)

from batchstock.cli_exports import export, log_command, serve, user  # noqa: E402

main.add_command(export)
main.add_command(log_command)
main.add_command(serve)
main.add_command(user)

if __name__ == "__main__":
    main()
