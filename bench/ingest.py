"""Benchmark of batchstock's main job: operation workbooks from the inbox into the ledger.

The script generates, in a temporary folder, a catalogue and N form-layout workbooks of L
lines each (mostly arrivals, with sales and write-offs that keep every stock at zero or
above; see `ingest_workbooks.py`), then measures in one run:

a. backlog: N files dropped at once and processed by one `watcher.run_pass` in one
   long-running process. It reports time per file (median, p90) and peak RSS, and runs a
   quarter of the backlog in a second process so the two peaks can be compared.
b. single file: one file per pass in a warm process, split by stage. The split comes from
   `time.perf_counter` wrappers around the library functions that the pipeline calls.
c. readers: python-calamine, fastexcel (when installed), openpyxl read-only and
   batchstock's own `read_workbook`, each only reading the same files.
d. watch latency: `batchstock watch` runs as a subprocess, one file is dropped, and the
   script times how long its result workbook takes to appear.

Phases a to c run in worker subprocesses (this script with `--worker`), so that each
peak RSS belongs to one job and no phase inherits another's memory. Timings are medians
over repeats. Each ratio compares figures from the same run, because the machine's load
changes between runs.

    /work/venv/bin/python bench/ingest.py --files 200 --lines 500 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from importlib import metadata
from pathlib import Path

from ingest_workbooks import generate

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results"
LIBRARIES = ("duckdb", "polars", "pandera", "openpyxl", "xlsxwriter", "python-calamine",
             "fastexcel", "watchfiles")
TARGET_MS_PER_FILE = 100.0
TARGET_WATCH_SECONDS = 1.0
IDLE_PAUSE_SECONDS = 1.0  # between two drops in the watch phase
SUBMITTER = "bench"


# --- helpers shared by the workers ---------------------------------------------------------

def rss_mb() -> float:
    """Current resident set size of this process, from /proc (Linux only)."""
    with open("/proc/self/statm") as stream:
        pages = int(stream.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[position]


def drop_files(inbox: Path, files: list[Path]) -> None:
    """Copy files into the inbox with rising modification times in the past, so that a pass
    takes them in this order and none of them waits to settle."""
    folder = inbox / SUBMITTER
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time() - len(files) - 10
    for index, source in enumerate(files):
        target = folder / source.name
        shutil.copyfile(source, target)
        os.utime(target, (start + index, start + index))


def prepare_workspace(root: Path, catalogue: Path) -> float:
    """Create a workspace and apply the catalogue; return the seconds the import took."""
    from batchstock import ledger
    from batchstock.config import init_workspace
    from batchstock.watcher import run_pass

    workspace = init_workspace(root)
    ledger.connect(workspace.ledger_path).close()
    drop_files(workspace.inbox, [catalogue])
    started = time.perf_counter()
    report = run_pass(workspace)
    seconds = time.perf_counter() - started
    statuses = [f.result.status for f in report.filed]
    if statuses != ["applied"]:
        raise RuntimeError(f"the benchmark catalogue was not applied: {statuses}")
    return seconds


def clone_workspace(seed: Path, root: Path):
    """Copy the workspace that contains the imported catalogue, so each phase starts alike."""
    from batchstock.config import open_workspace

    shutil.copytree(seed, root)
    return open_workspace(root)


# --- worker a: the backlog -----------------------------------------------------------------

def run_backlog(seed: Path, root: Path, files: list[Path]) -> dict:
    """Process `files` in one pass of one process; time each file and sample RSS after it.

    The RSS samples and DuckDB's own memory count (`duckdb_memory()`) are taken between
    files and kept out of the per-file times.
    """
    from batchstock import ledger
    from batchstock.watcher import run_pass

    workspace = clone_workspace(seed, root)
    drop_files(workspace.inbox, files)
    connections = []
    connect = ledger.connect
    ledger.connect = lambda *args, **kwargs: connections.append(connect(*args, **kwargs)) \
        or connections[-1]
    samples: dict[str, list[float]] = {"per_file_ms": [], "cpu_per_file_ms": [],
                                       "rss_after_file_mb": [], "duckdb_after_file_mb": []}
    statuses: Counter = Counter()
    baseline = rss_mb()
    last = started = time.perf_counter()
    last_cpu = time.process_time()

    def on_file(filed) -> None:
        nonlocal last, last_cpu
        samples["per_file_ms"].append((time.perf_counter() - last) * 1000)
        samples["cpu_per_file_ms"].append((time.process_time() - last_cpu) * 1000)
        samples["rss_after_file_mb"].append(rss_mb())
        samples["duckdb_after_file_mb"].append(connections[-1].execute(
            "SELECT coalesce(sum(memory_usage_bytes), 0) / 2**20 FROM duckdb_memory()"
        ).fetchall()[0][0])
        statuses[filed.result.status] += 1
        last, last_cpu = time.perf_counter(), time.process_time()

    run_pass(workspace, on_file=on_file)
    return {
        "files": len(files), "statuses": dict(statuses),
        "pass_seconds": time.perf_counter() - started,
        "rss_before_mb": baseline, "peak_rss_mb": peak_rss_mb(), **samples,
    }


# --- worker b: one file, stage by stage ----------------------------------------------------

class StageClock:
    """Adds up `time.perf_counter` time spent in wrapped functions, per stage name.

    Wrapping replaces the module attribute that the caller looks up at call time, so the
    pipeline runs its normal path. Nested stages overlap, and `stage_split` subtracts them.
    A function that no longer exists is listed in `missing` and its stage stays at zero.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.missing: list[str] = []

    def wrap(self, owner: object, attribute: str, stage: str) -> None:
        original = getattr(owner, attribute, None)
        if original is None:
            self.missing.append(f"{owner.__name__}.{attribute}")
            return

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started

        setattr(owner, attribute, timed)


