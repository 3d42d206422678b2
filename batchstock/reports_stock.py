"""The stock balance report and the product order report.

Both compare stock with the catalogue's stock levels, which are per product and in sale
units. The stock report flags each storage's row on its own quantity: at or below critical
stock, or below desired stock. The order report compares a product's total over all
storages (or over the one storage requested), because an order to the supplier is for the
whole salon. It lists the whole sale units to order to reach desired stock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import duckdb

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.inbox import FiledBatch
from batchstock.reports import (
    Column,
    ReportFile,
    ReportRequest,
    finish_report,
    prepare_ledger,
    start_report,
    stream_rows,
)

log = logging.getLogger(__name__)

# The file `watch` keeps current when [reports] refresh_stock_after_batch is set.
CURRENT_STOCK_FILE = "stock-balance-current.xlsx"

STOCK_COLUMNS = [
    Column("Storage"), Column("SKU"), Column("Product"),
    Column("Quantity", "quantity"), Column("Sale unit"),
    Column("Quantity in write-off units", "quantity"), Column("Write-off unit"),
    Column("Unit cost", "cost", cost=True), Column("Cost value", "money", True, cost=True),
    Column("Sale price", "money"), Column("Sale value", "money", True),
    Column("Critical stock", "quantity"), Column("Desired stock", "quantity"),
    Column("Status"),
]

# Balances before `until` (all when NULL), in one storage or all, with the average cost
# in force. `unit_cost` is per sale unit; `cost_value` is exact in write-off units.
STOCK_SQL = """
WITH balances AS (
    SELECT storage_id, product_id, sum(base_quantity) AS base_quantity
    FROM movement_entries
    WHERE occurred_at < coalesce($until, TIMESTAMP 'infinity')
      AND ($storage IS NULL OR storage_id = $storage)
    GROUP BY storage_id, product_id
),
costs AS (
    SELECT product_id, arg_max(unit_cost, occurred_at) AS unit_cost
    FROM cost_averages
    WHERE occurred_at < coalesce($until, TIMESTAMP 'infinity')
    GROUP BY product_id
),
rows AS (
    SELECT s.name AS storage, p.sku, p.name AS product,
        sale_units(b.base_quantity, p.equals) AS quantity, p.sale_unit,
        b.base_quantity, p.base_unit,
        coalesce(c.unit_cost, 0) * p.equals AS unit_cost,
        b.base_quantity * coalesce(c.unit_cost, 0) AS cost_value,
        p.sale_price,
        sale_units(b.base_quantity, p.equals) * p.sale_price AS sale_value,
        p.critical_stock, p.desired_stock
    FROM balances b
    JOIN storages s USING (storage_id)
    JOIN products p USING (product_id)
    LEFT JOIN costs c USING (product_id)
)
SELECT *,
    CASE
        WHEN quantity < 0 THEN 'negative'
        WHEN quantity <= critical_stock THEN 'critical'
        WHEN quantity < desired_stock THEN 'below desired'
    END AS status
FROM rows
ORDER BY storage, sku
"""

ORDER_COLUMNS = [
    Column("SKU"), Column("Product"), Column("Quantity", "quantity"), Column("Sale unit"),
    Column("Critical stock", "quantity"), Column("Desired stock", "quantity"),
    Column("To order", "quantity"), Column("Cost price", "money", cost=True),
    Column("Estimated cost", "money", True, cost=True), Column("Status"),
]

# Products below desired stock, critical first. A product with no movements has none.
ORDER_SQL = """
WITH totals AS (
    SELECT product_id, sum(base_quantity) AS base_quantity
    FROM movement_entries
    WHERE $storage IS NULL OR storage_id = $storage
    GROUP BY product_id
),
rows AS (
    SELECT p.sku, p.name AS product,
        sale_units(coalesce(t.base_quantity, 0), p.equals) AS quantity, p.sale_unit,
        p.critical_stock, p.desired_stock, p.cost_price
    FROM products p LEFT JOIN totals t USING (product_id)
    WHERE p.desired_stock IS NOT NULL
)
SELECT sku, product, quantity, sale_unit, critical_stock, desired_stock,
    ceil(desired_stock - quantity) AS to_order, cost_price,
    ceil(desired_stock - quantity) * cost_price AS estimated_cost,
    CASE WHEN quantity <= critical_stock THEN 'critical' ELSE 'below desired' END AS status
