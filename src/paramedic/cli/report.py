"""``paramedic report``: MTTR and automation figures over a period, per runbook, service and owner,
automated vs human (DESIGN §7), as a terminal table and a PNG chart. Reads the database directly;
a human resolution counts like an alert resolving (``queries.mttr_samples``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, and_, func, select

from paramedic.api import charts
from paramedic.api.queries import MttrSample, mttr_samples
from paramedic.cli.render import cell
from paramedic.core.durations import format_duration
from paramedic.store.tables import incidents

MAX_INCIDENTS = 1_000_000


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    detected: int  # every incident detected in the period, open ones included
    still_open: int
    samples: tuple[MttrSample, ...]

    def groups(self, by: charts.GroupBy) -> list[charts.Group]:
        return charts.summarize(self.samples, by)

    @property
    def total(self) -> charts.Group:
        return charts.totals(self.samples)


def gather(conn: Connection, *, since: datetime, until: datetime) -> Report:
    period = and_(incidents.c.starts_at >= since, incidents.c.starts_at < until)
    detected = conn.execute(select(func.count()).select_from(incidents).where(period)).scalar_one()
    still_open = conn.execute(
        select(func.count()).select_from(incidents).where(and_(period, incidents.c.open_key.is_not(None)))
    ).scalar_one()
    samples = mttr_samples(conn, limit=MAX_INCIDENTS, since=since, until=until)
    return Report(since, until, int(detected), int(still_open), tuple(samples))


def _median(st: charts.Stats | None) -> str:
    return st.median if st else "—"


def _ttm(samples: Sequence[MttrSample]) -> str:
    xs = [s.ttm_s for s in samples if s.ttm_s is not None]
    st = charts.stats(xs)
    return st.median if st else "—"


def table(report: Report, by: charts.GroupBy) -> Table:
    """One row per group; fits 80 columns."""
    t = Table(box=box.SIMPLE_HEAD, title=f"per {by}", title_justify="left", pad_edge=False, padding=(0, 1))
    t.add_column(by, max_width=20, overflow="ellipsis", no_wrap=True)
    for col in ("n", "auto", "MTTR auto", "human", "MTTR human", "%auto", "TTM"):
        t.add_column(col, justify="right", no_wrap=True)
    for g in report.groups(by):
        auto = g.automated.count if g.automated else 0
        mine = [s for s in report.samples if getattr(s, by) == g.name]
        t.add_row(
            cell(g.name),
            str(g.count),
            str(auto),
            _median(g.automated),
            str(g.human.count if g.human else 0),
            _median(g.human),
            f"{100 * auto / g.count:.0f}%" if g.count else "—",
            _ttm(mine),
        )
    return t


def _span(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:g}d" if days >= 1 and days == int(days) else format_duration(delta.total_seconds())


def render(report: Report, console: Console, *, by: Sequence[charts.GroupBy]) -> None:
    total = report.total
    resolved = total.count
    auto = total.automated.count if total.automated else 0
    span = _span(report.until - report.since)
    console.print(
        f"[bold]paramedic report[/] {report.since:%Y-%m-%d %H:%M} → {report.until:%Y-%m-%d %H:%M} UTC ({span})",
        highlight=False,
    )
    console.print(
        f"{report.detected} incidents detected, {resolved} resolved, {report.still_open} still open",
        highlight=False,
    )
    if resolved:
        console.print(
            f"automated {auto} ({100 * auto / resolved:.0f}%), median MTTR {_median(total.automated)}"
            f" · human {resolved - auto}, median MTTR {_median(total.human)}",
            highlight=False,
        )
        saved = charts.saved_seconds(total)
        if saved is not None:
            console.print(
                f"human time saved ≈ {format_duration(saved)} (automated incidents × the median difference)",
                highlight=False,
            )
    else:
        console.print("no incident detected in this period was resolved yet", highlight=False)
    for key in by:
        console.print(table(report, key))


def png(report: Report, by: charts.GroupBy) -> bytes:
    title = f"MTTR per {by}: automated vs human, {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d}"
    return charts.mttr_png(report.groups(by), title=title)
