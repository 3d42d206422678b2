"""Field-level differences between two versions of an operation, as change-log rows.

`edits` calls this when it replaces an operation. Each header field that differs becomes
one row (old → new). Lines are matched by SKU, in order, and a line is recorded as added,
removed, or changed in its quantity, unit, price, discount or comment. An edit that yields
no row changes nothing and is reported as "no change". Subtotals are not compared, because
they follow from quantity, price and discount.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

from batchstock.core import Catalogue, Change, Line, Operation
from batchstock.history import StoredOperation, number_text

LINE_ATTRIBUTES = ("quantity", "unit", "price", "discount", "comment")


def diff_versions(stored: StoredOperation, new: Operation, catalogue: Catalogue,
                  version: int) -> list[Change]:
    """Return the change-log rows that turn `stored` into `new`, which becomes `version`."""
    old_fields = _header_fields(stored.operation, stored.storage, stored.to_storage)
    new_fields = _header_fields(
        new, catalogue.storages[new.storage_id].name,
        catalogue.storages[new.to_storage_id].name if new.to_storage_id else None,
    )
    changes = [
        Change(stored.operation_id, version, "edited", name, old_fields[name], value)
        for name, value in new_fields.items()
        if old_fields[name] != value
    ]
    changes += [
        Change(stored.operation_id, version, "edited", name, old, value)
        for name, old, value in _line_differences(stored.operation.lines, new.lines)
    ]
    return changes


def _header_fields(op: Operation, storage: str, to_storage: str | None) -> dict[str, str | None]:
    relocation = op.type == "relocation"
    fields = {
        "date": date_text(op.occurred_at),
        "from storage" if relocation else "storage": storage,
    }
    if relocation:
        fields["to storage"] = to_storage
    if op.type in ("arrival", "sale"):
        fields["supplier" if op.type == "arrival" else "client"] = op.counterparty
    fields.update({
        "staff member": op.staff_member, "reason": op.reason,
        "document no.": op.document_no, "comment": op.comment,
    })
    return fields


def date_text(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M")


def _keyed_lines(lines: list[Line]) -> dict[str, Line]:
    """Key lines by SKU; a SKU's second line in the operation gets `#2`, and so on."""
    seen: Counter[str] = Counter()
    keyed = {}
    for line in lines:
        seen[line.sku] += 1
        suffix = f" #{seen[line.sku]}" if seen[line.sku] > 1 else ""
        keyed[f"line {line.sku}{suffix}"] = line
    return keyed


def _line_differences(old_lines: list[Line], new_lines: list[Line]):
    old, new = _keyed_lines(old_lines), _keyed_lines(new_lines)
    for key, line in old.items():
        if key not in new:
            yield f"{key} removed", describe_line(line), None
            continue
        for attribute in LINE_ATTRIBUTES:
            before = _attribute_text(old[key], attribute)
            after = _attribute_text(new[key], attribute)
            if before != after:
                yield f"{key} {attribute}", before, after
    for key, line in new.items():
        if key not in old:
            yield f"{key} added", None, describe_line(line)


def _attribute_text(line: Line, attribute: str) -> str | None:
    value = getattr(line, attribute)
    if isinstance(value, Decimal):
        return number_text(value)
    return value


def describe_line(line: Line) -> str:
    """Return a line as `12 pcs at 9.45, discount 5%`, the way the change log shows it."""
    text = f"{number_text(line.quantity)} {line.unit}"
    if line.price is not None:
        text += f" at {number_text(line.price)}"
    if line.discount:
        text += f", discount {number_text(line.discount)}%"
    if line.comment:
        text += f', comment "{line.comment}"'
    return text
