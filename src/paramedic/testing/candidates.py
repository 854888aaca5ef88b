"""``paramedic candidates``: which failure modes to automate first, from the alert history.

The seed's advice: start where automation pays and is safe — frequent, low-risk, easy-to-validate
failure modes — and never automate unknowns. A failure mode here is an alert name within a
service. For each, from its episodes:

- frequency: episodes per week over the period;
- human time: acknowledge → resolve where paramedic knows both (its own incidents), otherwise
  how long the alert fired (marked as an estimate);
- flapping: the share of episodes that came while their alert was flapping (those are refused
  by the guardrails and are better fixed at the alert rule);
- risk: how many targets of the mode were firing at once at worst — one at a time is a local
  failure a restart can fix; many at once looks systemic (blast radius);
- ease of validation: the share of episodes that resolved (a resolving alert can verify the fix);
- whether a runbook already matches, and in which mode.

The score multiplies weekly frequency by the human minutes per episode, then discounts flapping,
systemic and unverifiable modes; a mode already automated in ``auto`` goes to the bottom. Each
row says why, in those terms. Pure: it takes episodes and runbooks, and returns rows.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from paramedic.core.durations import format_duration
from paramedic.core.runbooks import Flap, Mode, Runbook
from paramedic.runbooks import loading as loader
from paramedic.testing.history import Episode, Period

DEFAULT_HUMAN = timedelta(minutes=15)  # when neither acknowledgement nor resolution is known


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    alertname: str
    service: str
    episodes: int
    per_week: float
    human_median: timedelta
    human_total: timedelta
    human_known: int  # episodes with acknowledge → resolve known
    flapping_share: float
    peak_targets: int
    targets: int
    resolved_share: float
    runbooks: tuple[tuple[str, str], ...]  # (name, mode)
    score: float
    why: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "alertname": self.alertname,
            "service": self.service,
            "episodes": self.episodes,
            "per_week": round(self.per_week, 2),
            "human_median_s": self.human_median.total_seconds(),
            "human_total_s": self.human_total.total_seconds(),
            "human_time_known_for": self.human_known,
            "flapping_share": round(self.flapping_share, 3),
            "peak_targets_at_once": self.peak_targets,
            "targets": self.targets,
            "resolved_share": round(self.resolved_share, 3),
            "runbooks": [{"name": n, "mode": m} for n, m in self.runbooks],
            "score": round(self.score, 2),
            "why": list(self.why),
        }


def _flapping_flags(episodes: Sequence[Episode], flap: Flap) -> dict[str, bool]:
    """Per episode: did it start while its alert had fired more than ``flap.max`` times in the window?"""
    by_alert: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    for e in episodes:
        by_alert[(e.source, e.fingerprint)].append(e)
    out: dict[str, bool] = {}
    for eps in by_alert.values():
        eps.sort(key=lambda e: e.starts_at)
        lo = 0
        for hi, e in enumerate(eps):
            while eps[lo].starts_at <= e.starts_at - flap.window:
                lo += 1
            out[e.key] = hi - lo > flap.max  # earlier episodes within the window, as the guardrail counts
    return out


def _peak_at_once(episodes: Sequence[Episode], end_of_period: Period) -> int:
    edges = []
    for e in episodes:
        edges.append((e.starts_at, 1))
        edges.append((e.ends_at or end_of_period.end, -1))
    peak = current = 0
    for _, delta in sorted(edges, key=lambda x: (x[0], x[1])):
        current += delta
        peak = max(peak, current)
    return peak


def _human(e: Episode) -> timedelta | None:
    if e.acknowledged_at is not None and e.ends_at is not None and e.handled_by != "paramedic":
        return max(timedelta(0), e.ends_at - e.acknowledged_at)
    return None


def rank(
    episodes: Sequence[Episode],
    runbooks: Sequence[Runbook],
    period: Period,
    *,
    flap: Flap | None = None,
) -> list[Candidate]:
    flap = flap or Flap()
    flags = _flapping_flags(episodes, flap)
    books = loader.RunbookSet(runbooks)
    weeks = max((period.end - period.start) / timedelta(days=7), 1 / 7)
    groups: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    for e in episodes:
        groups[(e.name, e.labels.get("service", ""))].append(e)
    out = []
    for (name, service), eps in groups.items():
        known = [h for e in eps if (h := _human(e)) is not None]
        firing = [e.duration for e in eps if e.duration is not None]
        estimate = not known
        sample = known or firing or [DEFAULT_HUMAN]
        median = timedelta(seconds=statistics.median(t.total_seconds() for t in sample))
        total = median * len(eps) if estimate else sum(known, timedelta(0)) + median * (len(eps) - len(known))
        flapping = sum(1 for e in eps if flags.get(e.key)) / len(eps)
        resolved = sum(1 for e in eps if e.ends_at is not None) / len(eps)
        peak = _peak_at_once(eps, period)
        targets = len({e.labels.get("instance", e.fingerprint) for e in eps})
        matched = books.match(max(eps, key=lambda e: e.starts_at).alert())
        rbs = tuple((rb.name, str(rb.mode)) for rb in matched)
        per_week = len(eps) / weeks
        risk = 1.0 if peak <= 1 else 1.0 / peak
        verifiable = 0.3 + 0.7 * resolved
        score = per_week * (median.total_seconds() / 60) * (1 - flapping) * risk * verifiable
        automated = any(m == Mode.AUTO for _, m in rbs)
        if automated:
            score = 0.0
        why = _why(
            per_week=per_week,
            count=len(eps),
            median=median,
            total=total,
            estimate=estimate,
            flapping=flapping,
            peak=peak,
            resolved=resolved,
            runbooks=rbs,
        )
        out.append(
            Candidate(
                alertname=name,
                service=service,
                episodes=len(eps),
                per_week=per_week,
                human_median=median,
                human_total=total,
                human_known=len(known),
                flapping_share=flapping,
                peak_targets=peak,
                targets=targets,
                resolved_share=resolved,
                runbooks=rbs,
                score=score,
                why=why,
            )
        )
    return sorted(out, key=lambda c: (-c.score, -c.episodes, c.alertname, c.service))


def _why(
    *,
    per_week: float,
    count: int,
    median: timedelta,
    total: timedelta,
    estimate: bool,
    flapping: float,
    peak: int,
    resolved: float,
    runbooks: tuple[tuple[str, str], ...],
) -> tuple[str, ...]:
    why = []
    freq = "frequent" if per_week >= 3 else "occasional" if per_week >= 0.5 else "rare"
    why.append(f"{freq}: {count} episodes ({per_week:.1f}/week)")
    cost = "firing" if estimate else "acknowledge → resolve"
    why.append(
        f"costs {format_duration(total)} of on-call time (median {format_duration(median)} {cost}"
        + (", an estimate" if estimate else "")
        + ")"
    )
    if peak <= 1:
        why.append("low risk: one target at a time")
    else:
        why.append(f"riskier: up to {peak} targets at once — looks systemic, keep a blast radius")
    if resolved >= 0.9:
        why.append(f"easy to validate: {resolved:.0%} resolved, so verify with the alert resolving")
    else:
        why.append(f"hard to validate: only {resolved:.0%} resolved — add a probe or a query to verify")
    if flapping >= 0.2:
        why.append(f"flaps: {flapping:.0%} of episodes came while flapping — fix the alert rule first")
    if not runbooks:
        why.append("no runbook yet: write one in observe mode and backtest it")
    else:
        modes = ", ".join(f"{n} ({m})" for n, m in runbooks)
        if any(m == "auto" for _, m in runbooks):
            why.append(f"already automated: {modes}")
        else:
            why.append(f"runbook {modes}: backtest it and promote it on evidence")
    return tuple(why)
