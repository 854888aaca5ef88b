"""Migrations are safe from several replicas at once (DESIGN §6): three ``paramedic db upgrade``
processes started together on a fresh PostgreSQL schema all succeed and leave one schema at head.

``store.migrate`` holds a PostgreSQL advisory lock around Alembic's upgrade, so the first process
creates the tables and the others wait, then find the schema at head and do nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from paramedic.store import migrate
from paramedic.store.db import Database, single_use_engine
from paramedic.store.tables import metadata
from tests.support.postgres import fresh_schema, require_pg_url
from tests.support.services import paramedic_env

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_three_concurrent_db_upgrades_on_a_fresh_schema(tmp_path: Path) -> None:
    with fresh_schema(require_pg_url()) as url:
        env = paramedic_env()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "paramedic.cli", "db", "upgrade", "--database", url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=tmp_path,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=90) for p in procs]
        codes = [p.returncode for p in procs]
        assert codes == [0, 0, 0], outputs

        db = Database(single_use_engine(url))
        try:
            head = migrate.current(db)
        finally:
            db.dispose()
        assert head is not None
        assert all(f"database at revision {head}" in out for out, _ in outputs), outputs

        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
                tables = set(inspect(conn).get_table_names())
        finally:
            engine.dispose()
        assert versions == [head]
        assert set(metadata.tables) <= tables
