"""The guardrail transaction: gather the facts, decide, and reserve the action — all in one
database transaction, so limits hold across concurrent alerts and across replicas (DESIGN §4).

SQLite serialises write transactions (``BEGIN IMMEDIATE``); on PostgreSQL each decision first
locks one row per scope in ``scope_locks`` (``SELECT … FOR UPDATE``), which serialises the
decisions that share a scope and lets unrelated scopes proceed in parallel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from paramedic.core import breaker as brk
from paramedic.core import guardrails as g
from paramedic.core import trust
from paramedic.core.freeze import FreezeWindow
from paramedic.core.plan import Plan, PlannedStep
from paramedic.core.runbooks import Flap, Mode, Runbook
from paramedic.store import audit, outbox, state
from paramedic.store import incidents as inc_repo
from paramedic.store import runs as runs_repo
from paramedic.store.rows import IncidentRow, RunRow
from paramedic.store.tables import breakers, ledger, scope_locks, verdicts


@dataclass(frozen=True, slots=True)
class Policy:
    """Guardrail settings that come from the config, not from a runbook."""

    freeze: tuple[FreezeWindow, ...] = ()
    default_flap: Flap = field(default_factory=Flap)


def _lock_scopes(conn: Connection, keys: Sequence[str]) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already serialises every writer
    for key in sorted(set(keys)):  # a fixed order avoids deadlocks between replicas
        conn.execute(pg_insert(scope_locks).values(scope_key=key).on_conflict_do_nothing())
        conn.execute(select(scope_locks.c.scope_key).where(scope_locks.c.scope_key == key).with_for_update())


def _records(conn: Connection, since: datetime) -> list[g.ActionRecord]:
    rows = conn.execute(select(ledger).where(or_(ledger.c.started_at >= since, ledger.c.outcome == "in_flight")))
    return [
        g.ActionRecord(
            runbook=r.runbook,
            target=r.target,
            labels=dict(r.scope),
            started_at=r.started_at,
            finished_at=r.finished_at,
            outcome=g.Outcome(r.outcome),
            service=r.service,
        )
        for r in rows
    ]


def breaker_key(runbook: Runbook, labels: Mapping[str, str]) -> str | None:
    cb = runbook.guardrails.circuit_breaker
    return None if cb is None else g.scope_key(labels, cb.scope)


def load_breaker(conn: Connection, runbook: str, key: str) -> brk.BreakerState:
    row = conn.execute(
        select(breakers.c.state).where(and_(breakers.c.runbook == runbook, breakers.c.scope_key == key))
    ).first()
    return brk.BreakerState() if row is None else brk.BreakerState.from_json(row.state)


def save_breaker(conn: Connection, runbook: str, key: str, st: brk.BreakerState, now: datetime) -> None:
    data = dict(st.to_json())
    exists = conn.execute(
        select(breakers.c.runbook).where(and_(breakers.c.runbook == runbook, breakers.c.scope_key == key))
    ).first()
    if exists is None:
        conn.execute(breakers.insert().values(runbook=runbook, scope_key=key, state=data, updated_at=now))
    else:
        conn.execute(
            breakers.update()
            .where(and_(breakers.c.runbook == runbook, breakers.c.scope_key == key))
            .values(state=data, updated_at=now)
        )


def alert_facts(row: IncidentRow, conn: Connection, lookback_from: datetime) -> g.AlertFacts:
    earlier = inc_repo.episodes(conn, source=row.source, fingerprint=row.fingerprint, since=lookback_from)
    return g.AlertFacts(
        firing=row.resolved_at is None,
        starts_at=row.starts_at,
        first_seen_at=row.first_seen_at,
        episodes=tuple(t for t in earlier if t < row.starts_at),
    )


def gather(
    conn: Connection,
    *,
    runbook: Runbook,
    plan: Plan,
    labels: Mapping[str, str],
    alert: g.AlertFacts,
    now: datetime,
    policy: Policy,
    telemetry: Sequence[g.TelemetryFact] = (),
) -> g.GuardrailInput:
    gr = runbook.guardrails
    targets = g.TargetFacts()
    if gr.blast_radius is not None:
        known = state.known_targets(conn, g.scope_key(labels, gr.blast_radius.scope))
        targets = g.TargetFacts(known=frozenset(t for t, _ in known), healthy=frozenset(t for t, h in known if h))
    key = breaker_key(runbook, labels)
    return g.GuardrailInput(
        now=now,
        runbook=runbook.name,
        target=plan.target,
        alert=alert,
        labels=dict(labels),
        service=plan.service,
        paused=state.paused(conn),
        freeze=policy.freeze,
        require=runbook.require,
        guardrails=gr,
        default_flap=policy.default_flap,
        recent_actions=_records(conn, now - g.action_lookback(gr)),
        targets=targets,
        breaker=load_breaker(conn, runbook.name, key) if key is not None else None,
        telemetry=telemetry,
        recovery=plan.recovery,
    )


def reserve(
    conn: Connection,
    run: RunRow,
    step: PlannedStep,
    *,
    plan: Plan,
    runbook: Runbook,
    idempotent: bool,
    now: datetime,
    policy: Policy,
    telemetry: Sequence[g.TelemetryFact] = (),
) -> g.Decision:
    """Decide and, if allowed, record the step as started.

    The first step of a run takes the run's reservation: one in-flight ledger row, which the rate
    limit counts as one remediation and the blast radius as one action in flight until the run
    ends (``runs.finish`` settles it). A later step, or a step re-executed after a restart, holds
    that reservation and is checked only for a pause or an open breaker (``decide_held``).
    ``telemetry``: what the runbook's ``require.telemetry`` queries returned just before."""
    incident = inc_repo.get(conn, run.incident_id)
    assert incident is not None
    labels = incident.labels
    gr = runbook.guardrails
    keys = [
        g.scope_key(labels, gr.blast_radius.scope) if gr.blast_radius else "*",
        f"target={plan.target}",
        f"runbook={runbook.name}",
    ]
    _lock_scopes(conn, keys)
    held = holds_reservation(conn, run.id)
    lookback = now - g.episode_lookback(runbook.require, policy.default_flap)
    facts = gather(
        conn,
        runbook=runbook,
        plan=plan,
        labels=labels,
        alert=alert_facts(incident, conn, lookback),
        now=now,
        policy=policy,
        telemetry=telemetry,
    )
    decision = g.decide_held(facts) if held else g.decide(facts)
    refusal = decision.refusal
    conn.execute(
        verdicts.insert().values(
            run_id=run.id,
            step_idx=step.index,
            at=now,
            checks=[dict(v.to_json()) for v in decision.verdicts],
            allowed=refusal is None,
            code=refusal.code.value if refusal and refusal.code else "",
        )
    )
    if refusal is not None:
        audit.append(
            conn,
            at=now,
            kind="guardrail.refused",
            incident_id=run.incident_id,
            run_id=run.id,
            data={
                "step": step.index,
                "action": step.action,
                "check": refusal.check.value,
                "code": refusal.code.value if refusal.code else "",
                "reason": refusal.reason,
            },
        )
        return decision
    if not held:
        conn.execute(
            ledger.insert().values(
                run_id=run.id,
                step_idx=step.index,
                runbook=run.runbook,
                target=plan.target,
                service=plan.service,
                scope={**dict(plan.scope), **{k: v for k, v in labels.items() if k in _scope_labels(runbook)}},
                started_at=now,
                outcome="in_flight",
            )
        )
    key = breaker_key(runbook, labels)
    if key is not None and decision.breaker is not None:
        save_breaker(conn, runbook.name, key, decision.breaker, now)
    runs_repo.step_started(
        conn,
        run,
        idx=step.index,
        action=step.action,
        args=step.args,
        idempotent=idempotent,
        now=now,
        ledger_scope=plan.scope,
    )
    return decision


