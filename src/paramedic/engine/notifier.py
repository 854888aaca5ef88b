"""Delivers the durable outbox: claims due rows, builds each notification from the incident summary
(``engine.summary``), sends it through its sink, and retries with backoff. A row is marked sent
only after its sink accepted it, so a notification survives a crash or a restart and, once
delivered, is never sent again (one row per sink and dedup key).

Ordering and timing rules:
- Rows of one sink are sent in order; different sinks are served concurrently.
- A row waits while an earlier row of the same sink and incident is still pending, so a ticket is
  opened before it is commented on and a page is triggered before it is resolved.
- A row waits (up to the evidence budget after the incident was first seen) while the incident's
  evidence is still being collected, so the first message already carries the evidence.
- On a clean stop, rows claimed but not yet sent are released for the next instance at once;
  after a crash they come back when their claim lease expires.

Storms (``core.config.Notifications``):
- Escalations, approval requests and breaker trips are claimed before every other event.
- A row whose sink has other pending rows of the same event and alert group (at least
  ``group_min`` in all, created within ``group_interval``) is sent as one message listing them all
  (``summary.storm``); the others are marked sent inside it. Approval requests and assignments are
  never grouped: each needs its own decision.
- A sink sends at most ``rate_limit`` messages per ``rate_per`` (``log`` is not limited); a row over
  the limit waits, without counting an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, select, update

from paramedic.core.config import Notifications
from paramedic.core.errors import ActionError, RetryableError, StoreUnavailable
from paramedic.engine import summary
from paramedic.engine.clock import Clock
from paramedic.engine.enrichment import image_path
from paramedic.engine.metrics import METRICS
from paramedic.notify.base import LogSink, Notification, Sink
from paramedic.store import incidents as inc_repo
from paramedic.store import outbox, state
from paramedic.store.db import Database
from paramedic.store.tables import evidence
from paramedic.store.tables import outbox as outbox_table

log = logging.getLogger("paramedic.notifier")
MAX_ATTEMPTS = 12
LEASE = timedelta(seconds=120)  # > CLAIM_LIMIT sends of one sink at the HTTP timeout
CLAIM_LIMIT = 10
WAIT = timedelta(milliseconds=500)
INCIDENT_PATH = "/api/v1/incidents/{id}"
NEVER_GROUPED = frozenset({"approval_needed", "assigned", "breaker_opened"})  # each needs its own decision


class SettingsTickets:
    """``notify.base.TicketStore`` over the ``settings`` table (keys ``ticket:{sink}:{incident}``)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def get(self, key: str) -> str | None:
        def q() -> str | None:
            with self.db.read() as conn:
                value = state.get_setting(conn, key)
            return None if value is None else str(value)

        return await asyncio.to_thread(q)

    async def put(self, key: str, value: str) -> None:
        def w() -> None:
            with self.db.write(serial=False) as conn:
                state.put_setting(conn, key, value, now=self.clock(), by="notifier")

        await asyncio.to_thread(self.db.retrying, w)


@dataclass(frozen=True, slots=True)
class _Wait:
    reason: str


