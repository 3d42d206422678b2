"""Convert single cell values into text, exact Decimals and date-times.

Each converter either returns the value or raises `CellValueError` with a stable problem
code and a message that states what was expected and how to fix it. The caller adds the
file, sheet and cell. Nothing here ever turns a bad cell into a silent None.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

# Excel stores numbers as binary doubles and shows at most 15 significant digits, so the
# value the user sees is the double rounded to 15 digits: 0.28999999999999998 shows as
# 0.29 and =0.1+0.2 shows as 0.3.
EXCEL_SIGNIFICANT_DIGITS = 15

# The ledger keeps prices, amounts and quantities as entered in DECIMAL(18,4) columns, which
# hold at most 14 digits before the decimal point. Larger numbers are a problem, not a crash.
NUMBER_LIMIT = Decimal(10) ** 14

_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_COMMA_DECIMAL = re.compile(r"[+-]?\d+,\d+")
_GROUPED = re.compile(r"[+-]?\d{1,3}([ ,'\u00a0\u202f]\d{3})+(\.\d+)?")
_BRACKETED = re.compile(r"\(\s*\d+(\.\d+)?\s*\)")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_SPACES = re.compile(r"\s+")


class CellValueError(ValueError):
    """A cell value cannot be converted; `code` is the stable problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean_text(text: str) -> str:
    """Normalise to NFC, turn non-breaking and other Unicode spaces into plain spaces, trim."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\u00a0", " ").replace("\u202f", " ").replace("\u2007", " ")
    return text.strip()


def normalise_label(text: str) -> str:
    """Return the form of a label or header used for matching: case, spaces, colon folded."""
    text = _SPACES.sub(" ", clean_text(text)).lower()
    return text.rstrip(":").rstrip()


def float_to_decimal(number: float) -> Decimal:
    """Return the Decimal that a spreadsheet shows for a stored double."""
    if number != number or number in (float("inf"), float("-inf")):
        raise CellValueError("not_a_number", f"{number} is not a finite number")
    shown = Decimal(format(number, f".{EXCEL_SIGNIFICANT_DIGITS}g"))
    return _plain(shown)


def _too_large(number: Decimal) -> CellValueError:
    return CellValueError(
        "too_large",
        f"{number:f} is too large; enter a number below {NUMBER_LIMIT:f}, and check that "
        "the cell holds the value you meant",
    )


def _plain(value: Decimal) -> Decimal:
    """Drop trailing zeros and exponent notation (1E+1 → 10, 2.50 → 2.5)."""
    normal = value.normalize()
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        # Through text, because quantize() fails beyond the context's 28 digits.
        return Decimal(f"{normal:f}")
    return normal


def display_text(value: Any) -> str | None:
    """Return a cell value as the text a user would recognise, for messages."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        try:
            return str(float_to_decimal(value))
        except CellValueError:
            return str(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def to_text(value: Any) -> str | None:
    """Convert a cell to trimmed text; None for an empty cell.

    Whole numbers lose their `.0` (a SKU cell 731.0 becomes "731").
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = clean_text(value)
        return text or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return f"{float_to_decimal(float(value)):f}"
        except CellValueError:
            return str(value)
    return display_text(value)


def to_decimal(value: Any, max_decimals: int) -> Decimal | None:
    """Convert a numeric cell or plain numeric text to an exact Decimal; None when empty.

    Raises CellValueError for text that is not a plain number, with a hint for decimal
    commas, digit grouping and bracketed negatives. It also raises for a number of
    NUMBER_LIMIT or more, and for more than `max_decimals` decimal places, which would
    otherwise be rounded silently.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise CellValueError("not_a_number", f'"{display_text(value)}" is not a number')
    if isinstance(value, (int, float)):
        number = float_to_decimal(float(value))
    elif isinstance(value, str):
        text = clean_text(value)
        if not text:
            return None
        number = _parse_number_text(text)
    else:
        raise CellValueError(
            "not_a_number", f'"{display_text(value)}" is a date, not a number'
        )
    if abs(number) >= NUMBER_LIMIT:
        raise _too_large(number)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > max_decimals:
        raise CellValueError(
            "too_many_decimals",
            f"{number} has more than {max_decimals} decimal places; "
            f"round it to {max_decimals} places",
        )
    return number


def _parse_number_text(text: str) -> Decimal:
    if _PLAIN_NUMBER.fullmatch(text):
        try:
            return _plain(Decimal(text))
        except InvalidOperation:
            pass
    if _COMMA_DECIMAL.fullmatch(text):
        hint = text.replace(",", ".")
        raise CellValueError(
            "not_a_number", f'"{text}" is not a number; use a decimal point: write {hint}'
        )
    if _GROUPED.fullmatch(text):
        hint = re.sub(r"[ ,'\u00a0\u202f]", "", text)
        raise CellValueError(
            "not_a_number",
            f'"{text}" is not a number; write it without digit grouping: {hint}',
        )
    if _BRACKETED.fullmatch(text):
        raise CellValueError(
            "not_a_number",
            f'"{text}" is not a number; brackets are not read as a minus sign',
        )
    raise CellValueError("not_a_number", f'"{text}" is not a number; write digits such as 12.5')


def to_datetime(value: Any) -> dt.datetime | None:
    """Convert a date cell or ISO / day-first dotted text to a naive date-time; None when empty."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0, tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        text = clean_text(value)
        if not text:
            return None
        return _parse_date_text(text)
    raise CellValueError(
        "invalid_date",
        f'"{display_text(value)}" is not a date; use a date cell or write 2026-11-03 14:30',
    )


def _parse_date_text(text: str) -> dt.datetime:
    iso = _ISO_DATE.fullmatch(text)
    dotted = _DOTTED_DATE.fullmatch(text)
    if iso:
        year, month, day = int(iso[1]), int(iso[2]), int(iso[3])
        clock = iso.groups()[3:]
    elif dotted:
        day, month, year = int(dotted[1]), int(dotted[2]), int(dotted[3])
        clock = dotted.groups()[3:]
    else:
        raise CellValueError(
            "invalid_date",
            f'"{text}" is not a date; write 2026-11-03, 2026-11-03 14:30 or 03.11.2026',
        )
    hour, minute, second = (int(part) if part else 0 for part in clock)
    try:
        return dt.datetime(year, month, day, hour, minute, second)
    except ValueError as error:
        raise CellValueError("invalid_date", f'"{text}" is not a valid date: {error}') from None
