"""The `serve` app: the emailed link downloaded through a running server, access rights,
expired and changed links, sign-in, the data-log page, and `user set-password`."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from starlette.testclient import TestClient

from batchstock import credentials, ledger, web
from batchstock.cli import main
from batchstock.config import Workspace
from batchstock.credentials import check_password, make_download_token, set_password
from batchstock.exports import ExportRequest, export_operations
from batchstock.mail import deliver_export
from export_helpers import (
    Mailbox,
    fill_ledger,
    link_in,
    loopback_listener,
    running_app,
    smtp_config,
    smtp_server,
    write_config,
)

USERS = """
[users.anna]
email = "anna@salon.example"
export = true
see_costs = true

[users.ben]
email = "ben@salon.example"
export = true

[users.carol]
download_others = true
see_costs = true

[users.dora]
download_others = true
see_costs = false
"""
PASSWORDS = {name: f"{name} password 1" for name in ("anna", "ben", "carol", "dora")}
DEFAULT_HASHER = credentials._hasher


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    """Hash passwords with argon2id at its lowest cost, so that each sign-in takes
    milliseconds; `test_default_hash_cost` checks the cost the app really uses."""
    monkeypatch.setattr(credentials, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def served(workspace) -> Workspace:
    """A workspace with operations, the four users above, and their passwords."""
    con = ledger.connect(workspace.ledger_path)
    fill_ledger(con, 6, 3)
    con.close()
    configured = write_config(workspace, USERS)
    for name, password in PASSWORDS.items():
        set_password(configured, name, password)
    return configured


def export_for(workspace: Workspace, user: str, deliver: bool = False):
    con = ledger.connect(workspace.ledger_path)
    try:
        request = ExportRequest(dt.date(2026, 11, 1), dt.date(2026, 11, 30), user)
        export = export_operations(workspace, con, request)
        if deliver:
            deliver_export(workspace, con, export)
    finally:
        con.close()
    return export


def query(workspace: Workspace, sql: str, parameters: list | None = None) -> list[tuple]:
    con = ledger.connect(workspace.ledger_path)
    try:
        return con.execute(sql, parameters or []).fetchall()
    finally:
        con.close()


def sign_in(client, user: str, password: str | None = None):
    return client.post("/sign-in", data={"user": user, "password": password or PASSWORDS[user]},
                       follow_redirects=False)


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


# The emailed link, downloaded through a running server


def test_emailed_link_downloads_through_server(served):
    mailbox = Mailbox()
    listener = loopback_listener()
    port = listener.getsockname()[1]
    with smtp_server(mailbox) as smtp_port:
        config = smtp_config(smtp_port) + f'[serve]\nbase_url = "http://127.0.0.1:{port}"\n'
        workspace = write_config(served, config + USERS)
        export = export_for(workspace, "anna", deliver=True)
    link = link_in(mailbox.messages[0])
    assert link.startswith(f"http://127.0.0.1:{port}/download/")
    sha256, size = query(workspace, "SELECT sha256, size FROM data_log WHERE entry_id = ?",
                         [export.entry_id])[0]

    with running_app(workspace.root, listener) as base:
        with httpx2.Client(base_url=base) as anna:
            assert sign_in(anna, "anna").status_code == 303
            response = anna.get(link)
            assert response.status_code == 200
            assert hashlib.sha256(response.content).hexdigest() == sha256
            assert len(response.content) == size
            assert export.path.name in response.headers["content-disposition"]
        with httpx2.Client(base_url=base) as ben:
            assert sign_in(ben, "ben").status_code == 303
            refused = ben.get(link)
            assert refused.status_code == 403
            assert "may not download" in refused.text
        with httpx2.Client(base_url=base) as carol:
            sign_in(carol, "carol")
            assert carol.get(link).status_code == 200

    downloads = query(workspace, "SELECT entry_id, downloaded_by FROM downloads "
                                 "ORDER BY download_id")
    assert downloads == [(export.entry_id, "anna"), (export.entry_id, "carol")]
    assert query(workspace, "SELECT download_count FROM data_log WHERE entry_id = ?",
                 [export.entry_id]) == [(2,)]
    manifest = workspace.manifest_path.read_text()
    assert manifest.count('"event": "download"') == 2


# Access rights


@pytest.fixture
def client(served):
    with TestClient(web.create_app(served.root), base_url="http://127.0.0.1") as client:
        yield client


def test_download_needs_sign_in(served, client):
    export = export_for(served, "ben")
    path = f"/download/{make_download_token(served, export.entry_id, far_future())}"
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/sign-in?next=%2Fdownload%2F")
    form = client.get(response.headers["location"])
    next_value = re.search(r'name="next" value="([^"]+)"', form.text).group(1)
    assert next_value == path
    signed_in = client.post("/sign-in", data={"user": "ben", "password": PASSWORDS["ben"],
                                              "next": next_value}, follow_redirects=False)
    assert signed_in.headers["location"] == path
    assert client.get(path).status_code == 200


def far_future() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)


@pytest.mark.parametrize(("requester", "downloader", "status"), [
    ("ben", "ben", 200),      # own export without cost columns
    ("anna", "anna", 200),    # own export with cost columns
    ("anna", "ben", 403),     # someone else's, no download_others
    ("anna", "carol", 200),   # download_others and see_costs
    ("anna", "dora", 403),    # download_others, but the export shows costs
    ("ben", "dora", 200),     # download_others, and the export has no costs
])
def test_download_rights(served, client, requester, downloader, status):
    export = export_for(served, requester)
    sign_in(client, downloader)
    response = client.get(f"/download/{make_download_token(served, export.entry_id, far_future())}")
    assert response.status_code == status
    downloads = query(served, "SELECT count(*) FROM downloads")[0][0]
    assert downloads == (1 if status == 200 else 0)


def test_expired_link_page(served, client):
    export = export_for(served, "anna")
    sign_in(client, "anna")
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    response = client.get(f"/download/{make_download_token(served, export.entry_id, past)}")
    assert response.status_code == 410
    assert "expired" in response.text
    assert f"entry {export.entry_id}" in response.text


def test_expired_link_page_without_sign_in(served, client):
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=8)
    response = client.get(f"/download/{make_download_token(served, 1, past)}",
                          follow_redirects=False)
    assert response.status_code == 410


@pytest.mark.parametrize("change", ["flip", "cut", "other key"])
def test_changed_link_page(served, client, change):
    export = export_for(served, "anna")
    sign_in(client, "anna")
    token = make_download_token(served, export.entry_id, far_future())
    if change == "flip":
        token = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    elif change == "cut":
        token = token[:-10]
    else:
        (served.state / "secret-key").write_text("0" * 64)
    response = client.get(f"/download/{token}")
    assert response.status_code == 400
    assert "not valid" in response.text
    assert query(served, "SELECT count(*) FROM downloads")[0][0] == 0


def test_link_to_other_entry_checks_rights(served, client):
    export_for(served, "ben")
    anna_export = export_for(served, "anna")
    sign_in(client, "ben")
    response = client.get(f"/download/{make_download_token(served, anna_export.entry_id, far_future())}")
    assert response.status_code == 403


def test_missing_and_changed_files(served, client):
    export = export_for(served, "anna")
    sign_in(client, "anna")
    path = f"/download/{make_download_token(served, export.entry_id, far_future())}"
    export.path.write_bytes(export.path.read_bytes() + b"x")
    assert client.get(path).status_code == 409
    export.path.unlink()
    assert client.get(path).status_code == 404
    assert query(served, "SELECT count(*) FROM downloads")[0][0] == 0


def test_busy_ledger_answers_503(served, client, monkeypatch):
    monkeypatch.setattr(web, "LEDGER_WAIT_SECONDS", 0.3)
    sign_in(client, "anna")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); sys.stdin.read()", str(served.ledger_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        response = client.get("/log")
        assert response.status_code == 503
        assert "busy" in response.text
    finally:
        holder.communicate("", timeout=30)
    assert client.get("/log").status_code == 200


# Sign-in


def test_sign_in_failures(served, client):
    assert sign_in(client, "anna", "wrong password").status_code == 401
    assert sign_in(client, "zed", "zed password 1").status_code == 401
    assert client.get("/log", follow_redirects=False).status_code == 303


def test_unlisted_user_cannot_sign_in(served, client):
    set_password(served, "zed", "zed password 1")
    assert sign_in(client, "zed", "zed password 1").status_code == 401


def test_repeated_failures_limited(served, client):
    for _ in range(web.FAILED_SIGN_INS):
        assert sign_in(client, "anna", "wrong password").status_code == 401
    assert sign_in(client, "anna").status_code == 429


def test_sign_out(served, client):
    sign_in(client, "anna")
    assert client.get("/log").status_code == 200
    client.post("/sign-out")
    assert client.get("/log", follow_redirects=False).status_code == 303


def test_next_stays_on_site(served, client):
    response = client.post("/sign-in", data={"user": "anna", "password": PASSWORDS["anna"],
                                             "next": "//elsewhere/x"}, follow_redirects=False)
    assert response.headers["location"] == "/log"


def test_pages_send_safety_headers(served, client):
    response = client.get("/sign-in")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    cookie = sign_in(client, "anna").headers["set-cookie"]
    assert "httponly" in cookie.lower()
    assert "samesite=lax" in cookie.lower()


# The data-log page


def entry_ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-entry="(\d+)">', html)]


def test_log_page_newest_first_with_links(served, client):
    first = export_for(served, "anna")
    second = export_for(served, "ben")
    sign_in(client, "carol")
    page = client.get("/log")
    assert page.status_code == 200
    assert entry_ids(page.text) == [second.entry_id, first.entry_id]
    links = re.findall(r'class="download" href="([^"]+)"', page.text)
    assert len(links) == 2
    assert client.get(links[0]).status_code == 200


@pytest.mark.parametrize(("query_string", "expected"), [
    ("kind=export", [3, 2, 1]),
    ("kind=result", []),
    ("user=ben", [2]),
    ("user=anna&kind=export", [3, 1]),
    ("from=2000-01-01&to=2000-01-31", []),
])
def test_log_page_filters(served, client, query_string, expected):
    for user in ("anna", "ben", "anna"):
        export_for(served, user)
    sign_in(client, "carol")
    page = client.get(f"/log?{query_string}")
    assert page.status_code == 200
    assert entry_ids(page.text) == expected


def test_log_page_date_filter_today(served, client):
    export = export_for(served, "anna")
    today = query(served, "SELECT requested_at::DATE FROM data_log WHERE entry_id = ?",
                  [export.entry_id])[0][0].isoformat()
    sign_in(client, "carol")
    assert entry_ids(client.get(f"/log?from={today}&to={today}").text) == [export.entry_id]


def test_log_page_invalid_date(served, client):
    sign_in(client, "carol")
    page = client.get("/log?from=30.11.2026")
    assert page.status_code == 400
    assert "is not a date" in page.text


def test_log_page_shows_own_entries_only(served, client):
    export_for(served, "anna")
    own = export_for(served, "ben")
    sign_in(client, "ben")
    page = client.get("/log")
    assert entry_ids(page.text) == [own.entry_id]
    assert entry_ids(client.get("/log?user=anna").text) == []


# Passwords and the serve command


def test_set_password_command(served):
    runner = CliRunner()
    result = runner.invoke(main, ["user", "set-password", "--workspace", str(served.root),
                                  "anna"], input="new password 2\nnew password 2\n")
    assert result.exit_code == 0, result.output
    stored = (served.state / "passwords.json").read_text()
    assert "$argon2id$" in stored
    assert "new password 2" not in stored
    assert (served.state / "passwords.json").stat().st_mode & 0o077 == 0
    assert check_password(served, "anna", "new password 2")
    assert not check_password(served, "anna", PASSWORDS["anna"])


@pytest.mark.parametrize(("name", "password", "fragment"), [
    ("anna", "short", "at least 8"),
    ("zed", "long enough 1", "not listed"),
])
def test_set_password_rejected(served, name, password, fragment):
    result = CliRunner().invoke(main, ["user", "set-password", "--workspace", str(served.root),
                                       name, "--password", password])
    assert result.exit_code == 1
    assert fragment in result.output


def test_serve_listens_on_loopback_by_default():
    from batchstock.cli_exports import serve

    defaults = {param.name: param.default for param in serve.params}
    assert defaults["host"] == "127.0.0.1"
    assert defaults["port"] == 8080
    assert web.DEFAULT_HOST == "127.0.0.1"


def test_keys_are_private(served):
    export_for(served, "anna", deliver=True)
    for name in ("secret-key", "passwords.json"):
        mode = (served.state / name).stat().st_mode
        assert mode & 0o077 == 0, name


def test_keys_created_once(served, tmp_path):
    key = served.state / "secret-key"
    export_for(served, "anna", deliver=True)
    first = key.read_text()
    export_for(served, "anna", deliver=True)
    assert key.read_text() == first
    assert Path(key).stat().st_size == 64


def test_default_hash_cost():
    hasher = PasswordHasher()
    assert DEFAULT_HASHER.time_cost >= hasher.time_cost
    assert DEFAULT_HASHER.memory_cost >= 64 * 1024  # KiB, as RFC 9106 recommends
