"""Benchmark of reports and reconciliation on a large generated ledger.

The script builds a workspace whose ledger contains about `--movements` movements (default
10 million) for `--products` products in `--storages` storages over `--years` years,
generated directly with DuckDB SQL (`range` and `hash`, no workbooks): an opening arrival
of 1,000 sale units for every storage and product, then operations of 10 lines each,
60 % sales, 15 % arrivals at varying costs, 10 % write-offs and 15 % relocations. Every
balance stays positive, so `reconcile` must find nothing.

It then times, each in its own worker process (this script with `--worker`) so that each
peak RSS (the worker's VmHWM) and CPU time (from `os.wait4`) belong to one job:

1. valuation: the first moving-average refresh over the whole ledger;
2. stock SQL: `stock_value_at` as of a date, summed;
3. stock report: the stock balance workbook as of that date;
4. movements report: one month, with its Check sheet;
5. reconcile: every check over the whole ledger.

Wall time is from inside the worker (imports excluded); CPU time is the worker's user and
system time, imports included, and counts both cores when DuckDB runs in parallel. The
one-minute load average is recorded after each step, since other work on the machine
stretches wall times.

    /work/venv/bin/python bench/ledger_scale.py
    /work/venv/bin/python bench/ledger_scale.py --movements 1000000 --products 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results"
LINES_PER_OPERATION = 10
OPENING_QUANTITY = 1000
START = dt.datetime(2023, 1, 1)
STOCK_DATE = dt.datetime(2024, 7, 1)  # stock as of the end of 30 June 2024
MONTH = (dt.datetime(2024, 6, 1), dt.datetime(2024, 7, 1))
STEPS = ("valuation", "stock-sql", "stock-report", "movements-report", "reconcile")
WORKERS = ("generate", *STEPS)
# Operation types by `operation_no % 100`, and the movements each line makes.
TYPE_CASE = """CASE WHEN n % 100 < 60 THEN 'sale' WHEN n % 100 < 75 THEN 'arrival'
    WHEN n % 100 < 85 THEN 'write-off' ELSE 'relocation' END"""
MOVEMENTS_PER_OPERATION = LINES_PER_OPERATION * (0.85 + 2 * 0.15)


def catalogue_sql(products: int, storages: int) -> list[str]:
    """Return the statements that replace the storages and add products and one batch."""
    return [
        "DELETE FROM storages",
        f"""INSERT INTO storages SELECT i, printf('Storage %02d', i), 'sale', NULL
            FROM range(1, {storages + 1}) t(i)""",
        f"""INSERT INTO products SELECT i, printf('P%05d', i), printf('Product %05d', i),
            NULL, NULL, 'pcs', CASE i % 3 WHEN 0 THEN 'pcs' ELSE 'ml' END,
            CASE i % 3 WHEN 0 THEN 1 WHEN 1 THEN 100 ELSE 250 END,
            2 + i % 50, 1 + i % 50 * 0.5, 50, 500
            FROM range(1, {products + 1}) t(i)""",
        f"""INSERT INTO batches VALUES (1, 'generated', 'bench', 'generated', 'operations',
            NULL, TIMESTAMP '{START}', 'applied', 0, NULL)""",
    ]


def draft_sql(products: int, storages: int, years: int, operations: int) -> list[str]:
    """Return the statements that fill the temporary tables `gen_ops` and `gen_lines`.

    The opening operations come first, one per storage and block of 10 products, the day
    before START. `operations` is the number of operations after them.
    """
    seconds = years * 365 * 86400
    blocks = -(-products // LINES_PER_OPERATION)
    opening_ops = storages * blocks
    return [
        f"""CREATE TEMP TABLE gen_ops AS
            SELECT n, 'arrival' AS type, (n - 1) // {blocks} + 1 AS storage_id,
                NULL::INTEGER AS to_storage_id,
                TIMESTAMP '{START}' - INTERVAL 1 DAY AS occurred_at
            FROM range(1, {opening_ops + 1}) t(n)
            UNION ALL
            SELECT n, {TYPE_CASE}, hash(n, 'storage') % {storages} + 1, NULL,
                TIMESTAMP '{START}' + to_seconds(CAST(hash(n, 'time') % {seconds} AS BIGINT))
            FROM range({opening_ops + 1}, {opening_ops + operations + 1}) t(n)""",
        f"""UPDATE gen_ops SET to_storage_id =
                (storage_id + hash(n, 'to') % {storages - 1}) % {storages} + 1
            WHERE type = 'relocation'""",
        f"""CREATE TEMP TABLE gen_lines AS
            SELECT o.n, l.line_no, o.type, o.storage_id, o.to_storage_id, o.occurred_at,
                CASE WHEN o.n <= {opening_ops}
                    THEN ((o.n - 1) % {blocks}) * {LINES_PER_OPERATION} + l.line_no
                    ELSE hash(o.n, l.line_no, 'product') % {products} + 1 END AS product_id,
                CAST(CASE
                    WHEN o.n <= {opening_ops} THEN {OPENING_QUANTITY}
                    WHEN o.type = 'arrival' THEN 20 + hash(o.n, l.line_no) % 41
                    WHEN o.type = 'write-off' THEN 1 + hash(o.n, l.line_no) % 2
                    ELSE 1 + hash(o.n, l.line_no) % 3 END AS DECIMAL(18,4)) AS quantity
            FROM gen_ops o, range(1, {LINES_PER_OPERATION + 1}) l(line_no)""",
        f"DELETE FROM gen_lines WHERE product_id > {products}",
    ]


# Copies the drafts into the ledger's tables, one movement per line and two per relocation.
LEDGER_SQL = [
    f"""INSERT INTO operation_heads SELECT n, printf('OP-%06d', n), type, 'active', 1, 1,
        TIMESTAMP '{START}', 'bench' FROM gen_ops""",
    """INSERT INTO operation_versions SELECT n, 1, occurred_at, storage_id, to_storage_id,
        NULL, NULL, NULL, NULL, NULL, 1, occurred_at, 'bench', NULL FROM gen_ops""",
    """INSERT INTO line_versions
        SELECT n, 1, line_no, product_id, quantity, 'pcs', quantity * equals, price, 0,
            CAST(quantity * coalesce(price, 0) AS DECIMAL(18,4)), NULL, NULL
        FROM (
            SELECT g.*, p.equals, CASE
                WHEN g.type = 'arrival' THEN CAST(p.cost_price
                    * (90 + hash(g.n, g.line_no, 'cost') % 21) * 0.01 AS DECIMAL(18,4))
                WHEN g.type = 'sale' THEN p.sale_price END AS price
            FROM gen_lines g JOIN products p USING (product_id)
        )""",
    """INSERT INTO movement_entries
        SELECT row_number() OVER (ORDER BY n, line_no, kind DESC), n, 1, line_no,
            storage, product_id, kind, signed, occurred_at, occurred_at, 1, false
        FROM (
            SELECT l.*, l.storage_id AS storage,
                CASE l.type WHEN 'relocation' THEN 'relocation-out' ELSE l.type END AS kind,
                CASE l.type WHEN 'arrival' THEN 1 ELSE -1 END
                    * l.quantity * p.equals AS signed
            FROM gen_lines l JOIN products p USING (product_id)
            UNION ALL
            SELECT l.*, l.to_storage_id, 'relocation-in', l.quantity * p.equals
            FROM gen_lines l JOIN products p USING (product_id)
            WHERE l.type = 'relocation'
        )""",
    """INSERT INTO change_log_entries SELECT n, 'operation', printf('OP-%06d', n), 1,
        'created', 'bench', TIMESTAMP '2026-01-01', 1, 'generated', NULL, NULL, NULL
        FROM gen_ops""",
    "DROP TABLE gen_lines",
    "DROP TABLE gen_ops",
    "CHECKPOINT",
]


def generate(root: Path, args: argparse.Namespace) -> dict:
    """Create the workspace and its ledger; return what was generated and how long it took."""
    from batchstock import ledger
    from batchstock.config import init_workspace

    workspace = init_workspace(root)
    opening = args.storages * args.products
    operations = max(0, round((args.movements - opening) / MOVEMENTS_PER_OPERATION))
    started = time.perf_counter()
    con = ledger.connect(workspace.ledger_path)
    try:
        statements = [
            *catalogue_sql(args.products, args.storages),
            *draft_sql(args.products, args.storages, args.years, operations),
            *LEDGER_SQL,
        ]
        for statement in statements:
            con.execute(statement)
        counts = con.execute(
            "SELECT (SELECT count(*) FROM movement_entries), "
            "(SELECT count(*) FROM line_versions), (SELECT count(*) FROM operation_heads)"
        ).fetchall()[0]
    finally:
        con.close()
    return {
        "seconds": time.perf_counter() - started,
        "movements": counts[0], "lines": counts[1], "operations": counts[2],
        "ledger_bytes": workspace.ledger_path.stat().st_size,
    }


def peak_rss_mib() -> float:
    """Return this process's peak resident set size since it started (VmHWM), in MiB.

    `ru_maxrss` from `wait4` is no use here, because Linux carries the parent's peak over
    fork and exec into the child's figure.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_step(root: Path, step: str, memory_limit: str | None) -> dict:
    """Run one timed step in this process; return its figures."""
    from batchstock import ledger
    from batchstock.config import open_workspace
    from batchstock.reconcile import reconcile_ledger
    from batchstock.reports import ReportRequest, prepare_ledger
    from batchstock.reports_movements import write_movements_report
    from batchstock.reports_stock import write_stock_report

    workspace = open_workspace(root)
    con = ledger.connect(workspace.ledger_path)
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    request = ReportRequest(workspace, "bench", {"step": step})
    started = time.perf_counter()
    figures: dict = {}
    try:
        if step == "valuation":
            prepare_ledger(con)
            figures["averages"] = con.execute(
                "SELECT count(*) FROM cost_averages").fetchall()[0][0]
        elif step == "stock-sql":
            rows, value = con.execute(
                "SELECT count(*), sum(value) FROM stock_value_at(?)",
                [STOCK_DATE - dt.timedelta(microseconds=1)]).fetchall()[0]
            figures.update(rows=rows, value=str(round(value, 2)))
        elif step == "stock-report":
            written = write_stock_report(con, request, STOCK_DATE, None)
            figures.update(rows=written.row_count, bytes=written.path.stat().st_size)
        elif step == "movements-report":
            written = write_movements_report(con, request, *MONTH)
            figures.update(rows=written.row_count, differences=written.differences,
                           bytes=written.path.stat().st_size)
        elif step == "reconcile":
            outcome = reconcile_ledger(con)
            figures.update(checked=outcome.checked, findings=len(outcome.findings))
    finally:
        con.close()
    figures["seconds"] = time.perf_counter() - started
    return figures


