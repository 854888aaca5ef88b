"""Delivers the durable outbox: claims due rows, sends them through the configured sinks, and
retries with backoff. A row is marked sent only after its sink accepted it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from paramedic.core.errors import ActionError, StoreUnavailable
from paramedic.engine.clock import Clock
from paramedic.engine.metrics import METRICS
from paramedic.notify.base import LogSink, Notification, Sink
from paramedic.store import incidents as inc_repo
from paramedic.store import outbox
from paramedic.store.db import Database

log = logging.getLogger("paramedic.notifier")
MAX_ATTEMPTS = 12


class Notifier:
    def __init__(self, db: Database, clock: Clock, sinks: list[Sink] | None = None) -> None:
        self.db = db
        self.clock = clock
        self.sinks: dict[str, Sink] = {s.name: s for s in (sinks or [])}
        self.sinks.setdefault("log", LogSink())
        self._kick = asyncio.Event()

    def kick(self) -> None:
        self._kick.set()

    def _note(self, item: outbox.OutboxItem) -> Notification:
        incident = None
        if item.incident_id is not None:
            with self.db.read() as conn:
                incident = inc_repo.get(conn, item.incident_id)
        title = f"[{item.event}] " + (
            f"{incident.alertname} {incident.labels.get('instance', '')}".strip() if incident else "paramedic"
        )
        reason = str(item.payload.get("reason", ""))
        body = f"**{title}**\n\n{reason}" if reason else f"**{title}**"
        return Notification(
            event=item.event,
            incident_id=item.incident_id,
            title=title,
            summary_markdown=body,
            severity=incident.severity if incident else "",
            dedup_key=item.dedup_key,
            data=dict(item.payload),
        )

    async def deliver_once(self) -> int:
        now = self.clock()

        def claim() -> list[outbox.OutboxItem]:
            with self.db.write() as conn:
                return outbox.claim(conn, now=now, lease=timedelta(seconds=60))

        items = await asyncio.to_thread(claim)
        for item in items:
            sink = self.sinks.get(item.sink)
            error = ""
            retry = True
            if sink is None:
                error, retry = f"sink {item.sink!r} is not configured", False
            else:
                try:
                    note = await asyncio.to_thread(self._note, item)
                    await sink.send(note)
                except ActionError as exc:
                    error, retry = str(exc), exc.retryable
                except Exception as exc:  # a sink bug must not stop the outbox; the row records it
                    error = f"{type(exc).__name__}: {exc}"
            done = self.clock()

            await asyncio.to_thread(self._mark, item, error=error, retry=retry, done=done)
            METRICS.notifications.labels(sink=item.sink, result="sent" if not error else "failed").inc()
            if error:
                log.warning("notification %s via %s failed: %s", item.dedup_key, item.sink, error)
        return len(items)

    def _mark(self, item: outbox.OutboxItem, *, error: str, retry: bool, done: datetime) -> None:
        with self.db.write() as conn:
            if not error:
                outbox.mark_sent(conn, item.id, now=done)
                return
            again = retry and item.attempts + 1 < MAX_ATTEMPTS
            delay = timedelta(seconds=min(300, 2**item.attempts))
            outbox.mark_failed(conn, item.id, now=done, error=error, retry_at=done + delay if again else None)

    async def run(self) -> None:
        while True:
            self._kick.clear()
            try:
                n = await self.deliver_once()
            except StoreUnavailable as exc:
                log.error("outbox: %s", exc)
                n = 0
            if n == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kick.wait(), 1.0)
