"""Reconcile the whole ledger: every balance must follow from the movements.

`reconcile_ledger` runs these checks, each an SQL query that reports what disagrees:

- movements: for every storage and product, 0 + in − out = closing, in quantity and value,
  against balances read independently (the movements report's check, from the ledger's
  first movement to the moment asked for);
- stock balance: the `stock_balance` view (or `stock_balance_at`) equals the plain sum of
  each storage's movements, and `stock_value` equals quantity × the average cost;
- negative stock: no balance is below zero at any moment, unless the workspace allows it;
- averages: each row of `cost_averages` matches the arrivals and the stock before it, and
  its average solves the moving-average equation to within its 12 decimal places;
- operations: the net movements of each operation line are its quantity when the line
  belongs to the current version of an active operation, and zero otherwise.

`batchstock reconcile` prints the findings and exits 1 when there is any.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from batchstock.balances import compare_with_balances, summarise_movements
from batchstock.reports import prepare_ledger


@dataclass(frozen=True)
class Finding:
    """One thing that does not add up: which check, where, and what differs."""

    check: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.message}"


@dataclass
class Reconciliation:
    """The outcome of `reconcile_ledger`: rows checked per check, and every finding.

    `until` is the exclusive end of the business time checked, None for all of it.
    """

    until: dt.datetime | None
    checked: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def reconcile_ledger(con: duckdb.DuckDBPyConnection, until: dt.datetime | None = None,
                     allow_negative_stock: bool = False) -> Reconciliation:
    """Run every check on business time before `until` (all of it when None)."""
    prepare_ledger(con)
    outcome = Reconciliation(until)
    _check_movements(con, outcome)
    _check_stock_views(con, outcome)
    if not allow_negative_stock:
        _check_negative_stock(con, outcome)
    _check_averages(con, outcome)
    _check_operations(con, outcome)
    return outcome


def _end(until: dt.datetime | None) -> dt.datetime:
    return until if until is not None else dt.datetime.max


def _check_movements(con: duckdb.DuckDBPyConnection, outcome: Reconciliation) -> None:
    outcome.checked["movements"] = summarise_movements(con, None, outcome.until)
    for item in compare_with_balances(con, None, outcome.until):
        outcome.findings.append(Finding(
            "movements", f"{item.storage} / {item.sku}",
            f"{item.moment} {item.measure}: opening + in − out gives {item.reported}, "
            f"the ledger's movements give {item.expected} (difference {item.difference})",
        ))


# The views under test, against plain sums written here. Without `until` they are the
# `stock_balance` and `stock_value` views. With it they are the `…_at` macros, which get
# the last microsecond before `until` because their business time is inclusive.
_STOCK_VIEWS_SQL = """
WITH direct AS (
    SELECT s.name AS storage, p.sku, sum(m.base_quantity) AS base_quantity,
        sum(m.base_quantity) * coalesce(max(c.unit_cost), 0) AS value
    FROM movement_entries m
    JOIN storages s USING (storage_id)
    JOIN products p USING (product_id)
    LEFT JOIN (
        SELECT product_id, max_by(unit_cost, occurred_at) AS unit_cost
        FROM cost_averages WHERE occurred_at < $end GROUP BY product_id
    ) c USING (product_id)
    WHERE m.occurred_at < $end
    GROUP BY s.name, p.sku
),
viewed AS (
    SELECT b.storage, b.sku, b.base_quantity, v.value
    FROM {balance} b
    FULL OUTER JOIN {value} v USING (storage, sku)
)
SELECT coalesce(d.storage, w.storage), coalesce(d.sku, w.sku),
    coalesce(w.base_quantity, 0), coalesce(d.base_quantity, 0),
    coalesce(w.value, 0), coalesce(d.value, 0)
FROM direct d FULL OUTER JOIN viewed w USING (storage, sku)
WHERE coalesce(w.base_quantity, 0) <> coalesce(d.base_quantity, 0)
   OR coalesce(w.value, 0) <> coalesce(d.value, 0)
