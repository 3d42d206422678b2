"""Secrets of a workspace: the signing key, signed download links, and password hashes.

Download links carry a token signed with the workspace key (itsdangerous, HMAC-SHA256 over
the payload) that names a data-log entry and the time the link expires. The key and the
password hashes (argon2id, from argon2-cffi) live in the workspace's `.batchstock/` folder,
readable by the owner only. `mail` puts links in emails and `web` checks them and signs
users in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

import itsdangerous
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from batchstock.config import Workspace
from batchstock.core import WorkspaceError

log = logging.getLogger(__name__)

KEY_FILE = "secret-key"
PASSWORDS_FILE = "passwords.json"
LINK_SALT = "batchstock download link"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_LINK_DAYS = 7.0
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()


def _write_private(path, text: str) -> None:
    """Write `text` to `path` with mode 0600, through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def secret_key(workspace: Workspace) -> str:
    """Return the workspace's signing key, creating it on first use."""
    path = workspace.state / KEY_FILE
    if not path.exists():
        _write_private(path, secrets.token_hex(32))
        log.info("created the signing key %s", path)
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class ServeSettings:
    """The `[serve]` table: the address links point at and how long they stay valid."""

    base_url: str = DEFAULT_BASE_URL
    link_days: float = DEFAULT_LINK_DAYS


def serve_settings(workspace: Workspace) -> ServeSettings:
    """Read `[serve]` from batchstock.toml; raise WorkspaceError on an invalid value."""
    table: dict[str, Any] = workspace.settings.raw.get("serve", {})
    base_url = str(table.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise WorkspaceError(
            f"[serve] base_url {base_url!r} is not an http:// or https:// address; write "
            f"the address users open, such as {DEFAULT_BASE_URL}")
    days = table.get("link_days", DEFAULT_LINK_DAYS)
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days <= 0:
        raise WorkspaceError(f"[serve] link_days {days!r} is not a positive number of days")
    return ServeSettings(base_url, float(days))


def _serializer(workspace: Workspace) -> itsdangerous.URLSafeSerializer:
    return itsdangerous.URLSafeSerializer(secret_key(workspace), salt=LINK_SALT,
                                          signer_kwargs={"digest_method": hashlib.sha256})


def make_download_token(workspace: Workspace, entry_id: int, expires_at: dt.datetime) -> str:
    """Return a signed token for data-log entry `entry_id` that expires at `expires_at`
    (an aware date-time)."""
    return _serializer(workspace).dumps({"entry": entry_id,
                                         "expires": int(expires_at.timestamp())})


def download_link(workspace: Workspace, entry_id: int,
                  now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """Return the download address of a data-log entry and when it expires (aware UTC)."""
    settings = serve_settings(workspace)
    now = now or dt.datetime.now(dt.timezone.utc)
    expires_at = now + dt.timedelta(days=settings.link_days)
    token = make_download_token(workspace, entry_id, expires_at)
    return f"{settings.base_url}/download/{token}", expires_at


class LinkExpiredError(Exception):
    """A download link with a valid signature whose expiry time has passed."""

    def __init__(self, entry_id: int, expired_at: dt.datetime) -> None:
        super().__init__(f"the link to data log entry {entry_id} expired at {expired_at}")
        self.entry_id = entry_id
        self.expired_at = expired_at


class LinkInvalidError(Exception):
    """A download link that was changed, cut short, or signed with another key."""


def read_download_token(workspace: Workspace, token: str,
                        now: dt.datetime | None = None) -> int:
    """Return the data-log entry a token names.

    Raises LinkInvalidError for a token with a bad signature or payload and
    LinkExpiredError for one past its time.
    """
    try:
        payload = _serializer(workspace).loads(token)
        entry_id, expires = int(payload["entry"]), int(payload["expires"])
    except (itsdangerous.BadData, KeyError, TypeError, ValueError):
        raise LinkInvalidError("the download link is not valid") from None
    expired_at = dt.datetime.fromtimestamp(expires, dt.timezone.utc)
    if (now or dt.datetime.now(dt.timezone.utc)) >= expired_at:
        raise LinkExpiredError(entry_id, expired_at)
    return entry_id


def _read_hashes(workspace: Workspace) -> dict[str, str]:
    path = workspace.state / PASSWORDS_FILE
    if not path.exists():
        return {}
    try:
        hashes = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WorkspaceError(f"{path} is not valid JSON ({error}); set the passwords "
                             "again with `batchstock user set-password NAME`") from error
    return {str(k): str(v) for k, v in hashes.items()}


def set_password(workspace: Workspace, user: str, password: str) -> None:
    """Store an argon2id hash of `user`'s password, replacing any earlier one.

    Raises ValueError for a password shorter than MIN_PASSWORD_LENGTH characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password has {len(password)} characters; use at least "
                         f"{MIN_PASSWORD_LENGTH}")
    hashes = _read_hashes(workspace)
    hashes[user] = _hasher.hash(password)
    _write_private(workspace.state / PASSWORDS_FILE, json.dumps(hashes, indent=1))
    log.info("password of %s set", user)


def check_password(workspace: Workspace, user: str, password: str) -> bool:
    """Return whether `password` is `user`'s. A user without a password never matches."""
    stored = _read_hashes(workspace).get(user)
    if stored is None:
        # Hash anyway, so that a missing user takes as long as a wrong password.
        _hasher.hash(password)
        return False
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(stored):
        set_password(workspace, user, password)
    return True
