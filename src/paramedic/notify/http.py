"""One HTTP call for the HTTP sinks, with the provider's answer translated into the error tree:
connection failures, timeouts, 408, 429 and 5xx are ``RetryableError`` (the outbox retries with
backoff); any other status outside ``ok`` is ``PermanentError``. Messages never contain the URL,
which for Slack and some webhooks is itself the secret."""

from __future__ import annotations

from collections.abc import Mapping
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
    if resp.status_code in (408, 429) or resp.status_code >= 500:
        raise RetryableError(message, reason="unavailable")
    raise PermanentError(message, reason="refused")
