"""Moving-average valuation against examples worked by hand.

COMB is counted in pieces (1 sale unit = 1 write-off unit), so the averages below are
per piece. Each test states the arithmetic it expects.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from batchstock import balances, ledger
from batchstock.valuation import next_average_cost, refresh_costs
from report_workbooks import Ledger, day, process, write_sheets

D = Decimal


@pytest.fixture
def book(workspace, tmp_path) -> Ledger:
    return Ledger(workspace, tmp_path)


def movement_costs(book: Ledger, sku: str = "COMB") -> list[tuple]:
    """(kind, occurred_at, base_quantity, unit_cost, value, is_reversal) by business time."""
    return book.query(
        "SELECT kind, occurred_at, base_quantity, unit_cost, value, is_reversal "
        "FROM movements WHERE sku = ? ORDER BY occurred_at, movement_no", [sku])


def sale_values(book: Ledger) -> dict[dt.datetime, Decimal]:
    """The net cost of the sales at each business time (reversals included)."""
    rows = book.query(
        "SELECT occurred_at, sum(value) FROM movements WHERE kind = 'sale' "
        "GROUP BY occurred_at ORDER BY occurred_at")
    return dict(rows)


def stock_values(book: Ledger) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    rows = book.query("SELECT storage, sku, base_quantity, value FROM stock_value")
    return {(storage, sku): (quantity, value) for storage, sku, quantity, value in rows}


def two_arrivals_and_sales(book: Ledger) -> dict[str, str]:
    return {
        "first": book.arrival(day(1), "COMB", 10, 2),
        "sale": book.sale(day(2), "COMB", 4, 6),
        "second": book.arrival(day(3), "COMB", 6, 3),
        "later sale": book.sale(day(4), "COMB", 3, 6),
    }


def test_two_arrivals_with_sale_between(book):
    two_arrivals_and_sales(book)

    rows = movement_costs(book)
    # 10 at 2.00; the sale of 4 leaves at 2.00 = 8.00; 6 left worth 12.00.
    # 6 more at 3.00: (12.00 + 18.00) / 12 = 2.50; the sale of 3 leaves at 7.50.
    assert [(kind, quantity, cost, value) for kind, _, quantity, cost, value, _ in rows] == [
        ("arrival", D(10), D(2), D(20)),
        ("sale", D(-4), D(2), D(-8)),
        ("arrival", D(6), D(3), D(18)),
        ("sale", D(-3), D("2.5"), D("-7.5")),
    ]
    assert stock_values(book) == {("Products", "COMB"): (D(9), D("22.5"))}


def test_back_dated_arrival_changes_later_sale_cost(book):
    two_arrivals_and_sales(book)
    book.arrival(day(1, 14), "COMB", 10, 5)

    # 10 at 2.00 then 10 at 5.00: (20 + 50) / 20 = 3.50, so the sale of 4 costs 14.00.
    # 16 left worth 56.00, 6 more at 3.00: 74 / 22 = 3.363636363636 (12 places), so the
    # sale of 3 costs 10.090909090908 and the 19 left are worth 63.909090909084.
    values = sale_values(book)
    assert values[day(2)] == D(-14)
    assert values[day(4)] == D("-10.090909090908")
    assert book.query("SELECT unit_cost FROM movements WHERE occurred_at = ? "
                      "AND kind = 'sale'", [day(4)]) == [(D("3.363636363636"),)]
    assert stock_values(book) == {("Products", "COMB"): (D(19), D("63.909090909084"))}


def test_cancelled_arrival_restores_earlier_costs(book):
    ids = two_arrivals_and_sales(book)
    late = book.arrival(day(1, 14), "COMB", 10, 5)
    book.cancel(late)

    # With the back-dated arrival cancelled, the numbers are those of two arrivals alone.
    values = sale_values(book)
    assert values[day(2)] == D(-8)
    assert values[day(4)] == D("-7.5")
    assert stock_values(book) == {("Products", "COMB"): (D(9), D("22.5"))}
    # The cancelled arrival and its reversal carry its own cost, 50.00, in and out.
    cancelled = [(quantity, value, reversal) for kind, when, quantity, _, value, reversal
                 in movement_costs(book) if when == day(1, 14)]
    assert sorted(cancelled) == [(D(-10), D(-50), True), (D(10), D(50), False)]
    assert ids["sale"] != late


def test_edited_arrival_cost_revalues_later_sale(book):
    ids = two_arrivals_and_sales(book)
    book.form("arrival", day(3), [["COMB", 6, 4]], operation_id=ids["second"], version=1)

    # 6 left worth 12.00, 6 more at 4.00: (12 + 24) / 12 = 3.00; the sale of 3 costs 9.00.
    values = sale_values(book)
    assert values[day(2)] == D(-8)
    assert values[day(4)] == D(-9)
    assert stock_values(book) == {("Products", "COMB"): (D(9), D(27))}


def test_write_off_units_valued_per_millilitre(book):
    book.arrival(day(1), "SHAMPOO", 2, D("9.45"))
    book.write_off(day(2), "SHAMPOO", 30, unit="ml")
    book.relocation(day(3), "SHAMPOO", 1)

    # 2 bottles of 250 ml at 9.45: 0.0378 per ml. 30 ml cost 1.134; a bottle moves at 9.45.
    rows = movement_costs(book, "SHAMPOO")
    assert [(kind, value) for kind, _, _, _, value, _ in rows] == [
        ("arrival", D("18.9")), ("write-off", D("-1.134")),
        ("relocation-out", D("-9.45")), ("relocation-in", D("9.45")),
    ]
    assert stock_values(book) == {
        ("Products", "SHAMPOO"): (D(220), D("8.316")),
        ("Branch", "SHAMPOO"): (D(250), D("9.45")),
    }


def test_revaluation_moves_value_between_storages(book):
    book.arrival(day(1), "COMB", 10, 2)
    book.relocation(day(2), "COMB", 4)
    book.arrival(day(3), "COMB", 6, 4)

    # The average becomes (10 × 2 + 6 × 4) / 16 = 2.75 for the pieces in both storages.
    # Branch: 4 moved in at 2.00, then revalued by 4 × 0.75 = 3.00, closing at 11.00.
    # Products: 44 in, 8 out, and 6 held × 0.75 = 4.50 less the arrival's 24.00 above
    # 6 × 2.75 (7.50), a revaluation of −3.00, closing at 12 × 2.75 = 33.00.
    assert stock_values(book) == {("Products", "COMB"): (D(12), D(33)),
                                  ("Branch", "COMB"): (D(4), D(11))}
    con = ledger.connect(book.workspace.ledger_path)
    try:
        balances.summarise_movements(con, dt.datetime(2026, 11, 1), dt.datetime(2026, 12, 1))
        rows = con.execute(
            "SELECT s.name, arrivals_value, relocations_in_value, relocations_out_value, "
            "revaluation, closing_value FROM movement_summary JOIN storages s "
            "USING (storage_id) ORDER BY s.name").fetchall()
        differences = balances.compare_with_balances(
            con, dt.datetime(2026, 11, 1), dt.datetime(2026, 12, 1))
    finally:
        con.close()
    assert rows == [("Branch", 0, 8, 0, 3, 11), ("Products", 44, 0, 8, -3, 33)]
    assert differences == []


def test_sale_before_any_arrival_costs_zero(book):
    book.workspace.settings.allow_negative_stock = True
    book.sale(day(1), "COMB", 2, 6)
    book.arrival(day(2), "COMB", 10, 3)
    book.sale(day(3), "COMB", 1, 6)

    # No cost is known on day 1. With the stock at −2 the arrival starts a new average at
    # its own cost, 3.00; the sale of 1 costs 3.00 and the 7 left are worth 21.00.
    assert sale_values(book) == {day(1): D(0), day(3): D(-3)}
    assert stock_values(book) == {("Products", "COMB"): (D(7), D(21))}


def test_rejected_batch_leaves_costs_unchanged(book):
    book.arrival(day(1), "COMB", 10, 2)
    before = book.query("SELECT * FROM cost_averages")

    rows = [["Operation", "Arrival"], ["Date", day(1, 8)], ["Storage", "Products"], [],
            ["SKU", "Quantity", "Unit cost"], ["COMB", 5, 9]]
    sale = [["Operation", "Sale"], ["Date", day(1, 9)], ["Storage", "Products"], [],
            ["SKU", "Quantity", "Price"], ["COMB", 99, 6]]
    path = write_sheets(book.folder / "mixed.xlsx", {"Arrival": rows, "Sale": sale})
    with pytest.raises(AssertionError):
        process(book.workspace, path)  # the sale of 99 is short of stock

    assert book.query("SELECT * FROM cost_averages") == before
    assert stock_values(book) == {("Products", "COMB"): (D(10), D(20))}


def test_refresh_revalues_only_new_movements(book):
    book.arrival(day(1), "COMB", 10, 2)
    book.arrival(day(1), "SHAMPOO", 1, 10)
    con = ledger.connect(book.workspace.ledger_path)
    try:
        assert refresh_costs(con) == 0  # the batch already revalued its products
        con.execute("UPDATE valuation_state SET last_movement_no = last_movement_no - 1")
        assert refresh_costs(con) == 1  # only the product of the last movement
        con.execute("UPDATE valuation_state SET last_movement_no = 0")
        assert refresh_costs(con) == 2
        rows = con.execute("SELECT count(*) FROM cost_averages").fetchall()
    finally:
        con.close()
    assert rows == [(2,)]


@pytest.mark.parametrize(("previous", "before", "quantity", "value", "expected"), [
    (D(2), D(6), D(6), D(18), D("2.5")),          # (12 + 18) / 12
    (D(2), D(0), D(5), D(20), D(4)),              # no stock: the arrival's own cost
    (D(2), D(-3), D(5), D(20), D(4)),             # negative stock: the same
    (D(3), D(10), D(-10), D(-20), D(3)),          # an arrival reversed leaving no stock
    (D(2), D(5), D(-2), D(-20), D(0)),            # more cost out than held: zero, not < 0
    (D(0), D(3), D(0), D(1), D("0.333333333333")),  # rounded to 12 places
])
def test_next_average_cost(previous, before, quantity, value, expected):
    assert next_average_cost(previous, before, quantity, value) == expected
