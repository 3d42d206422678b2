"""Export emails: sent through a real SMTP server on 127.0.0.1 (aiosmtpd), retried on
temporary failures, saved as `.eml` files without a server, and recorded in the data log."""

from __future__ import annotations

import datetime as dt
import json
import logging
from email import message_from_bytes, policy

import pytest

from batchstock import ledger
from batchstock.config import Workspace
from batchstock.core import WorkspaceError
from batchstock.credentials import read_download_token
from batchstock.exports import ExportRequest, export_operations
from batchstock.mail import deliver_export, smtp_settings
from export_helpers import Mailbox, fill_ledger, free_port, link_in, smtp_config, smtp_server
from export_helpers import write_config

USERS = """
[users.anna]
email = "anna@salon.example"
export = true

[users.carl]
export = true
"""


@pytest.fixture
def stocked(workspace) -> Workspace:
    con = ledger.connect(workspace.ledger_path)
    fill_ledger(con, 6, 3)
    con.close()
    return workspace


def export_and_deliver(workspace: Workspace, user: str = "anna"):
    con = ledger.connect(workspace.ledger_path)
    try:
        request = ExportRequest(dt.date(2026, 11, 1), dt.date(2026, 11, 30), user)
        export = export_operations(workspace, con, request)
        status = deliver_export(workspace, con, export)
        logged = con.execute("SELECT delivery_status FROM data_log WHERE entry_id = ?",
                             [export.entry_id]).fetchall()[0][0]
    finally:
        con.close()
    return export, status, logged


def test_link_sent_to_requester(stocked):
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        workspace = write_config(stocked, smtp_config(port) + USERS)
        export, status, logged = export_and_deliver(workspace)
    assert status == "sent: anna@salon.example"
    assert logged == status
    assert mailbox.recipients == [["anna@salon.example"]]
    message = mailbox.messages[0]
    assert message["To"] == "anna@salon.example"
    assert message["From"] == "batchstock@salon.example"
    assert "2026-11-01 to 2026-11-30" in message["Subject"]
    assert list(message.iter_attachments()) == []
    link = link_in(message)
    assert link.startswith("http://127.0.0.1:8080/download/")
    assert read_download_token(workspace, link.rsplit("/", 1)[1]) == export.entry_id
    html = message.get_body(("html",)).get_content()
    assert f'href="{link}"' in html
    assert export.sha256 in message.get_body(("plain",)).get_content()
    assert export.path.exists()


def test_delivery_in_manifest(stocked):
    with smtp_server(Mailbox()) as port:
        workspace = write_config(stocked, smtp_config(port) + USERS)
        export, status, _ = export_and_deliver(workspace)
    lines = [json.loads(line) for line in workspace.manifest_path.read_text().splitlines()]
    deliveries = [line for line in lines if line.get("event") == "delivery"]
    assert deliveries == [{"event": "delivery", "id": export.entry_id,
                           "delivery_status": status, "time": deliveries[0]["time"]}]


def test_link_uses_base_url(stocked):
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        config = smtp_config(port) + '[serve]\nbase_url = "http://127.0.0.1:9123/"\n' + USERS
        export_and_deliver(write_config(stocked, config))
    assert link_in(mailbox.messages[0]).startswith("http://127.0.0.1:9123/download/")


