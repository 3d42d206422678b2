"""Smoke test of the ingest benchmark: the script runs end to end at tiny sizes.

It pins that every phase still works against the current pipeline (the stage timers wrap
library functions by name), not any timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "bench" / "ingest.py"


def test_ingest_benchmark_quick_mode(tmp_path: Path) -> None:
    out = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--files", "3", "--lines", "20",
         "--repeats", "1", "--products", "40", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (out / "ingest.txt").is_file()
    results = json.loads((out / "ingest.json").read_text())

    assert results["backlog"]["statuses"] == {"applied": 3}
    assert len(results["backlog"]["per_file_ms"]) == 3
    assert results["backlog_small"]["statuses"] == {"applied": 1}
    assert results["stages"]["statuses"] == {"applied": 2}
    assert len(results["stages"]["samples_ms"]) == 1
    assert set(results["readers"]["samples_ms"]) >= {"python-calamine", "openpyxl read-only"}
    assert [len(w["latency_seconds"]) for w in results["watch"]] == [1, 1]
    assert "end_to_end_over_fastest_reader" in results["summary"]
