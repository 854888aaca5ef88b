"""``paramedic report`` on a database of 240 incidents: the period is honoured, automated and human
incidents are counted apart (a human resolution counts), groups per runbook, service and owner,
the table fits 80 columns and the PNG is a real chart."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from paramedic.cli import main
from paramedic.store import migrate
from paramedic.store.db import Database, single_use_engine
from paramedic.store.tables import incidents

END = datetime(2026, 11, 30, tzinfo=UTC)
TEAMS = {"web": "team-web", "db": "team-db", "queue": "team-queue"}
RUNBOOKS = {"web": "restart-hung-web", "db": "failover-db", "queue": "drain-queue"}


def seed(url: str, *, count: int = 240) -> dict[str, int]:
    """``count`` incidents over 40 days: automated ones resolved in ~1 minute, human ones in ~40,
    a fifth resolved by a human, a few still open, some older than the 30-day report period."""
    rnd = random.Random(7)
    db = Database(single_use_engine(url))
    migrate.upgrade(db)
    facts = {"in_period": 0, "resolved_in_period": 0, "auto_in_period": 0}
    with db.write() as conn:
        for i in range(count):
            service = rnd.choice(list(TEAMS))
            start = END - timedelta(days=40) + timedelta(hours=4 * i)
            automated = rnd.random() < 0.6
            open_ = i % 37 == 0
            mttr = timedelta(seconds=rnd.uniform(40, 90) if automated else rnd.uniform(20 * 60, 60 * 60))
            resolved = None if open_ else start + mttr
            by_human = not automated and i % 5 == 0
            conn.execute(
                incidents.insert().values(
                    source="alertmanager",
                    fingerprint=f"fp{i}",
                    starts_at=start,
                    open_key=f"alertmanager|fp{i}" if open_ else None,
                    group_key="",
                    alertname="Broken",
                    service=service,
                    severity="critical",
                    labels={"service": service},
                    annotations={},
                    status="open" if open_ else "resolved",
                    runbooks=[RUNBOOKS[service]] if automated or i % 2 else [],
                    handled_by="automation" if automated else "human",
                    deliveries=1,
                    first_seen_at=start,
                    last_seen_at=start,
                    acknowledged_at=start + timedelta(seconds=5),
                    mitigated_at=start + mttr / 2 if automated else None,
                    resolved_at=resolved,
                    owner=TEAMS[service],
                    resolved_by="rita" if by_human else None,
                    resolution="fixed by hand" if by_human else None,
                )
            )
            if start >= END - timedelta(days=30):
                facts["in_period"] += 1
                facts["resolved_in_period"] += 0 if open_ else 1
                facts["auto_in_period"] += 1 if automated and not open_ else 0
    db.dispose()
    return facts


def test_report_prints_the_table_and_writes_the_png(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    facts = seed(url)
    chart = tmp_path / "mttr.png"
    result = CliRunner().invoke(
        main,
        ["report", "--database", url, "--since", "30d", "--until", END.isoformat(), "--png", str(chart)],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    out = result.output
    (tmp_path / "report.txt").write_text(out)
    human = facts["resolved_in_period"] - facts["auto_in_period"]
    assert f"{facts['in_period']} incidents detected, {facts['resolved_in_period']} resolved" in out
    assert f"automated {facts['auto_in_period']} (" in out
    assert f"· human {human}, median MTTR " in out
    for name in ("restart-hung-web", "failover-db", "drain-queue", "(no runbook)", "team-web", "team-db", "queue"):
        assert name in out, name
    assert "per runbook" in out
    assert "per owner" in out
    table_lines = [line for line in out.splitlines() if not line.startswith("chart written to")]  # a tmp path
    assert max(len(line) for line in table_lines) <= 80
    png = chart.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    with Image.open(chart) as img:
        assert img.width >= 600
        assert len(img.getcolors(100_000) or []) > 10  # drawn, not blank


def test_report_on_an_empty_period_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    seed(url, count=10)
    result = CliRunner().invoke(
        main, ["report", "--database", url, "--since", "1h", "--until", "2020-01-01T00:00:00Z"], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    assert "0 incidents detected" in result.output
    assert "no incident detected in this period was resolved yet" in result.output
    bad = CliRunner().invoke(main, ["report", "--database", url, "--since", "soon"])
    assert bad.exit_code == 2
    assert "--since 'soon'" in bad.output
