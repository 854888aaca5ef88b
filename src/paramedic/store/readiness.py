"""Can the database take paramedic's next write? The facts behind ``/readyz``.

A database that answers reads but refuses writes (a read-only PostgreSQL replica after a failover,
an SQLite file another process holds locked, a full disk) would accept no alert: ingest stores
before it answers. So readiness probes a real write, an insert into ``settings`` that is rolled
back, with a short lock timeout so a stuck writer makes the probe fail fast instead of hanging the
probe; and for SQLite it checks the free space of the file system that holds the database.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from paramedic.core.errors import StoreUnavailable
from paramedic.store.db import Database

PROBE_TIMEOUT_S = 2.0
MIN_FREE_BYTES = 64 * 1024 * 1024  # SQLite's WAL and a checkpoint need room; below this, refuse
MIN_FREE_FRACTION = 0.02


class _Usage(NamedTuple):
    total: int
    used: int
    free: int


def _probe_sqlite(db: Database, timeout: float) -> None:
    with db.engine.connect() as sa_conn:
        raw: Any = sa_conn.connection.driver_connection
        raw.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        try:
            raw.execute("BEGIN IMMEDIATE")
            try:
                raw.execute(
                    "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?, ?, ?, ?)",
                    (f"readyz-{uuid.uuid4().hex[:16]}", "true", datetime.now(UTC).isoformat(), "readyz"),
                )
            finally:
                raw.execute("ROLLBACK")
        finally:
            raw.execute("PRAGMA busy_timeout=30000")


def _probe_postgres(db: Database, timeout: float) -> None:
    ms = int(timeout * 1000)

    class _Undo(Exception):
        pass

    try:
        with db.write(serial=False) as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = {ms}"))
            conn.execute(text(f"SET LOCAL statement_timeout = {ms}"))
            conn.execute(
                text("INSERT INTO settings (key, value, updated_at, updated_by) VALUES (:k, 'true', now(), 'readyz')"),
                {"k": f"readyz-{uuid.uuid4().hex[:16]}"},
            )
            raise _Undo  # roll the probe back
    except _Undo:
        pass


def write_problem(db: Database, *, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """``None`` when the database took (and rolled back) a write within ``timeout``, else why not."""
    try:
        if db.is_sqlite:
            _probe_sqlite(db, timeout)
        else:
            _probe_postgres(db, timeout)
    except (SQLAlchemyError, sqlite3.Error, StoreUnavailable) as exc:
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]
        return f"the database cannot take a write: {first}"
    return None


def sqlite_file(db: Database) -> Path | None:
    """The file an SQLite database lives in (``None`` for PostgreSQL or in memory)."""
    if not db.is_sqlite:
        return None
    name = make_url(str(db.engine.url)).database
    return Path(name) if name and name != ":memory:" else None


def disk_problem(path: Path, *, usage: Callable[[Path], _Usage | Any] = shutil.disk_usage) -> str | None:
    """``None`` when the file system holding ``path`` has room, else how little is left."""
    folder = path if path.is_dir() else path.parent
    u = usage(folder)
    if u.free < MIN_FREE_BYTES or u.free < u.total * MIN_FREE_FRACTION:
        return (
            f"the disk holding {folder} is nearly full: {u.free // (1024 * 1024)} MiB free of "
            f"{u.total // (1024 * 1024)} MiB (needs {MIN_FREE_BYTES // (1024 * 1024)} MiB and "
            f"{MIN_FREE_FRACTION:.0%}); free space or move the database"
        )
    return None


__all__ = ["MIN_FREE_BYTES", "MIN_FREE_FRACTION", "disk_problem", "sqlite_file", "write_problem"]