def call_worker(root: Path, step: str, args: argparse.Namespace) -> dict:
    """Run a step in a worker process; add its CPU time and the load average after it."""
    command = [sys.executable, __file__, "--worker", step, "--workspace", str(root),
               "--movements", str(args.movements), "--products", str(args.products),
               "--storages", str(args.storages), "--years", str(args.years)]
    if args.memory_limit:
        command += ["--memory-limit", args.memory_limit]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"step {step} failed with exit code {process.returncode}")
    figures = json.loads(output.strip().splitlines()[-1])
    figures["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    figures["load_average"] = os.getloadavg()[0]
    return figures


def machine() -> dict:
    memory = Path("/proc/meminfo").read_text().split()[1]
    return {
        "cpus": os.cpu_count(), "memory_gib": round(int(memory) / 1024 ** 2, 1),
        "python": platform.python_version(), "system": platform.platform(),
        "duckdb": metadata.version("duckdb"), "xlsxwriter": metadata.version("xlsxwriter"),
    }


def render(results: dict) -> str:
    made = results["generated"]
    lines = [
        f"ledger: {made['movements']:,} movements, {made['lines']:,} lines, "
        f"{made['operations']:,} operations; {made['ledger_bytes'] / 1024 ** 3:.2f} GiB; "
        f"generated in {made['seconds']:.1f} s (peak RSS {made['peak_rss_mib']:.0f} MiB)",
        "",
        "| step | wall time (s) | CPU time (s) | peak RSS (MiB) | load average | output |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for step in STEPS:
        figures = dict(results["steps"][step])
        seconds, cpu = figures.pop("seconds"), figures.pop("cpu_seconds")
        peak, load = figures.pop("peak_rss_mib"), figures.pop("load_average")
        detail = ", ".join(f"{key} {value}" for key, value in figures.items())
        lines.append(f"| {step} | {seconds:.1f} | {cpu:.1f} | {peak:.0f} | {load:.1f} | "
                     f"{detail} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movements", type=int, default=10_000_000)
    parser.add_argument("--products", type=int, default=5000)
    parser.add_argument("--storages", type=int, default=20)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--workspace", type=Path, default=None,
                        help="where to build the workspace (default: a temporary folder, "
                             "removed at the end)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for ledger_scale.json (default bench/results)")
    parser.add_argument("--memory-limit", default=None,
                        help="DuckDB memory_limit for the timed steps, such as 1GB (default: "
                             "DuckDB's own, 80%% of RAM); past it DuckDB spills to disk")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "generate":
        figures = generate(args.workspace, args)
    elif args.worker:
        figures = run_step(args.workspace, args.worker, args.memory_limit)
    if args.worker:
        figures["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(figures, default=str))
        return
    if args.storages < 2:
        parser.error("--storages must be 2 or more, for relocations")

    results = run_benchmark(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ledger_scale.json").write_text(json.dumps(results, indent=2, default=str))
    print(render(results))


def run_benchmark(args: argparse.Namespace) -> dict:
    """Generate the ledger and time every step, each in a worker process."""
    temporary = args.workspace is None
    root = args.workspace or Path(tempfile.mkdtemp(prefix="ledger-scale-")) / "ws"
    try:
        results = {"date": dt.date.today().isoformat(), "machine": machine(),
                   "parameters": {k: v for k, v in vars(args).items()
                                  if k in ("movements", "products", "storages", "years",
                                           "memory_limit")},
                   "generated": call_worker(root, "generate", args), "steps": {}}
        for step in STEPS:
            results["steps"][step] = call_worker(root, step, args)
            print(f"{step}: {results['steps'][step]}", file=sys.stderr)
    finally:
        if temporary:
            shutil.rmtree(root.parent, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