def holds_reservation(conn: Connection, run_id: int) -> bool:
    """Whether the run has taken its reservation (its ledger row is in flight)."""
    row = conn.execute(
        select(ledger.c.id).where(and_(ledger.c.run_id == run_id, ledger.c.outcome == "in_flight"))
    ).first()
    return row is not None


def _scope_labels(runbook: Runbook) -> set[str]:
    gr = runbook.guardrails
    keys = {"service"}
    if gr.blast_radius:
        keys |= set(gr.blast_radius.scope)
    if gr.circuit_breaker:
        keys |= set(gr.circuit_breaker.scope)
    return keys


def settle(
    conn: Connection,
    run: RunRow,
    *,
    runbook: Runbook | None,
    ok: bool,
    now: datetime,
    reason: str,
    started_at: datetime | None,
) -> None:
    """After a run that executed: count it toward trust, feed the breaker, promote or demote."""
    row = state.record_outcome(conn, run.runbook, ok=ok, now=now, failure=reason)
    if runbook is None:
        return
    mode = mode_of(row, runbook)
    incident = inc_repo.get(conn, run.incident_id)
    labels = incident.labels if incident else {}
    key = breaker_key(runbook, labels)
    cb = runbook.guardrails.circuit_breaker
    if key is not None and cb is not None:
        before = load_breaker(conn, runbook.name, key)
        after = brk.on_result(before, cb, succeeded=ok, now=now, started_at=started_at)
        save_breaker(conn, runbook.name, key, after, now)
        if brk.tripped(before, after):
            audit.append(
                conn,
                at=now,
                kind="breaker.opened",
                incident_id=run.incident_id,
                run_id=run.id,
                data={"runbook": runbook.name, "scope": key, "failures": len(after.failures)},
            )
            lower = trust.demoted(mode)
            if lower != mode:
                state.set_mode(
                    conn,
                    runbook.name,
                    lower.value,
                    ceiling=runbook.mode.value,
                    now=now,
                    by="paramedic",
                    reason=f"circuit breaker opened for {key}: demoted from {mode} to {lower}",
                )
            outbox.enqueue(
                conn,
                incident_id=run.incident_id,
                event="breaker_opened",
                now=now,
                key=f"breaker:{runbook.name}:{key}:{now.isoformat()}",
                data={
                    "reason": f"circuit breaker of {runbook.name} opened for {key}; automation of "
                    f"this runbook stops until the cooldown; runbook demoted to {lower}"
                },
            )
            return
    figures = trust.TrustFigures(
        runs=int(row.runs_at_mode),
        successes=int(row.successes_at_mode),
        failures=int(row.runs_at_mode) - int(row.successes_at_mode),
    )
    promote_if_earned(conn, runbook, mode, figures, now=now)


