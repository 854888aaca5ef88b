"""Silence while fixing: no human is paged by Alertmanager for an alert paramedic is already
remediating.

When a worker claims a run that is about to act on an Alertmanager alert, this module creates a
silence for exactly that alert (every label, equal match) through Alertmanager's API v2
(``POST /api/v2/silences``), with a comment naming the incident and the runbook and an expiry of
``silences.duration`` — so a crashed paramedic can never keep a human from being paged for longer
than that. When the run ends, whatever its outcome, the silence is expired
(``DELETE /api/v2/silence/{id}``): a failed remediation escalates, and Alertmanager pages as usual.

The silence ID is kept in the ``settings`` table (``silence:<incident>``) so a resumed run or
another replica finds it. Creating or expiring a silence never blocks a remediation: a failure is
logged and audited, and the human is paged as if paramedic had not tried (the safe side).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Connection

from paramedic.core.config import Silences
from paramedic.engine.clock import Clock
from paramedic.store import audit, state
from paramedic.store import incidents as inc_repo
from paramedic.store.db import Database
from paramedic.store.rows import IncidentRow, RunRow

log = logging.getLogger(__name__)
_SILENCE_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
SOURCES = frozenset({"alertmanager"})  # alerts that live in an Alertmanager


def silence_body(incident: IncidentRow, run: RunRow, *, now: datetime, ends: datetime, link: str) -> dict[str, Any]:
    """The API v2 ``postableSilence`` for exactly this alert: every label, equal, not a regex."""
    where = f" {link.rstrip('/')}/incidents/{incident.id}" if link else ""
    return {
        "matchers": [
            {"name": name, "value": value, "isRegex": False, "isEqual": True}
            for name, value in sorted(incident.labels.items())
        ],
        "startsAt": _iso(now),
        "endsAt": _iso(ends),
        "createdBy": "paramedic",
        "comment": f"paramedic is remediating incident #{incident.id} with runbook {run.runbook}; "
        f"expired when the run ends.{where}",
    }


class Silencer:
    """Creates a silence when a run starts acting and expires it when the run ends."""

    def __init__(self, *, db: Database, clock: Clock, http: Callable[[], httpx.AsyncClient], cfg: Silences) -> None:
        self.db, self.clock, self._http, self.cfg = db, clock, http, cfg
        self.base = cfg.alertmanager_url.rstrip("/")

    async def on_claimed(self, run: RunRow) -> None:
        """Called by a worker right after it claims ``run`` and before any step executes."""
        key = _key(run.incident_id)
        incident, existing = await asyncio.to_thread(self._read, run.incident_id, key)
        if existing is not None or incident is None or incident.source not in SOURCES or not incident.labels:
            return
        now = self.clock()
        body = silence_body(incident, run, now=now, ends=now + self.cfg.duration, link=self.cfg.link)
        try:
            resp = await self._http().post(f"{self.base}/api/v2/silences", json=body, timeout=5)
            resp.raise_for_status()
            silence_id = str(resp.json().get("silenceID", ""))
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            await self._note_failure(run, "create", exc)
            return
        if not _SILENCE_ID.match(silence_id):
            await self._note_failure(run, "create", ValueError(f"unexpected silence id {silence_id[:80]!r}"))
            return
        await asyncio.to_thread(self._created, run, key, silence_id, body["endsAt"])

    async def on_finished(self, run: RunRow, ok: bool, reason: str) -> None:
        """A ``Paramedic.run_hooks`` entry: expire the run's silence, whatever the outcome."""
        key = _key(run.incident_id)
        _, existing = await asyncio.to_thread(self._read, run.incident_id, key, incident=False)
        if not isinstance(existing, dict) or not _SILENCE_ID.match(str(existing.get("id", ""))):
            return
        silence_id = str(existing["id"])
        try:
            resp = await self._http().delete(f"{self.base}/api/v2/silence/{silence_id}", timeout=5)
            if resp.status_code not in (200, 404):  # 404: it expired or was removed already
                resp.raise_for_status()
        except httpx.HTTPError as exc:
            await self._note_failure(run, "expire", exc)
            return  # the silence still ends at its endsAt
        await asyncio.to_thread(self._expired, run, key, silence_id, "succeeded" if ok else "failed")

    # ---- storage ---------------------------------------------------------------------------------
    def _read(self, incident_id: int, key: str, *, incident: bool = True) -> tuple[IncidentRow | None, Any]:
        with self.db.read() as conn:
            row = inc_repo.get(conn, incident_id) if incident else None
            return row, state.get_setting(conn, key)

    def _created(self, run: RunRow, key: str, silence_id: str, ends: str) -> None:
        with self.db.write() as conn:
            state.put_setting(conn, key, {"id": silence_id, "url": self.base}, now=self.clock(), by="paramedic")
            self._audit(conn, run, "silence.created", {"silence_id": silence_id, "ends_at": ends})
        log.info("incident %s: silenced in Alertmanager while run %s acts (%s)", run.incident_id, run.id, silence_id)

    def _expired(self, run: RunRow, key: str, silence_id: str, outcome: str) -> None:
        with self.db.write() as conn:
            state.delete_setting(conn, key)
            self._audit(conn, run, "silence.expired", {"silence_id": silence_id, "run": outcome})

    async def _note_failure(self, run: RunRow, what: str, exc: BaseException) -> None:
        detail = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("incident %s: cannot %s the Alertmanager silence: %s", run.incident_id, what, detail)

        def write() -> None:
            with self.db.write() as conn:
                self._audit(conn, run, "silence.failed", {"what": what, "error": detail})

        await asyncio.to_thread(write)

    def _audit(self, conn: Connection, run: RunRow, kind: str, data: dict[str, Any]) -> None:
        audit.append(conn, at=self.clock(), kind=kind, incident_id=run.incident_id, run_id=run.id, data=data)


def _key(incident_id: int) -> str:
    return f"silence:{incident_id}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
