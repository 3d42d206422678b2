"""CI mode of the atheris fuzzer on the workbook reader: a few seconds, no finding.

The ten-minute run is made by hand (see fuzz/fuzz_reader.py) and recorded in
docs/reliability.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "fuzz" / "fuzz_reader.py"


def test_fuzz_reader_briefly(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "-max_total_time=5", "-runs=2000",
         f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Done" in completed.stderr
    assert not list(tmp_path.glob("crash-*"))


def test_fuzz_findings_stay_fixed():
    """Inputs the fuzzer once crashed the reader with, run again as libFuzzer inputs."""
    inputs = sorted((REPO / "tests" / "data" / "fuzz").glob("*.bin"))
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, inputs)],
        capture_output=True, text=True, timeout=300,
    )

    assert inputs
    assert completed.returncode == 0, completed.stderr[-3000:]