def mode_of(row: Any, runbook: Runbook) -> Mode:
    """The mode in force for ``runbook`` given its trust row (None: never set)."""
    if row is None or not row.mode:
        return runbook.mode
    return trust.mode_in_force(runbook.mode, Mode(row.mode), Mode(row.ceiling) if row.ceiling else None)


def promote_if_earned(
    conn: Connection, runbook: Runbook, mode: Mode, figures: trust.TrustFigures, *, now: datetime, basis: str = ""
) -> None:
    promoted = trust.next_mode(mode, figures, runbook.promote, runbook.mode)
    if promoted is not None and promoted != mode:
        reason = trust.promotion_reason(mode, figures, runbook.promote, runbook.mode)
        state.set_mode(
            conn,
            runbook.name,
            promoted.value,
            ceiling=runbook.mode.value,
            now=now,
            by="paramedic",
            reason=f"{reason}; based on {basis}" if basis else reason,
        )


def _marks_basis(conn: Connection, runbook: Runbook, since: datetime | None, backtest: str = "") -> str:
    """What a promotion from observe was based on: the marks by source, and the backtest's replay."""
    by_source = state.marks_by_source_since(conn, runbook.name, since)
    parts = []
    for source, what in (
        (state.MarkSource.OBSERVE, "observed suggestions"),
        (state.MarkSource.BACKTEST, "backtested episodes"),
    ):
        marked, right = by_source.get(source.value, (0, 0))
        if marked:
            parts.append(f"{marked} {what} ({right} marked right)")
    basis = " and ".join(parts) or "no marks"
    return f"{basis}; backtest: {backtest}" if backtest else basis


def _promote_on_marks(conn: Connection, runbook: Runbook, *, now: datetime, backtest: str = "") -> Mode:
    row = state.trust_row(conn, runbook.name)
    mode = mode_of(row, runbook)
    if mode is Mode.OBSERVE:
        since = row.mode_since if row is not None and row.ceiling == runbook.mode.value else None
        marked, marked_right = state.marks_since(conn, runbook.name, since)
        figures = trust.TrustFigures(runs=marked, successes=marked_right, failures=marked - marked_right)
        basis = _marks_basis(conn, runbook, since, backtest)
        promote_if_earned(conn, runbook, mode, figures, now=now, basis=basis)
    return mode_of(state.trust_row(conn, runbook.name), runbook)


