"""``paramedic backtest``: replay alert history through the runbooks and the guardrails, with the
clock of the history. Nothing runs.

The replay is a discrete-event simulation of what the engine does, built only from pure parts:
each episode is matched (``RunbookSet``) and planned (``core.plan`` / ``runbooks.dsl``) when
paramedic would have seen it, and every action is decided by ``core.guardrails.decide`` on a
``GuardrailInput`` built directly from the simulated facts — the ledger of actions it would have
taken, the known targets, the breaker states, earlier episodes of the same alert — exactly the
facts ``engine.guard.gather`` reads from the database. No database is involved.

What the engine does after a decision is folded back in the same way:

- an allowed action enters the ledger in flight and finishes as the ``OutcomeModel`` says (by
  default ``history_outcome``: verified if the alert resolved within the runbook's verification
  window in the history, failed otherwise), which feeds the circuit breaker (``core.breaker``) and
  the runbook's trust (``core.trust``: a trip demotes it, ``promote:`` promotes it);
- a run refused only for ``require.firing_for`` waits until the alert has fired long enough and is
  decided again, unless the alert resolved first (``defer_firing_for``; DESIGN §4);
- known targets come only from what declares them (the config's ``targets:``, or ``--targets``),
  never from alerts; as ingest does, a firing alert marks its runbooks' planned targets unhealthy
  and its resolution marks them healthy again, if they are known.

With ``as_auto`` (the default) every runbook is replayed as if it were pinned to ``auto``: the
question is what it *would* have done; the mode changes its record would have caused are reported,
not applied. Without it, the file's mode holds and changes as the engine would change it: observe
records a suggestion, approve counts as waiting for a human, and neither takes an action.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path

from paramedic.actions.registry import ExecutorRegistry, build_registry
from paramedic.core import breaker as brk
from paramedic.core import guardrails as g
from paramedic.core import trust
from paramedic.core.errors import ConfigError, TemplateError
from paramedic.core.freeze import FreezeWindow
from paramedic.core.plan import Plan, build_plan
from paramedic.core.runbooks import Flap, Mode, Runbook
from paramedic.runbooks import dsl
from paramedic.runbooks import loading as loader
from paramedic.testing.history import Episode, Period

__all__ = [
    "ActionOutcome",
    "Backtest",
    "BacktestResult",
    "Decision",
    "Kind",
    "Settings",
    "history_outcome",
    "success_outcome",
]


PLAN_CACHE = 100_000


class Kind(StrEnum):
    """What happened to one (episode, runbook) pair."""

    ACTED = "acted"  # the guardrails allowed it: the action would have run
    REFUSED = "refused"  # a guardrail refused it (``code`` says which)
    APPROVAL = "approval"  # approve mode: it would have waited for a human
    OBSERVE = "observe"  # observe mode: a suggestion, nothing runs
    EVIDENCE = "evidence"  # the runbook has no steps: evidence only
    PLAN_ERROR = "plan_error"  # no plan: a label failed its pattern, or the runbook raised


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionOutcome:
    """How an action the backtest lets through would have ended."""

    finished_at: datetime
    ok: bool
    why: str = ""


OutcomeModel = Callable[[Runbook, Plan, Episode, datetime], ActionOutcome]


def success_outcome(runbook: Runbook, plan: Plan, episode: Episode, at: datetime) -> ActionOutcome:
    """Every action finishes at once and passes its verification (an optimistic bound)."""
    return ActionOutcome(finished_at=at, ok=True, why="assumed to succeed")


def verify_window(plan: Plan) -> timedelta | None:
    """How long the plan's verification may take (``within``); ``None`` without a verify."""
    if not plan.verify:
        return None
    for spec in plan.verify.values():
        if isinstance(spec, Mapping):
            within = spec.get("within")
            if isinstance(within, int | float):
                return timedelta(seconds=float(within))
    return timedelta(minutes=5)


