"""The guardrail transaction: gather the facts, decide, and reserve the action — all in one
database transaction, so limits hold across concurrent alerts and across replicas (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from paramedic.core.plan import Plan, PlannedStep
from paramedic.store import audit, state
from paramedic.store import runs as runs_repo
from paramedic.store.rows import RunRow
from paramedic.store.tables import ledger, verdicts


@dataclass(frozen=True, slots=True)
class Verdict:
    check: str
    allowed: bool
    code: str
    reason: str
    retry_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "allowed": self.allowed,
            "code": self.code,
            "reason": self.reason,
            "retry_at": self.retry_at.isoformat() if self.retry_at else None,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    verdicts: tuple[Verdict, ...]

    @property
    def refusal(self) -> Verdict | None:
        return next((v for v in self.verdicts if not v.allowed), None)


def evaluate(conn: Connection, *, plan: Plan, now: datetime, extra: Mapping[str, Any] | None = None) -> Decision:
    """Every guardrail verdict for ``plan``'s next action, from the facts in the database."""
    paused = state.paused(conn)
    out = [
        Verdict(
            "paused",
            not paused,
            "paused" if paused else "",
            "automation is paused: run `paramedic resume` to allow actions" if paused else "automation is running",
        )
    ]
    return Decision(all(v.allowed for v in out), tuple(out))


def reserve(
    conn: Connection,
    run: RunRow,
    step: PlannedStep,
    *,
    plan: Plan,
    idempotent: bool,
    now: datetime,
) -> Decision:
    """Decide and, if allowed, record the action as in flight and the step as started."""
    resumed = conn.execute(
        select(ledger.c.id).where(
            and_(
                ledger.c.run_id == run.id,
                ledger.c.step_idx == step.index,
                ledger.c.outcome == "in_flight",
            )
        )
    ).first()
    decision = evaluate(conn, plan=plan, now=now)
    refusal = decision.refusal
    conn.execute(
        verdicts.insert().values(
            run_id=run.id,
            step_idx=step.index,
            at=now,
            checks=[v.to_json() for v in decision.verdicts],
            allowed=decision.allowed,
            code=refusal.code if refusal else "",
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
                "code": refusal.code,
                "reason": refusal.reason,
            },
        )
        return decision
    if resumed is None:
        conn.execute(
            ledger.insert().values(
                run_id=run.id,
                step_idx=step.index,
                runbook=run.runbook,
                target=plan.target,
                service=plan.service,
                scope=dict(plan.scope),
                started_at=now,
                outcome="in_flight",
            )
        )
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
