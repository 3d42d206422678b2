"""Row and column rules of operation lines, checked with pandera on a polars frame.

Validation converts every cell first (a cell that does not convert is a problem already
and enters this frame as null). This module builds one frame for all lines of a batch,
runs the pandera schema once, lazily, so that every failure is found in one pass, and
turns pandera's failure table into `Problem`s with Excel coordinates. It is the only
module that knows dataframe row numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pandera.polars as pa
import polars as pl

from batchstock.core import MAX_LINES_PER_OPERATION, OPERATION_TYPES, Problem
from batchstock.values import display_text

MONEY = pl.Decimal(18, 4)
SUBTOTAL_TOLERANCE = Decimal("0.01")


@dataclass
class LineRecord:
    """The converted values of one line and the A1 names of the cells they came from."""

    file: str
    sheet: str
    operation_type: str | None
    line_index: int
    quantity: Decimal | None
    price: Decimal | None
    discount: Decimal | None
    subtotal: Decimal | None
    expected_subtotal: Decimal | None
    cells: dict[str, str] = field(default_factory=dict)
    raw: dict[str, object] = field(default_factory=dict)


def _subtotal_matches(data: pa.PolarsData) -> pl.LazyFrame:
    difference = (pl.col("subtotal") - pl.col("expected_subtotal")).abs()
    return data.lazyframe.select(
        pl.col("subtotal").is_null()
        | pl.col("expected_subtotal").is_null()
        | (difference <= pl.lit(SUBTOTAL_TOLERANCE, dtype=MONEY))
    )


LINE_SCHEMA = pa.DataFrameSchema(
    {
        "operation_type": pa.Column(
            str, pa.Check.isin(list(OPERATION_TYPES), name="known_type"), nullable=True
        ),
        "line_index": pa.Column(
            int, pa.Check.le(MAX_LINES_PER_OPERATION, name="max_lines")
        ),
        "quantity": pa.Column(MONEY, pa.Check.gt(0, name="positive"), nullable=True),
        "price": pa.Column(MONEY, pa.Check.ge(0, name="non_negative"), nullable=True),
        "discount": pa.Column(
            MONEY, pa.Check.in_range(0, 100, name="percentage"), nullable=True
        ),
        "subtotal": pa.Column(MONEY, nullable=True),
        "expected_subtotal": pa.Column(MONEY, nullable=True),
    },
    checks=[pa.Check(_subtotal_matches, name="subtotal_matches")],
)

# (column, pandera check name) → (problem code, column whose cell is reported, message).
# pandera reports built-in checks by their own name, e.g. "greater_than(0)".
FAILURES = {
    ("quantity", "greater_than"): (
        "not_positive", "quantity",
        "quantity {value} is not positive; enter a quantity above zero",
    ),
    ("price", "greater_than_or_equal_to"): (
        "negative_price", "price", "price {value} is negative; enter zero or more",
    ),
    ("discount", "in_range"): (
        "discount_out_of_range", "discount",
        "discount {value} is outside 0 to 100; enter a percentage such as 15",
    ),
    ("line_index", "less_than_or_equal_to"): (
        "too_many_lines", "first",
        "more than 500 lines in one operation; split it into several operations",
    ),
    ("operation_type", "isin"): (
        "unknown_type", "type",
        "operation type {value} is unknown; use arrival, sale, relocation or write-off",
    ),
    (None, "subtotal_matches"): (
        "subtotal_mismatch", "subtotal",
        "subtotal {value} does not match quantity × price × (1 − discount/100) = {expected}; "
        "correct the subtotal, quantity, price or discount",
    ),
}


def check_lines(records: list[LineRecord]) -> list[Problem]:
    """Run the line rules over every line of a batch and return the problems found."""
    if not records:
        return []
    frame = pl.DataFrame(
        {
            "operation_type": [r.operation_type for r in records],
            "line_index": [r.line_index for r in records],
            "quantity": [r.quantity for r in records],
            "price": [r.price for r in records],
            "discount": [r.discount for r in records],
            "subtotal": [r.subtotal for r in records],
            "expected_subtotal": [r.expected_subtotal for r in records],
        },
        schema={
            "operation_type": pl.String,
            "line_index": pl.Int64,
            "quantity": MONEY,
            "price": MONEY,
            "discount": MONEY,
            "subtotal": MONEY,
            "expected_subtotal": MONEY,
        },
    )
    try:
        LINE_SCHEMA.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        return _to_problems(errors.failure_cases, records)
    return []


def _to_problems(failures: pl.DataFrame, records: list[LineRecord]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    for failure in failures.iter_rows(named=True):
        index = failure.get("index")
        key = (failure.get("column"), _check_name(failure.get("check")))
        if index is None or key not in FAILURES:
            if index is None:
                continue
            key = (None, _check_name(failure.get("check")))
            if key not in FAILURES:
                continue
        code, column, template = FAILURES[key]
        record = records[index]
        if code == "too_many_lines" and record.line_index != MAX_LINES_PER_OPERATION + 1:
            continue
        cell = record.cells.get(column) or record.cells.get("first")
        if cell is None or (record.sheet, cell, code) in seen:
            continue
        seen.add((record.sheet, cell, code))
        value = display_text(record.raw.get(column))
        message = template.format(
            value=value, expected=_cents(record.expected_subtotal)
        )
        problems.append(Problem(record.file, record.sheet, cell, code, message, value))
    return problems


def _check_name(check: object) -> str:
    text = str(check)
    return text.split("(")[0]


def _cents(value: Decimal | None) -> str:
    return "" if value is None else str(value.quantize(Decimal("0.01")))
