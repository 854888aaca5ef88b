"""Per-runbook figures of a backtest: what each runbook would have done, and what stopped it.

Pure functions of a ``BacktestResult``; ``backtest_report`` renders them as a table, a report
file and JSON.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from paramedic.core.guardrails import Refusal
from paramedic.testing.backtest import BacktestResult, Decision, Kind
from paramedic.testing.history import Episode

# The guardrail behind each refusal code, as the report names it.
REASON: dict[str, str] = {
    Refusal.RATE_LIMITED.value: "rate limit",
    Refusal.BLAST_RADIUS.value: "blast radius",
    Refusal.FLAPPING.value: "flapping",
    Refusal.NOT_FIRING_LONG_ENOUGH.value: "firing_for",
    Refusal.FROZEN.value: "freeze",
    Refusal.CIRCUIT_OPEN.value: "breaker",
    Refusal.PAUSED.value: "paused",
    Refusal.STALE.value: "stale",
    Refusal.RESOLVED.value: "resolved",
}


def reason_name(code: str) -> str:
    return REASON.get(code, code)


@dataclass(frozen=True, slots=True, kw_only=True)
class WeakTrigger:
    """An episode the runbook acted on that resolved by itself soon after, in the history."""

    episode: str
    at: datetime
    resolved_after: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class RunbookSummary:
    runbook: str
    mode: str
    matched: int
    acted: int
    actions: int  # steps of the runs that acted
    failed: int  # acted, but the outcome model says verification would have failed
    refusals: dict[str, int] = field(default_factory=dict)  # reason code → count
    approvals: int = 0
    observed: int = 0
    plan_errors: int = 0
    waited: int = 0
    peak_concurrency: int = 0
    targets: tuple[str, ...] = ()
    weak: tuple[WeakTrigger, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "runbook": self.runbook,
            "mode": self.mode,
            "episodes_matched": self.matched,
            "runs_acted": self.acted,
            "actions": self.actions,
            "failed_verifications": self.failed,
            "refusals": {reason_name(k): v for k, v in sorted(self.refusals.items())},
            "refusal_codes": dict(sorted(self.refusals.items())),
            "awaiting_approval": self.approvals,
            "observed": self.observed,
            "plan_errors": self.plan_errors,
            "waited_for_firing_for": self.waited,
            "peak_concurrency": self.peak_concurrency,
            "targets_touched": list(self.targets),
            "resolved_by_themselves_soon_after": [
                {"episode": w.episode, "at": w.at.isoformat(), "resolved_after_s": w.resolved_after.total_seconds()}
                for w in self.weak
            ],
        }


def peak_concurrency(decisions: Sequence[Decision]) -> int:
    """The most actions of these decisions in flight at one instant (``[at, finished_at)``; an
    action that ends the instant it starts still counts, and one ending frees its slot first)."""
    edges: list[tuple[datetime, int, int]] = []
    for d in decisions:
        if d.kind is Kind.ACTED:
            end = d.finished_at or d.at
            edges += [(d.at, 1, 1), (end, 2 if end == d.at else 0, -1)]
    peak = current = 0
    for _, _, delta in sorted(edges):
        current += delta
        peak = max(peak, current)
    return peak


def summarize(result: BacktestResult) -> list[RunbookSummary]:
    by_key: dict[str, Episode] = {e.key: e for e in result.episodes}
    grouped: dict[str, list[Decision]] = {rb.name: [] for rb in result.runbooks}
    for d in result.decisions:
        grouped.setdefault(d.runbook, []).append(d)
    soon = result.settings.soon
    out = []
    for rb in result.runbooks:
        ds = grouped[rb.name]
        acted = [d for d in ds if d.kind is Kind.ACTED]
        weak = []
        for d in acted:
            ep = by_key.get(d.episode)
            if ep is not None and ep.ends_at is not None and timedelta(0) <= ep.ends_at - d.at <= soon:
                weak.append(WeakTrigger(episode=d.episode, at=d.at, resolved_after=ep.ends_at - d.at))
        out.append(
            RunbookSummary(
                runbook=rb.name,
                mode=str(rb.mode),
                matched=len({d.episode for d in ds}),
                acted=len(acted),
                actions=sum(len(d.actions) for d in acted),
                failed=sum(1 for d in acted if d.ok is False),
                refusals=dict(Counter(d.code for d in ds if d.kind is Kind.REFUSED)),
                approvals=sum(1 for d in ds if d.kind is Kind.APPROVAL),
                observed=sum(1 for d in ds if d.kind is Kind.OBSERVE),
                plan_errors=sum(1 for d in ds if d.kind is Kind.PLAN_ERROR),
                waited=sum(1 for d in ds if d.waited),
                peak_concurrency=peak_concurrency(acted),
                targets=tuple(sorted({d.target for d in acted})),
                weak=tuple(weak),
            )
        )
    return out


def unmatched(result: BacktestResult) -> Counter[str]:
    """Alert names of episodes no runbook matched: paramedic would page a human for each."""
    matched = {d.episode for d in result.decisions}
    return Counter(e.name for e in result.episodes if e.key not in matched)
