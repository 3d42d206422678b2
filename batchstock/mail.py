"""Deliver an export by email: a link to the file, never the file itself.

The last stage of an export. The subject and the plain-text and HTML bodies are jinja2
templates (`export_subject.txt`, `export.txt`, `export.html`) in the package's
`templates/mail/`. A file of the same name in the workspace's own `templates/mail/`
replaces one. The message goes out through the `[smtp]` server of
batchstock.toml, retried with backoff on temporary failures. With no server configured,
with no address for the user, or when sending fails, it is saved as an `.eml` file in
`outbox/mail/` so that the link is never lost. The data log records the outcome.

```toml
[smtp]
host = "mail.salon.example"
port = 587                       # default: 587 for starttls, 465 for tls, 25 for none
security = "starttls"            # "starttls", "tls" or "none"
user = "batchstock@salon.example"
password_env = "BATCHSTOCK_SMTP_PASSWORD"   # the variable holding the password
sender = "batchstock@salon.example"
attempts = 3                     # tries before the delivery counts as failed
retry_seconds = 5.0              # wait before the first retry; doubles after each
timeout_seconds = 30.0
```
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import jinja2

from batchstock.access import rights_for
from batchstock.config import Workspace
from batchstock.core import WorkspaceError
from batchstock.credentials import download_link
from batchstock.datalog import set_delivery_status
from batchstock.exports import ExportFile
from batchstock.inbox import unique_path

log = logging.getLogger(__name__)

SECURITY_PORTS = {"starttls": 587, "tls": 465, "none": 25}
DEFAULT_SENDER = "batchstock@localhost"


@dataclass(frozen=True)
class SmtpSettings:
    """The `[smtp]` table. `user` is None for a server that needs no login."""

    host: str
    port: int
    security: str = "starttls"
    user: str | None = None
    password_env: str | None = None
    sender: str = DEFAULT_SENDER
    attempts: int = 3
    retry_seconds: float = 5.0
    timeout_seconds: float = 30.0


def _number(table: dict[str, Any], key: str, default: float, minimum: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise WorkspaceError(f"[smtp] {key} = {value!r} is not a number of at least {minimum}")
    return value


def smtp_settings(workspace: Workspace) -> SmtpSettings | None:
    """Read `[smtp]`; return None when no host is set. Raises WorkspaceError on bad values."""
    table: dict[str, Any] = workspace.settings.raw.get("smtp", {})
    if not table.get("host"):
        return None
    security = str(table.get("security", "starttls")).lower()
    if security not in SECURITY_PORTS:
        raise WorkspaceError(f"[smtp] security = {security!r} is unknown; use \"starttls\", "
                             "\"tls\" or \"none\"")
    user = table.get("user")
    return SmtpSettings(
        host=str(table["host"]),
        port=int(_number(table, "port", SECURITY_PORTS[security], 1)),
        security=security,
        user=str(user) if user else None,
        password_env=table.get("password_env"),
        sender=str(table.get("sender", user if user and "@" in str(user) else DEFAULT_SENDER)),
        attempts=int(_number(table, "attempts", 3, 1)),
        retry_seconds=float(_number(table, "retry_seconds", 5.0, 0)),
        timeout_seconds=float(_number(table, "timeout_seconds", 30.0, 0.1)),
    )


def template_environment(workspace: Workspace) -> jinja2.Environment:
    """Return a jinja2 environment over the workspace's and the package's mail templates."""
    loader = jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(str(workspace.root / "templates" / "mail")),
        jinja2.PackageLoader("batchstock", "templates/mail"),
    ])
    return jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape(["html"]),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def build_export_message(workspace: Workspace, export: ExportFile, to_address: str | None,
                         sender: str, now: dt.datetime | None = None) -> EmailMessage:
    """Render the email that announces an export, with its download link."""
    now = now or dt.datetime.now(dt.timezone.utc)
    link, expires_at = download_link(workspace, export.entry_id, now)
    request = export.scope.request
    context = {
        "user": request.requested_by, "request": request, "link": link,
        "expires_at": expires_at.astimezone(workspace.settings.zone).replace(tzinfo=None),
        "row_count": export.row_count, "file_name": export.path.name,
        "size_kib": max(1, round(export.path.stat().st_size / 1024)),
        "sha256": export.sha256, "ledger_position": export.ledger_position,
        "entry_id": export.entry_id, "cost_columns": export.scope.cost_columns,
    }
    environment = template_environment(workspace)
    subject = environment.get_template("export_subject.txt").render(context)
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())
    message["From"] = sender
    message["To"] = to_address or "undisclosed-recipients:;"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("export", domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(environment.get_template("export.txt").render(context))
    message.add_alternative(environment.get_template("export.html").render(context),
                            subtype="html")
    return message


class MailSettingsError(Exception):
    """Invalid `[smtp]` settings, with which no retry can succeed."""


def send_message(settings: SmtpSettings, message: EmailMessage) -> None:
    """Send one message through the configured server.

    Raises MailSettingsError, smtplib.SMTPException or OSError.
    """
    password = None
    if settings.user:
        password = os.environ.get(settings.password_env or "")
        if password is None:
            raise MailSettingsError(
                f"[smtp] password_env names {settings.password_env!r}, which is not set in "
                "the environment of this process; set it, or remove user from [smtp]")
    context = ssl.create_default_context()
    # The EHLO name is fixed, because Python's default looks up this machine's name in DNS.
    if settings.security == "tls":
        client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port,
                                                local_hostname="localhost",
                                                timeout=settings.timeout_seconds,
                                                context=context)
    else:
        client = smtplib.SMTP(settings.host, settings.port, local_hostname="localhost",
                              timeout=settings.timeout_seconds)
    with client:
        if settings.security == "starttls":
            client.starttls(context=context)
        if settings.user and password is not None:
            client.login(settings.user, password)
        client.send_message(message)


def is_temporary(error: Exception) -> bool:
    """Return whether a send error may pass on retry: a 4xx reply or a lost connection."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, (MailSettingsError, smtplib.SMTPNotSupportedError,
                          ssl.SSLCertVerificationError)):
        return False
    return isinstance(error, OSError)


