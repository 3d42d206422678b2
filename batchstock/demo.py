"""The bundled sample month, applied to a workspace by `batchstock demo`."""

from __future__ import annotations

import os
import shutil
import time
from importlib import resources

from batchstock import ledger
from batchstock.config import init_workspace
from batchstock.snapshot import snapshot_path
from batchstock.watcher import run_pass


def run_demo(workspace_dir: str | None) -> list[str]:
    """Drop the samples in the inbox in their order, process them, and describe the outcome."""
    workspace = init_workspace(workspace_dir)
    samples = resources.files("batchstock") / "samples"
    names = (samples / "ORDER").read_text(encoding="utf-8").split()
    start = time.time() - len(names)
    for index, name in enumerate(names):
        target = workspace.inbox / name
        with resources.as_file(samples / name) as source:
            shutil.copyfile(source, target)
        os.utime(target, (start + index, start + index))

    report = run_pass(workspace)
    lines = []
    for filed in report.filed:
        ops = filed.result.operations
        ids = ", ".join(op.operation_id for op in ops)
        if len(ops) > 3:
            ids = f"{ops[0].operation_id} … {ops[-1].operation_id}"
        lines.append(
            f"{filed.result.status:9} {filed.result.file}"
            + (f" → {len(ops)} operations ({ids})" if ids else "")
        )
    con = ledger.connect(workspace.ledger_path)
    try:
        balance = con.execute(
            "SELECT storage, sku, quantity, sale_unit, base_quantity, base_unit "
            "FROM stock_balance WHERE base_quantity <> 0 ORDER BY storage, sku"
        ).fetchall()
    finally:
        con.close()
    lines.append("")
    lines.append("Stock balance (quantity in sale units, base quantity in write-off units):")
    for storage, sku, quantity, sale_unit, base, base_unit in balance:
        lines.append(
            f"  {storage:16} {sku:12} {quantity.normalize():>8f} {sale_unit:5} "
            f"{base.normalize():>8f} {base_unit}"
        )
    lines.append("")
    lines.append(f"Results:  {workspace.outbox}/")
    lines.append(f"Ledger:   {workspace.ledger_path}")
    lines.append(f"Accountants' read-only copy: {snapshot_path(workspace)}")
    lines.append(
        f"Try:      duckdb -readonly {snapshot_path(workspace)} \"SELECT * FROM stock_balance\""
    )
    return lines
