"""Movements of a period per storage and product, and the independent check that they add up.

`summarise_movements` is the query behind the movements report. Per storage and product
it gives the opening balance, what arrived, was sold, written off and relocated in and out
during the period, and the closing balance computed as opening + in − out. Each is in
quantity (write-off units) and in value. `compare_with_balances` then checks the summary against
balances read straight from `movement_entries` and `cost_averages` by a second query that
shares no SQL with the first, and returns every row where they differ.

Values follow `valuation`: stock is worth its quantity × the product's average cost. When
an arrival changes the average, stock held in every storage of the product changes value
with it, and the arrival's storage carries the difference between the arrival's cost and
its quantity at the new average. The summary shows both as `revaluation`, so that
opening + in − out + revaluation = closing holds exactly in value too; for a product kept
in one storage only it is zero. Quantities are exact; values are compared exactly, before
any rounding to cents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import duckdb

SUMMARY_TABLE = "movement_summary"

# Flows by kind: (column, kind, sign). Outflows are shown as positive numbers.
FLOWS = (
    ("arrivals", "arrival", 1),
    ("sales", "sale", -1),
    ("write_offs", "write-off", -1),
    ("relocations_in", "relocation-in", 1),
    ("relocations_out", "relocation-out", -1),
)


def _flow_columns() -> str:
    parts = []
    for name, kind, sign in FLOWS:
        minus = "-" if sign < 0 else ""
        parts.append(f"{minus}coalesce(sum(base_quantity) FILTER (WHERE kind = '{kind}'), 0) "
                     f"AS {name}")
        parts.append(f"{minus}coalesce(sum(value) FILTER (WHERE kind = '{kind}'), 0) "
                     f"AS {name}_value")
    return ",\n        ".join(parts)


def _summary_columns() -> str:
    """Return the summary's column list. A flow with no movement is zero, and the
    closing balances are opening + in − out (+ revaluation for value)."""
    opening = "coalesce(o.quantity, 0)"
    opening_value = "coalesce(o.quantity, 0) * coalesce(oc.unit_cost, 0)"
    revaluation = "coalesce(r.revaluation, 0) + coalesce(f.arrival_spread, 0)"
    columns = [f"{opening} AS opening"]
    closing, closing_value = [opening], [opening_value, revaluation]
    for name, _, sign in FLOWS:
        columns.append(f"coalesce(f.{name}, 0) AS {name}")
        columns.append(f"coalesce(f.{name}_value, 0) AS {name}_value")
        operator = "+" if sign > 0 else "-"
        closing.append(f"{operator} coalesce(f.{name}, 0)")
        closing_value.append(f"{operator} coalesce(f.{name}_value, 0)")
    columns += [
        f"{opening_value} AS opening_value",
        f"{revaluation} AS revaluation",
        f"{' '.join(closing)} AS closing",
        f"{' + '.join(closing_value[:2])} {' '.join(closing_value[2:])} AS closing_value",
    ]
    return ",\n    ".join(columns)


_SUMMARY_SQL = f"""
CREATE OR REPLACE TEMP TABLE {SUMMARY_TABLE} AS
WITH period AS (
    SELECT * FROM movement_values
    WHERE occurred_at >= $start AND occurred_at < $end
),
opening AS (
    SELECT storage_id, product_id, sum(base_quantity) AS quantity
    FROM movement_entries WHERE occurred_at < $start
    GROUP BY storage_id, product_id
),
opening_cost AS (
    SELECT product_id, arg_max(unit_cost, occurred_at) AS unit_cost
    FROM cost_averages WHERE occurred_at < $start
    GROUP BY product_id
),
flows AS (
    SELECT storage_id, product_id,
        {_flow_columns()},
        coalesce(sum(base_quantity * average_cost - value) FILTER (WHERE kind = 'arrival'), 0)
            AS arrival_spread
    FROM period
    GROUP BY storage_id, product_id
),
pairs AS (
    SELECT storage_id, product_id FROM opening
    UNION
    SELECT storage_id, product_id FROM flows
),
instants AS (
    SELECT storage_id, product_id, occurred_at,
        sum(sum(base_quantity)) OVER (
            PARTITION BY storage_id, product_id ORDER BY occurred_at
        ) AS moved
    FROM period
    GROUP BY storage_id, product_id, occurred_at
),
held AS (
    SELECT e.storage_id, e.product_id,
        (coalesce(o.quantity, 0) + coalesce(i.moved, 0)) * e.change AS revaluation
    FROM (
        SELECT p.storage_id, p.product_id, c.occurred_at,
            c.unit_cost - c.previous_unit_cost AS change
        FROM pairs p JOIN cost_averages c USING (product_id)
        WHERE c.occurred_at >= $start AND c.occurred_at < $end
    ) e
    ASOF LEFT JOIN instants i
        ON i.storage_id = e.storage_id AND i.product_id = e.product_id
        AND e.occurred_at > i.occurred_at
    LEFT JOIN opening o ON o.storage_id = e.storage_id AND o.product_id = e.product_id
),
revaluations AS (
    SELECT storage_id, product_id, sum(revaluation) AS revaluation
    FROM held GROUP BY storage_id, product_id
)
SELECT
    p.storage_id, p.product_id,
    {_summary_columns()}
