"""The web app of `batchstock serve`: sign-in, the data-log page and signed downloads.

A Starlette app run by uvicorn, on 127.0.0.1 unless `--host` sets another address. Users sign in with
the password `batchstock user set-password` stored; the session is a signed cookie. The
data-log page lists entries newest first, filtered by kind, user and date, each with a
fresh download link. A download link (the one in the export email too) carries a signed
token naming a data-log entry and its expiry time. A download is allowed to the
requester and to users with the right download_others. An export with cost columns also
needs the right see_costs. Every download is recorded in the data log.

The app opens the ledger for each request and closes it again, so that `watch` and
`process` can take it between requests. Settings and rights are read for each request
too, so a changed batchstock.toml applies at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from batchstock.access import Rights, rights_for
from batchstock.config import Workspace, open_workspace
from batchstock.core import LedgerBusyError
from batchstock.credentials import (
    LinkExpiredError,
    LinkInvalidError,
    check_password,
    make_download_token,
    read_download_token,
    secret_key,
    serve_settings,
)
from batchstock.datalog import (
    DataLogEntry,
    EntryFilter,
    connect_when_free,
    get_entry,
    list_entries,
    list_kinds_and_users,
    record_download,
)
from batchstock.inbox import file_sha256

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
PAGE_ENTRIES = 500
LEDGER_WAIT_SECONDS = 10.0  # how long a request waits while `watch` or `process` has the ledger open
SESSION_SECONDS = 12 * 60 * 60
FAILED_SIGN_INS = 5  # per user name, within FAILED_SIGN_IN_WINDOW seconds
FAILED_SIGN_IN_WINDOW = 300.0
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def may_download(rights: Rights, entry: DataLogEntry) -> bool:
    """Return whether a user may download the file of a data-log entry."""
    if not rights.known:
        return False
    if entry.requested_by != rights.user and not rights.has("download_others"):
        return False
    return rights.has("see_costs") or not entry.includes_costs


def _local_path(target: str | None) -> str:
    """Return `target` when it is a path on this site, else the data-log page."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/log"


def _parse_date(text: str | None, label: str, errors: list[str]) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        errors.append(f"{label} {text!r} is not a date; use the form 2026-11-30")
        return None


