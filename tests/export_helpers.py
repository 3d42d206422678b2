"""Helpers shared by the export, mail, web and browser tests.

`fill_ledger` writes many operations straight into the ledger tables with SQL, bypassing
validation, so that an export test can have a million lines in seconds. `write_config`
writes a `batchstock.toml`, and `read_lines` reads an export's Lines sheets back.
`smtp_server` runs a real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import openpyxl
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from batchstock import ledger
from batchstock.config import Workspace, load_settings


def write_config(workspace: Workspace, text: str) -> Workspace:
    """Write `batchstock.toml` and return the workspace with the new settings."""
    (workspace.root / "batchstock.toml").write_text(text, encoding="utf-8")
    return Workspace(workspace.root, load_settings(workspace.root))


def fill_ledger(con, operations: int, lines_per_operation: int,
                start: dt.datetime = dt.datetime(2026, 11, 1, 9, 0)) -> None:
    """Append `operations` arrivals and sales of `lines_per_operation` lines each.

    Odd operations are arrivals into Products, even ones sales from it, one hour apart,
    each with a `created` change-log row. Products `BULK-00`…`BULK-19` are added if missing.
    """
    con.execute("""
        INSERT INTO products
        SELECT 1000 + i, printf('BULK-%02d', i), printf('Bulk product %d', i), NULL, NULL,
               'pcs', 'pcs', 1, 10.5, 4.25, NULL, NULL
        FROM range(20) t(i)
        WHERE printf('BULK-%02d', i) NOT IN (SELECT sku FROM products)
    """)
    first_op = ledger.next_number(con, "operation_heads", "operation_no")
    first_change = ledger.next_number(con, "change_log_entries", "change_no")
    batch_id = ledger.next_number(con, "batches", "batch_id")
    parameters = {"op": first_op, "n": operations, "lines": lines_per_operation,
                  "change": first_change, "batch": batch_id, "start": start}
    con.execute("BEGIN TRANSACTION")
    con.execute("""
        INSERT INTO batches VALUES ($batch, 'bulk.xlsx', 'bulk', 'bulk' || $batch,
            'operations', NULL, $start, 'applied', 0, NULL)
    """, {"batch": batch_id, "start": start})
    con.execute("""
        INSERT INTO operation_heads
        SELECT $op + i, printf('OP-%06d', $op + i),
               CASE WHEN i % 2 = 0 THEN 'arrival' ELSE 'sale' END, 'active', 1, $batch,
               $start, 'bulk'
        FROM range($n) t(i)
    """, {k: parameters[k] for k in ("op", "n", "batch", "start")})
    con.execute("""
        INSERT INTO operation_versions
        SELECT $op + i, 1, $start + to_hours(i), 1, NULL,
               CASE WHEN i % 2 = 0 THEN 'Supplier ' || (i % 7) ELSE NULL END, NULL, NULL,
               'DOC-' || i, NULL, $batch, $start, 'bulk', NULL
        FROM range($n) t(i)
    """, {k: parameters[k] for k in ("op", "n", "batch", "start")})
    con.execute("""
        INSERT INTO line_versions
        SELECT $op + i, 1, j + 1, 1000 + ((i + j) % 20), 2, 'pcs', 2,
               CASE WHEN i % 2 = 0 THEN 4.25 ELSE 10.5 END, 0,
               CASE WHEN i % 2 = 0 THEN 8.5 ELSE 21 END, NULL, NULL
        FROM range($n) t(i), range($lines) u(j)
    """, {k: parameters[k] for k in ("op", "n", "lines")})
    con.execute("""
        INSERT INTO change_log_entries
        SELECT $change + i, 'operation', printf('OP-%06d', $op + i), 1, 'created', 'bulk',
               $start, $batch, 'bulk.xlsx', NULL, NULL, NULL
        FROM range($n) t(i)
    """, {k: parameters[k] for k in ("change", "op", "n", "batch", "start")})
    con.execute("COMMIT")


def read_lines(path: Path) -> list[tuple]:
    """Return the header and data rows of every Lines sheet of an export, in order."""
    workbook = openpyxl.load_workbook(path, read_only=True)
    rows: list[tuple] = []
    for sheet in workbook.worksheets:
        if sheet.title.startswith("Lines"):
            sheet_rows = list(sheet.iter_rows(values_only=True))
            rows.extend(sheet_rows if not rows else sheet_rows[1:])
    workbook.close()
    return rows


def read_summary(path: Path) -> dict[str, object]:
    """Return the Summary sheet's label/value rows as a dict."""
    workbook = openpyxl.load_workbook(path, read_only=True)
    values = {row[0]: row[1] for row in workbook["Summary"].iter_rows(values_only=True)}
    workbook.close()
    return values


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """An aiosmtpd handler that keeps what it receives. It replies to the first `refusals`
    messages with `refusal` (a temporary 451 error unless told otherwise), and accepts
    only `password` when one is set."""

    def __init__(self, refusals: int = 0, password: str | None = None,
                 refusal: str = "451 4.3.0 Mailbox busy, try again later") -> None:
        self.refusals = refusals
        self.refusal = refusal
        self.password = password
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.logins: list[str] = []
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.attempts += 1
        if self.refusals > 0:
            self.refusals -= 1
            return self.refusal
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 2.0.0 Accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        login = auth_data.login.decode()
        accepted = self.password is not None and auth_data.password.decode() == self.password
        if accepted:
            self.logins.append(login)
        return AuthResult(success=accepted)


@contextmanager
def smtp_server(mailbox: Mailbox) -> Iterator[int]:
    """Run an SMTP server on 127.0.0.1 for `mailbox`; yield its port."""
    port = free_port()
    options = {}
    if mailbox.password is not None:
        options = {"authenticator": mailbox.authenticate, "auth_require_tls": False,
                   "auth_required": True}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            server_hostname="localhost", **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def smtp_config(port: int, **extra: object) -> str:
    """Return an `[smtp]` table for the server on 127.0.0.1:`port`, plain SMTP, fast retries."""
    lines = ["[smtp]", 'host = "127.0.0.1"', f"port = {port}", 'security = "none"',
             'sender = "batchstock@salon.example"', "retry_seconds = 0.05"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def link_in(message: EmailMessage) -> str:
    """Return the download link in the plain-text body of an export email."""
    text = message.get_body(("plain",)).get_content()
    found = re.findall(r"https?://\S+/download/\S+", text)
    assert len(found) == 1, text
    return found[0]


@contextmanager
def running_app(root: Path, listener: socket.socket) -> Iterator[str]:
    """Serve the web app of the workspace in `root` with uvicorn in a background thread.

    `listener` is a socket bound on 127.0.0.1. Yields the app's base address.
    """
    import threading
    import time

    import uvicorn

    from batchstock.web import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(root), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def loopback_listener() -> socket.socket:
    """Return a TCP socket bound to a free port on 127.0.0.1, for `running_app`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    return listener
