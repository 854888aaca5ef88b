"""``--from SOURCE``: which history reader a backtest or ``candidates`` uses.

\b
  prometheus:URL | http(s)://URL   the ALERTS series of that Prometheus
  db | db:URL | sqlite:///… | postgresql+psycopg://…   paramedic's incidents (db: the config's)
  DIR                               a folder of payloads recorded by ``paramedic record``
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from paramedic.testing import history_prometheus, history_recorded, history_store
from paramedic.testing.history import History, HistoryError, Period, within


@dataclass(frozen=True, slots=True)
class Source:
    kind: str  # prometheus | db | recorded
    where: str

    @property
    def prometheus_url(self) -> str:
        return self.where if self.kind == "prometheus" else ""


def parse_source(text: str, *, database: str = "") -> Source:
    raw = text.strip()
    if raw.startswith("prometheus:"):
        return Source("prometheus", raw.removeprefix("prometheus:"))
    if raw.startswith(("http://", "https://")):
        return Source("prometheus", raw)
    if raw == "db":
        if not database:
            raise HistoryError("--from db needs a database: give --from db:URL or a config with database:")
        return Source("db", database)
    if raw.startswith("db:"):
        return Source("db", raw.removeprefix("db:"))
    if raw.startswith(("sqlite:", "postgresql")):
        return Source("db", raw)
    if Path(raw).is_dir():
        return Source("recorded", raw)
    raise HistoryError(
        f"--from {text!r}: give prometheus:URL, db (or db:URL), or a folder of recorded payloads; no such folder"
    )


def read(
    source: Source,
    period: Period,
    *,
    step: timedelta = timedelta(seconds=15),
    delay: timedelta = timedelta(0),
) -> History:
    """The episodes of ``source`` that started in the period, in the order paramedic saw them."""
    if source.kind == "prometheus":
        found = History(history_prometheus.read(source.where, period, step=step, delay=delay))
    elif source.kind == "db":
        found = history_store.read(source.where, period)
    else:
        found = history_recorded.read(Path(source.where))
    return History(within(found.episodes, period), found.warnings)