ORDER BY 1, 2
"""


def _check_stock_views(con: duckdb.DuckDBPyConnection, outcome: Reconciliation) -> None:
    end = _end(outcome.until)
    last = end - dt.timedelta(microseconds=1)
    outcome.checked["stock balance"] = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT storage_id, product_id FROM movement_entries "
        "WHERE occurred_at < ?)", [end]
    ).fetchall()[0][0]
    if outcome.until is None:
        sql = _STOCK_VIEWS_SQL.format(balance="stock_balance", value="stock_value")
        rows = con.execute(sql, {"end": end}).fetchall()
    else:
        sql = _STOCK_VIEWS_SQL.format(balance="stock_balance_at($last, TIMESTAMP 'infinity')",
                                      value="stock_value_at($last)")
        rows = con.execute(sql, {"end": end, "last": last}).fetchall()
    for storage, sku, viewed, direct, viewed_value, direct_value in rows:
        if viewed != direct:
            outcome.findings.append(Finding(
                "stock balance", f"{storage} / {sku}",
                f"stock_balance shows {viewed} write-off units, its movements sum to {direct}",
            ))
        if viewed_value != direct_value:
            outcome.findings.append(Finding(
                "stock balance", f"{storage} / {sku}",
                f"stock_value shows {viewed_value}, quantity × average cost is "
                f"{direct_value}",
            ))


# Balances after each instant; at one instant incoming counts before outgoing, so the
# balance after the instant is its lowest point.
_NEGATIVE_SQL = """
WITH instants AS (
    SELECT storage_id, product_id, occurred_at,
        sum(sum(base_quantity)) OVER (
            PARTITION BY storage_id, product_id ORDER BY occurred_at
        ) AS balance
    FROM movement_entries WHERE occurred_at < $end
    GROUP BY storage_id, product_id, occurred_at
)
SELECT s.name, p.sku, p.base_unit, min(i.balance), arg_min(i.occurred_at, i.balance),
    count(*)
FROM instants i
JOIN storages s USING (storage_id)
JOIN products p USING (product_id)
WHERE i.balance < 0
GROUP BY s.name, p.sku, p.base_unit
ORDER BY s.name, p.sku
"""


def _check_negative_stock(con: duckdb.DuckDBPyConnection, outcome: Reconciliation) -> None:
    outcome.checked["negative stock"] = outcome.checked.get("stock balance", 0)
    rows = con.execute(_NEGATIVE_SQL, {"end": _end(outcome.until)}).fetchall()
    for storage, sku, unit, lowest, when, moments in rows:
        outcome.findings.append(Finding(
            "negative stock", f"{storage} / {sku}",
            f"the balance falls to {lowest} {unit} on {when:%Y-%m-%d %H:%M} and is negative "
            f"after {moments} moments; negative stock is not allowed "
            "([ledger] allow_negative_stock)",
        ))


_AVERAGES_SQL = """
WITH arrivals AS (
    SELECT m.product_id, m.occurred_at,
        sum(m.base_quantity) AS quantity,
        sum(sign(m.base_quantity) * line_amount(l.quantity, l.price, l.discount)) AS value
    FROM movement_entries m
    JOIN line_versions l
        ON l.operation_no = m.operation_no AND l.version = m.version
        AND l.line_no = m.line_no
    WHERE m.kind = 'arrival'
    GROUP BY m.product_id, m.occurred_at
    HAVING sum(m.base_quantity) <> 0 OR value <> 0
),
stock AS (
    SELECT product_id, occurred_at,
        sum(sum(base_quantity)) OVER (PARTITION BY product_id ORDER BY occurred_at)
            - sum(base_quantity) AS before
    FROM movement_entries GROUP BY product_id, occurred_at
),
expected AS (
    SELECT a.*, s.before FROM arrivals a JOIN stock s USING (product_id, occurred_at)
),
stored AS (
    SELECT *, coalesce(lag(unit_cost) OVER (PARTITION BY product_id ORDER BY occurred_at),
                       0) AS earlier_cost
    FROM cost_averages
)
SELECT p.sku, coalesce(e.occurred_at, c.occurred_at),
    e.quantity, c.arrival_quantity, e.value, c.arrival_value, e.before, c.quantity_before,
    c.previous_unit_cost, c.earlier_cost, c.unit_cost,
    CASE
        WHEN c.unit_cost = 0 OR c.quantity_before + c.arrival_quantity <= 0 THEN true
        WHEN c.quantity_before > 0 THEN
            abs(c.unit_cost * (c.quantity_before + c.arrival_quantity)
                - (c.previous_unit_cost * c.quantity_before + c.arrival_value))
            <= (c.quantity_before + c.arrival_quantity) * 0.0000000000005
        ELSE abs(c.unit_cost * c.arrival_quantity - c.arrival_value)
            <= c.arrival_quantity * 0.0000000000005
    END AS solves
