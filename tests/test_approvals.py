"""Approvals: an error while recording a decision is that error, not "already approved"."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paramedic.core.errors import StoreUnavailable
from paramedic.store import runs as runs_repo
from tests.conftest import Server
from tests.test_engine_runs import exists, fire, incident, runbook, touch


def two_person(tmp_path: Path) -> str:
    marker = tmp_path / "fixed"
    return runbook(tmp_path, mode="approve", steps=touch(marker), verify=exists(marker), extra="    approvers: 2")


def test_a_store_failure_while_approving_is_a_503_not_already_approved(
    make_server: Callable[..., Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 753e177 any exception here (a lost database, a bug) answered 409 "already approved"."""
    srv = make_server(two_person(tmp_path))

    def unavailable(*_: Any, **__: Any) -> int:
        raise StoreUnavailable("the database is unavailable: connection reset")

    with srv.client() as c:
        i = fire(c)
        monkeypatch.setattr(runs_repo.audit, "append", unavailable)
        r = c.post(f"/api/v1/incidents/{i}/approve", json={"reason": "ok"})
        monkeypatch.undo()
        assert r.status_code == 503
        assert "already approved" not in r.text
        assert incident(c, i)["runs"][0]["approvals"] == []


def test_the_same_person_approving_twice_is_told_a_second_approver_is_needed(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    srv = make_server(two_person(tmp_path))
    with srv.client() as c:
        i = fire(c)
        assert c.post(f"/api/v1/incidents/{i}/approve", json={}).status_code == 200
        again = c.post(f"/api/v1/incidents/{i}/approve", json={})
        deny = c.post(f"/api/v1/incidents/{i}/deny", json={"reason": "changed my mind"})
        assert incident(c, i)["status"] == "awaiting_approval"
    assert (again.status_code, "second approver is needed" in again.text) == (409, True)
    assert (deny.status_code, "already approved" in deny.text) == (409, True)