# (module, function, stage): the functions the pipeline calls for each stage.
STAGE_FUNCTIONS = (
    ("ledger", "connect", "connect"),
    ("inbox", "process_batch", "pipeline"),
    ("pipeline", "read_workbook", "read"),
    ("pipeline", "_read_drafts", "sheets"),
    ("ledger", "load_catalogue", "catalogue"),
    ("pipeline", "_check_drafts", "validate"),
    ("validate", "check_lines", "pandera"),
    ("pipeline", "_apply", "apply"),
    ("ledger", "insert_operations", "insert"),
    ("ledger", "refresh_costs", "cost refresh"),
    ("pipeline", "stock_problems", "stock check"),
    ("edits", "change_stock_problems", "stock check"),
    ("inbox", "file_outcome", "file outcome"),
    ("inbox", "write_result_workbook", "result workbook"),
    ("watcher", "publish_snapshot", "snapshot"),
)


def install_stage_clock() -> StageClock:
    import importlib

    clock = StageClock()
    for module, function, stage in STAGE_FUNCTIONS:
        clock.wrap(importlib.import_module(f"batchstock.{module}"), function, stage)
    return clock


def stage_split(seconds: dict[str, float], total: float) -> dict[str, float]:
    """Turn overlapping wrapper totals into exclusive stages, in milliseconds."""
    validate = seconds["catalogue"] + seconds["validate"]
    named = seconds["read"] + seconds["sheets"] + validate + seconds["apply"]
    split = {
        "read": seconds["read"],
        "sheets": seconds["sheets"],
        "validate": validate,
        "  of which catalogue load": seconds["catalogue"],
        "  of which pandera": seconds["pandera"],
        "apply": seconds["apply"],
        "  of which insert operations": seconds["insert"],
        "    of which cost refresh": seconds["cost refresh"],
        "  of which stock check": seconds["stock check"],
        "other pipeline steps": seconds["pipeline"] - named,
        "result workbook": seconds["result workbook"],
        "filing": seconds["file outcome"] - seconds["result workbook"],
        "pass overhead": total - seconds["pipeline"] - seconds["file outcome"],
        "  of which ledger connect": seconds["connect"],
        "  of which read-only snapshot": seconds["snapshot"],
        "total": total,
    }
    return {name: value * 1000 for name, value in split.items()}


def run_stages(seed: Path, root: Path, files: list[Path], warm_up: int,
               profile: Path | None = None) -> dict:
    """Apply `files` one pass each, as `watch` does, and split the measured ones by stage.

    With `profile`, pyinstrument records the measured passes and writes its text report
    there. Its overhead inflates the stage times of that run.
    """
    from batchstock.watcher import run_pass

    workspace = clone_workspace(seed, root)
    clock = install_stage_clock()
    profiler = None
    samples: list[dict[str, float]] = []
    statuses: Counter = Counter()
    for index, path in enumerate(files):
        if profile is not None and index == warm_up:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        drop_files(workspace.inbox, [path])
        clock.seconds.clear()
        started = time.perf_counter()
        report = run_pass(workspace)
        total = time.perf_counter() - started
        statuses.update(f.result.status for f in report.filed)
        if index >= warm_up:
            samples.append(stage_split(clock.seconds, total))
    if profiler is not None:
        profiler.stop()
        profile.write_text(profiler.output_text(unicode=True, color=False))
    return {"files": len(files), "warm_up": warm_up, "statuses": dict(statuses),
            "samples_ms": samples, "not_measured": clock.missing,
            "peak_rss_mb": peak_rss_mb()}