FROM expected e
FULL OUTER JOIN stored c USING (product_id, occurred_at)
JOIN products p ON p.product_id = coalesce(e.product_id, c.product_id)
WHERE e.product_id IS NULL OR c.product_id IS NULL
   OR e.quantity <> c.arrival_quantity OR e.value <> c.arrival_value
   OR e.before <> c.quantity_before OR c.previous_unit_cost <> c.earlier_cost
   OR NOT solves
ORDER BY 1, 2
"""


def _check_averages(con: duckdb.DuckDBPyConnection, outcome: Reconciliation) -> None:
    outcome.checked["averages"] = con.execute(
        "SELECT count(*) FROM cost_averages"
    ).fetchall()[0][0]
    for row in con.execute(_AVERAGES_SQL).fetchall():
        sku, when, quantity, stored_quantity, value, stored_value, before, stored_before, \
            previous, earlier, cost, solves = row
        subject = f"{sku} at {when:%Y-%m-%d %H:%M}"
        if quantity is None or stored_quantity is None:
            message = ("arrivals without an average cost" if stored_quantity is None
                       else "an average cost without arrivals")
        elif not solves:
            message = (f"average {cost} does not follow from {previous} × {before} + "
                       f"{value} over {before + quantity}")
        else:
            message = (f"stored arrivals {stored_quantity} at {stored_value} after "
                       f"{stored_before} (previous average {previous}); the movements give "
                       f"{quantity} at {value} after {before} (previous average {earlier})")
        outcome.findings.append(Finding("averages", subject, message))


# Expected net movement per line and kind. It is the line's quantity, signed by direction,
# for the current version of an active operation, and zero for any other version.
_OPERATIONS_SQL = """
WITH expected AS (
    SELECT l.operation_no, l.version, l.line_no, k.kind,
        CASE WHEN h.status = 'active' AND l.version = h.version
            THEN k.sign * l.base_quantity ELSE 0 END AS quantity
    FROM line_versions l
    JOIN operation_heads h USING (operation_no)
    JOIN (VALUES ('arrival', 'arrival', 1), ('sale', 'sale', -1),
                 ('write-off', 'write-off', -1), ('relocation', 'relocation-out', -1),
                 ('relocation', 'relocation-in', 1)) AS k(type, kind, sign)
        ON k.type = h.type
),
actual AS (
    SELECT operation_no, version, line_no, kind, sum(base_quantity) AS quantity
    FROM movement_entries GROUP BY operation_no, version, line_no, kind
)
SELECT coalesce(h.operation_id, 'operation no. ' || coalesce(e.operation_no, a.operation_no)),
    coalesce(e.version, a.version), coalesce(e.line_no, a.line_no),
    coalesce(e.kind, a.kind), coalesce(e.quantity, 0), coalesce(a.quantity, 0)
FROM expected e
FULL OUTER JOIN actual a USING (operation_no, version, line_no, kind)
LEFT JOIN operation_heads h ON h.operation_no = coalesce(e.operation_no, a.operation_no)
WHERE coalesce(e.quantity, 0) <> coalesce(a.quantity, 0)
ORDER BY 1, 2, 3, 4
"""


def _check_operations(con: duckdb.DuckDBPyConnection, outcome: Reconciliation) -> None:
    outcome.checked["operations"] = con.execute(
        "SELECT count(*) FROM line_versions"
    ).fetchall()[0][0]
    for operation_id, version, line_no, kind, expected, actual in con.execute(
            _OPERATIONS_SQL).fetchall():
        outcome.findings.append(Finding(
            "operations", f"{operation_id} version {version} line {line_no}",
            f"{kind} movements net {actual} write-off units; the line calls for {expected}",
        ))
