"""Shared fixtures: workspaces, the sample workbooks, and a helper to drop files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from batchstock import ledger
from batchstock.config import Workspace, init_workspace

REPO = Path(__file__).resolve().parent.parent
SHARED_SAMPLES = REPO.parent / "shared" / "samples"
BUNDLED_SAMPLES = REPO / "batchstock" / "samples"


def samples_dir() -> Path:
    """The sample workbooks: the shared copy when present, else the bundled one."""
    return SHARED_SAMPLES if SHARED_SAMPLES.is_dir() else BUNDLED_SAMPLES


@pytest.fixture
def samples() -> Path:
    return samples_dir()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = init_workspace(tmp_path / "ws")
    ledger.connect(ws.ledger_path).close()
    return ws


def drop(workspace: Workspace, source: Path, user: str | None = None,
         name: str | None = None) -> Path:
    """Copy a file into the inbox (a user's folder when given), with a fresh mtime."""
    folder = workspace.inbox / user if user else workspace.inbox
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or source.name)
    shutil.copyfile(source, target)
    stamp = time.time()
    os.utime(target, (stamp, stamp))
    time.sleep(0.01)
    return target


def apply_samples(workspace: Workspace, samples: Path) -> None:
    """Apply the sample workbooks in the order the ORDER file gives."""
    from batchstock.watcher import run_pass

    for name in (samples / "ORDER").read_text().split():
        drop(workspace, samples / name)
        report = run_pass(workspace)
        assert [f.result.status for f in report.filed] == ["applied"], name
