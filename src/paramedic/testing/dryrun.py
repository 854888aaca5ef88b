"""``paramedic test``: match alerts against runbooks and show, for each match, the rendered plan,
what each step would do (its executor's own dry-run description), every guardrail verdict and the
mode. Nothing is executed: steps go through ``DryRunExecutor``, Python runbooks are planned by
recording (``runbooks.dsl``), and the guardrails run on a throw-away in-memory database.

That database starts from the facts a test case states (``Facts``: a pause, freeze windows,
earlier actions, known targets, breaker states, earlier firing episodes, recent changes), and the
alert then marks its own target unhealthy if that target is known, as ingest does, so the
verdicts are the engine's (an alert never makes a target known).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from rich.console import Console
from rich.markup import escape as _markup_escape
from sqlalchemy import Connection

from paramedic.actions.dryrun import DryRunExecutor
from paramedic.actions.registry import ExecutorRegistry, build_registry
from paramedic.core import guardrails as g
from paramedic.core.alerts import Alert
from paramedic.core.breaker import BreakerState
from paramedic.core.errors import ActionError, ConfigError, PayloadError, TemplateError
from paramedic.core.freeze import FreezeWindow
from paramedic.core.plan import Plan
from paramedic.core.runbooks import Runbook
from paramedic.core.text import printable
from paramedic.engine import guard
from paramedic.ingest import payloads
from paramedic.runbooks import loading as loader
from paramedic.runbooks.dsl import Change, Escalation, PlanningError, PythonRunbook, changes_from, record
from paramedic.store import migrate, state
from paramedic.store.db import Database, make_engine
from paramedic.store.tables import ledger


def escape(value: object) -> str:
    """Untrusted text (alert labels, runbook reasons) for a rich line: markup and control escaped."""
    return _markup_escape(printable(value))


# ---- the facts a dry run assumes -----------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class PriorAction:
    """An action that already ran (or is still running): it counts toward rate and blast limits."""

    runbook: str
    target: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str = "succeeded"  # succeeded | failed | in_flight
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownTargets:
    """The known targets of a blast-radius scope (``scope`` holds that scope's labels)."""

    scope: Mapping[str, str]
    healthy: tuple[str, ...] = ()
    unhealthy: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerFact:
    """The state of one circuit breaker (``scope`` holds the ``circuit_breaker.scope`` labels)."""

    runbook: str
    state: BreakerState
    scope: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What the guardrails and Python runbooks see besides the alert. Empty by default."""

    paused: bool = False
    freeze: tuple[FreezeWindow, ...] = ()
    actions: tuple[PriorAction, ...] = ()
    targets: tuple[KnownTargets, ...] = ()
    breakers: tuple[BreakerFact, ...] = ()
    episodes: tuple[datetime, ...] = ()  # starts of earlier firing episodes of the same alert
    changes: tuple[Change, ...] = ()


# ---- the report ----------------------------------------------------------------------------------
class StepReport(TypedDict):
    action: str
    args: dict[str, Any]
    would: str


class MatchReport(TypedDict):
    runbook: str
    kind: str  # yaml | python
    mode: str
    owner: str
    outcome: str  # run | approval | observe | refused | plan_refused
    would_run: bool
    refused: NotRequired[str]
    target: NotRequired[str]
    steps: NotRequired[list[StepReport]]
    verify: NotRequired[Any]
    enrich: NotRequired[list[Any]]
    log: NotRequired[list[str]]
    verdicts: NotRequired[list[dict[str, Any]]]


class AlertReport(TypedDict):
    alertname: str
    status: str
    labels: dict[str, str]
    matches: list[MatchReport]
    unmatched: NotRequired[str]


class Report(TypedDict):
    now: str
    alerts: list[AlertReport]


UNMATCHED = "no runbook matches: paramedic escalates to a human with the evidence"


def _preload(conn: Connection, facts: Facts, now: datetime) -> None:
    if facts.paused:
        state.put_setting(conn, "paused", True, now=now, by="test case")
    for i, a in enumerate(facts.actions):
        conn.execute(
            ledger.insert().values(
                run_id=0,
                step_idx=i,
                runbook=a.runbook,
                target=a.target,
                service=a.labels.get("service", ""),
                scope=dict(a.labels),
                started_at=a.started_at,
                finished_at=a.finished_at,
                outcome=a.outcome,
            )
        )
    for t in facts.targets:
        names = [(n, True) for n in t.healthy] + [(n, False) for n in t.unhealthy]
        state.note_targets(conn, g.scope_key(t.scope, list(t.scope)), names, origin="case", now=now)
    for b in facts.breakers:
        guard.save_breaker(conn, b.runbook, g.scope_key(b.scope, list(b.scope)), b.state, now)


class DryRun:
    """Loaded runbooks, evaluated against alerts without side effects."""

    def __init__(self, books: Sequence[Runbook], registry: ExecutorRegistry) -> None:
        self.books = loader.RunbookSet(books)
        self.registry = registry
        self.dry = ExecutorRegistry(DryRunExecutor(ex) for ex in registry.executors())
        scopes = {tuple(sorted(rb.guardrails.blast_radius.scope)) for rb in books if rb.guardrails.blast_radius}
        self._scope_lists = [list(s) for s in sorted(scopes)]

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> DryRun:
        """Load runbooks; raises ``ConfigError`` listing every error."""
        registry = build_registry({})
        result = loader.load(paths, registry, lint=False)
        if result.errors:
            raise ConfigError("runbooks are invalid:\n" + "\n".join(str(p) for p in result.errors))
        return cls(result.runbooks, registry)

    async def evaluate(self, alerts: Sequence[Alert], *, now: datetime, facts: Facts | None = None) -> Report:
        facts = facts or Facts()
        db = Database(make_engine("sqlite:///:memory:", pool_size=1))
        try:
            migrate.upgrade(db)
            with db.write() as conn:
                _preload(conn, facts, now)
            report = Report(now=now.isoformat(), alerts=[])
            for alert in alerts:
                report["alerts"].append(await self._alert(db, alert, now=now, facts=facts))
            return report
        finally:
            db.dispose()

    async def _alert(self, db: Database, alert: Alert, *, now: datetime, facts: Facts) -> AlertReport:
        entry = AlertReport(alertname=alert.name, status=str(alert.status), labels=dict(alert.labels), matches=[])
        planned: list[tuple[Runbook, Plan, MatchReport]] = []
        for rb in self.books.match(alert):
            m = MatchReport(
                runbook=rb.name,
                kind="python" if isinstance(rb, PythonRunbook) else "yaml",
                mode=str(rb.mode),
                owner=rb.owner,
                outcome="plan_refused",
                would_run=False,
            )
            entry["matches"].append(m)
            try:
                rec = await record(rb, alert, now=now, registry=self.registry, changes=changes_from(facts.changes))
            except TemplateError as exc:
                m["refused"] = f"template: {exc}"
                continue
            except Escalation as exc:
                m["refused"] = str(exc)
                continue
            except PlanningError as exc:
                m["refused"] = f"planning: {exc}"
                continue
            m["target"] = rec.plan.target
            m["steps"] = [await self._step(s.action, s.args, s.timeout) for s in rec.plan.steps]
            m["verify"] = rec.plan.verify
            m["enrich"] = [dict(e) for e in rec.plan.enrich]
            if rec.log:
                m["log"] = list(rec.log)
            planned.append((rb, rec.plan, m))
        if not entry["matches"]:
            entry["unmatched"] = UNMATCHED
        with db.write() as conn:
            if alert.firing:  # as ingest does: a firing alert marks its known target unhealthy
                for rb, plan, _ in planned:
                    br = rb.guardrails.blast_radius
                    if br is not None and plan.target:
                        state.mark_health(
                            conn,
                            g.scope_key(alert.labels, br.scope),
                            plan.target,
                            healthy=False,
                            origin="alert",
                            now=now,
                        )
            for rb, plan, m in planned:
                facts_of = g.AlertFacts(
                    firing=alert.firing, starts_at=alert.starts_at, first_seen_at=now, episodes=facts.episodes
                )
                policy = guard.Policy(freeze=facts.freeze)
                decision = g.decide(
                    guard.gather(
                        conn, runbook=rb, plan=plan, labels=alert.labels, alert=facts_of, now=now, policy=policy
                    )
                )
                m["verdicts"] = [dict(v.to_json()) for v in decision.verdicts]
                m["would_run"] = decision.allowed and rb.mode != "observe"
                m["outcome"] = (
                    "observe"
                    if rb.mode == "observe"
                    else "refused"
                    if not decision.allowed
                    else "approval"
                    if rb.mode == "approve"
                    else "run"
                )
        return entry

    async def _step(self, action: str, args: Mapping[str, Any], timeout: float | None) -> StepReport:
        try:
            req = self.dry.request(action, args, timeout=timeout)
            would = (await self.dry.executor(action).execute(req)).summary
        except ActionError as exc:
            would = f"cannot run: {exc}"
        return StepReport(action=action, args=dict(args), would=would)


def read_payload(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"{path}: cannot read the payload: {exc}") from exc


async def dry_run(path: str, alert_file: Path, *, now: datetime | None = None) -> Report:
    """``paramedic test PATH --alert FILE``: one recorded payload, no prior facts."""
    now = now or datetime.now(UTC)
    dry = DryRun.load([path])
    alerts = payloads.parse(read_payload(alert_file), now=now, source=payloads.source_from_name(alert_file))
    return await dry.evaluate(alerts, now=now)


_OUTCOME = {
    "run": "would run",
    "approval": "would wait for a human to approve, then run",
    "observe": "observe only: nothing runs",
    "refused": "would NOT run: a guardrail refuses",
    "plan_refused": "would NOT run: no plan",
}


def render_report(report: Report, console: Console) -> None:
    for a in report["alerts"]:
        labels = ", ".join(f"{k}={v}" for k, v in a["labels"].items() if k != "alertname")
        console.print(f"[bold]{escape(a['alertname'])}[/] ({a['status']}) {escape(labels)}", highlight=False)
        if "unmatched" in a:
            console.print(f"  [yellow]{escape(a['unmatched'])}[/]")
        for m in a["matches"]:
            console.print(
                f"  runbook [cyan]{escape(m['runbook'])}[/] ({m['kind']}, mode {m['mode']}, "
                f"owner {escape(m['owner'])})",
                highlight=False,
            )
            if "refused" in m:
                console.print(f"    [red]refused: {escape(m['refused'])}[/]", highlight=False)
                continue
            console.print(f"    target: {escape(m.get('target', ''))}", highlight=False)
            for line in m.get("log", []):
                console.print(f"    log {escape(line)}", highlight=False)
            for i, s in enumerate(m.get("steps", [])):
                console.print(f"    step {i}: {escape(s['action'])} {escape(json.dumps(s['args']))}", highlight=False)
                console.print(f"            {escape(s['would'])}", highlight=False)
            if not m.get("steps"):
                console.print("    no steps (evidence only)")
            if m.get("verify"):
                console.print(f"    verify: {escape(json.dumps(m['verify']))}", highlight=False)
            for v in m.get("verdicts", []):
                mark = "[green]allow[/]" if v["allowed"] else "[red]REFUSE[/]"
                console.print(f"    {mark} {v['check']:<16} {escape(v['reason'])}", highlight=False)
            console.print(f"    → {_OUTCOME[m['outcome']]}")
