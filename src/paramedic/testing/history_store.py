"""Alert history from paramedic's own database: each incident is one episode.

Incidents also carry what only paramedic knows: when a human (or the automation) first
acknowledged the incident and who handled it, which ``paramedic candidates`` uses to estimate
the on-call time a failure mode costs.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import ArgumentError, DBAPIError

from paramedic.core.errors import StoreUnavailable
from paramedic.store import history as history_repo
from paramedic.store.db import Database, single_use_engine
from paramedic.testing.history import Episode, History, HistoryError, Period


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///FILE`` URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def read(database: str, period: Period) -> History:
    """The incidents of ``database`` (a SQLAlchemy URL) that started in the period."""
    file = sqlite_file(database)
    if file is not None and not file.is_file():  # opening it would create an empty database
        raise HistoryError(f"no paramedic database at {file}; give --from db:URL (or the config with database:)")
    try:
        db = Database(single_use_engine(database))
    except ArgumentError as exc:  # a URL SQLAlchemy cannot parse
        raise HistoryError(f"cannot open the database {database!r}: {exc}") from exc
    episodes: list[Episode] = []
    try:
        with db.read() as conn:
            for row in history_repo.incidents_between(conn, period.start, period.end):
                episodes.append(
                    Episode(
                        key=f"incident-{row.id}",
                        source=row.source,
                        name=row.alertname,
                        labels=dict(row.labels),
                        annotations=dict(row.annotations),
                        fingerprint=row.fingerprint,
                        starts_at=row.starts_at,
                        seen_at=row.first_seen_at,
                        ends_at=row.resolved_at,
                        acknowledged_at=row.acknowledged_at,
                        handled_by=row.handled_by,
                    )
                )
    except (StoreUnavailable, DBAPIError) as exc:
        raise HistoryError(f"cannot read incidents from {database!r}: {exc}; is it a paramedic database?") from exc
    finally:
        db.dispose()
    return History(sorted(episodes, key=lambda e: (e.seen_at, e.key)))