# aiosmtpd warns about AUTH without TLS, which is what these loopback tests use.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_password_from_environment(stocked, monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "mail secret 1")
    mailbox = Mailbox(password="mail secret 1")
    with smtp_server(mailbox) as port:
        config = smtp_config(port, user="batchstock", password_env="TEST_SMTP_PASSWORD")
        _, status, _ = export_and_deliver(write_config(stocked, config + USERS))
    assert status.startswith("sent: ")
    assert mailbox.logins == ["batchstock"]
    assert len(mailbox.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_unset_password_variable_not_retried(stocked, monkeypatch):
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    mailbox = Mailbox(password="mail secret 1")
    with smtp_server(mailbox) as port:
        config = smtp_config(port, user="batchstock", password_env="TEST_SMTP_PASSWORD",
                             attempts=3)
        export, status, logged = export_and_deliver(write_config(stocked, config + USERS))
    assert status.startswith("failed: MailSettingsError")
    assert "TEST_SMTP_PASSWORD" in status
    assert "(after 1 attempts)" in status
    assert mailbox.attempts == 0
    assert export.path.exists()


def test_temporary_refusal_retried(stocked, caplog):
    mailbox = Mailbox(refusals=2)
    caplog.set_level(logging.WARNING, logger="batchstock.mail")
    with smtp_server(mailbox) as port:
        config = smtp_config(port, attempts=3)
        _, status, _ = export_and_deliver(write_config(stocked, config + USERS))
    assert status == "sent: anna@salon.example"
    assert mailbox.attempts == 3
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2
    assert "attempt 1 of 3" in retries[0].getMessage()


def test_permanent_refusal_not_retried(stocked):
    mailbox = Mailbox(refusals=5, refusal="554 5.7.1 Message rejected")
    with smtp_server(mailbox) as port:
        config = smtp_config(port, attempts=3)
        workspace = write_config(stocked, config + USERS)
        export, status, logged = export_and_deliver(workspace)
    assert mailbox.attempts == 1
    assert status.startswith("failed: SMTPDataError")
    assert "; saved: outbox/mail/" in status
    assert logged == status
    assert export.path.exists()


def test_server_down_fails_after_retries(stocked, caplog):
    caplog.set_level(logging.WARNING, logger="batchstock.mail")
    config = smtp_config(free_port(), attempts=3)
    workspace = write_config(stocked, config + USERS)
    export, status, logged = export_and_deliver(workspace)
    assert status.startswith("failed: ConnectionRefusedError")
    assert "(after 3 attempts)" in status
    assert logged == status
    assert export.path.exists()
    saved = workspace.root / status.rsplit("saved: ", 1)[1]
    message = message_from_bytes(saved.read_bytes(), policy=policy.default)
    assert link_in(message).startswith("http://127.0.0.1:8080/download/")
    assert [r.levelname for r in caplog.records if r.name == "batchstock.mail"] == [
        "WARNING", "WARNING", "ERROR"]


def test_eml_without_smtp(stocked):
    workspace = write_config(stocked, USERS)
    export, status, logged = export_and_deliver(workspace)
    expected = f"outbox/mail/export-{export.entry_id}-anna.eml"
    assert status == f"saved: {expected} (no SMTP server configured)"
    assert logged == status
    message = message_from_bytes((workspace.root / expected).read_bytes(),
                                 policy=policy.default)
    assert message["To"] == "anna@salon.example"
    assert list(message.iter_attachments()) == []
    assert read_download_token(workspace, link_in(message).rsplit("/", 1)[1]) == \
        export.entry_id


def test_eml_without_address(stocked):
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        workspace = write_config(stocked, smtp_config(port) + USERS)
        export, status, _ = export_and_deliver(workspace, user="carl")
    assert mailbox.attempts == 0
    assert status == (f"saved: outbox/mail/export-{export.entry_id}-carl.eml "
                      "(no email address for carl in [users.carl])")


def test_workspace_template_overrides_subject(stocked):
    folder = stocked.root / "templates" / "mail"
    folder.mkdir(parents=True)
    (folder / "export_subject.txt").write_text("Salon export {{ entry_id }}\n")
    export, status, _ = export_and_deliver(write_config(stocked, USERS))
    saved = stocked.root / status.split(" ")[1]
    message = message_from_bytes(saved.read_bytes(), policy=policy.default)
    assert message["Subject"] == f"Salon export {export.entry_id}"


def test_html_body_escapes_names(stocked):
    export, status, _ = export_and_deliver(stocked, user="<i>&co")
    saved = stocked.root / status.split(" ")[1]
    message = message_from_bytes(saved.read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    assert "Hello &lt;i&gt;&amp;co," in html
    assert "<i>" not in html


@pytest.mark.parametrize(("table", "fragment"), [
    ('host = "127.0.0.1"\nsecurity = "ssl"', "security"),
    ('host = "127.0.0.1"\nport = "twenty-five"', "port"),
    ('host = "127.0.0.1"\nattempts = 0', "attempts"),
])
def test_invalid_smtp_settings(workspace, table, fragment):
    configured = write_config(workspace, f"[smtp]\n{table}\n")
    with pytest.raises(WorkspaceError, match=fragment):
        smtp_settings(configured)


def test_smtp_defaults(workspace):
    configured = write_config(workspace, '[smtp]\nhost = "127.0.0.1"\nsecurity = "tls"\n')
    settings = smtp_settings(configured)
    assert (settings.port, settings.attempts, settings.user) == (465, 3, None)
    assert smtp_settings(workspace) is None
