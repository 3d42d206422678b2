"""The sales report: quantity, revenue, discount, cost and margin per storage and product.

Revenue is the sum of the sale lines' subtotals, after discount. Discount is quantity ×
price − subtotal. Cost is the moving-average value of the sale movements (see
`valuation`), and margin is revenue − cost. A sale's reversal (after an edit or
cancellation) counts negative, from the same operation version's line, so a cancelled sale
adds nothing.
A Charts sheet shows the top products by margin and the revenue per week (weeks start on
Monday).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb

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

TOP_PRODUCTS = 10

SALES_COLUMNS = [
    Column("Storage"), Column("SKU"), Column("Product"), Column("Quantity", "quantity"),
    Column("Sale unit"), Column("Revenue", "money", True), Column("Discount", "money", True),
    Column("Cost", "money", True, cost=True), Column("Margin", "money", True, cost=True),
    Column("Margin %", "percent", cost=True),
]

# Sale movements of the period with their line. `direction` is 1 for a sale and -1 for
# its reversal.
_SALE_LINES = """
WITH sale_lines AS (
    SELECT v.storage_id, v.product_id, v.occurred_at, v.base_quantity, v.value,
        -sign(v.base_quantity) AS direction, l.quantity, l.price, l.subtotal
    FROM movement_values v
    JOIN line_versions l
        ON l.operation_no = v.operation_no AND l.version = v.version
        AND l.line_no = v.line_no
    WHERE v.kind = 'sale' AND v.occurred_at >= $start AND v.occurred_at < $end
)
"""

_SALES_SQL = _SALE_LINES + """
SELECT s.name, p.sku, p.name,
    sale_units(-sum(base_quantity), p.equals) AS quantity, p.sale_unit,
    sum(direction * subtotal) AS revenue,
    sum(direction * (coalesce(quantity * price, subtotal) - subtotal)) AS discount,
    -sum(value) AS cost
FROM sale_lines
JOIN storages s USING (storage_id)
JOIN products p USING (product_id)
GROUP BY s.name, p.sku, p.name, p.equals, p.sale_unit
ORDER BY s.name, p.sku
"""

_TOP_SQL = _SALE_LINES + """
SELECT p.sku, p.name,
    sum(direction * subtotal) AS revenue, sum(direction * subtotal) + sum(value) AS margin
FROM sale_lines JOIN products p USING (product_id)
GROUP BY p.sku, p.name
ORDER BY {order} DESC, p.sku
LIMIT {limit}
"""

_WEEKS_SQL = _SALE_LINES + """
SELECT CAST(date_trunc('week', occurred_at) AS DATE) AS week,
    sum(direction * subtotal) AS revenue
FROM sale_lines
GROUP BY week ORDER BY week
"""


def write_sales_report(con: duckdb.DuckDBPyConnection, request: ReportRequest,
                       start: dt.datetime, end: dt.datetime) -> ReportFile:
    """Write the sales report for [start, end) with its Charts sheet."""
    prepare_ledger(con)
    bounds = {"start": start, "end": end}
    last_day = end - dt.timedelta(microseconds=1)
    report, target = start_report(request,
                                  f"sales-{start:%Y-%m-%d}-to-{last_day:%Y-%m-%d}.xlsx")
    table = report.add_table("Sales", SALES_COLUMNS, request)
    for storage, sku, product, quantity, unit, revenue, discount, cost in stream_rows(
            con, _SALES_SQL, bounds):
        margin = revenue - cost
        share = margin / revenue if revenue else None
        table.write_row([storage, sku, product, quantity, unit, revenue, discount, cost,
                         margin, share])
    count = table.finish()
    by_margin = request.may_see_costs
    order = "margin" if by_margin else "revenue"
    top = con.execute(_TOP_SQL.format(order=order, limit=TOP_PRODUCTS), bounds).fetchall()
    weeks = con.execute(_WEEKS_SQL, bounds).fetchall()
    write_charts(report, [(sku, name, margin if by_margin else revenue)
                          for sku, name, revenue, margin in top], weeks, order)
    return finish_report(con, request, report, target, "sales", count,
                         [("Weeks", "start on Monday")])


def write_charts(report: ReportWorkbook, top: list[tuple[str, str, Decimal]],
                 weeks: list[tuple[dt.date, Decimal]], measure: str) -> None:
    """Write the Charts sheet: the two data tables side by side, then a chart of each."""
    charts = report.add_table("Charts", [
        Column("SKU"), Column("Product"), Column(f"Top products by {measure}", "money"),
        Column(""), Column("Week", "date"), Column("Revenue", "money", True),
    ])
    for index in range(max(len(top), len(weeks))):
        left = top[index] if index < len(top) else (None, None, None)
        right = weeks[index] if index < len(weeks) else (None, None)
        charts.write_row([*left, None, *right])
    charts.finish()
    if top:
        bar = report.workbook.add_chart({"type": "bar"})
        bar.add_series({
            "name": f"{measure.capitalize()} by product",
            "categories": ["Charts", 1, 0, len(top), 0],
            "values": ["Charts", 1, 2, len(top), 2],
        })
        bar.set_title({"name": f"Top {len(top)} products by {measure}"})
        bar.set_y_axis({"reverse": True})
        bar.set_legend({"none": True})
        charts.sheet.insert_chart("H2", bar)
    if weeks:
        column = report.workbook.add_chart({"type": "column"})
        column.add_series({
            "name": "Revenue per week",
            "categories": ["Charts", 1, 4, len(weeks), 4],
            "values": ["Charts", 1, 5, len(weeks), 5],
        })
        column.set_title({"name": "Revenue per week"})
        column.set_x_axis({"text_axis": True, "num_format": "yyyy-mm-dd"})
        column.set_legend({"none": True})
        charts.sheet.insert_chart("H20", column)