def history_outcome(runbook: Runbook, plan: Plan, episode: Episode, at: datetime) -> ActionOutcome:
    """What the history says: verified if the alert resolved within the verification window
    after the action, failed if it kept firing past it. No verify: succeeded at once (as the
    engine counts it)."""
    window = verify_window(plan)
    if window is None:
        return ActionOutcome(finished_at=at, ok=True, why="no verify configured")
    if episode.ends_at is not None and episode.ends_at <= at + window:
        return ActionOutcome(finished_at=max(at, episode.ends_at), ok=True, why="the alert resolved in time")
    return ActionOutcome(finished_at=at + window, ok=False, why="the alert kept firing past the verify window")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What the replay assumes besides the history. Defaults follow the engine's own."""

    freeze: Sequence[FreezeWindow] = ()
    default_flap: Flap = field(default_factory=Flap)
    as_auto: bool = True
    defer_firing_for: bool = True
    targets: Mapping[str, frozenset[str]] = field(default_factory=dict)  # scope key → declared targets
    outcome: OutcomeModel = history_outcome
    soon: timedelta = timedelta(minutes=5)  # "resolved by itself soon after the action"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The replay's answer for one runbook on one episode (its last word, after any wait)."""

    episode: str
    runbook: str
    at: datetime
    kind: Kind
    code: str = ""  # the refusal's reason code (core.guardrails.Refusal), or the plan error's label
    reason: str = ""
    target: str = ""
    actions: tuple[str, ...] = ()
    finished_at: datetime | None = None
    ok: bool | None = None
    waited: bool = False  # decided again after waiting for require.firing_for

    def to_json(self) -> dict[str, object]:
        return {
            "episode": self.episode,
            "runbook": self.runbook,
            "at": self.at.isoformat(),
            "kind": self.kind.value,
            "code": self.code,
            "reason": self.reason,
            "target": self.target,
            "actions": list(self.actions),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "ok": self.ok,
            "waited": self.waited,
        }


@dataclass(frozen=True, slots=True)
class ModeChange:
    runbook: str
    at: datetime
    mode: Mode
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    period: Period
    runbooks: Sequence[Runbook]
    episodes: Sequence[Episode]
    decisions: Sequence[Decision]
    mode_changes: Sequence[ModeChange] = ()
    settings: Settings = field(default_factory=Settings)


class _Event(IntEnum):
    """At one instant: results first, then new alerts, then resolutions, then waits that end
    (an episode that resolves the instant it is seen is still decided on, as the engine would)."""

    FINISH = 0
    START = 1
    END = 2
    RETRY = 3


@dataclass(slots=True)
class _Planned:
    runbook: Runbook
    plan: Plan


class Backtest:
    """Loaded runbooks, ready to replay histories through."""

    def __init__(self, books: Sequence[Runbook], registry: ExecutorRegistry | None = None) -> None:
        self.books = list(books)
        self.set = loader.RunbookSet(books)
        self.registry = registry or build_registry({})
        self._plans: dict[tuple[object, ...], Plan] = {}  # a TemplateError is not cached: raised again
        self._reads_alert: dict[str, bool] = {}

    def plan(self, rb: Runbook, ep: Episode) -> Plan:
        """``build_plan``, rendered once per runbook and label set when its templates read only
        labels and annotations (a month of history repeats the same alerts many times)."""
        if rb.name not in self._reads_alert:
            self._reads_alert[rb.name] = "alert." in rb.model_dump_json()
        if self._reads_alert[rb.name]:
            return build_plan(rb, ep.alert())
        key = (rb.name, tuple(sorted(ep.labels.items())), tuple(sorted(ep.annotations.items())))
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) > PLAN_CACHE:
                self._plans.clear()
            plan = self._plans[key] = build_plan(rb, ep.alert())
        return plan

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> Backtest:
        """Load runbooks; raises ``ConfigError`` listing every error."""
        registry = build_registry({})
        result = loader.load(paths, registry, lint=False)
        if result.errors:
            raise ConfigError("runbooks are invalid:\n" + "\n".join(str(p) for p in result.errors))
        if not result.runbooks:
            raise ConfigError(f"no runbooks found in {', '.join(map(str, paths))}")
        return cls(result.runbooks, registry)

    async def run(
        self, episodes: Sequence[Episode], period: Period, settings: Settings | None = None
    ) -> BacktestResult:
        sim = _Simulation(self, settings or Settings())
        await sim.replay(episodes)
        return BacktestResult(
            period=period,
            runbooks=self.books,
            episodes=list(episodes),
            decisions=sim.decisions,
            mode_changes=sim.mode_changes,
            settings=sim.settings,
        )


