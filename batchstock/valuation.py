"""Moving-average valuation: the cost of each movement and the value of stock.

The average is kept per product across all storages. An arrival changes it. Sales,
write-offs and relocations leave at the average in force at their business time
(`occurred_at`), so a relocation moves value between storages without changing the
average. At one instant, arrivals count before anything else, as in the stock check.

Averages live in `cost_averages`, one row per product and arrival instant, because a
moving average is a recurrence that SQL cannot compute exactly: `refresh_costs` walks each
product's arrivals in business-time order with Python Decimal and stores the cost of one
write-off unit to 12 decimal places. `valuation_state` records the last movement valued,
so a refresh after new movements (a batch, an edit, a cancellation, a back-dated
operation) revalues only the products they touch, from their earliest business time on.

The views built on this table (`movements.unit_cost` and `value`, `stock_value`,
`stock_value_at`) price an arrival movement at its own line: quantity × unit cost ×
(1 − discount/100) of the operation version that made it, so a reversal of an edited or
cancelled arrival takes out exactly what the arrival brought in. Every other movement is
base_quantity × the average in force. Values are DECIMAL(38,18) and are rounded only when
a report shows them.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Context, Decimal

import duckdb
import polars as pl

log = logging.getLogger(__name__)

# Averages are costs of one write-off unit (1 ml, 1 g, 1 pcs), kept to 12 decimal places.
COST_PLACES = Decimal("1e-12")
_CONTEXT = Context(prec=50)

# Products revalued per round trip; bounds the rows held in Python at once.
PRODUCTS_PER_CHUNK = 500

VALUATION_SQL = """
CREATE TABLE cost_averages (
    product_id INTEGER NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    quantity_before DECIMAL(38,6) NOT NULL,
    arrival_quantity DECIMAL(38,6) NOT NULL,
    arrival_value DECIMAL(38,14) NOT NULL,
    previous_unit_cost DECIMAL(38,12) NOT NULL,
    unit_cost DECIMAL(38,12) NOT NULL
);
CREATE TABLE valuation_state (
    last_movement_no BIGINT NOT NULL,
    refreshed_at TIMESTAMP
);
INSERT INTO valuation_state VALUES (0, NULL);

-- The cost of a line: quantity × unit cost × (1 − discount/100), exact. A line without a
-- cost counts as zero.
CREATE MACRO line_amount(quantity, price, discount) AS
    coalesce(CAST(quantity * price * (100 - discount) * 0.01 AS DECIMAL(38,14)), 0);

-- amount ÷ quantity to 12 decimals, truncated toward zero. DuckDB divides DECIMALs as
-- DOUBLE, so this divides scaled integers.
CREATE MACRO cost_quotient(amount, quantity) AS
    CAST(
        CAST(CAST(amount AS DECIMAL(38,14)) * 100000000000000 AS HUGEINT) * 10000
            // CAST(CAST(quantity AS DECIMAL(38,6)) * 1000000 AS HUGEINT)
        AS DECIMAL(38,0)
    ) * CAST(0.000000000001 AS DECIMAL(13,12));

CREATE VIEW movement_values AS
SELECT
    m.movement_no, m.operation_no, m.version, m.line_no, m.storage_id, m.product_id,
    m.kind, m.base_quantity, m.occurred_at, m.recorded_at, m.is_reversal, m.batch_id,
    coalesce(c.unit_cost, 0) AS average_cost,
    CASE WHEN m.kind = 'arrival'
        THEN cost_quotient(line_amount(l.quantity, l.price, l.discount), l.base_quantity)
        ELSE coalesce(c.unit_cost, 0) END AS unit_cost,
    CAST(CASE WHEN m.kind = 'arrival'
        THEN sign(m.base_quantity) * line_amount(l.quantity, l.price, l.discount)
        ELSE m.base_quantity * coalesce(c.unit_cost, 0) END AS DECIMAL(38,18)) AS value
FROM movement_entries m
LEFT JOIN line_versions l
    ON m.kind = 'arrival' AND l.operation_no = m.operation_no
    AND l.version = m.version AND l.line_no = m.line_no
ASOF LEFT JOIN cost_averages c
    ON c.product_id = m.product_id AND m.occurred_at >= c.occurred_at;

