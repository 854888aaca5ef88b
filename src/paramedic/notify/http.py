"""One HTTP call for the HTTP sinks, with the provider's answer translated into the error tree:
connection failures, timeouts, 408, 429 and 5xx are ``RetryableError`` (the outbox retries with
backoff); any other status outside ``ok`` is ``PermanentError``. Messages never contain the URL,
which for Slack and some webhooks is itself the secret.

Like the providers' own clients, a ``Retry-After`` (seconds, or an HTTP date read against the
response's ``Date``) becomes the error's ``retry_after``, and the outbox waits at least that long
(Slack's 429; GitHub's rate limits). GitHub answers its rate limits with 403 as well as 429
(REST API docs, "Rate limits": primary, ``x-ratelimit-remaining: 0`` until ``x-ratelimit-reset``;
secondary, ``retry-after`` or else "wait at least one minute"), so such a 403 is retryable, not
a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from paramedic.core.audit import redact_text
from paramedic.core.errors import PermanentError, RetryableError

TIMEOUT = 10.0
USER_AGENT = "paramedic"  # GitHub requires one; a version would import the package root


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    json: Any = None,
    content: bytes | None = None,
    files: Mapping[str, tuple[str, bytes, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201, 202, 204),
    timeout: float = TIMEOUT,
) -> httpx.Response:
    """Send one request; return the response if its status is in ``ok``, else raise."""
    hdrs = {"User-Agent": USER_AGENT, **dict(headers or {})}
    try:
        resp = await client.request(method, url, json=json, content=content, files=files, headers=hdrs, timeout=timeout)
    except httpx.TimeoutException:
        raise RetryableError(f"{what}: no answer within {timeout:g}s", reason="timeout") from None
    except httpx.HTTPError as exc:
        raise RetryableError(f"{what}: {type(exc).__name__}: {redact_text(str(exc))}", reason="unreachable") from None
    if resp.status_code in ok:
        return resp
    detail = redact_text(" ".join(resp.text.split())[:300])
    message = f"{what} answered {resp.status_code}" + (f": {detail}" if detail else "")
    wait = retry_after(resp)
    if resp.status_code in (408, 429) or resp.status_code >= 500:
        raise RetryableError(
            message, reason="rate_limited" if resp.status_code == 429 else "unavailable", retry_after=wait
        )
    if resp.status_code == 403 and (limited := github_rate_limit(resp, wait)) is not None:
        raise RetryableError(message, reason="rate_limited", retry_after=limited)
    raise PermanentError(message, reason="refused")


MAX_RETRY_AFTER = timedelta(hours=1)  # a provider's answer, not a reason to park a page for a day
SECONDARY_LIMIT_WAIT = timedelta(minutes=1)  # GitHub: "wait for at least one minute"


def _bounded(seconds: float) -> timedelta:
    return min(MAX_RETRY_AFTER, timedelta(seconds=max(0.0, seconds)))


def _server_now(resp: httpx.Response) -> datetime | None:
    raw = resp.headers.get("date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None


def retry_after(resp: httpx.Response) -> timedelta | None:
    """The wait a ``Retry-After`` header asks for (RFC 9110 §10.2.3), bounded; ``None`` if absent
    or unreadable. An HTTP date is read against the response's own ``Date`` (no local clock)."""
    raw = (resp.headers.get("retry-after") or "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return _bounded(float(raw[:12]))
    now = _server_now(resp)
    try:
        at = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if now is None or at.tzinfo is None or now.tzinfo is None:
        return None
    return _bounded((at - now).total_seconds())


def github_rate_limit(resp: httpx.Response, wait: timedelta | None) -> timedelta | None:
    """How long to wait when a 403 is GitHub's rate limit, else ``None`` (a real refusal)."""
    if wait is not None:
        return wait
    if resp.headers.get("x-ratelimit-remaining") == "0":
        reset, now = resp.headers.get("x-ratelimit-reset", ""), _server_now(resp)
        if reset.isdigit() and now is not None:
            return _bounded(int(reset[:12]) - now.timestamp())
        return SECONDARY_LIMIT_WAIT
    if "rate limit" in resp.text[:2000].lower():
        return SECONDARY_LIMIT_WAIT
    return None
