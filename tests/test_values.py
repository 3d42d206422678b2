"""Cell conversion: text, exact Decimals and date-times, and the problem codes of bad cells."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from batchstock.values import (
    CellValueError,
    clean_text,
    display_text,
    float_to_decimal,
    normalise_label,
    to_datetime,
    to_decimal,
    to_text,
)

# Text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Products ", "Products"),
        ("\u00a0Products\u00a0", "Products"),
        ("\u202fBranch 2 shelf\u2007", "Branch 2 shelf"),
        ("Cre\u0300me bru\u0302le\u0301e mask", "Crème brûlée mask"),
    ],
)
def test_clean_text_trims_and_normalises(raw, expected):
    assert clean_text(raw) == expected


def test_clean_text_returns_nfc():
    decomposed = "Cre\u0300me"

    assert clean_text(decomposed) == "Cr\u00e8me"
    assert len(clean_text(decomposed)) == 5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Quantity", "quantity"),
        ("  QTY  ", "qty"),
        ("Date:", "date"),
        ("Document no.:", "document no."),
        ("Unit   cost :", "unit cost"),
        ("\u00a0Storage\u00a0:", "storage"),
    ],
)
def test_normalise_label_folds_case_spaces_colon(raw, expected):
    assert normalise_label(raw) == expected


def test_to_text_keeps_leading_zeros_of_text():
    assert to_text("000731") == "000731"


def test_to_text_numeric_cell_drops_point_zero():
    assert to_text(731.0) == "731"
    assert to_text(731) == "731"


def test_to_text_long_barcode_stays_whole():
    assert to_text(4601234500017.0) == "4601234500017"


def test_to_text_large_numbers_spelled_out():
    assert to_text(14601234500014.0) == "14601234500014"
    assert to_text(1e20) == "100000000000000000000"
    assert to_text(1e300).startswith("1000000000")


def test_to_text_empty_is_none():
    assert to_text(None) is None
    assert to_text("   ") is None
    assert to_text("\u00a0") is None


# Numbers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (9.45, Decimal("9.45")),
        (0.29, Decimal("0.29")),
        (0.1 + 0.2, Decimal("0.3")),
        (113.4, Decimal("113.4")),
        (12, Decimal("12")),
        (12.0, Decimal("12")),
        ("12.5", Decimal("12.5")),
        (" 12.5 ", Decimal("12.5")),
        ("-3", Decimal("-3")),
        (".5", Decimal("0.5")),
        ("1000", Decimal("1000")),
    ],
)
def test_to_decimal_gives_shown_value(raw, expected):
    number = to_decimal(raw, 4)

    assert number == expected
    assert str(number) == str(expected)


def test_to_decimal_never_binary_noise():
    assert str(to_decimal(9.45, 4)) == "9.45"
    assert str(float_to_decimal(0.28999999999999998)) == "0.29"
    assert str(float_to_decimal(0.30000000000000004)) == "0.3"


def test_to_decimal_empty_is_none():
    assert to_decimal(None, 3) is None
    assert to_decimal("  ", 3) is None


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("12,5", "12.5"),
        ("1 000", "1000"),
        ("1\u00a0000", "1000"),
        ("1,000.50", "1000.50"),
        ("(5)", "minus"),
    ],
)
def test_to_decimal_text_problem_with_hint(raw, hint):
    with pytest.raises(CellValueError) as raised:
        to_decimal(raw, 4)

    assert raised.value.code == "not_a_number"
    assert hint in raised.value.message


@pytest.mark.parametrize("raw", ["n/a", "free", "12.5.1", "1e3", "TRUE", True,
                                 float("nan"), float("inf")])
def test_to_decimal_rejects_non_numbers(raw):
    with pytest.raises(CellValueError) as raised:
        to_decimal(raw, 4)

    assert raised.value.code == "not_a_number"


def test_to_decimal_rejects_date_cell():
    with pytest.raises(CellValueError) as raised:
        to_decimal(dt.datetime(2026, 11, 3), 4)

    assert raised.value.code == "not_a_number"


@pytest.mark.parametrize(("raw", "places"), [(1.2345, 3), ("1.2345", 3), (1.00001, 4),
                                             ("1.005", 2)])
def test_to_decimal_too_many_decimals(raw, places):
    with pytest.raises(CellValueError) as raised:
        to_decimal(raw, places)

    assert raised.value.code == "too_many_decimals"


def test_to_decimal_trailing_zeros_are_not_decimals():
    assert to_decimal("2.5000", 1) == Decimal("2.5")


@pytest.mark.parametrize("raw", [1e15, 1e300, "99999999999999999999", -1e20])
def test_to_decimal_too_large(raw):
    with pytest.raises(CellValueError) as raised:
        to_decimal(raw, 4)

    assert raised.value.code == "too_large"


def test_float_to_decimal_spells_out_whole_numbers():
    assert str(float_to_decimal(1e20)) == "100000000000000000000"
    assert str(float_to_decimal(250.0)) == "250"


def test_to_decimal_largest_accepted():
    assert to_decimal("99999999999999", 4) == Decimal("99999999999999")


# Dates


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (dt.datetime(2026, 11, 3, 14, 30), dt.datetime(2026, 11, 3, 14, 30)),
        (dt.datetime(2026, 11, 3, 14, 30, 5, 999), dt.datetime(2026, 11, 3, 14, 30, 5)),
        (dt.date(2026, 11, 3), dt.datetime(2026, 11, 3)),
        ("2026-11-03", dt.datetime(2026, 11, 3)),
        ("2026-11-03 14:30", dt.datetime(2026, 11, 3, 14, 30)),
        ("2026-11-03 14:30:15", dt.datetime(2026, 11, 3, 14, 30, 15)),
        ("03.11.2026", dt.datetime(2026, 11, 3)),
        ("3.11.2026", dt.datetime(2026, 11, 3)),
        ("03.11.2026 14:30", dt.datetime(2026, 11, 3, 14, 30)),
        (" 03.11.2026\u00a0", dt.datetime(2026, 11, 3)),
    ],
)
def test_to_datetime_accepted_forms(raw, expected):
    assert to_datetime(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["11/03/2026", "3 Nov 2026", "2026/11/03", "03-11-2026", "tomorrow", "2026-13-01",
     "31.02.2026", "2026-11-03 25:00", "03.11.26", 46000, 46000.5, True],
)
def test_to_datetime_other_forms_invalid(raw):
    with pytest.raises(CellValueError) as raised:
        to_datetime(raw)

    assert raised.value.code == "invalid_date"


def test_to_datetime_empty_is_none():
    assert to_datetime(None) is None
    assert to_datetime(" ") is None


# Display


def test_display_text_shows_cell_as_user_sees_it():
    assert display_text(9.45) == "9.45"
    assert display_text(dt.datetime(2026, 11, 3, 14, 30)) == "2026-11-03 14:30"
    assert display_text(dt.datetime(2026, 11, 3)) == "2026-11-03"
    assert display_text(True) == "TRUE"
    assert display_text(None) is None
