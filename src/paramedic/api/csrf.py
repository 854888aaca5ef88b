"""CSRF defence for every form the web UI posts: an Origin check and a synchronizer token.

Two independent layers, both required:

1. Origin: the browser's ``Origin`` header (or, when a browser omits it, the ``Referer``) must name
   this very host. ``Origin: null`` (sandboxed frames, opaque origins) is refused. UI pages are
   served with ``Referrer-Policy: same-origin`` so browsers send the real origin on form posts.
2. Token: the form's ``csrf_token`` must be the HMAC of this browser's ``paramedic_csrf`` cookie
   and the session id (``api.session``). A cross-site page can read neither.

Session cookies are also ``SameSite=Strict``, so a cross-site post does not even carry them.

Every other state-changing request (the JSON API, the webhooks) passes ``request_problem`` in a
middleware, in every mode, open or not: a browser's cross-site request is refused (``Sec-Fetch-Site:
cross-site``, or an ``Origin`` that is not this host), and the body must be declared
``application/json``. A web page can send ``text/plain``, a form encoding or no body at all without a
CORS preflight, but not JSON; so in open mode (no ``auth``, loopback only) a page the operator visits
cannot run a runbook, pause automation or approve an action through the browser. Non-browser
senders (Alertmanager, Grafana, PagerDuty, curl, the CLI) send no ``Origin`` and do send JSON.
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


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# the UI's own form posts: each checks Origin and a CSRF token itself (``check``)
FORM_PATHS = ("/login", "/logout", "/ui/")
# posts authenticated by their own signature, never by a cookie a browser would add (no CSRF to
# fear), whose sender fixes the body's type: Slack's Interactivity posts a form (``api.slack``)
SIGNED_FORM_PATHS = frozenset({"/api/v1/slack/interactions"})


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def request_problem(request: Request) -> tuple[int, str] | None:
    """Why a state-changing request is refused (HTTP status and message), or None to let it in."""
    path = request.url.path
    if request.method in SAFE_METHODS or path in FORM_PATHS[:2] or path.startswith(FORM_PATHS[2]):
        return None  # a form post is checked by ``check`` in its handler, which answers with a page
    if path in SIGNED_FORM_PATHS:
        return None  # the handler verifies the sender's signature before anything else
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return 403, "a cross-site request from a web page (Sec-Fetch-Site: cross-site) may not change anything"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "").lower()
        if origin == "null" or not host or urlsplit(origin).netloc.lower() != host:
            return 403, f"a request from another site ({origin}) may not change anything here ({host or 'no Host'})"
    if not _is_json(request.headers.get("content-type", "")):
        return 415, "send the body as JSON, with Content-Type: application/json (also for an empty body: {})"
    return None


def check(request: Request, *, token: str, sid: str) -> None:
    """Raise ``CsrfRefused`` unless the post comes from this site and carries a valid token."""
    problem = origin_problem(request)
    if problem is not None:
        raise CsrfRefused(problem)
    codec: SessionCodec = request.app.state.sessions
    if not codec.csrf_ok(token, request.cookies.get(CSRF_COOKIE, ""), sid):
        raise CsrfRefused("the form's CSRF token is missing or does not match this browser's session")
