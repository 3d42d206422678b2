"""Commands for exports, the data log, the web app and passwords.

`batchstock export operations|recreate|template`, `batchstock log`, `batchstock serve` and
`batchstock user set-password`. Each parses its options, calls one library function and
renders the outcome, with the exit codes of `cli`: 0 success, 1 a request that cannot run,
2 usage, 3 environment (no workspace, ledger busy, invalid settings).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from batchstock.config import open_workspace
from batchstock.core import BatchstockError

EXIT_PROBLEMS = 1
EXIT_ENVIRONMENT = 3

workspace_option = click.option(
    "--workspace", "-w", "workspace_dir", envvar="BATCHSTOCK_WORKSPACE",
    type=click.Path(file_okay=False), default=None,
    help="Workspace folder (default: $BATCHSTOCK_WORKSPACE, else the current folder).",
)


def _fail(error: Exception, code: int = EXIT_ENVIRONMENT) -> None:
    click.echo(f"Error: {error}", err=True)
    sys.exit(code)


class _ProgressBar:
    """A rich progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.progress = Progress(
            "{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            transient=True, disable=not sys.stderr.isatty(),
        )
        self.task = None

    def __enter__(self) -> Callable[[int, int], None]:
        self.progress.__enter__()

        def update(done: int, total: int) -> None:
            if self.task is None:
                self.task = self.progress.add_task("exporting lines", total=total)
            self.progress.update(self.task, completed=done)

        return update

    def __exit__(self, *exc_info) -> None:
        self.progress.__exit__(*exc_info)


def _run_export(workspace_dir: str | None, build_request, as_of: bool = False,
                recreated_from: int | None = None) -> None:
    from batchstock.datalog import connect_when_free
    from batchstock.exports import ExportRequestError, export_operations
    from batchstock.mail import deliver_export

    try:
        workspace = open_workspace(workspace_dir)
        con = connect_when_free(workspace)
        try:
            request, position = build_request(con, workspace)
            with _ProgressBar() as progress:
                export = export_operations(workspace, con, request, progress,
                                           as_of=position, recreated_from=recreated_from)
            status = deliver_export(workspace, con, export)
        finally:
            con.close()
    except ExportRequestError as error:
        _fail(error, EXIT_PROBLEMS)
    except BatchstockError as error:
        _fail(error)
    click.echo(f"export {export.entry_id}: {export.row_count} lines as of ledger position "
               f"{export.ledger_position} → {export.path.relative_to(workspace.root)}")
    click.echo(f"email {status}")


@click.group()
def export() -> None:
    """Export the operations list to Excel and email the requester a link."""


