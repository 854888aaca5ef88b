"""Webhook signatures as each sender computes them, checked in constant time. Pure: the caller
passes the headers, the raw body, the secret and ``now``; nothing here reads a clock or a database.

- ``standard`` (Standard Webhooks): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64> …`` over ``id.timestamp.body``; the key is the base64 after ``whsec_``.
- ``pagerduty`` (v3 webhooks): ``X-PagerDuty-Signature: v1=<hex>,v1=<hex>`` over the body.
- ``github`` (and paramedic's own ``X-Paramedic-Signature``): ``X-Hub-Signature-256: sha256=<hex>``
  over the body.
- ``grafana`` (a contact point's HMAC): ``X-Grafana-Alerting-Signature: <hex>`` (the name is
  configurable) over ``timestamp:body`` when the contact point sets a timestamp header, else the body.

Several signatures in one header (a secret rotation) pass when any one matches. A scheme with a
timestamp is refused outside ``tolerance`` of ``now``; the caller then remembers the delivery's
``replay_key`` for that window, so the same signed request is accepted once. PagerDuty and GitHub
sign the body only: such a request can be replayed, which is why the integration guide prefers a
scheme with a timestamp where the sender has one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Scheme(StrEnum):
    BEARER = "bearer"
    BASIC = "basic"
    STANDARD = "standard"
    PAGERDUTY = "pagerduty"
    GITHUB = "github"
    GRAFANA = "grafana"


GRAFANA_HEADER = "x-grafana-alerting-signature"
DEFAULT_TOLERANCE = timedelta(minutes=5)


class SignatureRefused(Exception):
    """The request's signature does not hold; ``str()`` says which part, never the secret."""


@dataclass(frozen=True, slots=True)
class Verified:
    """A signature that holds. ``replay_key`` identifies the signed request; it is None for
    schemes without a timestamp, and ``until`` is when a replay of it would be refused anyway."""

    replay_key: str | None
    until: datetime | None


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _any_equal(candidates: list[str], expected: str) -> bool:
    # compare every candidate, so the time taken does not say which one matched
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(candidate.strip().encode(), expected.encode())
    return found


def _timestamp(raw: str, *, now: datetime, tolerance: timedelta, header: str) -> datetime:
    if not raw.strip().isdigit():
        raise SignatureRefused(f"{header} must be Unix seconds, not {raw[:40]!r}")
    at = datetime.fromtimestamp(int(raw.strip()), tz=UTC)
    skew = abs((now - at).total_seconds())
    if skew > tolerance.total_seconds():
        raise SignatureRefused(
            f"{header} is {skew:.0f}s away from paramedic's clock (window {tolerance.total_seconds():.0f}s):"
            " a replayed request, or a sender whose clock is wrong"
        )
    return at


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after ``whsec_``; any other secret as is."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error as exc:
            raise SignatureRefused("the configured whsec_ secret is not base64") from exc
    return secret.encode()


def sign_standard(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value a Standard Webhooks sender puts on this message."""
    digest = _hmac(standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body)
    return "v1," + base64.b64encode(digest).decode()


def verify_standard(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: datetime, tolerance: timedelta
) -> Verified:
    msg_id = headers.get("webhook-id", "")
    raw_ts = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    missing = [
        h
        for h, v in (("webhook-id", msg_id), ("webhook-timestamp", raw_ts), ("webhook-signature", signatures))
        if not v
    ]
    if missing:
        raise SignatureRefused(f"missing {', '.join(missing)}")
    at = _timestamp(raw_ts, now=now, tolerance=tolerance, header="webhook-timestamp")
    expected = sign_standard(secret, msg_id=msg_id, timestamp=int(raw_ts), body=body)
    if not _any_equal([s for s in signatures.split(" ") if s.startswith("v1,")], expected):
        raise SignatureRefused("no webhook-signature entry matches")
    return Verified(replay_key=f"id:{msg_id}", until=at + tolerance)


def verify_pagerduty(headers: Mapping[str, str], body: bytes, secret: str) -> Verified:
    header = headers.get("x-pagerduty-signature", "")
    if not header:
        raise SignatureRefused("missing X-PagerDuty-Signature")
    expected = "v1=" + _hmac(secret.encode(), body).hex()
    if not _any_equal(header.split(","), expected):
        raise SignatureRefused("no X-PagerDuty-Signature entry matches")
    return Verified(replay_key=None, until=None)


def verify_github(headers: Mapping[str, str], body: bytes, secret: str) -> Verified:
    header = headers.get("x-hub-signature-256", "") or headers.get("x-paramedic-signature", "")
    if not header:
        raise SignatureRefused("missing X-Hub-Signature-256")
    if not _any_equal([header], "sha256=" + _hmac(secret.encode(), body).hex()):
        raise SignatureRefused("X-Hub-Signature-256 does not match")
    return Verified(replay_key=None, until=None)


def sign_grafana(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """What Grafana's contact point puts in its signature header (hex HMAC-SHA256)."""
    message = body if timestamp is None else f"{timestamp}:".encode() + body
    return _hmac(secret.encode(), message).hex()


def verify_grafana(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    header: str,
    timestamp_header: str | None,
    now: datetime,
    tolerance: timedelta,
) -> Verified:
    signature = headers.get(header.lower(), "")
    if not signature:
        raise SignatureRefused(f"missing {header}")
    if timestamp_header is None:
        if not _any_equal([signature], sign_grafana(secret, body)):
            raise SignatureRefused(f"{header} does not match")
        return Verified(replay_key=None, until=None)
    raw_ts = headers.get(timestamp_header.lower(), "")
    if not raw_ts:
        raise SignatureRefused(f"missing {timestamp_header}")
    at = _timestamp(raw_ts, now=now, tolerance=tolerance, header=timestamp_header)
    if not _any_equal([signature], sign_grafana(secret, body, timestamp=int(raw_ts))):
        raise SignatureRefused(f"{header} does not match")
    # Grafana signs each attempt anew with the time of sending: the signature names the request
    return Verified(replay_key=f"sig:{signature.strip().lower()}", until=at + tolerance)