@dataclass(frozen=True, slots=True)
class BacktestMark:
    """A responder's judgement of what the backtest says a runbook would have done on one episode."""

    episode: str
    right: bool
    reason: str = ""


def mark_backtest(
    conn: Connection,
    runbook: Runbook,
    marks: Sequence[BacktestMark],
    *,
    actor: str,
    backtest: str,
    now: datetime,
) -> Mode:
    """Backtested episodes marked right or wrong count as suggestions do: in observe, toward the
    promote rule; the promotion's audit entry says how many of each, and which backtest."""
    for m in marks:
        state.record_mark(
            conn,
            runbook.name,
            source=state.MarkSource.BACKTEST,
            ref=f"{runbook.name}:{m.episode}"[:200],
            right=m.right,
            actor=actor,
            reason=m.reason or f"backtest: {backtest}",
            now=now,
        )
    return _promote_on_marks(conn, runbook, now=now, backtest=backtest)


def mark_suggestion(
    conn: Connection, run: RunRow, runbook: Runbook, *, right: bool, actor: str, reason: str, now: datetime
) -> Mode:
    """A responder marks an observed run's suggestion right or wrong; in observe, marks since the
    last mode change count toward promotion. Returns the mode in force afterwards."""
    state.record_mark(
        conn,
        runbook.name,
        source=state.MarkSource.OBSERVE,
        ref=str(run.id),
        right=right,
        actor=actor,
        reason=reason,
        now=now,
        incident_id=run.incident_id,
        run_id=run.id,
    )
    return _promote_on_marks(conn, runbook, now=now)


def observe(
    conn: Connection,
    run: RunRow,
    *,
    runbook: Runbook,
    plan: Plan,
    labels: Mapping[str, str],
    now: datetime,
    policy: Policy,
) -> g.Decision:
    """An observed run: every guardrail verdict is recorded as if it were to act (nothing is
    reserved, nothing runs), so the suggestion shows what would have happened."""
    incident = inc_repo.get(conn, run.incident_id)
    assert incident is not None
    lookback = now - g.episode_lookback(runbook.require, policy.default_flap)
    decision = g.decide(
        gather(
            conn,
            runbook=runbook,
            plan=plan,
            labels=labels,
            alert=alert_facts(incident, conn, lookback),
            now=now,
            policy=policy,
        )
    )
    refusal = decision.refusal
    conn.execute(
        verdicts.insert().values(
            run_id=run.id,
            step_idx=0,
            at=now,
            checks=[dict(v.to_json()) for v in decision.verdicts],
            allowed=refusal is None,
            code=refusal.code.value if refusal and refusal.code else "",
        )
    )
    audit.append(
        conn,
        at=now,
        kind="run.observed",
        incident_id=run.incident_id,
        run_id=run.id,
        data={
            "runbook": runbook.name,
            "would_act": refusal is None,
            "code": refusal.code.value if refusal and refusal.code else "",
            "reason": refusal.reason if refusal else "every guardrail allows it",
        },
    )
    return decision


def reset_breaker(conn: Connection, runbook: str, *, now: datetime, actor: str) -> int:
    """Close every breaker of ``runbook`` by hand; returns how many were open."""
    rows = conn.execute(select(breakers.c.scope_key, breakers.c.state).where(breakers.c.runbook == runbook)).all()
    opened = [r.scope_key for r in rows if brk.BreakerState.from_json(r.state).status != brk.BreakerStatus.CLOSED]
    for r in rows:
        save_breaker(conn, runbook, r.scope_key, brk.reset(), now)
    audit.append(conn, at=now, kind="breaker.reset", actor=actor, data={"runbook": runbook, "scopes": opened})
    return len(opened)


def breaker_states(conn: Connection) -> dict[str, list[tuple[str, brk.BreakerState]]]:
    out: dict[str, list[tuple[str, brk.BreakerState]]] = {}
    for r in conn.execute(select(breakers)):
        out.setdefault(r.runbook, []).append((r.scope_key, brk.BreakerState.from_json(r.state)))
    return out