DROP VIEW movements;
CREATE VIEW movements AS
SELECT
    m.movement_no, h.operation_id, h.type AS operation_type, m.kind,
    s.name AS storage, p.sku, p.name AS product,
    m.base_quantity, p.base_unit,
    sale_units(m.base_quantity, p.equals) AS quantity, p.sale_unit,
    m.occurred_at, m.recorded_at, m.is_reversal, m.version AS operation_version,
    m.batch_id, m.line_no,
    m.unit_cost, m.value
FROM movement_values m
JOIN operation_heads h ON h.operation_no = m.operation_no
JOIN storages s ON s.storage_id = m.storage_id
JOIN products p ON p.product_id = m.product_id;

CREATE MACRO stock_value_at(business_time) AS TABLE
SELECT
    s.name AS storage, p.sku, p.name AS product,
    sale_units(b.base_quantity, p.equals) AS quantity, p.sale_unit,
    b.base_quantity, p.base_unit,
    coalesce(c.unit_cost, 0) AS unit_cost,
    CAST(b.base_quantity * coalesce(c.unit_cost, 0) AS DECIMAL(38,18)) AS value
FROM (
    SELECT storage_id, product_id, sum(base_quantity) AS base_quantity
    FROM movement_entries
    WHERE occurred_at <= CAST(business_time AS TIMESTAMP)
    GROUP BY storage_id, product_id
) b
JOIN storages s USING (storage_id)
JOIN products p USING (product_id)
LEFT JOIN (
    SELECT product_id, arg_max(unit_cost, occurred_at) AS unit_cost
    FROM cost_averages
    WHERE occurred_at <= CAST(business_time AS TIMESTAMP)
    GROUP BY product_id
) c USING (product_id);