FROM pairs p
LEFT JOIN opening o USING (storage_id, product_id)
LEFT JOIN opening_cost oc USING (product_id)
LEFT JOIN flows f USING (storage_id, product_id)
LEFT JOIN revaluations r USING (storage_id, product_id)
"""



def summarise_movements(con: duckdb.DuckDBPyConnection, start: dt.datetime | None,
                        end: dt.datetime | None) -> int:
    """Fill the temporary table `movement_summary` for [start, end); return its row count.

    None means no bound. Rows cover every storage and product with a balance before
    `start` or a movement in the period. `cost_averages` must be up to date
    (`valuation.refresh_costs`).
    """
    bounds = _bounds(start, end)
    con.execute(_SUMMARY_SQL, bounds)
    return con.execute(f"SELECT count(*) FROM {SUMMARY_TABLE}").fetchall()[0][0]


def _bounds(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, object]:
    return {
        "start": start if start is not None else dt.datetime.min,
        "end": end if end is not None else dt.datetime.max,
    }


@dataclass(frozen=True)
class BalanceDifference:
    """A storage and product whose summary disagrees with the independent balance.

    `measure` is "quantity" (write-off units) or "value"; `moment` is "opening" or
    "closing". `reported` is what the summary holds, `expected` what the ledger's
    movements and averages give.
    """

    storage: str
    sku: str
    product: str
    measure: str
    moment: str
    reported: Decimal
    expected: Decimal

    @property
    def difference(self) -> Decimal:
        return self.reported - self.expected


# Balances before a moment, written without the summary's SQL: a plain sum of the
# movements, times the latest average cost found by a correlated subquery.
_INDEPENDENT_SQL = """
SELECT b.storage_id, b.product_id, b.quantity,
    b.quantity * coalesce((
        SELECT c.unit_cost FROM cost_averages c
        WHERE c.product_id = b.product_id AND c.occurred_at < $moment
        ORDER BY c.occurred_at DESC LIMIT 1
    ), 0) AS value
FROM (
    SELECT storage_id, product_id, sum(base_quantity) AS quantity
    FROM movement_entries WHERE occurred_at < $moment
    GROUP BY storage_id, product_id
) b
"""

_COMPARE_SQL = f"""
WITH expected AS ({_INDEPENDENT_SQL})
SELECT s.name, p.sku, p.name,
    coalesce(r.{{quantity}}, 0) AS reported_quantity, coalesce(e.quantity, 0) AS quantity,
    coalesce(r.{{value}}, 0) AS reported_value, coalesce(e.value, 0) AS value
FROM {SUMMARY_TABLE} r
FULL OUTER JOIN expected e USING (storage_id, product_id)
JOIN storages s ON s.storage_id = coalesce(r.storage_id, e.storage_id)
JOIN products p ON p.product_id = coalesce(r.product_id, e.product_id)
WHERE coalesce(r.{{quantity}}, 0) <> coalesce(e.quantity, 0)
   OR coalesce(r.{{value}}, 0) <> coalesce(e.value, 0)
ORDER BY s.name, p.sku
"""


def compare_with_balances(con: duckdb.DuckDBPyConnection, start: dt.datetime | None,
                          end: dt.datetime | None) -> list[BalanceDifference]:
    """Compare `movement_summary` with independent opening and closing balances.

    Returns every difference; an empty list means each row's opening and
    opening + in − out = closing agree with the ledger, in quantity and value.
    """
    bounds = _bounds(start, end)
    differences = []
    for moment, bound in (("opening", bounds["start"]), ("closing", bounds["end"])):
        sql = _COMPARE_SQL.format(quantity=moment, value=f"{moment}_value")
        for row in con.execute(sql, {"moment": bound}).fetchall():
            storage, sku, product, reported_q, expected_q, reported_v, expected_v = row
            if reported_q != expected_q:
                differences.append(BalanceDifference(
                    storage, sku, product, "quantity", moment, reported_q, expected_q))
            if reported_v != expected_v:
                differences.append(BalanceDifference(
                    storage, sku, product, "value", moment, reported_v, expected_v))
    return differences