# --- worker c: readers alone ---------------------------------------------------------------

def read_with_calamine(path: Path) -> int:
    import python_calamine

    workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    rows = 0
    for name in workbook.sheet_names:
        rows += len(workbook.get_sheet_by_name(name).to_python(skip_empty_area=False))
    return rows


def read_with_fastexcel(path: Path) -> int:
    import fastexcel

    reader = fastexcel.read_excel(str(path))
    rows = 0
    for name in reader.sheet_names:
        # Every cell as text, the mode that never turns a bad cell into a silent null.
        sheet = reader.load_sheet(name, header_row=None, dtypes="string")
        rows += sheet.to_polars().height
    return rows


def read_with_openpyxl(path: Path) -> int:
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return sum(len(list(sheet.iter_rows(values_only=True))) for sheet in workbook)
    finally:
        workbook.close()


def read_with_batchstock(path: Path) -> int:
    from batchstock.workbook import read_workbook

    return sum(len(grid.rows) for grid in read_workbook(path))


def available_readers() -> dict:
    readers = {"python-calamine": read_with_calamine}
    try:
        import fastexcel  # noqa: F401
    except ImportError:
        pass
    else:
        readers["fastexcel"] = read_with_fastexcel
    readers["openpyxl read-only"] = read_with_openpyxl
    readers["batchstock read_workbook"] = read_with_batchstock
    return readers


def run_readers(files: list[Path], repeats: int) -> dict:
    """Time each reader on each file; the reader order rotates between repeats."""
    readers = available_readers()
    for read in readers.values():
        read(files[0])  # imports and first-call set-up stay out of the figures
    samples: dict[str, list[float]] = {name: [] for name in readers}
    names = list(readers)
    for repeat in range(repeats):
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            for path in files:
                started = time.perf_counter()
                readers[name](path)
                samples[name].append((time.perf_counter() - started) * 1000)
    return {"files": len(files), "repeats": repeats, "samples_ms": samples}


def run_worker(kind: str, job_file: Path) -> None:
    job = json.loads(job_file.read_text())
    files = [Path(p) for p in job["files"]]
    if kind == "backlog":
        outcome = run_backlog(Path(job["seed"]), Path(job["root"]), files)
    elif kind == "stages":
        profile = Path(job["profile"]) if job.get("profile") else None
        outcome = run_stages(Path(job["seed"]), Path(job["root"]), files, job["warm_up"],
                             profile)
    else:
        outcome = run_readers(files, job["repeats"])
    print(json.dumps(outcome))


def call_worker(kind: str, job: dict, folder: Path) -> dict:
    """Run one phase in a fresh interpreter and return the JSON it prints."""
    job_file = folder / f"job-{Path(job['root']).name}.json"
    job_file.write_text(json.dumps(job))
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(job_file)],
        capture_output=True, text=True, check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- phase d: watch latency ----------------------------------------------------------------

def measure_watch(seed: Path, root: Path, files: list[Path],
                  settle_seconds: float | None) -> dict:
    """Start `batchstock watch`, drop each file in turn, and time until its result exists.

    Each file is written under a dotfile name, which the watcher ignores, and renamed into
    the inbox, so it appears complete at once with a fresh modification time.
    """
    workspace = clone_workspace(seed, root)
    if settle_seconds is not None:
        config = workspace.root / "batchstock.toml"
        config.write_text(config.read_text().replace(
            "settle_seconds = 1.0", f"settle_seconds = {settle_seconds}"))
    process = subprocess.Popen(
        [sys.executable, "-m", "batchstock.cli", "watch", "--workspace", str(workspace.root)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_log_line(process, "watching", timeout=60)
        latencies = []
        for path in files:
            # NOTE: the pause lets the watcher finish its pass and wait for events again.
            # A file dropped while a pass is ending waits for the next poll (2 s by default).
            time.sleep(IDLE_PAUSE_SECONDS)
            latencies.append(_drop_and_wait(workspace, path))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return {"settle_seconds": settle_seconds if settle_seconds is not None else 1.0,
            "latency_seconds": latencies}


def _wait_for_log_line(process: subprocess.Popen, text: str, timeout: float) -> None:
    found = threading.Event()

    def read_lines() -> None:
        for line in process.stderr:
            if text in line:
                found.set()
        # The rest of the log is drained here so the pipe never fills up.

    threading.Thread(target=read_lines, daemon=True).start()
    if not found.wait(timeout):
        raise RuntimeError(f"batchstock watch did not log {text!r} within {timeout} s")


def _drop_and_wait(workspace, source: Path, timeout: float = 60.0) -> float:
    folder = workspace.inbox / SUBMITTER
    folder.mkdir(parents=True, exist_ok=True)
    hidden = folder / f".{source.name}.part"
    shutil.copyfile(source, hidden)
    result = workspace.user_outbox(SUBMITTER) / f"{source.stem}.result.xlsx"
    started = time.perf_counter()
    os.replace(hidden, folder / source.name)
    while not result.exists():
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"no result for {source.name} within {timeout} s")
        time.sleep(0.002)
    return time.perf_counter() - started


# --- the report ----------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_description() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": str(os.cpu_count()), "cpu_model": model,
            "memory_gib": f"{memory_gib:.1f}", "system": platform.platform(),
            "load_average_1_5_15_min": " ".join(f"{v:.2f}" for v in os.getloadavg())}


