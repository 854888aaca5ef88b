"""Data quality of an alert history, in the backtest's report (the seed: "watch data quality").

Three findings, each a reason automation would be refused or would act on bad facts:

- alerts that flap: more than ``flap.max`` episodes of one alert within ``flap.window``;
- alerts missing the labels a runbook's templates read (or carrying values that fail the
  runbook's ``params`` pattern): such an episode gets no plan and is escalated;
- series a runbook's Prometheus verification reads that were absent while the alert fired: an
  absent series is never read as zero, so the verification could not have passed.

The first two are pure functions of the history and the replay; the third asks Prometheus
through a callable, so it can be skipped when there is none.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from paramedic.core.errors import TemplateError
from paramedic.core.plan import build_plan
from paramedic.core.runbooks import Flap, Runbook
from paramedic.runbooks.dsl import PythonRunbook
from paramedic.testing.backtest import BacktestResult, Kind
from paramedic.testing.history import Episode, Period

MAX_QUERIES = 20  # distinct rendered queries checked per runbook, and episodes per query


@dataclass(frozen=True, slots=True, kw_only=True)
class Flapping:
    alertname: str
    fingerprint: str
    labels: dict[str, str]
    episodes: int
    most_in_window: int  # the most episodes that started within one flap window


@dataclass(frozen=True, slots=True, kw_only=True)
class MissingLabel:
    runbook: str
    alertname: str
    label: str
    problem: str  # "missing" | "invalid"
    episodes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AbsentSeries:
    runbook: str
    query: str
    checked: int
    absent: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DataQuality:
    flapping: tuple[Flapping, ...] = ()
    missing_labels: tuple[MissingLabel, ...] = ()
    absent_series: tuple[AbsentSeries, ...] = ()
    checked_series: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "flapping": [
                {
                    "alertname": f.alertname,
                    "fingerprint": f.fingerprint,
                    "labels": f.labels,
                    "episodes": f.episodes,
                    "most_in_window": f.most_in_window,
                }
                for f in self.flapping
            ],
            "missing_labels": [
                {
                    "runbook": m.runbook,
                    "alertname": m.alertname,
                    "label": m.label,
                    "problem": m.problem,
                    "episodes": m.episodes,
                }
                for m in self.missing_labels
            ],
            "absent_series": [
                {"runbook": a.runbook, "query": a.query, "checked": a.checked, "absent": a.absent}
                for a in self.absent_series
            ],
            "series_checked": self.checked_series,
        }


def most_in_window(starts: Sequence[datetime], window: timedelta) -> int:
    """The most of these start times that fall within any one span of ``window``."""
    ordered = sorted(starts)
    best, lo = 0, 0
    for hi, at in enumerate(ordered):
        while ordered[lo] <= at - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def flapping(episodes: Sequence[Episode], flap: Flap) -> list[Flapping]:
    by_alert: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    for e in episodes:
        by_alert[(e.source, e.fingerprint)].append(e)
    out = []
    for (_, fp), eps in by_alert.items():
        most = most_in_window([e.starts_at for e in eps], flap.window)
        if most > flap.max:
            out.append(
                Flapping(
                    alertname=eps[0].name,
                    fingerprint=fp,
                    labels=dict(eps[0].labels),
                    episodes=len(eps),
                    most_in_window=most,
                )
            )
    return sorted(out, key=lambda f: (-f.most_in_window, -f.episodes, f.alertname))


def missing_labels(result: BacktestResult) -> list[MissingLabel]:
    by_key = {e.key: e for e in result.episodes}
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for d in result.decisions:
        if d.kind is not Kind.PLAN_ERROR or d.code in ("", "template", "planning"):
            continue
        ep = by_key.get(d.episode)
        if ep is None:
            continue
        problem = "invalid" if d.code in ep.labels else "missing"
        counts[(d.runbook, ep.name, d.code, problem)] += 1
    return [
        MissingLabel(runbook=rb, alertname=name, label=label, problem=problem, episodes=n)
        for (rb, name, label, problem), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


Presence = Callable[[str, Period], bool]


def absent_series(result: BacktestResult, present: Presence) -> list[AbsentSeries]:
    """For each runbook with a Prometheus verification: did its series exist while the alert
    fired? Checks up to ``MAX_QUERIES`` distinct rendered queries per runbook."""
    by_key = {e.key: e for e in result.episodes}
    out = []
    for rb in result.runbooks:
        if rb.verify is None or rb.verify.prometheus is None or isinstance(rb, PythonRunbook):
            continue
        windows: dict[str, list[Period]] = defaultdict(list)
        for d in result.decisions:
            ep = by_key.get(d.episode)
            if d.runbook != rb.name or d.kind is Kind.PLAN_ERROR or ep is None:
                continue
            query = _query(rb, ep)
            if query is None or (query not in windows and len(windows) >= MAX_QUERIES):
                continue
            if len(windows[query]) >= MAX_QUERIES:
                continue
            end = ep.ends_at or (ep.starts_at + rb.verify.prometheus.within)
            windows[query].append(Period(ep.starts_at, max(end, ep.starts_at + timedelta(seconds=1))))
        for query, periods in windows.items():
            absent = sum(1 for p in periods if not present(query, p))
            out.append(AbsentSeries(runbook=rb.name, query=query, checked=len(periods), absent=absent))
    return [a for a in out if a.absent]


def _query(rb: Runbook, ep: Episode) -> str | None:
    try:
        plan = build_plan(rb, ep.alert())
    except TemplateError:
        return None
    spec = (plan.verify or {}).get("prometheus")
    return str(spec["query"]) if isinstance(spec, dict) and spec.get("query") else None


def assess(result: BacktestResult, *, present: Presence | None = None) -> DataQuality:
    return DataQuality(
        flapping=tuple(flapping(result.episodes, result.settings.default_flap)),
        missing_labels=tuple(missing_labels(result)),
        absent_series=tuple(absent_series(result, present)) if present is not None else (),
        checked_series=present is not None,
    )
