"""API tokens with roles and web UI sessions (webhooks authenticate in ``api.webhook_auth``).

Tokens are stored as SHA-256 hashes in the config; comparison is constant-time. With no ``auth``
section the API is open, which the config only allows on loopback.

The REST API takes ``Authorization: Bearer <token>``. A web UI session cookie (``api.session``)
is accepted by the API for reads only (GET, HEAD): a write through the API always needs the bearer
token, so the JSON API needs no CSRF defence; the UI's own form posts check CSRF in ``api.csrf``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from fastapi import HTTPException, Request

from paramedic.api.session import SESSION_COOKIE, SessionCodec, key_of
from paramedic.core.config import ROLE_GRANTS, Config
from paramedic.store import seen


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str


ANONYMOUS_ADMIN = Principal("local", "admin")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGOUT = "logout"  # the kind of ``store.seen`` key that marks a session ended by its user


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "pmd_" + secrets.token_urlsafe(32)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def principal_for(config: Config, token: str | None) -> Principal | None:
    if config.auth is None:
        return ANONYMOUS_ADMIN
    if not token:
        return None
    digest = sha256_hex(token)
    for t in config.auth.tokens:
        if hmac.compare_digest(t.sha256, digest):
            return Principal(t.name, t.role)
    return None


def session_principal(request: Request) -> Principal | None:
    """The principal of the request's UI session cookie, re-checked against the configured tokens."""
    config: Config = request.app.state.config
    if config.auth is None:
        return ANONYMOUS_ADMIN
    codec: SessionCodec | None = getattr(request.app.state, "sessions", None)
    if codec is None:
        return None
    now = request.app.state.pm.clock()
    session = codec.read(request.cookies.get(SESSION_COOKIE), now=now)
    if session is None or session_ended(request, session.sid, now=now):
        return None
    for t in config.auth.tokens:
        if t.name == session.name and hmac.compare_digest(key_of(t.sha256), session.key):
            who = Principal(t.name, t.role)
            return who if has_role(who, "viewer") else None  # a sender's token never reads
    return None  # the token was removed or rotated since the login


def session_ended(request: Request, sid: str, *, now: datetime) -> bool:
    """Whether the session ``sid`` was ended by a logout (on any replica, before any restart)."""
    with request.app.state.pm.db.read() as conn:
        return seen.remembered(conn, kind=LOGOUT, key=sid, now=now)


def require(request: Request, role: str) -> Principal:
    """The caller's principal if it has at least ``role``; else 401/403.

    A bearer token works for every method; a UI session cookie only for reads (see the docstring).
    """
    config: Config = request.app.state.config
    token = _bearer(request)
    if token or config.auth is None:
        who = principal_for(config, token)
    elif request.method in SAFE_METHODS:
        who = session_principal(request)
    else:
        who = None
    if who is None:
        raise HTTPException(
            401,
            "authentication required: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not has_role(who, role):
        raise HTTPException(403, f"the {who.role} role cannot do this; it needs {role}")
    return who


def has_role(who: Principal, role: str) -> bool:
    """Whether ``who`` may do what ``role`` may (``core.config.ROLE_GRANTS``; admin may do all)."""
    return role in ROLE_GRANTS[who.role]