CREATE VIEW stock_value AS
SELECT * FROM stock_value_at(TIMESTAMP 'infinity');
"""

# Per product and instant from `since` on: the quantity before it and what arrived at it.
_EVENTS_SQL = """
CREATE OR REPLACE TEMP TABLE valuation_events AS
WITH instants AS (
    SELECT
        m.product_id, m.occurred_at,
        sum(m.base_quantity) AS change,
        sum(m.base_quantity) FILTER (WHERE m.kind = 'arrival') AS arrival_quantity,
        sum(sign(m.base_quantity) * line_amount(l.quantity, l.price, l.discount))
            FILTER (WHERE m.kind = 'arrival') AS arrival_value
    FROM movement_entries m
    JOIN valuation_touched t USING (product_id)
    LEFT JOIN line_versions l
        ON m.kind = 'arrival' AND l.operation_no = m.operation_no
        AND l.version = m.version AND l.line_no = m.line_no
    GROUP BY m.product_id, m.occurred_at
),
running AS (
    SELECT *,
        sum(change) OVER (PARTITION BY product_id ORDER BY occurred_at) - change
            AS quantity_before
    FROM instants
)
SELECT r.product_id, r.occurred_at, r.quantity_before, r.arrival_quantity, r.arrival_value
FROM running r JOIN valuation_touched t USING (product_id)
WHERE r.arrival_quantity IS NOT NULL AND r.occurred_at >= t.since
"""

_AVERAGE_SCHEMA = {
    "product_id": pl.Int32,
    "occurred_at": pl.Datetime("us"),
    "quantity_before": pl.Decimal(38, 6),
    "arrival_quantity": pl.Decimal(38, 6),
    "arrival_value": pl.Decimal(38, 14),
    "previous_unit_cost": pl.Decimal(38, 12),
    "unit_cost": pl.Decimal(38, 12),
}


def next_average_cost(previous: Decimal, quantity_before: Decimal,
                      arrival_quantity: Decimal, arrival_value: Decimal) -> Decimal:
    """Return the average cost of one write-off unit after an arrival instant.

    `quantity_before` is the product's stock in all storages just before the instant.
    `arrival_quantity` and `arrival_value` are the net quantity and cost arriving at it,
    where reversals of arrivals count negative. With stock on hand the average is
    (previous × before + value) / (before + quantity). With none, or a negative stock, the
    arrival's own unit cost starts a new average. A net outflow of arrivals that leaves no
    stock keeps the previous average. The result is rounded to `COST_PLACES`.
    """
    after = quantity_before + arrival_quantity
    if quantity_before > 0 and after > 0:
        average = _CONTEXT.divide(
            _CONTEXT.add(_CONTEXT.multiply(previous, quantity_before), arrival_value), after
        )
    elif quantity_before <= 0 and arrival_quantity > 0:
        average = _CONTEXT.divide(arrival_value, arrival_quantity)
    else:
        return previous
    if average < 0:
        # NOTE: only a reversed arrival that takes out more cost than the stock is worth
        # gets here. The stock left is then valued at zero rather than at a negative cost.
        average = Decimal(0)
    return average.quantize(COST_PLACES, context=_CONTEXT)


def refresh_costs(con: duckdb.DuckDBPyConnection) -> int:
    """Bring `cost_averages` up to date with the movements; return the products revalued.

    Runs inside the caller's transaction when there is one, so a rolled-back batch rolls
    back its revaluation too. Movements are append-only, so every movement numbered above
    the last one valued is new.
    """
    last = con.execute("SELECT last_movement_no FROM valuation_state").fetchall()[0][0]
    top = con.execute(
        "SELECT coalesce(max(movement_no), 0) FROM movement_entries"
    ).fetchall()[0][0]
    if top == last:
        return 0
    if top < last:
        last = 0  # movements were removed outside batchstock: revalue everything
    con.execute(
        "CREATE OR REPLACE TEMP TABLE valuation_touched AS "
        "SELECT product_id, min(occurred_at) AS since FROM movement_entries "
        "WHERE movement_no > ? GROUP BY product_id",
        [last],
    )
    con.execute(
        "DELETE FROM cost_averages USING valuation_touched t "
        "WHERE cost_averages.product_id = t.product_id AND cost_averages.occurred_at >= t.since"
    )
    con.execute(_EVENTS_SQL)
    products = [row[0] for row in con.execute(
        "SELECT product_id FROM valuation_touched ORDER BY product_id"
    ).fetchall()]
    for start in range(0, len(products), PRODUCTS_PER_CHUNK):
        chunk = products[start:start + PRODUCTS_PER_CHUNK]
        _revalue_products(con, chunk[0], chunk[-1])
    con.execute(
        "UPDATE valuation_state SET last_movement_no = ?, refreshed_at = now()::TIMESTAMP",
        [top],
    )
    con.execute("DROP TABLE valuation_events")
    con.execute("DROP TABLE valuation_touched")
    log.debug("revalued %d products up to movement %d", len(products), top)
    return len(products)


def _revalue_products(con: duckdb.DuckDBPyConnection, first: int, last: int) -> None:
    """Recompute the averages of products `first`..`last` from their events."""
    starts = dict(con.execute(
        "SELECT c.product_id, arg_max(c.unit_cost, c.occurred_at) FROM cost_averages c "
        "WHERE c.product_id BETWEEN ? AND ? GROUP BY c.product_id",
        [first, last],
    ).fetchall())
    events = con.execute(
        "SELECT product_id, occurred_at, quantity_before, arrival_quantity, arrival_value "
        "FROM valuation_events WHERE product_id BETWEEN ? AND ? "
        "ORDER BY product_id, occurred_at",
        [first, last],
    ).fetchall()
    rows = average_rows(events, starts)
    if not rows["product_id"]:
        return
    frame = pl.DataFrame(rows, schema=_AVERAGE_SCHEMA)
    con.register("new_cost_averages", frame)
    con.execute("INSERT INTO cost_averages SELECT * FROM new_cost_averages")
    con.unregister("new_cost_averages")


def average_rows(
    events: list[tuple[int, dt.datetime, Decimal, Decimal, Decimal]],
    starts: dict[int, Decimal],
) -> dict[str, list]:
    """Walk arrival instants, ordered by product and time, into `cost_averages` columns.

    `starts` maps each product to its average before its first event here (zero when
    absent).
    Instants whose arrivals cancel out entirely (an arrival and its reversal) are skipped.
    """
    rows: dict[str, list] = {name: [] for name in _AVERAGE_SCHEMA}
    current_product = None
    average = Decimal(0)
    for product_id, occurred_at, before, quantity, value in events:
        if product_id != current_product:
            current_product = product_id
            average = starts.get(product_id, Decimal(0))
        value = value or Decimal(0)
        if quantity == 0 and value == 0:
            continue
        following = next_average_cost(average, before, quantity, value)
        for name, item in zip(
            _AVERAGE_SCHEMA,
            (product_id, occurred_at, before, quantity, value, average, following),
        ):
            rows[name].append(item)
        average = following
    return rows