class _Simulation:
    """The facts the engine keeps in its database, kept in memory for one replay."""

    def __init__(self, bt: Backtest, settings: Settings) -> None:
        self.bt = bt
        self.settings = settings
        self.decisions: list[Decision] = []
        self.mode_changes: list[ModeChange] = []
        self.ledger: list[g.ActionRecord] = []
        self.ledger_starts: list[datetime] = []
        self.in_flight: set[int] = set()
        self.by: dict[tuple[str, str], list[int]] = {}  # (target|service|runbook|label:service, value) → rows
        self.breakers: dict[tuple[str, str], brk.BreakerState] = {}
        self.targets: dict[str, dict[str, bool]] = {k: dict.fromkeys(v, True) for k, v in settings.targets.items()}
        self.starts: dict[tuple[str, str], list[datetime]] = {}
        self.resolved: set[str] = set()
        self.planned: dict[str, list[_Planned]] = {}  # episode → its runs, for the health marks
        self.modes: dict[str, Mode] = {rb.name: Mode.AUTO if settings.as_auto else rb.mode for rb in bt.books}
        self.figures: dict[str, tuple[int, int]] = {}  # runbook → (runs, successes) at this mode
        self.queue: list[tuple[datetime, int, int, object]] = []
        self.seq = itertools.count()

    def push(self, at: datetime, kind: _Event, payload: object) -> None:
        heapq.heappush(self.queue, (at, kind, next(self.seq), payload))

    async def replay(self, episodes: Sequence[Episode]) -> None:
        for ep in episodes:
            self.push(ep.seen_at, _Event.START, ep)
            if ep.ended_seen_at is not None:
                self.push(ep.ended_seen_at, _Event.END, ep)
        while self.queue:
            at, kind, _, payload = heapq.heappop(self.queue)
            if kind == _Event.START:
                assert isinstance(payload, Episode)
                await self.start(payload, at)
            elif kind == _Event.END:
                assert isinstance(payload, Episode)
                self.end(payload, at)
            elif kind == _Event.FINISH:
                assert isinstance(payload, _Finish)
                self.finish(payload, at)
            else:
                assert isinstance(payload, _Retry)
                self.retry(payload, at)

    # ---- an alert arrives --------------------------------------------------------------------
    async def start(self, ep: Episode, now: datetime) -> None:
        alert = ep.alert()
        planned: list[_Planned] = []
        for rb in self.bt.set.match(alert):
            try:
                if isinstance(rb, dsl.PythonRunbook):
                    plan = await dsl.plan_for(rb, alert, now=now, registry=self.bt.registry)
                else:
                    plan = self.bt.plan(rb, ep)
            except TemplateError as exc:
                self.decide_plan_error(ep, rb, now, code=exc.param or "template", reason=str(exc))
                continue
            except (dsl.PlanningError, dsl.Escalation) as exc:
                self.decide_plan_error(ep, rb, now, code="planning", reason=str(exc))
                continue
            planned.append(_Planned(rb, plan))
        self.planned[ep.key] = planned
        self.mark_health(ep, planned, healthy=False)
        self.starts.setdefault((ep.source, ep.fingerprint), []).append(ep.starts_at)
        for p in planned:
            mode = self.modes[p.runbook.name]
            if not p.plan.steps:
                self.record(ep, p, now, Kind.EVIDENCE, reason="the runbook only gathers evidence")
            elif mode is Mode.OBSERVE:
                self.record(ep, p, now, Kind.OBSERVE, reason="observe mode: the plan is a suggestion")
            elif mode is Mode.APPROVE:
                self.record(ep, p, now, Kind.APPROVAL, reason="approve mode: waits for a human")
            else:
                self.evaluate(ep, p, now, waited=False)

    def decide_plan_error(self, ep: Episode, rb: Runbook, now: datetime, *, code: str, reason: str) -> None:
        self.decisions.append(
            Decision(episode=ep.key, runbook=rb.name, at=now, kind=Kind.PLAN_ERROR, code=code, reason=reason)
        )

    def record(self, ep: Episode, p: _Planned, now: datetime, kind: Kind, *, reason: str, code: str = "") -> None:
        self.decisions.append(
            Decision(
                episode=ep.key,
                runbook=p.runbook.name,
                at=now,
                kind=kind,
                code=code,
                reason=reason,
                target=p.plan.target,
                actions=tuple(s.action for s in p.plan.steps),
            )
        )

    def mark_health(self, ep: Episode, planned: Sequence[_Planned], *, healthy: bool) -> None:
        """An alert marks its runbooks' targets, never adds one (``engine.service``)."""
        for p in planned:
            br = p.runbook.guardrails.blast_radius
            known = self.targets.get(g.scope_key(ep.labels, br.scope)) if br is not None else None
            if known is not None and p.plan.target in known:
                known[p.plan.target] = healthy

    # ---- the guardrails ------------------------------------------------------------------------
    def recent_actions(
        self, rb: Runbook, plan: Plan, labels: Mapping[str, str], since: datetime
    ) -> list[g.ActionRecord]:
        """The ledger rows ``engine.guard`` would load (started since ``since``, or in flight),
        narrowed to those this runbook's checks can count — from any runbook, as the engine
        counts them. An index per target, service and runbook keeps a month's replay linear."""
        gr = rb.guardrails
        lists: list[list[int]] = []
        everything = False
        if gr.rate_limit is not None:
            scope = gr.rate_limit.scope
            if scope == "global":
                everything = True
            else:
                value = {"target": plan.target, "service": plan.service, "runbook": rb.name}[scope]
                lists.append(self.by.get((scope, value), []))
        if gr.blast_radius is not None:
            if "service" in gr.blast_radius.scope:
                lists.append(self.by.get(("label:service", labels.get("service", "")), []))
            else:
                everything = True
        if everything:
            first = bisect_left(self.ledger_starts, since)
            return self.ledger[first:] + [self.ledger[i] for i in sorted(self.in_flight) if i < first]
        picked: set[int] = set()
        for indices in lists:
            for i in reversed(indices):
                if self.ledger_starts[i] < since:
                    break
                picked.add(i)
        for i in self.in_flight:  # in flight whatever their age: few
            if self.ledger_starts[i] < since and any(i in indices for indices in lists):
                picked.add(i)
        return [self.ledger[i] for i in sorted(picked)]

    def facts(self, ep: Episode, p: _Planned, now: datetime) -> g.GuardrailInput:
        rb, gr = p.runbook, p.runbook.guardrails
        recent = self.recent_actions(rb, p.plan, ep.labels, now - g.action_lookback(gr))
        lookback = now - g.episode_lookback(rb.require, self.settings.default_flap)
        earlier = [t for t in self.starts.get((ep.source, ep.fingerprint), ()) if lookback <= t < ep.starts_at]
        targets = g.TargetFacts()
        if gr.blast_radius is not None:
            known = self.targets.get(g.scope_key(ep.labels, gr.blast_radius.scope), {})
            targets = g.TargetFacts(known=frozenset(known), healthy=frozenset(t for t, h in known.items() if h))
        key = _breaker_key(rb, ep.labels)
        return g.GuardrailInput(
            now=now,
            runbook=rb.name,
            target=p.plan.target,
            alert=g.AlertFacts(
                firing=ep.key not in self.resolved,
                starts_at=ep.starts_at,
                first_seen_at=ep.seen_at,
                episodes=earlier,
            ),
            labels=ep.labels,
            service=p.plan.service,
            freeze=self.settings.freeze,
            require=rb.require,
            guardrails=gr,
            default_flap=self.settings.default_flap,
            recent_actions=recent,
            targets=targets,
            breaker=None if key is None else self.breakers.get((rb.name, key), brk.BreakerState()),
        )

    def evaluate(self, ep: Episode, p: _Planned, now: datetime, *, waited: bool) -> None:
        decision = g.decide(self.facts(ep, p, now))
        refusal = decision.refusal
        rb = p.runbook
        if refusal is not None:
            young = next((v for v in decision.verdicts if v.code is g.Refusal.NOT_FIRING_LONG_ENOUGH), None)
            if self.settings.defer_firing_for and young is not None and young.retry_at is not None:
                # Not old enough yet: nothing else is decided before it is (DESIGN §4, firing_for waits).
                self.push(young.retry_at, _Event.RETRY, _Retry(ep, p, young.reason))
                return
            code = refusal.code.value if refusal.code else refusal.check.value
            self.record(ep, p, now, Kind.REFUSED, code=code, reason=refusal.reason)
            if waited:
                self.decisions[-1] = replace(self.decisions[-1], waited=True)
            return
        key = _breaker_key(rb, ep.labels)
        if key is not None and decision.breaker is not None:
            self.breakers[(rb.name, key)] = decision.breaker
        scope = {**dict(p.plan.scope), **{k: v for k, v in ep.labels.items() if k in _scope_labels(rb)}}
        record = g.ActionRecord(
            runbook=rb.name, target=p.plan.target, labels=scope, started_at=now, service=p.plan.service
        )
        index = len(self.ledger)
        self.ledger.append(record)
        self.ledger_starts.append(now)
        self.in_flight.add(index)
        for kind, value in (
            ("target", record.target),
            ("service", record.service),
            ("runbook", record.runbook),
            ("label:service", record.labels.get("service", "")),
        ):
            self.by.setdefault((kind, value), []).append(index)
        result = self.settings.outcome(rb, p.plan, ep, now)
        finished = max(result.finished_at, now)
        self.decisions.append(
            Decision(
                episode=ep.key,
                runbook=rb.name,
                at=now,
                kind=Kind.ACTED,
                reason=result.why,
                target=p.plan.target,
                actions=tuple(s.action for s in p.plan.steps),
                finished_at=finished,
                ok=result.ok,
                waited=waited,
            )
        )
        job = _Finish(index, rb, ep.labels, result.ok, now)
        if finished <= now:
            self.finish(job, now)
        else:
            self.push(finished, _Event.FINISH, job)

    def retry(self, job: _Retry, now: datetime) -> None:
        if job.episode.key in self.resolved:
            self.record(
                job.episode,
                job.planned,
                now,
                Kind.REFUSED,
                code=g.Refusal.NOT_FIRING_LONG_ENOUGH.value,
                reason=f"the alert resolved before it had fired long enough ({job.reason})",
            )
            self.decisions[-1] = replace(self.decisions[-1], waited=True)
            return
        self.evaluate(job.episode, job.planned, now, waited=True)

    # ---- results, resolutions, trust ---------------------------------------------------------
    def finish(self, job: _Finish, now: datetime) -> None:
        rec = self.ledger[job.index]
        self.ledger[job.index] = replace(
            rec, finished_at=now, outcome=g.Outcome.SUCCEEDED if job.ok else g.Outcome.FAILED
        )
        self.in_flight.discard(job.index)
        rb = job.runbook
        mode = self.modes[rb.name]
        key = _breaker_key(rb, job.labels)
        cb = rb.guardrails.circuit_breaker
        runs, successes = self.figures.get(rb.name, (0, 0))
        runs, successes = runs + 1, successes + (1 if job.ok else 0)
        self.figures[rb.name] = (runs, successes)
        if key is not None and cb is not None:
            before = self.breakers.get((rb.name, key), brk.BreakerState())
            after = brk.on_result(before, cb, succeeded=job.ok, now=now, started_at=job.started_at)
            self.breakers[(rb.name, key)] = after
            if brk.tripped(before, after):
                lower = trust.demoted(mode)
                if lower != mode:
                    self.set_mode(
                        rb.name, lower, now, f"circuit breaker opened for {key}: demoted from {mode} to {lower}"
                    )
                return
        figures = trust.TrustFigures(runs=runs, successes=successes, failures=runs - successes)
        promoted = trust.next_mode(mode, figures, rb.promote)
        if promoted is not None and promoted != mode:
            self.set_mode(rb.name, promoted, now, trust.promotion_reason(mode, figures, rb.promote))

    def set_mode(self, runbook: str, mode: Mode, now: datetime, reason: str) -> None:
        """Follow a promotion or demotion; replayed as if auto, the change is only reported."""
        self.mode_changes.append(ModeChange(runbook, now, mode, reason))
        if not self.settings.as_auto:
            self.modes[runbook] = mode
            self.figures[runbook] = (0, 0)

    def end(self, ep: Episode, now: datetime) -> None:
        self.resolved.add(ep.key)
        self.mark_health(ep, self.planned.pop(ep.key, ()), healthy=True)


