"""The movements report: opening, flows and closing per storage and product, with its check.

The Movements sheet shows, for a period, each storage and product's opening balance,
arrivals, sales, write-offs, relocations in and out, and closing balance, in sale units
and in value (see `balances` for the revaluation column). The Check sheet compares every
row's opening and opening + in − out = closing with balances read independently from the
ledger, exactly and in write-off units for quantity, and lists each difference, or states
that there is none.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from batchstock.balances import (
    SUMMARY_TABLE,
    BalanceDifference,
    compare_with_balances,
    summarise_movements,
)
from batchstock.reports import (
    Column,
    ReportFile,
    ReportRequest,
    ReportWorkbook,
    finish_report,
    prepare_ledger,
    start_report,
    stream_rows,
)

_FLOW_TITLES = ("Opening", "Arrivals", "Sales", "Write-offs", "Relocations in",
                "Relocations out", "Closing")
_FLOW_NAMES = ("opening", "arrivals", "sales", "write_offs", "relocations_in",
               "relocations_out", "closing")

MOVEMENT_COLUMNS = (
    [Column("Storage"), Column("SKU"), Column("Product"), Column("Sale unit")]
    + [Column(title, "quantity") for title in _FLOW_TITLES]
    + [Column("Write-off unit"), Column("Closing in write-off units", "quantity")]
    + [Column(f"{title} value", "money", True, cost=True) for title in _FLOW_TITLES[:-1]]
    + [Column("Revaluation", "money", True, cost=True),
       Column("Closing value", "money", True, cost=True)]
)

_ROWS_SQL = f"""
SELECT s.name, p.sku, p.name, p.sale_unit,
    {", ".join(f"sale_units(m.{name}, p.equals)" for name in _FLOW_NAMES)},
    p.base_unit, m.closing,
    {", ".join(f"m.{name}_value" for name in _FLOW_NAMES[:-1])},
    m.revaluation, m.closing_value
FROM {SUMMARY_TABLE} m
JOIN storages s USING (storage_id)
JOIN products p USING (product_id)
ORDER BY s.name, p.sku
"""

CHECK_COLUMNS = [
    Column("Storage"), Column("SKU"), Column("Product"), Column("Measure"),
    Column("Balance"), Column("Report", "quantity"), Column("Independent", "quantity"),
    Column("Difference", "quantity"),
]


def write_movements_report(con: duckdb.DuckDBPyConnection, request: ReportRequest,
                           start: dt.datetime, end: dt.datetime) -> ReportFile:
    """Write the movements report for [start, end) with its Check sheet."""
    prepare_ledger(con)
    summarise_movements(con, start, end)
    last_day = end - dt.timedelta(microseconds=1)
    name = f"movements-{start:%Y-%m-%d}-to-{last_day:%Y-%m-%d}.xlsx"
    report, target = start_report(request, name)
    table = report.add_table("Movements", MOVEMENT_COLUMNS, request)
    for row in stream_rows(con, _ROWS_SQL):
        table.write_row(row)
    count = table.finish()
    differences = compare_with_balances(con, start, end)
    write_check_sheet(report, differences, count)
    verdict = "no difference" if not differences else f"{len(differences)} differences"
    written = finish_report(con, request, report, target, "movements", count,
                            [("Check", verdict),
                             ("Quantities", "sale units; the check compares write-off units")])
    written.differences = len(differences)
    return written


def write_check_sheet(report: ReportWorkbook, differences: list[BalanceDifference],
                      rows_checked: int) -> None:
    """Write the Check sheet: each difference, or one row stating there is none.

    Differences are exact: a value difference below half a cent is still listed, with
    the digits that the cell's General format shows.
    """
    table = report.add_table("Check", CHECK_COLUMNS)
    if not differences:
        table.write_row(["No difference", None, None, "quantity and value",
                         "opening and closing", None, None, 0])
    for item in differences:
        table.write_row([item.storage, item.sku, item.product, item.measure, item.moment,
                         item.reported, item.expected, item.difference])
    last = table.row - 1
    table.finish(f"{rows_checked} rows checked, {len(differences)} differences")
    column = len(CHECK_COLUMNS) - 1
    table.sheet.conditional_format(1, column, last, column, {
        "type": "cell", "criteria": "!=", "value": 0, "format": report.formats["difference"],
    })
