"""CSRF defence for every form the web UI posts: an Origin check and a synchronizer token.

Two independent layers, both required:

1. Origin: the browser's ``Origin`` header (or, when a browser omits it, the ``Referer``) must name
   this very host. ``Origin: null`` (sandboxed frames, opaque origins) is refused. UI pages are
   served with ``Referrer-Policy: same-origin`` so browsers send the real origin on form posts.
2. Token: the form's ``csrf_token`` must be the HMAC of this browser's ``paramedic_csrf`` cookie
   and the session id (``api.session``). A cross-site page can read neither.

Session cookies are also ``SameSite=Strict``, so a cross-site post does not even carry them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from paramedic.api.session import CSRF_COOKIE, SessionCodec


class CsrfRefused(Exception):
    """A form post that failed the CSRF checks (HTTP 403; nothing was changed)."""


def origin_problem(request: Request) -> str | None:
    """Why the request does not come from this site, or None when it does."""
    host = request.headers.get("host", "").lower()
    origin = request.headers.get("origin")
    if origin is None:
        origin = request.headers.get("referer")
        if not origin:
            return "the request carries neither an Origin nor a Referer header"
    if origin == "null":
        return "the request comes from an opaque origin (Origin: null)"
    netloc = urlsplit(origin).netloc.lower()
    if not host or netloc != host:
        return f"the request comes from {origin}, not from this site ({host or 'no Host header'})"
    return None


def check(request: Request, *, token: str, sid: str) -> None:
    """Raise ``CsrfRefused`` unless the post comes from this site and carries a valid token."""
    problem = origin_problem(request)
    if problem is not None:
        raise CsrfRefused(problem)
    codec: SessionCodec = request.app.state.sessions
    if not codec.csrf_ok(token, request.cookies.get(CSRF_COOKIE, ""), sid):
        raise CsrfRefused("the form's CSRF token is missing or does not match this browser's session")
