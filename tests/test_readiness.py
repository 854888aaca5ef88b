"""``/readyz`` tells the truth: a replica whose database cannot take a write, or whose SQLite disk
is nearly full, answers 503 with the reason, so a load balancer stops sending it alerts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from paramedic.store import readiness
from tests.conftest import Server


def test_ready_when_the_database_takes_a_write(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    with srv.client() as c:
        r = c.get("/readyz")
    assert (r.status_code, r.json()) == (200, {"status": "ready"})


def test_not_ready_while_another_process_holds_the_write_lock(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    db = tmp_path / "locked.db"
    srv = make_server(database=f"sqlite:///{db}")
    holder = sqlite3.connect(db, isolation_level=None, timeout=1)
    holder.execute("BEGIN EXCLUSIVE")  # what a stuck writer or a backup tool holding the file does
    try:
        with srv.client() as c:
            r = c.get("/readyz")
        assert r.status_code == 503
        assert "cannot take a write" in r.json()["error"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with srv.client() as c:
        assert c.get("/readyz").status_code == 200  # the probe itself left nothing behind


def test_not_ready_when_the_disk_is_nearly_full(
    make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = make_server()
    monkeypatch.setattr(readiness, "MIN_FREE_BYTES", 2**62)  # any real disk is "nearly full" now
    with srv.client() as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert "nearly full" in r.json()["error"]


class Usage(NamedTuple):
    total: int
    used: int
    free: int


@pytest.mark.parametrize(
    ("free", "total", "full"),
    [
        pytest.param(10 * 2**30, 100 * 2**30, False, id="ten-percent-free"),
        pytest.param(1 * 2**30, 100 * 2**30, True, id="one-percent-free"),
        pytest.param(32 * 2**20, 1 * 2**30, True, id="under-64-MiB"),
    ],
)
def test_disk_threshold(tmp_path: Path, free: int, total: int, full: bool) -> None:
    problem = readiness.disk_problem(tmp_path / "p.db", usage=lambda _: Usage(total, total - free, free))
    assert (problem is not None) is full


def test_write_probe_on_both_databases_and_a_read_only_one(database_url: str) -> None:
    """The probe writes for real and rolls back; a session that may not write (a PostgreSQL hot
    standby, ``default_transaction_read_only``; SQLite opened read-only) is reported."""
    from paramedic.store import migrate
    from paramedic.store.db import Database, make_engine

    db = Database(make_engine(database_url))
    migrate.upgrade(db)
    assert readiness.write_problem(db) is None
    db.dispose()
    if database_url.startswith("sqlite"):
        ro = database_url.replace("sqlite:///", "sqlite:///file:") + "?mode=ro&uri=true"
    else:
        ro = database_url + "%20-cdefault_transaction_read_only%3Don"
    read_only = Database(make_engine(ro))
    problem = readiness.write_problem(read_only)
    read_only.dispose()
    assert problem is not None
    assert "cannot take a write" in problem
