"""Signed session cookies for the web UI, and the CSRF tokens bound to them.

A user logs in once with an API token; the answer is a session cookie that holds no secret: the
token's name, its role, a short fingerprint of the token's hash, a random session id and an expiry,
signed with HMAC-SHA256. The cookie is ``HttpOnly`` and ``SameSite=Strict`` (and ``Secure`` over
HTTPS). Every request re-checks the session against the configured tokens, so removing or rotating
a token in ``paramedic.yaml`` ends its sessions, and a changed role applies at once.

The signing key comes from the environment variable named by ``auth.session_secret_env`` (needed
when several replicas serve the UI behind one load balancer), else it is random per process: a
restart then logs everyone out, which is acceptable for a tool used in bursts.

CSRF protection is a signed double-submit token: a random ``paramedic_csrf`` cookie, and in every
form an HMAC of that cookie and the session id. A cross-site page can neither read the cookie nor
compute the HMAC; the Origin check in ``api.csrf`` is the second, independent layer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from paramedic.core.config import Config
from paramedic.core.errors import ConfigError

SESSION_COOKIE = "paramedic_session"
CSRF_COOKIE = "paramedic_csrf"
SESSION_TTL = timedelta(hours=12)  # one on-call night; then log in again
_KEY_LEN = 16  # hex characters of the token hash kept in the cookie to notice a rotated token


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid session cookie says; ``key`` is a fingerprint of the token's SHA-256."""

    name: str
    role: str
    key: str
    sid: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_secret(config: Config) -> bytes:
    """The signing key: from ``auth.session_secret_env`` (read when the config was loaded,
    ``engine.settings.resolve_secrets``) when set, else random for this process."""
    env = config.auth.session_secret_env if config.auth else None
    if config.auth is not None and env:
        value = config.auth.session_secret.get_secret_value() if config.auth.session_secret else ""
        if len(value) < 32:
            raise ConfigError(
                f"auth.session_secret_env names {env}, which must hold at least 32 characters"
                " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return hashlib.sha256(b"paramedic-session|" + value.encode()).digest()
    return secrets.token_bytes(32)


class SessionCodec:
    """Issues and reads session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, message: str) -> str:
        return _b64(hmac.new(self._secret, message.encode(), hashlib.sha256).digest())

    def issue(self, *, name: str, role: str, token_sha256: str, now: datetime) -> str:
        payload = {
            "n": name,
            "r": role,
            "k": token_sha256[:_KEY_LEN],
            "s": secrets.token_urlsafe(16),
            "e": int((now + SESSION_TTL).timestamp()),
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._sign('session|' + body)}"

    def read(self, value: str | None, *, now: datetime) -> Session | None:
        """The session in ``value`` if its signature holds and it has not expired; else None."""
        if not value or value.count(".") != 1:
            return None
        body, sig = value.split(".")
        if not hmac.compare_digest(sig, self._sign("session|" + body)):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(
                name=str(data["n"]), role=str(data["r"]), key=str(data["k"]), sid=str(data["s"]), expires=int(data["e"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > now.timestamp() else None

    def csrf_token(self, csrf_cookie: str, sid: str) -> str:
        """The token a form must carry: bound to this browser's CSRF cookie and to the session."""
        return self._sign(f"csrf|{csrf_cookie}|{sid}")

    def csrf_ok(self, token: str, csrf_cookie: str, sid: str) -> bool:
        return bool(token) and bool(csrf_cookie) and hmac.compare_digest(token, self.csrf_token(csrf_cookie, sid))


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


def key_of(token_sha256: str) -> str:
    return token_sha256[:_KEY_LEN]
