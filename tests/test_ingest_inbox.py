"""Large deliveries: stored as received, answered at once, recorded after; nothing accepted is lost.

An Alertmanager group of thousands of alerts took longer to record than Alertmanager's (10 s) and
PagerDuty's (5 s) webhook timeouts, and a sender that times out sends again. A delivery of more than
``inline_alerts`` alerts is written to the inbox in one transaction and answered ``202`` with
``queued``; the engine records it in chunks, each chunk and its progress in one transaction. The
bodies are the real Alertmanager 0.25 output in ``tests/fixtures``, its alert repeated with other
instances.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from paramedic.core.alerts import Alert
from paramedic.core.config import Config
from paramedic.core.errors import StoreUnavailable
from paramedic.engine import service
from paramedic.engine.service import Paramedic
from paramedic.store import inbox
from paramedic.store import incidents as inc_repo
from paramedic.store.rows import IngestResult
from tests.conftest import Server
from tests.support import FIXTURES

AM = json.loads((FIXTURES / "alertmanager-0.25-firing.json").read_text())


def group(n: int, *, nameless: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(AM)
    template = body["alerts"][0]
    body["alerts"] = []
    for i in range(n):
        alert = copy.deepcopy(template)
        alert["labels"]["instance"] = f"127.0.0.1:{20000 + i}"
        alert["fingerprint"] = f"{i:016x}"
        if i == nameless:
            del alert["labels"]["alertname"]
        body["alerts"].append(alert)
    return body


def test_large_delivery_is_queued_then_every_alert_is_recorded(make_server: Callable[..., Server]) -> None:
    srv = make_server(inline_alerts=10)
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json=group(40, nameless=7))
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 40
        assert isinstance(r.json()["queued"], int)

        def listed() -> list[dict[str, Any]]:
            return c.get("/api/v1/incidents", params={"limit": 100}).json()["incidents"]  # type: ignore[no-any-return]

        srv.wait(lambda _: len(listed()) == 40)
        srv.wait(lambda _: "paramedic_ingest_inbox_alerts 0.0" in c.get("/metrics").text)
        names = sorted(i["alertname"] for i in listed())
        assert names == ["InstanceDown"] * 39 + ["UnreadableAlert"]
        (bad,) = [i for i in listed() if i["alertname"] == "UnreadableAlert"]
        assert bad["status"] == "escalated"
        # a small delivery is still recorded before its answer, with its incidents in the answer
        r = c.post("/api/v1/alerts/alertmanager", json=group(2))
        assert [a["delivery"] for a in r.json()["alerts"]] == ["updated", "updated"]


def test_large_unreadable_envelope_is_still_refused(make_server: Callable[..., Server]) -> None:
    srv = make_server(inline_alerts=10)
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json={**group(40), "version": "3"})
        assert r.status_code == 422
        assert r.json()["field"] == "version"


def test_a_crash_mid_delivery_resumes_after_the_last_recorded_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails on the third chunk (as a crash would stop it): the delivery stays in the
    inbox, and the next drain records the rest — each alert once."""
    monkeypatch.setattr(service, "INBOX_CHUNK", 10)
    (tmp_path / "runbooks").mkdir()
    pm = Paramedic.from_config(Config(database=f"sqlite:///{tmp_path / 'p.db'}", runbooks=[str(tmp_path / "runbooks")]))
    real = Paramedic.ingest
    calls: list[int] = []

    async def failing(self: Paramedic, alerts: Sequence[Alert], **kw: Any) -> list[IngestResult]:
        calls.append(len(alerts))
        if len(calls) == 3:
            raise StoreUnavailable("database is locked")
        return await real(self, alerts, **kw)

    async def go() -> None:
        await pm.enqueue(source="alertmanager", body=json.dumps(group(35)), total=35)
        monkeypatch.setattr(Paramedic, "ingest", failing)
        with pytest.raises(StoreUnavailable):
            await pm.drain_inbox()
        monkeypatch.setattr(Paramedic, "ingest", real)
        assert await pm.read(inbox.backlog) == 15  # two chunks recorded, with their progress
        assert await pm.drain_inbox() is False  # still leased to the crashed drain
        pm.clock = lambda: service.utcnow() + pm.config.lease * 2  # the lease lapses
        assert await pm.drain_inbox() is True
        assert await pm.read(inbox.backlog) == 0

    asyncio.run(go())
    rows = asyncio.run(pm.read(inc_repo.listing, limit=100))
    assert len(rows) == 35
    assert {r.deliveries for r in rows} == {1}  # nothing recorded twice
    pm.db.engine.dispose()
