"""The audit trail: hash-chained, redacted, and `paramedic audit verify` finds edits and deletions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, update

from paramedic.cli import main
from paramedic.core.audit import redact, verify_chain
from paramedic.store import audit, migrate
from paramedic.store.db import Database, make_engine
from paramedic.store.tables import audit as audit_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[tuple[Database, str]]:
    d = Database(make_engine(database_url))
    migrate.upgrade(d)
    with d.write() as conn:
        for i in range(5):
            audit.append(conn, at=T0 + timedelta(seconds=i), kind="step.started", data={"i": i})
    yield d, database_url
    d.dispose()


def check(d: Database) -> object:
    with d.read() as conn:
        seq, digest = audit.head(conn)
        return verify_chain(audit.iter_entries(conn), head_seq=seq, head_hash=digest)


def cli_verify(url: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", "verify", "--database", url])
    return result.exit_code, result.output


def test_intact_chain_verifies(db: tuple[Database, str]) -> None:
    d, url = db
    assert check(d).ok  # type: ignore[attr-defined]
    code, output = cli_verify(url)
    assert code == 0
    assert "5 entries verified" in output


@pytest.mark.parametrize(
    ("tamper", "bad"),
    [
        pytest.param(
            lambda c: c.execute(update(audit_table).where(audit_table.c.seq == 3).values(data=json.dumps({"i": 99}))),
            3,
            id="edited",
        ),
        pytest.param(lambda c: c.execute(delete(audit_table).where(audit_table.c.seq == 2)), 2, id="deleted-middle"),
        pytest.param(lambda c: c.execute(delete(audit_table).where(audit_table.c.seq == 5)), 5, id="deleted-last"),
    ],
)
def test_tampering_is_found_and_named(db: tuple[Database, str], tamper: object, bad: int) -> None:
    d, url = db
    with d.write() as conn:
        tamper(conn)  # type: ignore[operator]
    report = check(d)
    assert not report.ok
    assert report.first_bad == bad
    code, output = cli_verify(url)
    assert code == 1
    assert f"entry {bad}" in output


def test_secrets_are_redacted_before_writing(db: tuple[Database, str]) -> None:
    d, _ = db
    with d.write() as conn:
        audit.append(
            conn,
            at=T0,
            kind="x",
            data={
                "password": "hunter2",
                "url": "http://u:pw@host/x",
                "header": "Authorization: Bearer abcdefghijklmnop",
            },
        )
    with d.read() as conn:
        stored = audit.page(conn, limit=1)[0].data
    assert stored["password"] == "[redacted]"
    assert "pw" not in stored["url"]
    assert "abcdefghijklmnop" not in stored["header"]


def test_redact_nested() -> None:
    assert redact({"a": [{"api_key": "k"}], "token": ""}) == {"a": [{"api_key": "[redacted]"}], "token": ""}