class WebApp:
    """The request handlers, bound to one workspace folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("batchstock", "templates/web"), autoescape=True)
        self.templates = Jinja2Templates(env=environment)
        self.failures: dict[str, deque[float]] = defaultdict(deque)

    def workspace(self) -> Workspace:
        return open_workspace(self.root)

    @contextmanager
    def ledger(self, workspace: Workspace) -> Iterator:
        con = connect_when_free(workspace, wait_seconds=LEDGER_WAIT_SECONDS)
        try:
            yield con
        finally:
            con.close()

    def page(self, request: Request, status: int, title: str, message: str,
             link: tuple[str, str] | None = ("/log", "Open the data log")) -> Response:
        return self.templates.TemplateResponse(
            request, "message.html",
            {"title": title, "message": message, "link": link,
             "user": request.session.get("user")},
            status_code=status)

    def home(self, request: Request) -> Response:
        return RedirectResponse("/log", status_code=303)

    def sign_in_form(self, request: Request, error: str | None = None,
                     status: int = 200) -> Response:
        return self.templates.TemplateResponse(
            request, "sign_in.html",
            {"next": _local_path(request.query_params.get("next")), "error": error,
             "user": request.session.get("user")},
            status_code=status)

    async def sign_in(self, request: Request) -> Response:
        form = await request.form()
        name = str(form.get("user", "")).strip()
        password = str(form.get("password", ""))
        target = _local_path(str(form.get("next", "")))
        attempts = self.failures[name]
        while attempts and attempts[0] < time.monotonic() - FAILED_SIGN_IN_WINDOW:
            attempts.popleft()
        if len(attempts) >= FAILED_SIGN_INS:
            log.warning("sign-in of %s rejected: %d failed attempts in %.0f s", name,
                        len(attempts), FAILED_SIGN_IN_WINDOW)
            return self.sign_in_form(request, "Too many failed sign-ins for this name; wait "
                                     "five minutes and try again.", 429)
        workspace = self.workspace()
        listed = not workspace.settings.users or name in workspace.settings.users
        # argon2 takes a noticeable fraction of a second by design, so it runs off the loop.
        matches = bool(name) and listed and await run_in_threadpool(
            check_password, workspace, name, password)
        if not matches:
            attempts.append(time.monotonic())
            log.info("failed sign-in as %r", name)
            return self.sign_in_form(request, "The name or the password is wrong.", 401)
        attempts.clear()
        request.session.clear()
        request.session["user"] = name
        log.info("%s signed in", name)
        return RedirectResponse(target, status_code=303)

    def sign_out(self, request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/sign-in", status_code=303)

    def _ask_sign_in(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/sign-in?next={quote(target, safe='')}", status_code=303)

    def log_page(self, request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            return self._ask_sign_in(request)
        workspace = self.workspace()
        rights = rights_for(workspace.settings.users, user)
        query = request.query_params
        errors: list[str] = []
        chosen = EntryFilter(
            kind=query.get("kind") or None, user=query.get("user") or None,
            date_from=_parse_date(query.get("from"), "From", errors),
            date_to=_parse_date(query.get("to"), "To", errors),
            users=None if rights.has("download_others") else frozenset({user}),
            limit=PAGE_ENTRIES,
        )
        with self.ledger(workspace) as con:
            entries = list_entries(con, chosen)
            kinds, users = list_kinds_and_users(con)
        if chosen.users is not None:
            users = [u for u in users if u in chosen.users]
        expires_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(
            days=serve_settings(workspace).link_days)
        links = {e.entry_id: f"/download/{make_download_token(workspace, e.entry_id, expires_at)}"
                 for e in entries if may_download(rights, e)}
        return self.templates.TemplateResponse(
            request, "log.html",
            {"user": user, "entries": entries, "links": links, "kinds": kinds,
             "users": users, "query": query, "errors": errors,
             "limited": len(entries) == PAGE_ENTRIES, "limit": PAGE_ENTRIES},
            status_code=400 if errors else 200)

    def download(self, request: Request) -> Response:
        workspace = self.workspace()
        try:
            entry_id = read_download_token(workspace, request.path_params["token"])
        except LinkExpiredError as error:
            local = error.expired_at.astimezone(workspace.settings.zone)
            return self.page(request, 410, "This link has expired", (
                f"The download link expired on {local:%Y-%m-%d at %H:%M}. Open the data log "
                f"to get a fresh link to entry {error.entry_id}."))
        except LinkInvalidError:
            return self.page(request, 400, "This link is not valid", (
                "The download link was changed or cut short, for example by a line break "
                "in the email. Copy the whole link, or open the data log to download the file."))
        user = request.session.get("user")
        if not user:
            return self._ask_sign_in(request)
        return self._send_file(request, workspace, entry_id, user)

    def _send_file(self, request: Request, workspace: Workspace, entry_id: int,
                   user: str) -> Response:
        rights = rights_for(workspace.settings.users, user)
        with self.ledger(workspace) as con:
            entry = get_entry(con, entry_id)
            if entry is None:
                return self.page(request, 404, "No such entry",
                                 f"The data log has no entry {entry_id}.")
            if not may_download(rights, entry):
                log.warning("download of data log entry %d by %s rejected: no right", entry_id, user)
                return self.page(request, 403, "You may not download this file", (
                    f"Entry {entry_id} was requested by {entry.requested_by}. Only they and "
                    "users with the right to download others' files (download_others, and "
                    "see_costs for files with cost prices) may download it."))
            path = (workspace.root / entry.path).resolve()
            if not path.is_file() or not path.is_relative_to(workspace.root.resolve()):
                return self.page(request, 404, "The file is missing", (
                    f"{entry.path} is no longer in the workspace; it was moved or deleted."))
            if entry.sha256 and file_sha256(path) != entry.sha256:
                log.error("%s no longer matches the SHA-256 of data log entry %d", path,
                          entry_id)
                return self.page(request, 409, "The file has changed", (
                    f"{entry.path} changed after batchstock wrote it, so it is not served. "
                    "Ask an administrator to re-create the export."))
            record_download(workspace, con, entry_id, user)
        media_type = XLSX_TYPE if path.suffix == ".xlsx" else None
        return FileResponse(path, media_type=media_type, filename=entry.file_name)


async def _add_headers(request: Request, call_next) -> Response:
    try:
        response = await call_next(request)
    except LedgerBusyError as error:
        log.warning("request %s timed out waiting for the ledger: %s", request.url.path,
                    error)
        response = Response(f"The ledger is busy: {error}", status_code=503,
                            media_type="text/plain")
    response.headers.update(_HEADERS)
    return response


def create_app(root: Path) -> Starlette:
    """Build the app for the workspace in `root`; raise WorkspaceError when `root` is not one."""
    workspace = open_workspace(root)
    handlers = WebApp(workspace.root)
    session_key = hmac.new(secret_key(workspace).encode(), b"session cookie",
                           hashlib.sha256).hexdigest()
    https = serve_settings(workspace).base_url.startswith("https://")
    routes = [
        Route("/", handlers.home),
        Route("/sign-in", handlers.sign_in_form, methods=["GET"]),
        Route("/sign-in", handlers.sign_in, methods=["POST"]),
        Route("/sign-out", handlers.sign_out, methods=["POST"]),
        Route("/log", handlers.log_page),
        Route("/download/{token}", handlers.download),
    ]
    middleware = [
        Middleware(BaseHTTPMiddleware, dispatch=_add_headers),
        Middleware(SessionMiddleware, secret_key=session_key, max_age=SESSION_SECONDS,
                   same_site="lax", https_only=https, session_cookie="batchstock_session"),
    ]
    return Starlette(routes=routes, middleware=middleware)


def serve(root: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    app = create_app(root)
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("serving on %s: other machines can reach the sign-in page; put a TLS "
                    "proxy in front and set [serve] base_url to its https:// address", host)
    log.info("serving %s on http://%s:%d", root, host, port)
    # No access log: its lines would carry the download tokens. The app logs sign-ins,
    # downloads and rejected requests itself.
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False,
                access_log=False)