def summarise(results: dict) -> dict:
    """Derive the headline figures (medians, p90, ratios) from the raw samples."""
    backlog = results["backlog"]
    per_file = backlog["per_file_ms"]
    quarter = max(1, len(per_file) // 4)
    readers = {name: median(times) for name, times in results["readers"]["samples_ms"].items()}
    external = {n: t for n, t in readers.items() if not n.startswith("batchstock")}
    fastest = min(external, key=external.get)
    stages = results["stages"]["samples_ms"]
    stage_medians = {name: median([s[name] for s in stages]) for name in stages[0]}
    small = results["backlog_small"]
    return {
        "backlog_median_ms": median(per_file),
        "backlog_p90_ms": percentile(per_file, 0.9),
        "backlog_cpu_median_ms": median(backlog["cpu_per_file_ms"]),
        "backlog_first_quarter_median_ms": median(per_file[:quarter]),
        "backlog_last_quarter_median_ms": median(per_file[-quarter:]),
        "peak_rss_mb": {str(small["files"]): small["peak_rss_mb"],
                        str(backlog["files"]): backlog["peak_rss_mb"]},
        "peak_rss_growth_ratio": backlog["peak_rss_mb"] / small["peak_rss_mb"],
        "single_file_stages_median_ms": stage_medians,
        "reader_median_ms": readers,
        "fastest_reader": fastest,
        "end_to_end_over_fastest_reader": median(per_file) / readers[fastest],
        "watch_median_seconds": {
            str(w["settle_seconds"]): median(w["latency_seconds"]) for w in results["watch"]
        },
    }


def render_table(results: dict) -> str:
    s = results["summary"]
    backlog, small = results["backlog"], results["backlog_small"]
    rows = [
        f"batchstock ingest benchmark, {results['date']}: {backlog['files']} files of "
        f"{results['parameters']['lines']} lines, {results['parameters']['repeats']} repeats",
        f"load average (1, 5, 15 min) at start {results['machine']['load_average_1_5_15_min']},"
        f" at end {results['load_average_at_end']}, on {results['machine']['cpus']} CPUs",
        "",
        f"(a) backlog in one process           {backlog['statuses']}",
        f"    time per file, median           {s['backlog_median_ms']:8.1f} ms"
        f"   (goal {TARGET_MS_PER_FILE:.0f} ms)",
        f"    time per file, p90              {s['backlog_p90_ms']:8.1f} ms",
        f"    CPU time per file, median       {s['backlog_cpu_median_ms']:8.1f} ms"
        "   (all threads of the process)",
        f"    median, first / last quarter    {s['backlog_first_quarter_median_ms']:8.1f} /"
        f" {s['backlog_last_quarter_median_ms']:.1f} ms",
        f"    peak RSS, {small['files']:>4} files            {small['peak_rss_mb']:8.1f} MB",
        f"    peak RSS, {backlog['files']:>4} files            {backlog['peak_rss_mb']:8.1f} MB"
        f"   (ratio {s['peak_rss_growth_ratio']:.2f})",
        f"    RSS before the pass             {backlog['rss_before_mb']:8.1f} MB",
        f"    RSS after the last file         {backlog['rss_after_file_mb'][-1]:8.1f} MB"
        f"   (DuckDB's own count {backlog['duckdb_after_file_mb'][-1]:.1f} MB)",
        f"    catalogue import (setup, once)  {results['catalogue_import_seconds']:8.2f} s",
        "",
        f"(b) one file per pass, by stage, median of {len(results['stages']['samples_ms'])}",
    ]
    for name, value in s["single_file_stages_median_ms"].items():
        rows.append(f"    {name:<32}{value:8.1f} ms")
    for name in results["stages"]["not_measured"]:
        rows.append(f"    not measured: {name} no longer exists")
    rows += ["", f"(c) reading only, median per file over {results['readers']['files']} files"]
    for name, value in sorted(s["reader_median_ms"].items(), key=lambda item: item[1]):
        ratio = value / s["reader_median_ms"][s["fastest_reader"]]
        rows.append(f"    {name:<32}{value:8.1f} ms   ({ratio:.1f}x the fastest)")
    rows.append(f"    end to end / fastest reader     {s['end_to_end_over_fastest_reader']:8.1f}x")
    rows += ["", "(d) watch: drop one file until its result exists, median"]
    for settle, value in s["watch_median_seconds"].items():
        rows.append(f"    settle_seconds = {settle:<14}{value:8.2f} s"
                    f"   (goal < {TARGET_WATCH_SECONDS:.0f} s)")
    return "\n".join(rows) + "\n"


# --- the run -------------------------------------------------------------------------------

def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, help="workbooks in the backlog (default 200)")
    parser.add_argument("--lines", type=int, default=500, help="lines per workbook")
    parser.add_argument("--repeats", type=int,
                        help="repeats of the single-file, reader and watch timings (default 5)")
    parser.add_argument("--products", type=int, help="products in the catalogue (default 5000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test sizes: 20 files, 2 repeats, 500 products")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the generated data")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder for ingest.json and ingest.txt (default bench/results)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the single-file passes with pyinstrument into "
                             "ingest-profile.txt (a separate run, so the table stays clean)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder with the workbooks and workspaces")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "JOB"), help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    arguments.files = arguments.files or (20 if quick else 200)
    arguments.repeats = arguments.repeats or (2 if quick else 5)
    arguments.products = arguments.products or (500 if quick else 5000)
    if arguments.files < 2 or arguments.repeats < 1:
        parser.error("--files must be at least 2 and --repeats at least 1")
    if arguments.lines > arguments.products:
        parser.error("--lines cannot exceed --products: a workbook names each product once")
    return arguments


