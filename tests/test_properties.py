"""Property-based tests: random layouts, values and faults never make the pipeline raise.

Each generated workbook goes through the inbox like a dropped file. Whatever it holds, it
must end applied, rejected with at least one problem, or as a duplicate; no problem may be
an internal error (an exception the pipeline did not expect); a rejected batch changes no
stock; and an applied batch's movements sum to its lines. CI runs CI_EXAMPLES examples per
property, `BATCHSTOCK_FULL=1` runs FULL_EXAMPLES.
"""

from __future__ import annotations

import io
import os
import random
import zipfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchstock.config import init_workspace
from batchstock.watcher import run_pass
from conftest import drop
from ingest_workbooks import query, stocked_ledger  # noqa: F401 (fixture)

CI_EXAMPLES = 30
FULL_EXAMPLES = 400
EXAMPLES = FULL_EXAMPLES if os.environ.get("BATCHSTOCK_FULL") == "1" else CI_EXAMPLES
# Products whose sale unit is their write-off unit, so a quantity is its base quantity.
SKUS = ["COMB-CARB", "CLIP-RED", "000731"]
OPENING_STOCK = 1_000

PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

quantities = st.one_of(
    st.integers(min_value=-5, max_value=50),
    st.decimals(min_value=Decimal("-1"), max_value=Decimal("100"), places=3,
                allow_nan=False, allow_infinity=False),
    st.sampled_from(["12,5", "abc", "", " 7 ", "1 000", "(5)", "=1+1", "#N/A"]),
    st.none(),
)
skus = st.one_of(st.sampled_from(SKUS), st.sampled_from(["NO-SUCH", "", "comb-carb", "731"]))
lines = st.lists(st.tuples(skus, quantities), min_size=0, max_size=8)
faults = st.sampled_from(["none", "none", "none", "truncate", "flip", "drop_part",
                          "hidden_row", "merge", "formula", "hidden_sheet"])


@dataclass
class Generated:
    """A generated workbook: its layout, lines and fault."""

    layout: str
    kind: str
    lines: list[tuple]
    fault: str
    seed: int


generated = st.builds(Generated, st.sampled_from(["form", "table"]),
                      st.sampled_from(["Arrival", "Sale"]), lines, faults,
                      st.integers(min_value=0, max_value=1 << 20))


def sheet_rows(case: Generated) -> list[list]:
    extra = ["Price"] if case.kind == "Sale" else []
    if case.layout == "form":
        rows = [["Operation", case.kind], ["Date", "2026-11-03 10:00"], ["Storage", "Products"],
                [], ["SKU", "Quantity", *extra]]
        return rows + [[sku, quantity, *([2] if extra else [])] for sku, quantity in case.lines]
    header = ["Date", "Document no.", "Operation", "Storage", "SKU", "Quantity", *extra]
    return [header] + [["2026-11-03 10:00", "D-1", case.kind, "Products", sku, quantity,
                        *([2] if extra else [])] for sku, quantity in case.lines]


def write_case(case: Generated, path: Path) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = case.kind
    for row in sheet_rows(case):
        sheet.append([float(v) if isinstance(v, Decimal) else v for v in row])
    last = sheet.max_row
    if case.fault == "hidden_row" and last > 1:
        sheet.row_dimensions[last].hidden = True
    elif case.fault == "merge" and last > 2:
        sheet.merge_cells(start_row=last - 1, start_column=1, end_row=last, end_column=1)
    elif case.fault == "formula":
        sheet.cell(last + 1, 1, "COMB-CARB")
        sheet.cell(last + 1, 2, "=2*3")
    elif case.fault == "hidden_sheet":
        hidden = workbook.create_sheet("Hidden")
        hidden.append(["SKU", "Quantity"])
        hidden.append(["COMB-CARB", 1])
        hidden.sheet_state = "hidden"
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.write_bytes(damage(buffer.getvalue(), case))
    return path


def damage(data: bytes, case: Generated) -> bytes:
    rng = random.Random(case.seed)
    if case.fault == "truncate":
        return data[: rng.randrange(0, len(data))]
    if case.fault == "flip":
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        return bytes(damaged)
    if case.fault == "drop_part":
        source = zipfile.ZipFile(io.BytesIO(data))
        names = source.namelist()
        dropped = rng.choice(names)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
            for name in names:
                if name != dropped:
                    target.writestr(name, source.read(name))
        return buffer.getvalue()
    return data


@pytest.fixture
def opened(tmp_path, stocked_ledger):
    """A workspace with the test catalogue and OPENING_STOCK of each SKU in Products."""
    import shutil

    workspace = init_workspace(tmp_path / "ws")
    shutil.copyfile(stocked_ledger, workspace.ledger_path)
    workspace.root.joinpath("batchstock.toml").write_text(
        "[inbox]\nincomplete_after_seconds = 0\n", encoding="utf-8")
    from batchstock.config import open_workspace

    workspace = open_workspace(workspace.root)
    opening = Generated("form", "Arrival", [(sku, OPENING_STOCK) for sku in SKUS], "none", 0)
    drop(workspace, write_case(opening, tmp_path / "opening.xlsx"), user="anna")
    assert run_pass(workspace).filed[0].result.status == "applied"
    return workspace


def movement_total(workspace) -> Decimal:
    return query(workspace, "SELECT coalesce(sum(base_quantity), 0) FROM movement_entries")[0][0]


@PROPERTY_SETTINGS
@given(case=generated)
def test_any_workbook_ends_applied_or_rejected(opened, tmp_path, case):
    before = movement_total(opened)
    path = write_case(case, tmp_path / f"case-{case.seed}.xlsx")
    drop(opened, path, user="anna")

    filed = run_pass(opened).filed

    assert len(filed) == 1
    result = filed[0].result
    assert result.status in ("applied", "rejected", "duplicate"), result
    assert "internal_error" not in {p.code for p in result.problems}, result.problems
    assert filed[0].result_path.is_file()
    after = movement_total(opened)
    if result.status != "applied":
        assert after == before
        assert result.status == "duplicate" or result.problems
        return
    batch_lines = query(opened, "SELECT coalesce(sum(l.base_quantity), 0) "
                                "FROM line_versions l JOIN operation_versions v "
                                "USING (operation_no, version) WHERE v.batch_id = ?",
                        [result.batch_id])[0][0]
    batch_moves = query(opened, "SELECT coalesce(sum(base_quantity), 0) FROM movement_entries "
                                "WHERE batch_id = ?", [result.batch_id])[0][0]
    sign = 1 if case.kind == "Arrival" else -1
    assert batch_moves == sign * batch_lines
    assert after - before == batch_moves
    assert case.fault in ("none", "flip", "drop_part")


@PROPERTY_SETTINGS
@given(data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_rejected(opened, tmp_path, data):
    path = tmp_path / "random.xlsx"
    path.write_bytes(data)
    drop(opened, path, user="anna")

    result = run_pass(opened).filed[0].result

    assert result.status in ("rejected", "duplicate")
    assert "internal_error" not in {p.code for p in result.problems}
