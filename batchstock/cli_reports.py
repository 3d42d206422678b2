"""The `batchstock report …` and `batchstock reconcile` commands.

Each report command writes one workbook to `outbox/reports/`, registers it in the data
log and prints where it is. Dates are written as in the sheets: 2026-11-30, 30.11.2026,
or with a time, 2026-11-30 18:00. A date alone means the whole day: `--at 2026-11-30` is
the stock at the end of that day, `--from`/`--to` include both days.
Exit codes: 0 done, 1 a check found differences (or the report is too large),
2 usage error, 3 environment failure (no workspace, ledger busy).
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import click
import duckdb

from batchstock import ledger
from batchstock.config import Workspace, open_workspace
from batchstock.core import BatchstockError, LedgerBusyError
from batchstock.reports import ReportError, ReportFile, ReportRequest, storage_id_by_name
from batchstock.values import CellValueError, to_datetime

EXIT_PROBLEMS = 1
EXIT_ENVIRONMENT = 3

workspace_option = click.option(
    "--workspace", "-w", "workspace_dir", envvar="BATCHSTOCK_WORKSPACE",
    type=click.Path(file_okay=False), default=None,
    help="Workspace folder (default: $BATCHSTOCK_WORKSPACE, else the current folder).",
)
user_option = click.option(
    "--user", default=None,
    help="User who requests the report, for the data log and the see_costs right "
         "(default: the workspace's default user).",
)


def parse_moment(text: str | None, end_of_day: bool) -> dt.datetime | None:
    """Turn a date option into a bound: the start of the day, or with `end_of_day` the
    start of the next day (an exclusive end). A date with a time is that moment, and as
    an end it includes the moment itself."""
    if text is None:
        return None
    try:
        moment = to_datetime(text)
    except CellValueError as error:
        raise click.BadParameter(str(error)) from None
    if moment is None:
        raise click.BadParameter("the date is empty; write 2026-11-30")
    has_time = ":" in text
    if not end_of_day:
        return moment
    return moment + (dt.timedelta(microseconds=1) if has_time else dt.timedelta(days=1))


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _connect(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    try:
        return ledger.connect(workspace.ledger_path)
    except duckdb.IOException as error:
        raise LedgerBusyError(
            f"the ledger {workspace.ledger_path} is in use by another process ({error}); "
            "try again when it has finished, or enable [reports] refresh_stock_after_batch "
            "for the stock report"
        ) from error


def _run_report(workspace_dir: str | None, user: str | None, parameters: dict,
                write) -> None:
    """Open the workspace and ledger, call `write(con, request)`, print the outcome."""
    try:
        workspace = open_workspace(workspace_dir)
        request = ReportRequest(workspace, user or workspace.settings.default_user,
                                parameters)
        con = _connect(workspace)
        try:
            written: ReportFile = write(con, request)
        finally:
            con.close()
    except ReportError as error:
        _fail(str(error), EXIT_PROBLEMS)
    except BatchstockError as error:
        _fail(str(error), EXIT_ENVIRONMENT)
    where = written.path.relative_to(workspace.root)
    click.echo(f"Report written to {where} ({written.row_count} rows, data log entry "
               f"{written.entry_id})")
    if written.differences is not None:
        click.echo(f"  check: {written.differences} differences")
        if written.differences:
            sys.exit(EXIT_PROBLEMS)


def _storage(con: duckdb.DuckDBPyConnection, name: str | None) -> int | None:
    try:
        return storage_id_by_name(con, name)
    except ReportError as error:
        raise click.BadParameter(str(error), param_hint="--storage") from None


def _period(start_text: str, end_text: str) -> tuple[dt.datetime, dt.datetime]:
    start = parse_moment(start_text, end_of_day=False)
    end = parse_moment(end_text, end_of_day=True)
    if end <= start:
        raise click.BadParameter(f"--to {end_text} is before --from {start_text}",
                                 param_hint="--to")
    return start, end


@click.group()
def report() -> None:
    """Write a report workbook to outbox/reports/ and record it in the data log."""


@report.command("stock")
@workspace_option
@user_option
@click.option("--at", "at_text", default=None,
              help="Stock at the end of this date (default: now, with every movement).")
@click.option("--storage", default=None, help="Only this storage (default: all).")
def report_stock(workspace_dir, user, at_text, storage) -> None:
    """Stock per storage and product: quantity in sale and write-off units, cost value,
    sale value, and flags for critical and below-desired stock.

    Example: batchstock report stock --at 2026-11-30 --storage Products
    """
    from batchstock.reports_stock import write_stock_report

    until = parse_moment(at_text, end_of_day=True)
    _run_report(workspace_dir, user, {"at": at_text, "storage": storage},
                lambda con, request: write_stock_report(con, request, until,
                                                        _storage(con, storage)))


@report.command("movements")
@workspace_option
@user_option
@click.option("--from", "from_text", required=True, help="First day of the period.")
@click.option("--to", "to_text", required=True, help="Last day of the period (included).")
def report_movements(workspace_dir, user, from_text, to_text) -> None:
    """Opening, arrivals, sales, write-offs, relocations and closing per storage and
    product, in quantity and value, with a Check sheet. Exits 1 when the check finds a
    difference.

    Example: batchstock report movements --from 2026-11-01 --to 2026-11-30
    """
    from batchstock.reports_movements import write_movements_report

    start, end = _period(from_text, to_text)
    _run_report(workspace_dir, user, {"from": from_text, "to": to_text},
                lambda con, request: write_movements_report(con, request, start, end))


@report.command("order")
@workspace_option
@user_option
@click.option("--storage", default=None,
              help="Compare the stock of this storage only (default: all storages).")
def report_order(workspace_dir, user, storage) -> None:
    """Products below desired stock and the whole sale units to order, critical first.

    Example: batchstock report order
    """
    from batchstock.reports_stock import write_order_report

    _run_report(workspace_dir, user, {"storage": storage},
                lambda con, request: write_order_report(con, request,
                                                        _storage(con, storage)))


@report.command("sales")
@workspace_option
@user_option
@click.option("--from", "from_text", required=True, help="First day of the period.")
@click.option("--to", "to_text", required=True, help="Last day of the period (included).")
def report_sales(workspace_dir, user, from_text, to_text) -> None:
    """Quantity, revenue, discount, cost and margin per storage and product, with charts
    of the top products by margin and of revenue per week.

    Example: batchstock report sales --from 2026-11-01 --to 2026-11-30
    """
    from batchstock.reports_sales import write_sales_report

    start, end = _period(from_text, to_text)
    _run_report(workspace_dir, user, {"from": from_text, "to": to_text},
                lambda con, request: write_sales_report(con, request, start, end))


@click.command()
@workspace_option
@click.option("--at", "at_text", default=None,
              help="Check business time up to the end of this date (default: all).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per finding instead of a summary.")
def reconcile(workspace_dir, at_text, as_json) -> None:
    """Check that every balance in the ledger follows from its movements.

    Checks opening + in − out = closing per storage and product in quantity and value,
    the stock_balance and stock_value views against plain sums, negative stock (unless
    allowed), the moving-average costs, and each operation's movements against its lines.
    Exits 1 on any difference.
    """
    from batchstock.reconcile import reconcile_ledger

    until = parse_moment(at_text, end_of_day=True)
    try:
        workspace = open_workspace(workspace_dir)
        con = _connect(workspace)
        try:
            outcome = reconcile_ledger(con, until, workspace.settings.allow_negative_stock)
        finally:
            con.close()
    except BatchstockError as error:
        _fail(str(error), EXIT_ENVIRONMENT)
    if as_json:
        for finding in outcome.findings:
            click.echo(json.dumps({"check": finding.check, "subject": finding.subject,
                                   "message": finding.message}, ensure_ascii=False))
    else:
        for check, count in outcome.checked.items():
            failed = sum(1 for finding in outcome.findings if finding.check == check)
            status = "ok  " if not failed else "FAIL"
            click.echo(f"{status} {check}: {count} rows checked, {failed} differences")
        for finding in outcome.findings:
            click.echo(f"  {finding}")
    sys.exit(0 if outcome.ok else EXIT_PROBLEMS)