def run_phases(arguments: argparse.Namespace, folder: Path) -> dict:
    generated = generate(folder / "files", arguments.files, arguments.lines,
                         arguments.products, arguments.seed)
    files, repeats = generated.files, arguments.repeats
    seed = folder / "seed"
    results: dict = {
        "generated": dict(Counter(generated.types)),
        "catalogue_import_seconds": prepare_workspace(seed, generated.catalogue),
    }

    def job(name: str, chosen: list[Path], **extra) -> dict:
        return {"seed": str(seed), "root": str(folder / name),
                "files": [str(p) for p in chosen], **extra}

    small = files[:max(1, len(files) // 4)]
    results["backlog_small"] = call_worker("backlog", job("backlog-small", small), folder)
    results["backlog"] = call_worker("backlog", job("backlog", files), folder)
    results["readers"] = call_worker(
        "readers", job("readers", files[:20], repeats=repeats), folder)
    single = files[:1 + min(repeats, len(files) - 1)]
    results["stages"] = call_worker("stages", job("stages", single, warm_up=1), folder)
    if arguments.profile:
        arguments.out.mkdir(parents=True, exist_ok=True)
        profile = arguments.out / "ingest-profile.txt"
        call_worker("stages", job("stages-profiled", single, warm_up=1, profile=str(profile)),
                    folder)
        results["profile"] = str(profile)
    arrivals = [p for p, t in zip(files, generated.types) if t == "arrival"][:repeats]
    results["watch"] = [
        measure_watch(seed, folder / f"watch-{settle}", arrivals, settle)
        for settle in (None, 0.25)
    ]
    return results


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.worker:
        run_worker(arguments.worker[0], Path(arguments.worker[1]))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="batchstock-bench-"))
    machine_at_start = machine_description()
    try:
        results = run_phases(arguments, folder)
    finally:
        if arguments.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    results.update({
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "parameters": {k: v for k, v in vars(arguments).items() if k not in ("out", "worker")},
        "machine": machine_at_start, "versions": library_versions(),
        "load_average_at_end": machine_description()["load_average_1_5_15_min"],
    })
    results["summary"] = summarise(results)
    table = render_table(results)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "ingest.json").write_text(json.dumps(results, indent=1, default=str))
    (arguments.out / "ingest.txt").write_text(table)
    print(table, end="")
    print(f"written: {arguments.out / 'ingest.json'}, {arguments.out / 'ingest.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
