"""Outbound like the providers' own clients: ``Retry-After`` is honoured (Slack's 429, GitHub's
rate limits), and GitHub's 403 rate limits are retried rather than marking the row dead.

At paramedic's boundary against the loopback fakes of ``test_notify_sinks``, which answer as the
providers document: Slack incoming webhooks, "Rate limits" (HTTP 429 with ``Retry-After`` in
seconds); GitHub REST API, "Rate limits for the REST API" (403 or 429; secondary limits with
``retry-after``, or a message and "wait at least one minute"; primary limits with
``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` in UTC epoch seconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from paramedic.core.config import Config
from paramedic.core.errors import PermanentError, RetryableError
from paramedic.engine.service import Paramedic
from tests.conftest import write_runbooks
from tests.test_notify_outbox import NO_RUNBOOKS, _alert, _outbox_rows, _until
from tests.test_notify_sinks import FakeProvider, note, sinks

GITHUB = {"type": "github", "repo": "acme/payments", "token": "t"}


def raised(fake: FakeProvider, spec: dict[str, Any]) -> BaseException:
    with pytest.raises((RetryableError, PermanentError)) as err:
        sinks([{**spec, "api_url": fake.url} if spec["type"] == "github" else spec])(note())
    return err.value


def test_slack_429_retry_after_seconds(fake: FakeProvider) -> None:
    fake.answer = lambda seen: (429, "rate_limited", {"Retry-After": "30"})
    err = raised(fake, {"type": "slack", "webhook_url": f"{fake.url}/services/T/B/X"})
    assert isinstance(err, RetryableError)
    assert err.retry_after == timedelta(seconds=30)


def in_seconds(n: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=n)


def test_retry_after_as_an_http_date_is_read_against_the_servers_date(fake: FakeProvider) -> None:
    """The fake's own ``Date`` header is the server's clock; the wait is the difference."""
    fake.answer = lambda seen: (503, "busy", {"Retry-After": format_datetime(in_seconds(90), usegmt=True)})
    err = raised(fake, {"type": "slack", "webhook_url": f"{fake.url}/services/T/B/X"})
    assert isinstance(err, RetryableError)
    assert err.retry_after is not None
    assert timedelta(seconds=88) <= err.retry_after <= timedelta(seconds=90)


@pytest.mark.parametrize(
    ("status", "body", "headers", "wait"),
    [
        pytest.param(
            403,
            {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."},
            {"retry-after": "60"},
            timedelta(seconds=60),
            id="secondary-retry-after",
        ),
        pytest.param(
            403,
            {"message": "You have exceeded a secondary rate limit and have been temporarily blocked."},
            {},
            timedelta(minutes=1),
            id="secondary-no-header",
        ),
        pytest.param(
            429, {"message": "secondary rate limit"}, {"retry-after": "5"}, timedelta(seconds=5), id="429-retry-after"
        ),
    ],
)
def test_github_rate_limits_are_retried_after_the_wait_github_asks(
    fake: FakeProvider, status: int, body: Any, headers: dict[str, str], wait: timedelta
) -> None:
    fake.answer = lambda seen: (status, body, headers)
    err = raised(fake, GITHUB)
    assert isinstance(err, RetryableError)
    assert err.retry_after == wait


def test_github_primary_limit_waits_until_the_reset(fake: FakeProvider) -> None:
    body = {"message": "API rate limit exceeded for installation ID 1."}
    fake.answer = lambda seen: (
        403,
        body,
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(in_seconds(600).timestamp()))},
    )
    err = raised(fake, GITHUB)
    assert isinstance(err, RetryableError)
    assert err.retry_after is not None
    assert timedelta(seconds=598) <= err.retry_after <= timedelta(seconds=600)


def test_github_403_that_is_not_a_rate_limit_stays_permanent(fake: FakeProvider) -> None:
    fake.answer = lambda seen: (403, {"message": "Resource not accessible by integration"}, {})
    assert isinstance(raised(fake, GITHUB), PermanentError)


def test_the_outbox_waits_as_long_as_slack_asks(tmp_path: Path, slack: FakeProvider) -> None:
    """A 429 with ``Retry-After: 120`` puts the row's next attempt 120 s out, not at our own 1 s
    backoff, and the row stays pending (not dead)."""
    slack.answer = lambda seen: (429, "rate_limited", {"Retry-After": "120"})
    cfg = Config(
        database=f"sqlite:///{tmp_path / 'pm.db'}",
        runbooks=[str(write_runbooks(tmp_path / "rb", NO_RUNBOOKS))],
        sinks=[{"type": "slack", "name": "oncall", "webhook_url": f"{slack.url}/services/T/B/X"}],
    )

    async def go() -> Any:
        pm = Paramedic.from_config(cfg)
        await pm.start()
        try:
            await pm.ingest([_alert(1)])
            await _until(lambda: any(r.attempts >= 1 for r in _outbox_rows(pm, "oncall")), 15, "a failed attempt")
            return next(r for r in _outbox_rows(pm, "oncall") if r.attempts >= 1)
        finally:
            await pm.stop()

    row = asyncio.run(go())
    assert row.status == "pending"
    next_at = row.next_at if row.next_at.tzinfo else row.next_at.replace(tzinfo=UTC)
    assert next_at - datetime.now(UTC) > timedelta(seconds=100)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    f = FakeProvider()
    yield f
    f.close()


slack = fake
