"""A writer of the database cannot rewrite, cut or wipe the audit trail unnoticed (docs/audit.md).

Each attack is done the way someone with SQL access and without the key would do it: plain SQL on
the real tables, recomputing every hash the old, unkeyed way. At 753e177 every one of these verified
as intact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, delete, select, update

from paramedic.cli import main
from paramedic.core.audit import AuditKey, canonical, checkpoint_signed_by, sign_checkpoint
from paramedic.store import audit, checkpoints, migrate
from paramedic.store.db import Database, make_engine
from paramedic.store.tables import audit as audit_table
from paramedic.store.tables import audit_head

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY_TEXT = "6f" * 32


@pytest.fixture
def trail(database_url: str, tmp_path: Path) -> Iterator[tuple[Database, Path]]:
    """Ten keyed entries, a checkpoint after the tenth, and a config naming the key and the file."""
    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY_TEXT + "\n")
    cp_file = tmp_path / "checkpoints.jsonl"
    config = tmp_path / "paramedic.yaml"
    config.write_text(
        f"database: {json.dumps(database_url)}\n"
        "audit: {key_file: audit.key, checkpoints: {file: checkpoints.jsonl}}\n"
    )
    d = Database(make_engine(database_url))
    migrate.upgrade(d)
    audit.bind_key(d.engine, AuditKey(KEY_TEXT.encode()))
    with d.write() as conn:
        for i in range(10):
            audit.append(conn, at=T0 + timedelta(seconds=i), kind="step.started", data={"i": i})
    with d.read() as conn:
        checkpoints.write(cp_file, audit.checkpoint(conn, AuditKey(KEY_TEXT.encode()), now=T0 + timedelta(minutes=1)))
    yield d, config
    d.dispose()


def verify(config: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", "verify", "--config", str(config), *extra])
    return result.exit_code, result.output


def _unkeyed_link(prev: str, row: object) -> str:
    body = canonical(
        seq=row.seq,  # type: ignore[attr-defined]
        at=row.at,  # type: ignore[attr-defined]
        kind=row.kind,  # type: ignore[attr-defined]
        actor=row.actor,  # type: ignore[attr-defined]
        incident_id=row.incident_id,  # type: ignore[attr-defined]
        run_id=row.run_id,  # type: ignore[attr-defined]
        data=json.loads(row.data),  # type: ignore[attr-defined]
    )
    return hashlib.sha256((prev + "\n" + body).encode()).hexdigest()


def rewrite_from(conn: Connection, seq: int, *, keep_key_id: bool) -> None:
    """Edit entry ``seq`` and recompute every later link and the head, without the key."""
    conn.execute(update(audit_table).where(audit_table.c.seq == seq).values(data=json.dumps({"i": 999})))
    prev = conn.execute(select(audit_table.c.hash).where(audit_table.c.seq == seq - 1)).scalar_one()
    for row in conn.execute(select(audit_table).where(audit_table.c.seq >= seq).order_by(audit_table.c.seq)).all():
        digest = _unkeyed_link(prev, row)
        values: dict[str, object] = {"prev_hash": prev, "hash": digest}
        if not keep_key_id:
            values["key_id"] = None
        conn.execute(update(audit_table).where(audit_table.c.seq == row.seq).values(**values))
        prev = digest
    conn.execute(update(audit_head).values(hash=prev))


def cut_tail(conn: Connection) -> None:
    conn.execute(delete(audit_table).where(audit_table.c.seq > 6))
    last = conn.execute(select(audit_table.c.hash).where(audit_table.c.seq == 6)).scalar_one()
    conn.execute(update(audit_head).values(seq=6, hash=last))


def wipe_and_reset_head(conn: Connection) -> None:
    conn.execute(delete(audit_table))
    conn.execute(update(audit_head).values(seq=0, hash="0" * 64))


def wipe_everything(conn: Connection) -> None:
    conn.execute(delete(audit_table))
    conn.execute(delete(audit_head))


def rewrite_whole_chain_unkeyed(conn: Connection) -> None:
    """Drop the key ids and recompute every link as plain SHA-256: a 'legacy' chain."""
    rows = conn.execute(select(audit_table).order_by(audit_table.c.seq)).all()
    prev = "0" * 64
    for row in rows:
        digest = _unkeyed_link(prev, row)
        conn.execute(
            update(audit_table).where(audit_table.c.seq == row.seq).values(prev_hash=prev, hash=digest, key_id=None)
        )
        prev = digest
    conn.execute(update(audit_head).values(hash=prev))


ATTACKS: list[object] = [
    pytest.param(cut_tail, "entries after 6 were deleted", id="delete-tail-and-move-head"),
    pytest.param(
        lambda c: rewrite_from(c, 4, keep_key_id=True), "entry 4 was edited", id="edit-and-recompute-later-hashes"
    ),
    pytest.param(
        lambda c: rewrite_from(c, 4, keep_key_id=False), "entry 4 is not keyed", id="edit-and-recompute-as-unkeyed"
    ),
    pytest.param(rewrite_whole_chain_unkeyed, "does not match the checkpoint", id="rewrite-everything-unkeyed"),
    pytest.param(wipe_and_reset_head, "records the head at entry 10", id="wipe-all-and-reset-head"),
    pytest.param(wipe_everything, "head row is missing", id="wipe-all-with-head"),
    pytest.param(lambda c: c.execute(delete(audit_head)), "head row is missing", id="missing-head"),
]


def test_untouched_keyed_trail_verifies_against_its_checkpoint(trail: tuple[Database, Path]) -> None:
    _, config = trail
    code, output = verify(config)
    assert code == 0
    assert output.splitlines()[0] == "audit chain intact: 10 entries verified (keyed), checked against 1 anchor(s)"


@pytest.mark.parametrize(("attack", "named"), ATTACKS)
def test_database_writer_attacks_are_found(
    trail: tuple[Database, Path], attack: Callable[[Connection], None], named: str
) -> None:
    d, config = trail
    with d.write() as conn:
        attack(conn)
    code, output = verify(config)
    assert code == 1
    assert named in output


def test_cut_tail_is_found_with_expect_head_and_no_checkpoint(trail: tuple[Database, Path], tmp_path: Path) -> None:
    d, config = trail
    _, output = verify(config)
    head = output.splitlines()[-1].removeprefix("head ")
    with d.write() as conn:
        cut_tail(conn)
    url = d.engine.url.render_as_string(hide_password=False)
    key = str(tmp_path / "audit.key")
    args = ["audit", "verify", "--database", url, "--key-file", key, "--expect-head", head]
    result = CliRunner().invoke(main, args)  # no checkpoint at all: the recorded head alone
    assert result.exit_code == 1
    assert "--expect-head records the head at entry 10" in result.output


def test_missing_checkpoint_file_is_a_failure_not_a_pass(trail: tuple[Database, Path], tmp_path: Path) -> None:
    _, config = trail
    code, output = verify(config, "--checkpoint", str(tmp_path / "absent.jsonl"))
    assert code == 1
    assert "no checkpoint" in output


def test_checkpoint_signed_by_another_key_is_refused(trail: tuple[Database, Path], tmp_path: Path) -> None:
    """An attacker who cut the tail cannot write a matching checkpoint without the key."""
    d, config = trail
    with d.write() as conn:
        cut_tail(conn)
    with d.read() as conn:
        seq, digest = audit.head(conn)
    forged = sign_checkpoint(AuditKey(b"not the real key, but long"), seq=seq or 0, hash_=digest or "", at=T0)
    checkpoints.write(tmp_path / "checkpoints.jsonl", forged)
    code, output = verify(config)
    assert code == 1
    assert "not signed by the audit key" in output


def test_keyed_entries_cannot_be_checked_without_the_key(trail: tuple[Database, Path], tmp_path: Path) -> None:
    d, _ = trail
    url = d.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(main, ["audit", "verify", "--database", url])
    assert result.exit_code == 1
    assert "no key was given" in result.output


def test_appends_after_a_checkpoint_extend_it(trail: tuple[Database, Path]) -> None:
    d, config = trail
    with d.write() as conn:
        audit.append(conn, at=T0 + timedelta(hours=1), kind="later", data={})
    code, output = verify(config)
    assert code == 0
    assert "11 entries verified" in output


def test_audit_checkpoint_command_signs_the_current_head(trail: tuple[Database, Path], tmp_path: Path) -> None:
    d, config = trail
    with d.write() as conn:
        audit.append(conn, at=T0 + timedelta(hours=1), kind="later", data={})
    result = CliRunner().invoke(main, ["audit", "checkpoint", "--config", str(config)])
    assert result.exit_code == 0, result.output
    cp = checkpoints.latest(tmp_path / "checkpoints.jsonl")
    assert cp is not None
    assert (cp.seq, checkpoint_signed_by(cp, AuditKey(KEY_TEXT.encode()))) == (11, True)


def test_keygen_writes_a_private_key_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first = CliRunner().invoke(main, ["audit", "keygen", str(path)])
    assert first.exit_code == 0, first.output
    assert path.stat().st_mode & 0o077 == 0
    key = path.read_text()
    again = CliRunner().invoke(main, ["audit", "keygen", str(path)])
    assert again.exit_code == 2
    assert path.read_text() == key


def test_entries_before_the_key_are_reported_unkeyed(database_url: str) -> None:
    """A database that predates the key keeps verifying; its unkeyed entries are named, not hidden."""
    from paramedic.core.audit import verify_chain

    d = Database(make_engine(database_url))
    migrate.upgrade(d)
    key = AuditKey(KEY_TEXT.encode())
    with d.write() as conn:
        audit.append(conn, at=T0, kind="before-key", data={})
    audit.bind_key(d.engine, key)
    with d.write() as conn:
        audit.append(conn, at=T0, kind="after-key", data={})
    with d.read() as conn:
        seq, digest = audit.head(conn)
        report = verify_chain(audit.iter_entries(conn), head_seq=seq, head_hash=digest, key=key)
    d.dispose()
    assert (report.ok, report.unkeyed) == (True, 1)
    assert any("1 entries are unkeyed" in w for w in report.warnings)


def test_the_service_checkpoints_its_head_and_the_trail_verifies(
    make_server: Callable[..., object], tmp_path: Path
) -> None:
    """`serve` binds the key from the config, writes a checkpoint at start and at stop; the
    checkpoint file then anchors the CLI's verify."""
    from paramedic.core.config import AuditCheckpoints, AuditSettings

    key_file = tmp_path / "svc.key"
    key_file.write_text(KEY_TEXT)
    cp_file = tmp_path / "svc-checkpoints.jsonl"
    settings = AuditSettings(key_file=str(key_file), checkpoints=AuditCheckpoints(file=str(cp_file)))
    srv = make_server(audit=settings)
    with srv.client() as c:  # type: ignore[attr-defined]
        assert c.post("/api/v1/automation/pause", json={"reason": "test"}).status_code == 200
    srv.__exit__(None, None, None)  # type: ignore[attr-defined]
    cp = checkpoints.latest(cp_file)
    assert cp is not None
    assert cp.seq >= 1
    config = tmp_path / "svc.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path / 'paramedic.db'}\n"
        f"audit: {{key_file: {key_file}, checkpoints: {{file: {cp_file}}}}}\n"
    )
    code, output = verify(config)
    assert code == 0, output
    assert f"head {cp.seq}:{cp.hash}" in output