FROM rows
WHERE quantity < desired_stock
ORDER BY coalesce(quantity <= critical_stock, false) DESC, sku
"""


def write_stock_report(con: duckdb.DuckDBPyConnection, request: ReportRequest,
                       until: dt.datetime | None, storage_id: int | None,
                       file_name: str | None = None) -> ReportFile:
    """Write the stock balance before `until` (now when None), per storage and product.

    Rows at or below critical stock are filled red and rows below desired stock yellow.
    A `file_name` replaces the file of that name rather than adding a new one.
    """
    prepare_ledger(con)
    report, target = start_report(request, file_name or _stock_file_name(until),
                                  replace=file_name is not None)
    table = report.add_table("Stock", STOCK_COLUMNS, request)
    for row in stream_rows(con, STOCK_SQL, {"until": until, "storage": storage_id}):
        table.write_row(row)
    last = table.row
    status = table.column_letter("Status")
    count = table.finish()
    if count:
        for value, fmt in (("critical", "critical"), ("negative", "critical"),
                           ("below desired", "below")):
            table.sheet.conditional_format(1, 0, last - 1, len(table.columns) - 1, {
                "type": "formula", "criteria": f'=${status}2="{value}"',
                "format": report.formats[fmt],
            })
    return finish_report(con, request, report, target, "stock balance", count)


def _stock_file_name(until: dt.datetime | None) -> str:
    stamp = "now" if until is None else f"{until - dt.timedelta(microseconds=1):%Y-%m-%d}"
    return f"stock-balance-{stamp}.xlsx"


def write_order_report(con: duckdb.DuckDBPyConnection, request: ReportRequest,
                       storage_id: int | None) -> ReportFile:
    """Write the products below desired stock and the whole sale units to order."""
    prepare_ledger(con)
    report, target = start_report(request, "product-order.xlsx")
    table = report.add_table("Order", ORDER_COLUMNS, request)
    for row in stream_rows(con, ORDER_SQL, {"storage": storage_id}):
        table.write_row(row)
    last = table.row
    status = table.column_letter("Status")
    count = table.finish()
    if count:
        table.sheet.conditional_format(1, 0, last - 1, len(table.columns) - 1, {
            "type": "formula", "criteria": f'=${status}2="critical"',
            "format": report.formats["critical"],
        })
    return finish_report(con, request, report, target, "product order", count)


def stock_refresher(workspace: Workspace,
                    then: Callable[[FiledBatch], None] | None = None
                    ) -> Callable[[FiledBatch], None]:
    """Return an `on_file` callback for `watch` that rewrites the current stock report
    after each applied batch, then calls `then`.

    A failure to write the report is logged and does not stop the watcher.
    """
    def refresh(filed: FiledBatch) -> None:
        if filed.result.status == "applied":
            try:
                _refresh_current_stock(workspace)
            except Exception:
                log.exception("could not refresh the stock report after %s",
                              filed.result.file)
        if then is not None:
            then(filed)

    return refresh


def _refresh_current_stock(workspace: Workspace) -> None:
    con = ledger.connect(workspace.ledger_path)
    try:
        request = ReportRequest(workspace, "watch", {"at": None, "storage": None},
                                see_costs=True)
        written = write_stock_report(con, request, None, None, CURRENT_STOCK_FILE)
    finally:
        con.close()
    log.info("stock report refreshed: %s (%d rows)",
             written.path.relative_to(workspace.root), written.row_count)