class Notifier:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        sinks: list[Sink] | None = None,
        *,
        collecting: Callable[[int], bool] | None = None,
        evidence_budget: float = 10.0,
        policy: Notifications | None = None,
    ) -> None:
        self.policy = policy or Notifications()
        self.db = db
        self.clock = clock
        self.sinks: dict[str, Sink] = {s.name: s for s in (sinks or [])}
        self.sinks.setdefault("log", LogSink())
        self._collecting = collecting or (lambda _incident: False)
        self._evidence_wait = timedelta(seconds=evidence_budget + 2)
        self._kick = asyncio.Event()
        self._claimed: set[int] = set()

    def kick(self) -> None:
        self._kick.set()

    # -- building a notification -------------------------------------------------------------
    def _prepare(self, item: outbox.OutboxItem, now: datetime) -> Notification | _Wait:
        """The notification for ``item``, or why it has to wait."""
        iid = item.incident_id
        with self.db.read() as conn:
            if not outbox.pending(conn, item.id):
                return _Wait("")  # sent meanwhile, inside a storm message
            if iid is not None:
                earlier = conn.execute(
                    select(outbox_table.c.id)
                    .where(
                        and_(
                            outbox_table.c.sink == item.sink,
                            outbox_table.c.incident_id == iid,
                            outbox_table.c.status == "pending",
                            outbox_table.c.id < item.id,
                        )
                    )
                    .limit(1)
                ).first()
                if earlier is not None:
                    return _Wait(f"row {earlier.id} of the same incident goes first")
                if self._collecting(iid):
                    return _Wait("evidence is being collected")
                incident = inc_repo.get(conn, iid)
                has_evidence = conn.execute(select(evidence.c.id).where(evidence.c.incident_id == iid).limit(1)).first()
                if incident is not None and has_evidence is None and now - incident.first_seen_at < self._evidence_wait:
                    return _Wait("evidence is being collected (elsewhere)")
            s = summary.build(conn, incident_id=iid, event=item.event, payload=item.payload, now=now)
        path = ""
        if iid is not None and s.chart_id is not None:
            with self.db.write(serial=False) as conn:
                path = image_path(conn, iid, s.chart_id, now=now)
        incident_path = INCIDENT_PATH.format(id=iid) if iid is not None else ""
        detected = {"detected_at": s.detected_at.isoformat()} if s.detected_at else {}
        return Notification(
            event=item.event,
            incident_id=iid,
            title=s.title,
            summary_markdown=s.markdown,
            severity=s.severity,
            dedup_key=item.dedup_key,
            links={k: v for k, v in {"incident": incident_path, "chart": path}.items() if v},
            data={**dict(item.payload), **detected},
            status=s.status,
            labels=s.labels,
            image=s.image,
            image_path=path,
            incident_path=incident_path,
        )

    # -- delivery ------------------------------------------------------------------------------
    async def deliver_once(self) -> int:
        """Claim due rows and deliver them; returns how many were claimed."""
        now = self.clock()

        def claim() -> list[outbox.OutboxItem]:
            with self.db.write(serial=False) as conn:
                return outbox.claim(conn, now=now, lease=LEASE, limit=CLAIM_LIMIT)

        items = await asyncio.to_thread(claim)
        self._claimed.update(i.id for i in items)
        by_sink: dict[str, list[outbox.OutboxItem]] = {}
        for item in items:
            by_sink.setdefault(item.sink, []).append(item)
        await asyncio.gather(*(self._deliver_sink(group) for group in by_sink.values()))
        return len(items)

    async def _deliver_sink(self, items: list[outbox.OutboxItem]) -> None:
        for item in items:
            await self._deliver(item)
            self._claimed.discard(item.id)

    async def _deliver(self, item: outbox.OutboxItem) -> None:
        sink = self.sinks.get(item.sink)
        error, retry, wait = "", True, None
        carried: list[outbox.GroupMember] = []
        if sink is None:
            error, retry = f"sink {item.sink!r} is not configured", False
        else:
            try:
                prepared = await asyncio.to_thread(self._prepare, item, self.clock())
                if isinstance(prepared, _Wait):
                    if prepared.reason:
                        await asyncio.to_thread(self._postpone, item.id, self.clock() + WAIT)
                    return
                if item.sink != "log" and await asyncio.to_thread(self._over_limit, item.sink, self.clock()):
                    METRICS.notifications.labels(sink=item.sink, result="rate_limited").inc()
                    await asyncio.to_thread(self._postpone, item.id, self.clock() + 4 * WAIT)
                    return
                carried = await asyncio.to_thread(self._group, item, self.clock())
                if carried:
                    prepared = self._storm(prepared, carried)
                try:
                    await sink.send(prepared)
                except BaseException:
                    carried_ids = [m.row_id for m in carried[1:]]
                    carried = []
                    await asyncio.to_thread(self._release_rows, carried_ids)
                    raise
            except StoreUnavailable:
                raise
            except RetryableError as exc:
                error, wait = str(exc), exc.retry_after
            except ActionError as exc:
                error, retry = str(exc), exc.retryable
            except Exception as exc:  # a sink bug must not stop the outbox; the row records it
                log.exception("sink %s failed on %s", item.sink, item.dedup_key)
                error = f"{type(exc).__name__}: {exc}"
        done = self.clock()
        rows = [m.row_id for m in carried[1:]] if not error else []
        await asyncio.to_thread(self._mark, item, error=error, retry=retry, done=done, wait=wait, carried=rows)
        METRICS.notifications.labels(sink=item.sink, result="sent" if not error else "failed").inc()
        if error:
            log.warning("notification %s via %s failed: %s", item.dedup_key, item.sink, error)

    # -- storms --------------------------------------------------------------------------------
    def _over_limit(self, sink: str, now: datetime) -> bool:
        with self.db.read() as conn:
            return outbox.messages_since(conn, sink, now - self.policy.rate_per) >= self.policy.rate_limit

    def _group(self, item: outbox.OutboxItem, now: datetime) -> list[outbox.GroupMember]:
        if item.event in NEVER_GROUPED:
            return []
        with self.db.write(serial=False) as conn:
            return outbox.claim_group(
                conn,
                item,
                now=now,
                lease=LEASE,
                interval=self.policy.group_interval,
                minimum=self.policy.group_min,
            )

    def _storm(self, note: Notification, members: list[outbox.GroupMember]) -> Notification:
        title, markdown = summary.storm(
            [(m.incident_id, m.alertname, m.instance) for m in members],
            event=note.event,
            interval=self.policy.group_interval,
        )
        data = {**dict(note.data), "incidents": [m.incident_id for m in members], "storm": len(members)}
        return dataclasses.replace(note, title=title, summary_markdown=markdown, data=data, image=None, image_path="")

    def _release_rows(self, ids: list[int]) -> None:
        with self.db.write(serial=False) as conn:
            outbox.release(conn, ids)

    def _postpone(self, item_id: int, until: datetime) -> None:
        """Let the row be claimed again at ``until``, without counting an attempt."""
        with self.db.write(serial=False) as conn:
            conn.execute(update(outbox_table).where(outbox_table.c.id == item_id).values(lease_until=until))

    def _mark(
        self,
        item: outbox.OutboxItem,
        *,
        error: str,
        retry: bool,
        done: datetime,
        wait: timedelta | None = None,
        carried: list[int] | None = None,
    ) -> None:
        with self.db.write(serial=False) as conn:
            if not error:
                outbox.mark_sent(conn, item.id, now=done, carried=carried or ())
                return
            again = retry and item.attempts + 1 < MAX_ATTEMPTS
            # the provider's Retry-After, when it gave one, wins over our own backoff if longer
            delay = max(timedelta(seconds=min(300, 2**item.attempts)), wait or timedelta(0))
            outbox.mark_failed(conn, item.id, now=done, error=error, retry_at=done + delay if again else None)

    def _release(self) -> None:
        """Give back rows claimed but not delivered (a clean stop), for the next instance."""
        ids, self._claimed = list(self._claimed), set()
        if not ids:
            return
        with contextlib.suppress(StoreUnavailable), self.db.write(serial=False) as conn:
            conn.execute(
                update(outbox_table)
                .where(and_(outbox_table.c.id.in_(ids), outbox_table.c.status == "pending"))
                .values(lease_until=None)
            )

    async def run(self) -> None:
        try:
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
        finally:
            self._release()
