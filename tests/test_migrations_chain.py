"""The migrations form one chain: unique revision ids, one head (two branches that both add a
``0003`` would otherwise leave one of them unapplied, or fail `paramedic db upgrade`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from alembic.script import ScriptDirectory

from paramedic.store.migrate import alembic_config

VERSIONS = Path(__file__).resolve().parents[1] / "src" / "paramedic" / "store" / "migrations" / "versions"


def test_revision_ids_are_unique_and_form_one_chain() -> None:
    ids = Counter(
        line.split("=", 1)[1].strip().strip('"')
        for f in VERSIONS.glob("*.py")
        for line in f.read_text().splitlines()
        if line.startswith("revision = ")
    )
    assert [rev for rev, n in ids.items() if n > 1] == []
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert len(list(script.walk_revisions())) == sum(ids.values())