def send_with_retries(settings: SmtpSettings, message: EmailMessage, what: str) -> str | None:
    """Send, retrying temporary failures with doubling waits; return None on success,
    else a description of the last error."""
    wait = settings.retry_seconds
    for attempt in range(1, settings.attempts + 1):
        try:
            send_message(settings, message)
            return None
        except (MailSettingsError, smtplib.SMTPException, OSError) as error:
            reason = f"{type(error).__name__}: {error}"
            if not is_temporary(error) or attempt == settings.attempts:
                log.error("sending %s failed after %d attempts: %s", what, attempt, reason)
                return f"{reason} (after {attempt} attempts)"
            log.warning("sending %s failed (attempt %d of %d): %s; retrying in %.1f s",
                        what, attempt, settings.attempts, reason, wait)
            time.sleep(wait)
            wait *= 2
    return "no attempt made"


def save_message(workspace: Workspace, message: EmailMessage, name: str) -> Path:
    """Write a message as an `.eml` file in `outbox/mail/`; return its path."""
    path = unique_path(workspace.outbox / "mail", f"{name}.eml")
    path.write_bytes(bytes(message))
    return path


def deliver_export(workspace: Workspace, con, export: ExportFile) -> str:
    """Email the requester a link to an export, record the outcome in the data log, and
    return it: `sent: ADDRESS`, `saved: PATH (reason)` or `failed: ERROR; saved: PATH`.

    The export file is kept whatever happens to the email.
    """
    user = export.scope.request.requested_by
    address = rights_for(workspace.settings.users, user).email
    settings = smtp_settings(workspace)
    message = build_export_message(workspace, export, address,
                                   settings.sender if settings else DEFAULT_SENDER)
    name = f"export-{export.entry_id}-{user}"
    what = f"the link to data log entry {export.entry_id} to {address}"
    if settings is None or address is None:
        reason = "no SMTP server configured" if settings is None else \
            f"no email address for {user} in [users.{user}]"
        path = save_message(workspace, message, name)
        status = f"saved: {path.relative_to(workspace.root)} ({reason})"
    else:
        error = send_with_retries(settings, message, what)
        if error is None:
            status = f"sent: {address}"
        else:
            path = save_message(workspace, message, name)
            status = f"failed: {error}; saved: {path.relative_to(workspace.root)}"
    log.info("delivery of data log entry %d: %s", export.entry_id, status)
    set_delivery_status(workspace, con, export.entry_id, status)
    return status
