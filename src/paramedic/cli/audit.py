"""``paramedic audit``: verify the keyed hash chain against a checkpoint, write checkpoints, export.

These commands read the database directly (``--config`` or ``--database``), and the key and the
checkpoint file from the config's ``audit:`` section or from ``--key-file`` and ``--checkpoint``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.markup import escape

from paramedic.cli.app import _db, _load_config, err, fail, friendly, out

DB = click.option("--config", "-c", help="config file (for its database and its audit: section)")
DB_URL = click.option("--database", help="database URL (overrides the config)")

KEY_FILE = click.option(
    "--key-file", type=click.Path(dir_okay=False), help="the audit key (overrides audit.key_file / audit.key_env)"
)
_HEAD = re.compile(r"^(\d+):([0-9a-f]{64})$")


@click.group()
def audit() -> None:
    """Check, checkpoint and export the keyed, hash-chained audit trail (docs/audit.md)."""


def _key(cfg: Any, key_file: str | None) -> Any:
    from paramedic.engine.settings import read_audit_key

    return read_audit_key(cfg, key_file=key_file)


@audit.command("verify")
@DB
@DB_URL
@KEY_FILE
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False),
    help="checkpoint file to check against (default: audit.checkpoints.file)",
)
@click.option("--expect-head", metavar="SEQ:HASH", help="a head you recorded earlier (as printed by verify)")
@friendly
def audit_verify(
    config: str | None,
    database: str | None,
    key_file: str | None,
    checkpoint_file: str | None,
    expect_head: str | None,
) -> None:
    """Check every entry's link with the key, and the chain against the latest signed checkpoint
    and --expect-head. Exit 1 and name the first bad entry if any entry was edited, deleted,
    rewritten, cut off or wiped; exit 2 if the key or the checkpoint cannot be read."""
    from paramedic.core.audit import Anchor, checkpoint_signed_by, verify_chain
    from paramedic.store import audit as audit_repo
    from paramedic.store import checkpoints

    cfg = _load_config(config, database=database)
    key = _key(cfg, key_file)
    anchors = []
    if expect_head is not None:
        m = _HEAD.match(expect_head.strip())
        if m is None:
            fail("--expect-head takes SEQ:HASH, as `paramedic audit verify` prints it (e.g. 42:9f86d0…)")
        anchors.append(Anchor(int(m.group(1)), m.group(2), "--expect-head"))
    path = checkpoint_file or (cfg.audit.checkpoints.file if cfg.audit.checkpoints else None)
    if path is not None:
        cp = checkpoints.latest(Path(path))
        if cp is None:
            _broken(
                f"no checkpoint in {path}: the checkpoint file is missing or empty. On a new install, write"
                " the first one with `paramedic audit checkpoint` (`paramedic serve` writes one at start);"
                " otherwise the file was removed or emptied"
            )
        elif key is None:
            fail("checkpoints are signed with the audit key: configure audit.key_file or pass --key-file")
        elif not checkpoint_signed_by(cp, key):
            _broken(f"the latest checkpoint in {path} is not signed by the audit key: forged, or another key's")
        else:
            anchors.append(Anchor(cp.seq, cp.hash, f"the checkpoint of {cp.at.isoformat()}"))
    db = _db(config, database)
    try:
        with db.read() as conn:
            seq, digest = audit_repo.head(conn)
            report = verify_chain(
                audit_repo.iter_entries(conn), head_seq=seq, head_hash=digest, key=key, anchors=anchors
            )
    finally:
        db.dispose()
    if not report.ok:
        _broken(f"audit chain broken at entry {report.first_bad}: {report.problem}")
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    keyed = "keyed" if report.unkeyed == 0 and key is not None else f"{report.unkeyed} unkeyed"
    out.print(
        f"[green]audit chain intact: {report.checked} entries verified ({keyed}),"
        f" checked against {len(anchors)} anchor(s)[/]",
        highlight=False,
    )
    out.print(f"head {report.head_seq}:{report.head_hash}", highlight=False)


def _broken(message: str) -> NoReturn:
    err.print(f"[red]{escape(message)}[/]", highlight=False)
    sys.exit(1)


@audit.command("checkpoint")
@DB
@DB_URL
@KEY_FILE
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    help="file to append to (default: audit.checkpoints.file)",
)
@friendly
def audit_checkpoint(config: str | None, database: str | None, key_file: str | None, out_file: str | None) -> None:
    """Sign the chain's current head and append it to the checkpoint file (the service does this
    every audit.checkpoints.every; use this from cron or before a backup)."""
    from paramedic.store import audit as audit_repo
    from paramedic.store import checkpoints

    cfg = _load_config(config, database=database)
    key = _key(cfg, key_file)
    if key is None:
        fail("a checkpoint is signed with the audit key: configure audit.key_file or pass --key-file")
    path = out_file or (cfg.audit.checkpoints.file if cfg.audit.checkpoints else None)
    if path is None:
        fail("no checkpoint file: configure audit.checkpoints.file or pass --out")
    db = _db(config, database)
    try:
        with db.read() as conn:
            cp = audit_repo.checkpoint(conn, key, now=datetime.now(UTC))
    finally:
        db.dispose()
    checkpoints.write(Path(path), cp)
    out.print(f"checkpoint written to {escape(path)}: head {cp.seq}:{cp.hash}", highlight=False)


@audit.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False))
@friendly
def audit_keygen(path: str) -> None:
    """Write a new random audit key to PATH (mode 0600; refuses to overwrite). Keep it away from
    the database's writers and backups, and point audit.key_file at it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{path} exists; a new key would make the entries it keyed unverifiable. Choose another path")
    except OSError as exc:
        fail(f"cannot create {path}: {exc.strerror or exc}")
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    out.print(f"audit key written to {escape(path)}; add to paramedic.yaml:  audit: {{key_file: {escape(path)}}}")


@audit.command("export")
@DB
@DB_URL
@friendly
def audit_export(config: str | None, database: str | None) -> None:
    """Print every audit entry as one JSON line."""
    from paramedic.store import audit as audit_repo

    db = _db(config, database)
    with db.read() as conn:
        for e in audit_repo.iter_entries(conn):
            click.echo(
                json.dumps(
                    {
                        "seq": e.seq,
                        "at": e.at.isoformat(),
                        "kind": e.kind,
                        "actor": e.actor,
                        "incident_id": e.incident_id,
                        "run_id": e.run_id,
                        "data": e.data,
                        "prev_hash": e.prev_hash,
                        "hash": e.hash,
                        "key_id": e.key_id,
                    },
                    ensure_ascii=False,
                )
            )
    db.dispose()
