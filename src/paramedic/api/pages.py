"""The web UI's toolkit: Jinja2 templates, the signed-in user, CSRF cookies and safe responses.

``api.ui`` (pages and partials) and ``api.ui_forms`` (form posts) render through ``render`` so
every HTML answer carries the same security headers, the user's roles and a CSRF token.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from paramedic import __version__
from paramedic.api.auth import ANONYMOUS_ADMIN, Principal, has_role, session_principal
from paramedic.api.session import CSRF_COOKIE, SESSION_COOKIE, SessionCodec, new_csrf_cookie
from paramedic.core.durations import format_duration

WEB = Path(__file__).resolve().parent / "web"
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
PARTIAL_PREFIX = "/ui/partials/"


class LoginRequired(Exception):
    """No valid session: full pages redirect to /login, partials and posts answer 401."""


# ---- template filters -------------------------------------------------------------------------
def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def clock_time(value: str | datetime | None) -> str:
    at = _parse(value)
    return at.strftime("%H:%M:%S") if at else "—"


def full_time(value: str | datetime | None) -> str:
    at = _parse(value)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else "—"


def ago(value: str | datetime | None, now: datetime) -> str:
    """Coarse on purpose (minutes), so a polled partial changes only when something happened."""
    at = _parse(value)
    if at is None:
        return "—"
    seconds = (now - at).total_seconds()
    if seconds < 0:
        minutes = int(-seconds // 60)
        return "in <1m" if minutes < 1 else f"in {_minutes(minutes)}"
    minutes = int(seconds // 60)
    return "<1m ago" if minutes < 1 else f"{_minutes(minutes)} ago"


def _minutes(minutes: int) -> str:
    if minutes < 60:
        return f"{minutes}m"
    hours, rest = divmod(minutes, 60)
    return f"{hours}h{rest:02d}m" if hours < 48 else f"{hours // 24}d"


def duration(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(seconds)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _one(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def compact(value: Any, limit: int = 160, skip: tuple[str, ...] = ()) -> str:
    """A one-line rendering of a JSON value for tables: ``key=value`` pairs, nested values as JSON."""
    if isinstance(value, dict):
        text = ", ".join(f"{k}={_one(v)}" for k, v in value.items() if k not in skip and v not in (None, "", [], {}))
    else:
        text = _one(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert_link(value: Any) -> str | None:
    """``value`` if it is a plain http(s) URL to show as a link, else None. Alert text is untrusted:
    no ``javascript:`` or ``data:``, no credentials in the URL, no spaces or control characters."""
    if not isinstance(value, str) or len(value) > 2000 or any(ch.isspace() or not ch.isprintable() for ch in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return value


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _asset_version() -> str:
    digest = hashlib.sha256()
    for name in sorted(p.name for p in STATIC.iterdir() if p.is_file()):
        digest.update((STATIC / name).read_bytes())
    return digest.hexdigest()[:10]


ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    clock=clock_time,
    fulltime=full_time,
    dur=duration,
    pct=percent,
    compact=compact,
    pretty=pretty,
    alert_link=alert_link,
)
ENV.globals.update(version=__version__, asset_v=_asset_version(), ago=ago)


# ---- who is asking ----------------------------------------------------------------------------
def current_user(request: Request) -> Principal | None:
    return session_principal(request)


def ui_user(request: Request) -> Principal:
    """The signed-in user of a UI request, or ``LoginRequired``."""
    if request.app.state.config.auth is None:
        return ANONYMOUS_ADMIN
    who = current_user(request)
    if who is None:
        raise LoginRequired()
    return who


def session_id(request: Request) -> str:
    """The id CSRF tokens are bound to: the session's, or empty before login / without auth."""
    codec: SessionCodec = request.app.state.sessions
    session = codec.read(request.cookies.get(SESSION_COOKIE), now=request.app.state.pm.clock())
    return session.sid if session else ""


def local_path(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site (never ``//host`` or a full URL), else ``default``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ch.isspace() or not ch.isprintable() for ch in value):  # browsers drop tabs: "/\t/evil"
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def login_redirect(request: Request) -> Response:
    if request.url.path.startswith(PARTIAL_PREFIX) or request.method != "GET":
        return HTMLResponse("<p>Your session ended. <a href='/login'>Sign in again</a>.</p>", status_code=401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https"


def set_csrf_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="strict", secure=secure_cookie(request), path="/")


# ---- rendering --------------------------------------------------------------------------------
def render(
    request: Request,
    template: str,
    *,
    user: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with the user's roles and a CSRF token, and set the CSRF cookie on a
    browser's first full page. Partials never set it (concurrent polls cannot race it), nor do
    answers to posts (a forged cross-site post cannot replace the victim's cookie)."""
    codec: SessionCodec = request.app.state.sessions
    cookie = request.cookies.get(CSRF_COOKIE, "")
    fresh = ""
    if not cookie and request.method == "GET" and not request.url.path.startswith(PARTIAL_PREFIX):
        cookie = fresh = new_csrf_cookie()
    pm = request.app.state.pm
    html = ENV.get_template(template).render(
        request=request,
        user=user,
        auth_enabled=request.app.state.config.auth is not None,
        can_respond=user is not None and has_role(user, "responder"),
        can_admin=user is not None and has_role(user, "admin"),
        csrf_token=codec.csrf_token(cookie, session_id(request)) if cookie else "",
        now=pm.clock(),
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    if fresh:
        set_csrf_cookie(request, response, fresh)
    return response


def error_page(request: Request, status: int, message: str, *, user: Principal | None) -> HTMLResponse:
    titles = {400: "Bad request", 401: "Sign in needed", 403: "Refused", 404: "Not found", 409: "Conflict"}
    return render(
        request,
        "error.html",
        user=user,
        status_code=status,
        title=titles.get(status, "Error"),
        code=status,
        message=message,
    )
