"""The backtest without a Prometheus: recorded payloads as history, the replay's handling of
``firing_for``, the report file, ``candidates`` and the command line's errors. Time is the
history's; nothing waits."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from paramedic.cli import main
from paramedic.core.runbooks import Runbook
from paramedic.testing import history_prometheus, history_recorded
from paramedic.testing.backtest import Backtest, Kind, Settings
from paramedic.testing.backtest_report import write_report
from paramedic.testing.candidates import rank
from paramedic.testing.data_quality import assess
from paramedic.testing.history import Episode, Period

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
M = timedelta(minutes=1)

RUNBOOK = {
    "name": "restart-web",
    "owner": "team-web",
    "match": {"alertname": "WebDown"},
    "target": "{{ labels.instance }}",
    "mode": "observe",
    "require": {"firing_for": "1m"},
    "guardrails": {"rate_limit": {"max": 1, "per": "1h", "scope": "target"}},
    "steps": [{"action": "shell.run", "with": {"argv": ["true"]}}],
}


def episode(n: int, *, at: timedelta, lasted: timedelta | None, instance: str = "web-1", **labels: str) -> Episode:
    start = T0 + at
    return Episode(
        key=f"e{n}",
        source="alertmanager",
        name=labels.pop("alertname", "WebDown"),
        labels={"instance": instance, "service": "web", **labels},
        starts_at=start,
        seen_at=start,
        ends_at=None if lasted is None else start + lasted,
    )


def replay(episodes: list[Episode], **settings: object) -> list[tuple[str, Kind, str]]:
    bt = Backtest([Runbook.model_validate(RUNBOOK)])
    result = asyncio.run(
        bt.run(episodes, Period(T0, T0 + timedelta(days=1)), Settings(**settings))  # type: ignore[arg-type]
    )
    return [(d.episode, d.kind, d.code) for d in result.decisions]


def test_firing_for_waits_for_the_alert_to_be_old_enough_then_decides() -> None:
    decisions = replay([episode(1, at=0 * M, lasted=3 * M), episode(2, at=10 * M, lasted=30 * timedelta(seconds=1))])
    assert decisions == [("e1", Kind.ACTED, ""), ("e2", Kind.REFUSED, "not_firing_long_enough")]


def test_a_wait_that_ends_under_the_rate_limit_is_refused_by_the_rate_limit_not_by_firing_for() -> None:
    decisions = replay([episode(1, at=0 * M, lasted=3 * M), episode(2, at=10 * M, lasted=3 * M)])
    assert decisions == [("e1", Kind.ACTED, ""), ("e2", Kind.REFUSED, "rate_limited")]


def test_without_waiting_a_young_alert_is_refused_at_once_as_the_engine_on_main_does() -> None:
    decisions = replay([episode(1, at=0 * M, lasted=3 * M)], defer_firing_for=False)
    assert decisions == [("e1", Kind.REFUSED, "not_firing_long_enough")]


def test_replayed_as_filed_an_observe_runbook_only_suggests() -> None:
    assert replay([episode(1, at=0 * M, lasted=3 * M)], as_auto=False) == [("e1", Kind.OBSERVE, "")]


def _write(folder: Path, at: datetime, n: int, body: object) -> None:
    (folder / f"{at:%Y%m%dT%H%M%S}Z-generic-{n:03d}.json").write_text(json.dumps(body))


def test_recorded_deliveries_become_episodes_as_ingest_would_count_them(tmp_path: Path) -> None:
    alert = {"name": "WebDown", "labels": {"instance": "web-1"}, "starts_at": T0.isoformat()}
    _write(tmp_path, T0, 1, alert)
    _write(tmp_path, T0 + M, 2, alert)  # a repeat: the same episode
    _write(tmp_path, T0 + 2 * M, 3, {**alert, "status": "resolved", "ends_at": (T0 + 2 * M).isoformat()})
    _write(tmp_path, T0 + 3 * M, 4, alert)  # late: that episode already ended
    (tmp_path / "20261120T100400Z-generic-005.json").write_text("{not json")
    _write(tmp_path, T0 + 5 * M, 6, {**alert, "starts_at": (T0 + 5 * M).isoformat()})
    history = history_recorded.read(tmp_path)
    assert [(e.starts_at, e.seen_at, e.ends_at) for e in history.episodes] == [
        (T0, T0, T0 + 2 * M),
        (T0 + 5 * M, T0 + 5 * M, None),
    ]
    assert len(history.warnings) == 1
    assert "20261120T100400Z-generic-005.json" in history.warnings[0]


def test_the_report_escapes_alert_text_and_draws_both_charts(tmp_path: Path) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    eps = [episode(1, at=0 * M, lasted=3 * M), episode(2, at=5 * M, lasted=3 * M, alertname=hostile)]
    bt = Backtest([Runbook.model_validate(RUNBOOK)])
    result = asyncio.run(bt.run(eps, Period(T0, T0 + timedelta(hours=2)), Settings()))
    page = write_report(result, assess(result), tmp_path / "out").read_text()
    assert hostile not in page
    assert "&lt;img src=x" in page
    for chart in ("actions.png", "refusals.png"):
        assert (tmp_path / "out" / chart).read_bytes().startswith(b"\x89PNG")


def test_candidates_put_frequent_local_resolving_failures_first_and_say_why() -> None:
    period = Period(T0, T0 + timedelta(days=7))
    eps = [episode(i, at=i * timedelta(hours=6), lasted=10 * M) for i in range(20)]  # frequent, one at a time
    eps += [  # rarer, and on four targets at once: looks systemic
        episode(100 + i, at=timedelta(hours=3), lasted=30 * M, alertname="DiskFull", instance=f"db-{i}")
        for i in range(4)
    ]
    rows = rank(eps, [Runbook.model_validate(RUNBOOK)], period)
    assert [r.alertname for r in rows] == ["WebDown", "DiskFull"]
    first, second = rows
    assert "low risk: one target at a time" in first.why
    assert any(w.startswith("easy to validate") for w in first.why)
    assert any(w.startswith("runbook restart-web (observe)") for w in first.why)
    assert any("up to 4 targets at once" in w for w in second.why)
    assert any(w.startswith("no runbook yet") for w in second.why)


def test_a_mode_already_automated_ranks_last() -> None:
    period = Period(T0, T0 + timedelta(days=7))
    eps = [episode(i, at=i * timedelta(hours=6), lasted=10 * M) for i in range(20)]
    eps += [episode(100, at=timedelta(hours=1), lasted=10 * M, alertname="Rare")]
    rows = rank(eps, [Runbook.model_validate({**RUNBOOK, "mode": "auto"})], period)
    assert [r.alertname for r in rows] == ["Rare", "WebDown"]
    assert any(w.startswith("already automated") for w in rows[1].why)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--from", "no-such-dir"], "--from 'no-such-dir'", id="unknown-source"),
        pytest.param(["--from", ".", "--since", "yesterday"], "--since 'yesterday'", id="bad-since"),
        pytest.param(["--from", ".", "--step", "fast"], "--step 'fast'", id="bad-step"),
        pytest.param(["--from", "db"], "no paramedic database at paramedic.db", id="no-database-yet"),
    ],
)
def test_command_line_mistakes_get_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    rb = tmp_path / "rb.yaml"
    rb.write_text("apiVersion: paramedic/v1\nrunbooks:\n  - " + json.dumps(RUNBOOK) + "\n")
    result = CliRunner().invoke(main, ["backtest", str(rb), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "paramedic.db").exists()  # a mistake creates nothing


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=40), st.integers(min_value=1, max_value=30)), max_size=8))
def test_prometheus_steps_become_exactly_the_firing_intervals_written(gaps_and_lengths: list[tuple[int, int]]) -> None:
    """The reader of ``ALERTS`` samples: runs of firing steps, each ended by a NaN (a resolved
    alert), a missing step, or the end of the period."""
    step = 15.0
    points: dict[float, str] = {}
    want = []
    at = 1_000_000.0
    for gap, length in gaps_and_lengths:
        at += gap * step
        start = at
        for _ in range(length):
            points[at] = "1"
            at += step
        if gap % 3:  # sometimes the end is a NaN sample, sometimes the series just stops
            points[at] = "NaN"
        want.append((start, at))
        at += step  # at least one step without it before the next episode
    last = at + 10 * step
    got = history_prometheus._intervals(
        "A", {"alertname": "A"}, points, step=step, last=last, delay=timedelta(0), source="alertmanager"
    )
    assert [(e.starts_at.timestamp(), e.ends_at.timestamp() if e.ends_at else None) for e in got] == want


def test_paramedics_own_incidents_give_candidates_the_real_acknowledge_to_resolve_time(
    database_url: str, tmp_path: Path
) -> None:
    """``--from db:URL``: incidents stored by the engine (SQLite, and PostgreSQL when configured)."""
    from paramedic.core.config import Config
    from paramedic.engine.service import Paramedic
    from paramedic.ingest import payloads
    from paramedic.store import incidents as inc_repo

    now = [T0]
    (tmp_path / "rb").mkdir()
    pm = Paramedic.from_config(Config(database=database_url, runbooks=[str(tmp_path / "rb")]), clock=lambda: now[0])

    async def history() -> None:
        for i in range(3):
            start = T0 + i * timedelta(hours=2)
            alert = {
                "name": "DiskFull",
                "labels": {"instance": "db-1", "service": "db"},
                "starts_at": start.isoformat(),
            }
            now[0] = start
            [result] = await pm.ingest(payloads.parse(alert, now=start, source="generic"))
            assert result.incident_id is not None
            with pm.db.write() as conn:
                inc_repo.acknowledge(conn, result.incident_id, at=start + 5 * M, by="human")
            now[0] = start + 25 * M
            resolved = {**alert, "status": "resolved", "ends_at": now[0].isoformat()}
            await pm.ingest(payloads.parse(resolved, now=now[0], source="generic"))
        await pm.stop()

    asyncio.run(history())
    args = [
        "candidates",
        "--from",
        f"db:{database_url}",
        "--since",
        "all",
        "--runbooks",
        str(tmp_path / "rb"),
        "--json",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["alertname"], row["episodes"], row["human_time_known_for"]) == ("DiskFull", 3, 3)
    assert row["human_median_s"] == 20 * 60  # acknowledged 5m in, resolved 25m in
    assert "median 20m00s acknowledge → resolve" in " ".join(row["why"])
