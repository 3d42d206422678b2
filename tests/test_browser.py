"""The data-log page in a real browser: headless Chromium from Debian's packages, driven
by Playwright, signs in, finds an export in the data log and downloads it."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from batchstock import credentials, ledger
from batchstock.credentials import set_password
from batchstock.exports import ExportRequest, export_operations
from batchstock.mail import deliver_export
from export_helpers import fill_ledger, loopback_listener, running_app, write_config

CHROMIUM = Path("/usr/bin/chromium")
# Playwright launches the system Chromium; `playwright install` would download its own.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent; install Debian's chromium package "
           "(.ci/run does so on CI) to run the browser test",
)

USERS = """
[users.anna]
email = "anna@salon.example"
export = true
see_costs = true
"""


def test_sign_in_and_download_from_data_log(workspace, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setattr(credentials, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    listener = loopback_listener()
    base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    configured = write_config(workspace, f'[serve]\nbase_url = "{base_url}"\n' + USERS)
    set_password(configured, "anna", "anna password 1")
    con = ledger.connect(configured.ledger_path)
    try:
        fill_ledger(con, 5, 2)
        request = ExportRequest(dt.date(2026, 11, 1), dt.date(2026, 11, 30), "anna")
        export = export_operations(configured, con, request)
        deliver_export(configured, con, export)
        sha256 = con.execute("SELECT sha256 FROM data_log WHERE entry_id = ?",
                             [export.entry_id]).fetchall()[0][0]
    finally:
        con.close()

    with running_app(configured.root, listener) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(f"{base}/log")
            assert "/sign-in" in page.url
            page.fill('input[name="user"]', "anna")
            page.fill('input[name="password"]', "anna password 1")
            page.click('button[type="submit"]')
            page.wait_for_url(f"{base}/log")
            assert page.inner_text("#signed-in-user") == "anna"
            row = page.locator(f'tr[data-entry="{export.entry_id}"]')
            assert "export" in row.inner_text()
            page.screenshot(path=str(tmp_path / "data-log.png"), full_page=True)
            with page.expect_download() as waiting:
                row.locator("a.download").click()
            download = waiting.value
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
        finally:
            browser.close()

    assert saved.name == export.path.name
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == sha256
    con = ledger.connect(configured.ledger_path)
    try:
        downloads = con.execute("SELECT entry_id, downloaded_by FROM downloads").fetchall()
    finally:
        con.close()
    assert downloads == [(export.entry_id, "anna")]
