"""An alert storm reaches a human as a few messages, pages first, within each sink's rate limit.

The sink is a recording one at paramedic's boundary (``notify.base.Sink``): what a human would
receive is what it records. The outbox, grouping and rate limit run on a real SQLite database
(and PostgreSQL when configured).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.config import Config, Notifications
from paramedic.engine.notifier import Notifier
from paramedic.engine.service import Paramedic
from paramedic.notify.base import Notification
from paramedic.store import outbox
from paramedic.store.tables import outbox as outbox_table
from tests.conftest import write_runbooks

NOW = datetime.now(UTC)


class Recording:
    """A sink that keeps what it was given, as a human's inbox would."""

    def __init__(self, name: str = "pager") -> None:
        self.name = name
        self.got: list[Notification] = []

    async def send(self, note: Notification) -> None:
        self.got.append(note)


@pytest.fixture
def pm(tmp_path: Path, database_url: str) -> Iterator[Paramedic]:
    rb = write_runbooks(tmp_path / "rb", "apiVersion: paramedic/v1\nrunbooks: []\n")
    p = Paramedic.from_config(Config(database=database_url, runbooks=[str(rb)]))
    outbox.bind(p.db.engine, outbox.Routing.of(["pager"]))  # rows for this test's sink
    yield p
    p.db.dispose()


def alerts(name: str, n: int, *, group: str = "") -> list[Alert]:
    return [
        Alert(
            "alertmanager" if group else "generic",
            f"{name}-{group}-{i}",
            name,
            AlertStatus.FIRING,
            NOW - timedelta(minutes=1),
            {"alertname": name, "instance": f"host-{i}", "service": "web"},
            group_key=group,
        )
        for i in range(n)
    ]


def drain(pm: Paramedic, sink: Recording, policy: Notifications, *, at: datetime) -> None:
    """Deliver until nothing is due (the clock is past every evidence wait)."""
    notifier = Notifier(pm.db, lambda: at, sinks=[sink], policy=policy)

    async def go() -> None:
        for _ in range(200):
            if await notifier.deliver_once() == 0:
                return

    asyncio.run(go())


def pending(pm: Paramedic, sink: str = "pager") -> int:
    with pm.db.read() as conn:
        rows = conn.execute(
            select(outbox_table.c.id).where(outbox_table.c.sink == sink, outbox_table.c.status == "pending")
        ).all()
    return len(rows)


def test_a_storm_of_one_alert_is_one_message_with_the_count_and_the_list(pm: Paramedic) -> None:
    """Before: one message per incident (20,000 for a 10,000-alert storm), queued ahead of every page."""
    asyncio.run(pm.ingest([*alerts("DiskFull", 120), *alerts("CertExpiring", 1)]))
    sink = Recording()
    drain(pm, sink, Notifications(rate_limit=1000), at=NOW + timedelta(hours=1))
    storms = [n for n in sink.got if n.data.get("storm")]
    singles = [n for n in sink.got if not n.data.get("storm")]
    assert len(storms) == 1
    assert storms[0].data["storm"] == 120
    assert "120 incidents" in storms[0].title
    assert storms[0].summary_markdown.count("\n- #") == 50  # the first 50 named, the rest counted
    assert "… and 70 more" in storms[0].summary_markdown
    assert sorted(storms[0].data["incidents"]) == list(range(1, 121))
    assert [n.title.split(":")[1].strip() for n in singles] == ["CertExpiring on host-0 (#121)"]
    assert pending(pm) == 0


def test_alertmanager_groups_are_kept_apart(pm: Paramedic) -> None:
    asyncio.run(pm.ingest([*alerts("Down", 5, group="{}:{job=a}"), *alerts("Down", 4, group="{}:{job=b}")]))
    sink = Recording()
    drain(pm, sink, Notifications(rate_limit=1000), at=NOW + timedelta(hours=1))
    assert sorted(n.data.get("storm", 1) for n in sink.got) == [4, 5]


def test_fewer_than_group_min_go_one_by_one(pm: Paramedic) -> None:
    asyncio.run(pm.ingest(alerts("DiskFull", 2)))
    sink = Recording()
    drain(pm, sink, Notifications(group_min=3, rate_limit=1000), at=NOW + timedelta(hours=1))
    assert [n.data.get("storm") for n in sink.got] == [None, None]


def test_each_sink_keeps_its_rate_limit_and_the_rest_waits(pm: Paramedic) -> None:
    asyncio.run(pm.ingest([a for i in range(5) for a in alerts(f"Alert{i}", 1)]))
    sink = Recording()
    drain(pm, sink, Notifications(rate_limit=2, rate_per=timedelta(minutes=1)), at=NOW + timedelta(hours=1))
    assert len(sink.got) == 2
    assert pending(pm) == 3  # nothing lost: delivered once the window has room
    later = Recording()
    drain(pm, later, Notifications(rate_limit=2), at=NOW + timedelta(hours=1, minutes=2))
    assert len(later.got) == 2


def test_escalations_and_approvals_are_claimed_before_other_events(pm: Paramedic) -> None:
    with pm.db.write() as conn:
        for i, event in enumerate(("resolved", "mitigated", "escalated", "resolved", "approval_needed")):
            outbox.enqueue(conn, incident_id=None, event=event, now=NOW, data={}, key=f"k{i}")
    with pm.db.write() as conn:
        claimed = outbox.claim(conn, now=NOW, lease=timedelta(seconds=60), limit=20)
    order = [i.event for i in claimed if i.sink == "pager"]
    assert order == ["escalated", "approval_needed", "resolved", "mitigated", "resolved"]
