"""The accountants' read-only copy of the ledger, `ledger-readonly.duckdb`.

DuckDB lets one process open a database file for writing, and only while no other process
has it open at all, even read-only. An accountant who kept the DuckDB CLI open on
`ledger.duckdb` would therefore stop ingestion. So after each applied batch the inbox
publishes a snapshot: it checkpoints the ledger (moving the write-ahead log into the
database file), copies the file to a temporary name, flushes it and renames it over
`ledger-readonly.duckdb`. A reader that holds the old snapshot open keeps reading the old
file (POSIX keeps a renamed-over file alive for its open handles) and sees new batches when
it reopens. The snapshot is a convenience: a failure to publish it is logged, never fatal.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import duckdb

from batchstock.config import Workspace
from batchstock.journal import sync_folder

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "ledger-readonly.duckdb"


def snapshot_path(workspace: Workspace) -> Path:
    return workspace.root / SNAPSHOT_NAME


def publish_snapshot(workspace: Workspace, con: duckdb.DuckDBPyConnection) -> bool:
    """Replace the read-only snapshot with the ledger as committed now; return success.

    `con` is the open read-write connection; no transaction may be running on it.
    """
    target = snapshot_path(workspace)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # Only the holder of the workspace lock publishes, so older copies were left by a crash.
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    try:
        con.execute("CHECKPOINT")
        shutil.copyfile(workspace.ledger_path, temporary)
        with temporary.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o444)
        os.replace(temporary, target)
        sync_folder(target.parent)
    except (OSError, duckdb.Error) as error:
        log.error("could not publish the read-only snapshot %s: %s", target, error)
        temporary.unlink(missing_ok=True)
        return False
    return True
