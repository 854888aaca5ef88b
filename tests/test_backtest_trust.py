"""Trust from evidence: backtested episodes a responder marked right count toward a runbook's
``promote:`` as marked observe suggestions do, and the promotion's audit entry says what it was
based on. The path a team takes: ``paramedic backtest --marks FILE``, fill in ``right:``,
``paramedic runbook mark-backtest FILE`` against a running server (real uvicorn, real store)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from click.testing import CliRunner

from paramedic.cli import main
from tests.conftest import Server
from tests.test_engine_runs import exists, runbook, touch

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def recorded(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        start, end = T0 + timedelta(hours=i), T0 + timedelta(hours=i, minutes=3)
        alert = {"name": "Broken", "labels": {"instance": f"h{i}"}, "starts_at": start.isoformat()}
        (folder / f"{start:%Y%m%dT%H%M%S}Z-generic-{2 * i:03d}.json").write_text(json.dumps(alert))
        resolved = {**alert, "status": "resolved", "ends_at": end.isoformat()}
        (folder / f"{end:%Y%m%dT%H%M%S}Z-generic-{2 * i + 1:03d}.json").write_text(json.dumps(resolved))
    return folder


def test_backtested_episodes_marked_right_promote_from_observe_and_the_audit_says_so(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    marker = tmp_path / "fixed"
    text = runbook(
        tmp_path, mode="approve", steps=touch(marker), verify=exists(marker), extra="    promote: {after: 3}"
    )
    srv = make_server(text)
    with srv.client() as c:
        assert c.put("/api/v1/runbooks/fix/mode", json={"mode": "observe", "reason": "new"}).status_code == 200
    rb = tmp_path / "rb.yaml"
    rb.write_text(text)
    marks = tmp_path / "marks.yaml"
    history = recorded(tmp_path / "recorded", 4)
    run = CliRunner().invoke(
        main, ["backtest", str(rb), "--from", str(history), "--since", "all", "--marks", str(marks)]
    )
    assert run.exit_code == 0, run.output
    data = yaml.safe_load(marks.read_text())
    assert [m["labels"]["instance"] for m in data["marks"]] == ["h0", "h1", "h2", "h3"]
    for m in data["marks"][:3]:
        m["right"] = True  # the fourth stays unmarked (null): skipped
    marks.write_text(yaml.safe_dump(data))

    sent = CliRunner().invoke(main, ["runbook", "mark-backtest", str(marks), "--url", srv.url])

    assert sent.exit_code == 0, sent.output
    assert "fix: 3 marked (3 right); mode approve" in sent.stdout
    with srv.client() as c:
        entries = c.get("/api/v1/audit").json()["entries"]
    [promotion] = [e for e in entries if e["kind"] == "runbook.mode_changed" and e["data"]["mode"] == "approve"]
    reason = promotion["data"]["reason"]
    assert reason.startswith("promoted observe → approve: 3 of 3 suggestions marked")
    assert "based on 3 backtested episodes (3 marked right); backtest: paramedic backtest" in reason
    assert len([e for e in entries if e["kind"] == "suggestion.marked" and e["data"]["source"] == "backtest"]) == 3


def test_a_marks_file_with_nothing_marked_says_so(make_server: Callable[..., Server], tmp_path: Path) -> None:
    marks = tmp_path / "marks.yaml"
    marks.write_text(yaml.safe_dump({"backtest": "x", "marks": [{"runbook": "fix", "episode": "e1", "right": None}]}))
    result = CliRunner().invoke(main, ["runbook", "mark-backtest", str(marks), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "no episode is marked yet" in result.stderr