@export.command("operations")
@workspace_option
@click.option("--from", "date_from", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="First business date, such as 2026-11-01.")
@click.option("--to", "date_to", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Last business date, included.")
@click.option("--type", "types", multiple=True,
              help="Only this operation type (arrival, sale, relocation, write-off); repeat "
                   "for several.")
@click.option("--storage", "storages", multiple=True,
              help="Only operations taking stock from or into this storage; repeat for several.")
@click.option("--requested-by", default=None,
              help="The user the export is for (default: the default user). Their rights "
                   "decide what it shows, and the link goes to their email address.")
def export_operations_command(workspace_dir, date_from, date_to, types, storages,
                              requested_by) -> None:
    """Write the operations between two dates, one row per line, and email the link.

    Example: batchstock export operations --from 2026-11-01 --to 2026-11-30 --type sale

    Exits 1 when the requester may not export or a filter names an unknown type or storage.
    """
    from batchstock.exports import ExportRequest

    def build(con, workspace):
        user = requested_by or workspace.settings.default_user
        return ExportRequest(date_from.date(), date_to.date(), user, types, storages), None

    _run_export(workspace_dir, build)


@export.command("recreate")
@workspace_option
@click.argument("entry_id", type=int)
@click.option("--requested-by", default=None,
              help="The user the new file is for (default: the original requester).")
def export_recreate(workspace_dir, entry_id: int, requested_by: str | None) -> None:
    """Write an earlier export again as of its ledger position: the same rows, whatever
    changed in the ledger since.

    Example: batchstock export recreate 12
    """
    from batchstock.exports import request_from_entry

    def build(con, workspace):
        return request_from_entry(con, entry_id, requested_by)

    _run_export(workspace_dir, build, recreated_from=entry_id)


@export.command("template")
@workspace_option
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Where to write it (default: outbox/templates/export-request.xlsx).")
def export_template(workspace_dir: str | None, output: str | None) -> None:
    """Write a blank export request to fill in and drop in the inbox."""
    from batchstock.export_requests import write_export_request_template

    try:
        workspace = open_workspace(workspace_dir)
    except BatchstockError as error:
        _fail(error)
    target = Path(output) if output else workspace.outbox / "templates" / "export-request.xlsx"
    write_export_request_template(target)
    click.echo(f"Export request written to {target}")


@click.command("log")
@workspace_option
@click.option("--kind", default=None, help="Only entries of this kind (result, export, …).")
@click.option("--user", default=None, help="Only entries this user requested.")
@click.option("--limit", default=50, show_default=True, help="How many entries, newest first.")
def log_command(workspace_dir: str | None, kind: str | None, user: str | None,
                limit: int) -> None:
    """List the data log: the files batchstock produced, newest first."""
    from batchstock.datalog import EntryFilter, connect_when_free, list_entries

    try:
        workspace = open_workspace(workspace_dir)
        con = connect_when_free(workspace)
        try:
            entries = list_entries(con, EntryFilter(kind=kind, user=user, limit=limit))
            kinds = [row[0] for row in con.execute(
                "SELECT DISTINCT kind FROM data_log ORDER BY kind").fetchall()]
        finally:
            con.close()
    except BatchstockError as error:
        _fail(error)
    if not entries:
        click.echo("The data log has no matching entries.")
        if kind is not None and kind not in kinds:
            click.echo(f"No entry has kind {kind!r}; kinds in the data log: "
                       f"{', '.join(kinds) or 'none yet'}", err=True)
        return
    click.echo(f"{'id':>5}  {'kind':14} {'requested by':14} {'requested at':16} "
               f"{'rows':>8} {'downloads':>9}  path / delivery")
    for entry in entries:
        rows = "" if entry.row_count is None else str(entry.row_count)
        click.echo(f"{entry.entry_id:>5}  {entry.kind:14} {entry.requested_by:14} "
                   f"{entry.requested_at:%Y-%m-%d %H:%M} {rows:>8} {entry.download_count:>9}  "
                   f"{entry.path}")
        if entry.delivery_status:
            click.echo(f"{'':>80}{entry.delivery_status}")


@click.command()
@workspace_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Keep 127.0.0.1 unless a TLS proxy sits in front.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port to listen on.")
def serve(workspace_dir: str | None, host: str, port: int) -> None:
    """Serve the data-log page and the download links until Ctrl-C.

    Users sign in with the password set by `batchstock user set-password NAME`. Links in
    emails start with [serve] base_url of batchstock.toml (default http://127.0.0.1:8080).
    """
    from batchstock.web import serve as serve_app

    try:
        workspace = open_workspace(workspace_dir)
        serve_app(workspace.root, host, port)
    except BatchstockError as error:
        _fail(error)


@click.group()
def user() -> None:
    """Manage sign-in passwords for `batchstock serve`."""


@user.command("set-password")
@workspace_option
@click.argument("name")
@click.password_option("--password", prompt="New password", confirmation_prompt=True,
                       help="The new password; prompted for (twice) when left out.")
def set_password_command(workspace_dir: str | None, name: str, password: str) -> None:
    """Set the password NAME signs in to `batchstock serve` with.

    The password is stored as an argon2id hash in .batchstock/passwords.json. When
    batchstock.toml lists [users], NAME must be one of them.
    """
    from batchstock.credentials import set_password

    try:
        workspace = open_workspace(workspace_dir)
    except BatchstockError as error:
        _fail(error)
    users = workspace.settings.users
    if users and name not in users:
        _fail(ValueError(f"{name} is not listed in the [users] of batchstock.toml; add "
                         f"[users.{name}] first"), EXIT_PROBLEMS)
    try:
        set_password(workspace, name, password)
    except ValueError as error:
        _fail(error, EXIT_PROBLEMS)
    click.echo(f"Password of {name} set.")
