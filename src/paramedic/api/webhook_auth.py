"""Authentication of the webhook endpoints (alerts and changes), the way each sender does it.

A delivery to a source passes when one of these holds, tried in order:

1. one of the source's ``auth.webhooks`` credentials (bearer, Basic, or a signature:
   ``core.signatures`` lists the schemes); with no entry for the source, the shared
   ``auth.webhook`` (bearer hash, body HMAC) as before;
2. an API token whose role may send (``sender``, ``admin``); a viewer's or responder's token is
   refused with 403, since a posted alert runs ``auto`` runbooks.

A signature with a timestamp is refused outside its window; inside it, the signed request is
claimed in ``store.seen`` (shared by every replica, kept across restarts) so its replay is not
processed again: it is answered ``200 {"duplicate": true}`` (a sender retrying a delivery that was
stored sees success; an attacker's replay does nothing). The claim is released when the delivery
is not answered 2xx, so the sender's own retry of a failed delivery passes (``release_claim``).
Without ``auth`` (open mode, loopback only) every delivery passes.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from fastapi import HTTPException, Request

from paramedic.api.auth import _bearer, has_role, principal_for, sha256_hex
from paramedic.core.config import Config, WebhookCredential
from paramedic.core.signatures import (
    SignatureRefused,
    Verified,
    verify_github,
    verify_grafana,
    verify_pagerduty,
    verify_standard,
)
from paramedic.store import seen

WEBHOOK = "webhook"  # the kind of ``store.seen`` key that marks a signed request already received
CLAIM = "paramedic_webhook_claim"  # request.state attribute holding the claimed key


class DuplicateDelivery(Exception):
    """A signed request already received inside its window: answered 200, nothing done again."""

    def __init__(self, source: str, key: str) -> None:
        super().__init__(f"{source}: {key} was already received")
        self.source = source
        self.key = key


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _secret_matches(cred: WebhookCredential, given: str) -> bool:
    if cred.sha256:
        return hmac.compare_digest(sha256_hex(given), cred.sha256)
    return cred.secret is not None and hmac.compare_digest(given.encode(), cred.secret.get_secret_value().encode())


def _check(cred: WebhookCredential, request: Request, body: bytes) -> Verified | None:
    """The verified signature, or None when this credential does not accept the request."""
    headers = request.headers
    now = request.app.state.pm.clock()
    secret = cred.secret.get_secret_value() if cred.secret else ""
    try:
        match cred.scheme:
            case "bearer":
                token = _bearer(request)
                return Verified(None, None) if token and _secret_matches(cred, token) else None
            case "basic":
                pair = _basic(request)
                if pair is None or not hmac.compare_digest(pair[0].encode(), (cred.username or "").encode()):
                    return None
                return Verified(None, None) if _secret_matches(cred, pair[1]) else None
            case "standard":
                return verify_standard(headers, body, secret, now=now, tolerance=cred.tolerance)
            case "pagerduty":
                return verify_pagerduty(headers, body, secret)
            case "github":
                return verify_github(headers, body, secret)
            case "grafana":
                return verify_grafana(
                    headers,
                    body,
                    secret,
                    header=cred.header,
                    timestamp_header=cred.timestamp_header,
                    now=now,
                    tolerance=cred.tolerance,
                )
    except SignatureRefused as exc:
        request.state.paramedic_refusal = f"{cred.scheme}: {exc}"
    return None


def _legacy(config: Config, request: Request, body: bytes, source: str) -> bool:
    wh = config.auth.webhook if config.auth else None
    if wh is None:
        return False
    token = _bearer(request)
    if wh.bearer_sha256 and token and hmac.compare_digest(sha256_hex(token), wh.bearer_sha256):
        return True
    if wh.hmac_secret is None:
        return False
    secret = wh.hmac_secret.get_secret_value()
    for verify in (verify_github, verify_pagerduty) if source == "pagerduty" else (verify_github,):
        try:
            verify(request.headers, body, secret)
            return True
        except SignatureRefused:
            continue
    return False


async def authenticate(request: Request, body: bytes, *, source: str) -> None:
    """Let the delivery in, or raise 401/403 (``HTTPException``) or ``DuplicateDelivery``."""
    config: Config = request.app.state.config
    if config.auth is None:
        return
    own = [c for c in config.auth.webhooks if c.source == source]
    verified = next((v for c in own if (v := _check(c, request, body)) is not None), None)
    if verified is None and not own and _legacy(config, request, body, source):
        verified = Verified(None, None)
    if verified is None:
        token = _bearer(request)
        who = principal_for(config, token) if token else None
        if who is not None and not has_role(who, "sender"):
            raise HTTPException(403, f"the {who.role} role cannot post alerts or changes; use a sender token")
        if who is None:
            why = getattr(request.state, "paramedic_refusal", "")
            raise HTTPException(
                401,
                f"webhook authentication failed for {source}: send the bearer token or a valid signature"
                + (f" ({why})" if why else ""),
                headers={"WWW-Authenticate": "Bearer"},
            )
        return
    if verified.replay_key is not None and verified.until is not None:
        key = f"{source}|{verified.replay_key}"[:256]
        pm = request.app.state.pm
        if not await pm.write(seen.claim, kind=WEBHOOK, key=key, expires_at=verified.until, now=pm.clock()):
            raise DuplicateDelivery(source, key)
        setattr(request.state, CLAIM, key)


async def release_claim(request: Request, status: int) -> None:
    """After the answer: a delivery not answered 2xx gives its claim back, so its retry passes."""
    key = getattr(request.state, CLAIM, None)
    if key is not None and not 200 <= status < 300:
        await request.app.state.pm.write(seen.release, kind=WEBHOOK, key=key)
