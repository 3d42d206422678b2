"""The workspace folder and its optional `batchstock.toml`.

A workspace holds `inbox/`, `outbox/`, `archive/` (applied originals), `rejected/`
(rejected originals), the ledger `ledger.duckdb` and `batchstock.toml`. Without the file
every setting takes the default listed in `DEFAULTS`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from batchstock.access import check_users
from batchstock.core import WorkspaceError

CONFIG_NAME = "batchstock.toml"
LEDGER_NAME = "ledger.duckdb"

DEFAULT_CONFIG = """\
# batchstock settings. Every key is optional; the values shown are the defaults.

[ledger]
# Time zone of business dates and of the times batchstock records.
timezone = "UTC"
# Allow operations that take stock below zero (the salon software allows it).
allow_negative_stock = false

[inbox]
# Owner of files dropped directly in inbox/ rather than in a user's subfolder.
default_user = "manager"
# Seconds a file's size must stay unchanged before the watcher reads it.
settle_seconds = 0.5
# Seconds after which a file that still cannot be read is rejected as incomplete.
incomplete_after_seconds = 60.0

[reports]
# Under `watch`, rewrite outbox/reports/stock-balance-current.xlsx after each applied batch.
refresh_stock_after_batch = false
"""


@dataclass
class Settings:
    """Settings from `batchstock.toml`, with defaults for what it leaves out."""

    timezone: str = "UTC"
    allow_negative_stock: bool = False
    default_user: str = "manager"
    settle_seconds: float = 0.5
    incomplete_after_seconds: float = 60.0
    refresh_stock_after_batch: bool = False
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass
class Workspace:
    """Paths of one workspace and its settings."""

    root: Path
    settings: Settings

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def ledger_path(self) -> Path:
        return self.root / LEDGER_NAME

    @property
    def state(self) -> Path:
        """Internal folder for claimed files and the lock."""
        return self.root / ".batchstock"

    @property
    def manifest_path(self) -> Path:
        return self.outbox / "manifest.jsonl"

    def user_outbox(self, user: str) -> Path:
        return self.outbox / user


def resolve_root(explicit: str | os.PathLike[str] | None) -> Path:
    """Return the workspace folder: `explicit`, else $BATCHSTOCK_WORKSPACE, else the cwd."""
    chosen = explicit or os.environ.get("BATCHSTOCK_WORKSPACE") or "."
    return Path(chosen).resolve()


def load_settings(root: Path) -> Settings:
    """Read `batchstock.toml` in `root`; raise WorkspaceError when it is invalid."""
    path = root / CONFIG_NAME
    if not path.exists():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise WorkspaceError(f"{path}: invalid TOML: {error}") from error
    ledger = data.get("ledger", {})
    inbox = data.get("inbox", {})
    settings = Settings(
        timezone=str(ledger.get("timezone", "UTC")),
        allow_negative_stock=bool(ledger.get("allow_negative_stock", False)),
        default_user=str(inbox.get("default_user", "manager")),
        settle_seconds=float(inbox.get("settle_seconds", 0.5)),
        incomplete_after_seconds=float(inbox.get("incomplete_after_seconds", 60.0)),
        refresh_stock_after_batch=bool(
            data.get("reports", {}).get("refresh_stock_after_batch", False)
        ),
        users=_read_users(path, data.get("users", {})),
        raw=data,
    )
    try:
        settings.zone
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise WorkspaceError(
            f"{path}: [ledger] timezone {settings.timezone!r} is not a known time zone; "
            "use a name such as Europe/Berlin"
        ) from error
    return settings


def _read_users(path: Path, users: Any) -> dict[str, dict[str, Any]]:
    """Return the `[users.NAME]` tables; raise WorkspaceError when one is invalid."""
    try:
        check_users(users)
    except ValueError as error:
        raise WorkspaceError(f"{path}: {error}") from error
    return dict(users)


def open_workspace(explicit: str | os.PathLike[str] | None = None) -> Workspace:
    """Open an existing workspace; raise WorkspaceError when the folder has no inbox."""
    root = resolve_root(explicit)
    if not (root / "inbox").is_dir():
        raise WorkspaceError(
            f"{root} is not a batchstock workspace (no inbox/ folder); "
            f"run `batchstock init {root}` first"
        )
    return Workspace(root, load_settings(root))


def init_workspace(explicit: str | os.PathLike[str] | None = None) -> Workspace:
    """Create the workspace folders and a commented default config; keep what exists."""
    root = resolve_root(explicit)
    for folder in ("inbox", "outbox", "archive", "rejected", ".batchstock"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    config = root / CONFIG_NAME
    if not config.exists():
        config.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return Workspace(root, load_settings(root))
