"""Humans own the mode: the file's mode is the ceiling, a file edit takes effect at the next load,
an admin sets a mode by hand (audited), observe runs record verdicts and earn promotion through
suggestions a responder marked right.

At 753e177 a stored mode overrode the file (a runbook edited to ``observe`` still auto-ran), nobody
could set a mode, and observe runs recorded no verdicts and never counted toward promotion.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from paramedic.cli import main
from paramedic.core.runbooks import Mode
from tests.conftest import Server
from tests.test_engine_runs import exists, fire, incident, runbook, touch


def book(tmp_path: Path, mode: str, extra: str = "") -> str:
    marker = tmp_path / "fixed"
    return runbook(tmp_path, mode=mode, steps=touch(marker), verify=exists(marker), extra=extra)


def put_mode(srv: Server, mode: str, reason: str = "") -> Any:
    with srv.client() as c:
        return c.put("/api/v1/runbooks/fix/mode", json={"mode": mode, "reason": reason})


def mode_of(srv: Server) -> str:
    with srv.client() as c:
        [rb] = c.get("/api/v1/runbooks").json()["runbooks"]
    return str(rb["mode"])


def test_an_edit_to_the_file_takes_effect_at_the_next_load(make_server: Callable[..., Server], tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    first = make_server(book(tmp_path, "auto"), database=db)
    assert put_mode(first, "approve", "new on-call rota").status_code == 200
    with first.client() as c:
        assert incident(c, fire(c, "h1"))["runs"][0]["status"] == "awaiting_approval"
    first.__exit__(None, None, None)
    edited = make_server(book(tmp_path, "observe"), database=db)  # the owner edits the file to observe
    with edited.client() as c:
        run = incident(c, fire(c, "h2"))["runs"][0]
    assert run["status"] == "observed"
    assert mode_of(edited) == "observe"


def test_a_demoted_runbook_can_be_set_back_by_hand_up_to_the_ceiling(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    srv = make_server(book(tmp_path, "approve"))
    assert put_mode(srv, "observe", "demoted while we investigate").json() == {"runbook": "fix", "mode": "observe"}
    above = put_mode(srv, "auto")
    assert above.status_code == 409
    assert "edit the file to allow auto" in above.text
    assert put_mode(srv, "approve", "investigated").status_code == 200
    with srv.client() as c:
        run = incident(c, fire(c))["runs"][0]
        changes = [e for e in c.get("/api/v1/audit").json()["entries"] if e["kind"] == "runbook.mode_changed"]
    assert run["status"] == "awaiting_approval"
    assert [(e["data"]["mode"], e["data"]["reason"], e["actor"]) for e in reversed(changes)] == [
        ("observe", "demoted while we investigate", "local"),
        ("approve", "investigated", "local"),
    ]


def test_observe_runs_record_every_verdict(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(book(tmp_path, "observe", extra="    guardrails:\n      rate_limit: {max: 5, per: 1h}"))
    with srv.client() as c:
        run = incident(c, fire(c))["runs"][0]
    [verdict] = run["verdicts"]
    checks = {v["check"]: v["allowed"] for v in verdict["checks"]}
    assert checks == {
        "paused": True,
        "frozen": True,
        "data_quality": True,
        "rate_limit": True,
        "blast_radius": True,
        "circuit_breaker": True,
    }


def test_marked_right_suggestions_promote_from_observe_but_not_past_the_file(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    promote = "    promote: {after: 2, min_success_rate: 1.0}"
    srv = make_server(book(tmp_path, "approve", extra=promote))
    put_mode(srv, "observe", "start by watching")
    with srv.client() as c:
        runs = [incident(c, fire(c, f"h{n}"))["runs"][0]["id"] for n in range(3)]
        wrong = c.post(f"/api/v1/runs/{runs[0]}/mark", json={"right": False, "reason": "would restart the wrong one"})
        first = c.post(f"/api/v1/runs/{runs[1]}/mark", json={"right": True})
        assert (wrong.json()["mode"], first.json()["mode"]) == ("observe", "observe")
        # one wrong of two marked: 50% < 100%, stays observe; marking the first right again changes that
        c.post(f"/api/v1/runs/{runs[0]}/mark", json={"right": True, "reason": "on second look, right"})
        assert mode_of(srv) == "approve"
        later = incident(c, fire(c, "h9"))["runs"][0]
    assert later["status"] == "awaiting_approval"  # approve, the file's ceiling, not auto


def test_only_an_observed_run_is_marked(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(book(tmp_path, "approve"))
    with srv.client() as c:
        run = incident(c, fire(c))["runs"][0]
        r = c.post(f"/api/v1/runs/{run['id']}/mark", json={"right": True})
    assert r.status_code == 409
    assert "only an observed suggestion is marked" in r.text


def test_runbook_mode_command(make_server: Callable[..., Server], tmp_path: Path) -> None:
    srv = make_server(book(tmp_path, "auto"))
    ok = CliRunner().invoke(main, ["runbook", "mode", "fix", "observe", "--reason", "x", "--url", srv.url])
    assert ok.exit_code == 0, ok.output
    assert "fix: mode observe" in ok.output
    assert mode_of(srv) == Mode.OBSERVE
    missing = CliRunner().invoke(main, ["runbook", "mode", "nope", "observe", "--url", srv.url])
    assert missing.exit_code == 1
    assert "no runbook named 'nope'" in missing.output