@dataclass(frozen=True, slots=True)
class _Finish:
    index: int
    runbook: Runbook
    labels: Mapping[str, str]
    ok: bool
    started_at: datetime


@dataclass(frozen=True, slots=True)
class _Retry:
    episode: Episode
    planned: _Planned
    reason: str


def declared_targets(
    declared: Sequence[tuple[Mapping[str, str], Sequence[str]]], books: Sequence[Runbook]
) -> dict[str, frozenset[str]]:
    """Declared members (scope labels, names) keyed as each runbook's blast-radius scope reads them."""
    scopes = {tuple(sorted(rb.guardrails.blast_radius.scope)) for rb in books if rb.guardrails.blast_radius}
    out: dict[str, set[str]] = {}
    for scope, members in declared:
        for keys in scopes:
            if set(keys) == set(scope):
                out.setdefault(g.scope_key(scope, keys), set()).update(members)
    return {k: frozenset(v) for k, v in out.items()}


def _breaker_key(rb: Runbook, labels: Mapping[str, str]) -> str | None:
    cb = rb.guardrails.circuit_breaker
    return None if cb is None else g.scope_key(labels, cb.scope)


def _scope_labels(rb: Runbook) -> set[str]:
    gr = rb.guardrails
    keys = {"service"}
    if gr.blast_radius:
        keys |= set(gr.blast_radius.scope)
    if gr.circuit_breaker:
        keys |= set(gr.circuit_breaker.scope)
    return keys
