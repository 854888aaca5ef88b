"""Executes one claimed run: guardrails, durable steps, verification, undo, and resume after a crash.

Steps run in order. The first step takes the run's guardrail reservation; later steps hold it and
can be stopped only by a pause or an open breaker. With ``on_failure: escalate`` a failed step or a
failed verification hands the incident to a human; with ``on_failure: rollback`` the completed
steps are first undone in reverse order (the runbook's ``undo:`` or the executor's inverse). With
``on_failure: next`` the steps are a ladder: after each step the run verifies, stops as soon as
verification passes, and otherwise tries the next step. Whatever a failed run leaves changed is
named in its reason ("left in state: …"), which is what the escalation shows.

Anything an executor raises becomes a failed step (``errors:`` says what an unclassified error
means); a run claimed more than ``max_run_attempts`` times fails without acting again.

A run resumed after a crash finds its step marked 'started' without an end: it verifies first;
if that fails it re-executes the step only when the step is idempotent, and escalates otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from paramedic.actions.base import ActionRequest, ActionResult, Reversible
from paramedic.actions.registry import ExecutorRegistry
from paramedic.core import undo as undo_text
from paramedic.core.errors import ActionError, PermanentError, RetryableError, StoreUnavailable
from paramedic.core.guardrails import Refusal, TelemetryFact
from paramedic.core.plan import Plan, PlannedStep
from paramedic.core.runbooks import ErrorsMode, OnFailure, Runbook
from paramedic.engine import guard
from paramedic.engine.clock import Clock
from paramedic.engine.settings import mask_secrets, resolve_step_secrets
from paramedic.engine.verify import VerifyResult, baseline_query, prometheus_value, verify
from paramedic.store import audit
from paramedic.store import incidents as inc_repo
from paramedic.store import runs as runs_repo
from paramedic.store.db import Database
from paramedic.store.rows import RunRow, StepRow

log = logging.getLogger("paramedic.runner")
T = TypeVar("T")

RETRIES = 2
GRACE = 1.0  # seconds past an executor's own timeout before the runner cancels it
RESUME_VERIFY_CAP = 10.0


@dataclass
class RunContext:
    db: Database
    registry: ExecutorRegistry
    clock: Clock
    owner: str
    lease: timedelta
    http: httpx.AsyncClient
    runbook_of: Callable[[str], Runbook | None]
    policy: guard.Policy = field(default_factory=guard.Policy)
    prometheus_url: str = ""
    max_attempts: int = 3
    on_finished: Callable[[RunRow, bool, str], Awaitable[None]] | None = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def unexpected(exc: Exception, mode: ErrorsMode) -> ActionError | None:
    """Classify an error an executor raised without classifying it (None: ignore it)."""
    text = f"unexpected error from the executor: {_describe(exc)}"
    if mode is ErrorsMode.IGNORED:
        return None
    if mode is ErrorsMode.TEMPORARY:
        return RetryableError(text, reason="unexpected_error")
    return PermanentError(text, reason="unexpected_error")


UNKNOWN = "unknown_outcome"
# Why a resumed run finds a step 'started': its worker wrote nothing more. A database blip shorter
# than the lease cannot cause this (the worker keeps the result and retries), so it was a crash or
# the database stayed out of reach for longer than the lease.
STOPPED = (
    "the worker running it stopped without recording the outcome (the process crashed or was killed, "
    "or the database stayed unreachable for longer than the lease)"
)
REFUSED = object()  # _step's answer when the run was refused or could not go on (already finished)


@dataclass(frozen=True, slots=True)
class Ignored:
    """An unclassified error a step's ``errors: ignored`` let pass."""

    error: str

    def __str__(self) -> str:
        return self.error


class LeaseLost(Exception):
    """Another worker took the run over; stop without writing anything more."""


class Runner:
    def __init__(self, ctx: RunContext, run: RunRow) -> None:
        self.ctx = ctx
        self.run = run
        self.plan = Plan.from_json(run.plan)
        self.lost = False
        self.runbook = ctx.runbook_of(run.runbook)
        self.acted_at: datetime | None = None
        self.baseline: float | None = None
        # until when this worker's lease surely holds (claimed or heartbeaten just before): a write
        # that meets an unreachable database is retried until then, never given up earlier
        self.lease_deadline = time.monotonic() + ctx.lease.total_seconds()

    async def _retry(self, call: Callable[[], T]) -> T:
        """Run ``call`` in a thread; while the database is unreachable, again with backoff until the
        lease would run out. The step's result stays in memory meanwhile: a database blip shorter
        than the lease never turns a known outcome into an unknown one."""
        delay = 0.1
        while True:
            try:
                return await asyncio.to_thread(call)
            except StoreUnavailable as exc:
                if time.monotonic() + delay >= self.lease_deadline:
                    raise
                log.warning("run %s: database unreachable (%s); retrying in %.1fs", self.run.id, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _db(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """A write for this run, fenced by its lease: if another worker has taken the run over
        (this one's heartbeats could not reach the database), nothing is written and ``LeaseLost``
        ends this worker's part. The check and the write share one transaction."""

        def call() -> T:
            with self.ctx.db.write() as conn:
                if not runs_repo.owned(conn, self.run.id, owner=self.ctx.owner):
                    self.lost = True
                    raise LeaseLost
                return fn(conn, *args, **kwargs)

        return await self._retry(call)

    async def _heartbeat(self) -> None:
        every = max(0.5, self.ctx.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(every)
            sent = time.monotonic()
            try:
                ok = await asyncio.to_thread(self._beat)
            except StoreUnavailable:
                continue
            if not ok:
                self.lost = True
                return
            self.lease_deadline = sent + self.ctx.lease.total_seconds()

    def _beat(self) -> bool:
        with self.ctx.db.write(serial=False) as conn:  # touches only this run's row: no audit
            return runs_repo.heartbeat(
                conn, self.run.id, owner=self.ctx.owner, now=self.ctx.clock(), lease=self.ctx.lease
            )

    async def execute(self) -> None:
        beat = asyncio.create_task(self._heartbeat())
        try:
            await self._execute()
        except LeaseLost:
            log.warning("run %s: lease lost to another worker; stopping", self.run.id)
        finally:
            beat.cancel()

    def _idempotent(self, step: PlannedStep) -> bool:
        if step.idempotent is not None:
            return step.idempotent
        try:
            return self.ctx.registry.spec(step.action).idempotent
        except PermanentError:
            return False

    async def _execute(self) -> None:
        if self.run.attempts > self.ctx.max_attempts:
            await self._give_up()
            return
        if self.run.phase == "undo":  # resumed during its rollback: finish undoing
            await self._fail("failed", self.run.reason or "resumed during its rollback")
            return
        start = self.run.current_step
        if self.run.phase == "verify":
            await self._final_verify()
            return
        row = await self._retry(lambda: self._read_step(start))
        if row is not None and row.status == "started":
            step = self.plan.steps[start]
            if self.plan.verify is not None:
                result = await self._verify(cap=RESUME_VERIFY_CAP)
                if result.ok:
                    await self._db(
                        runs_repo.step_finished,
                        self.run,
                        idx=start,
                        ok=True,
                        now=self.ctx.clock(),
                        summary=f"{STOPPED}; verification passed ({result.detail}), not repeated",
                        undo={"none": "its worker stopped mid-step: what it changed is not known"},
                    )
                    await self._finish("succeeded", result.detail, mitigated=True)
                    return
            if not self._idempotent(step):
                msg = (
                    f"step {start} ({step.action}): {STOPPED} (lease {self.ctx.lease.total_seconds():g}s); "
                    "verification did not pass and the step is not idempotent: not repeating it"
                )
                await self._db(
                    runs_repo.step_finished,
                    self.run,
                    idx=start,
                    ok=False,
                    now=self.ctx.clock(),
                    summary="outcome unknown",
                    error=msg,
                    reason=UNKNOWN,
                )
                await self._fail("failed", msg)
                return
        elif row is not None and row.status in ("succeeded", "failed", "skipped"):
            start += 1
        ladder = self.plan.on_failure is OnFailure.NEXT and self.plan.verify is not None
        if start == 0:
            await self._measure_baseline()
        for step in self.plan.steps[start:]:
            failure = await self._step(step)
            if failure is REFUSED:
                return  # refused by a guardrail; already finished
            if failure is not None and self.plan.on_failure is not OnFailure.NEXT:
                await self._fail("failed", f"step {step.index} ({step.action}) failed: {failure}")
                return
            if failure is None and ladder:
                result = await self._verify()
                if result.ok:
                    await self._finish("succeeded", result.detail, mitigated=True)
                    return
        if ladder:
            await self._fail("failed", "no step of the ladder brought the service back")
            return
        await self._final_verify()

    async def _give_up(self) -> None:
        """A run claimed more often than allowed: every earlier claim ended in a crash or a lost
        lease. Nothing more runs (not even an undo, which may be what keeps crashing); a step left
        'started' is marked with an unknown outcome, and every completed step is named."""
        msg = (
            f"claimed {self.run.attempts} times (max_run_attempts is {self.ctx.max_attempts}); every earlier "
            "attempt ended without finishing (a crash or a lost lease): not trying again"
        )
        rows = await self._retry(self._steps)
        for row in rows:
            if row.status == "started":
                await self._db(
                    runs_repo.step_finished,
                    self.run,
                    idx=row.idx,
                    ok=False,
                    now=self.ctx.clock(),
                    summary="outcome unknown",
                    error=msg,
                    reason=UNKNOWN,
                    undo=row.undo,
                )
        await self._fail("failed", msg, undo=False)

    async def _fail(self, status: str, reason: str, *, undo: bool = True) -> None:
        """End a run that stopped after steps ran. With ``on_failure: rollback`` the completed steps
        are undone in reverse order, each undo written before and after like a step; the first undo
        that fails stops the rollback. Whatever is not undone is named in the reason."""
        rows = await self._retry(self._steps)
        n = len(self.plan.steps)
        done = sorted((r for r in rows if r.idx < n and r.status == "succeeded"), key=lambda r: r.idx, reverse=True)
        unknown = [r for r in rows if r.idx < n and r.status == "failed" and r.reason == UNKNOWN]
        if not done and not unknown:
            await self._finish(status, reason)
            return
        rollback = undo and self.plan.on_failure is OnFailure.ROLLBACK
        if rollback and self.run.phase != "undo":
            await self._db(runs_repo.begin_undo, self.run, reason=reason, now=self.ctx.clock())
        # an undo interrupted by a restart: its outcome is unknown; it is tried again only if idempotent
        interrupted: set[int] = set()
        for r in rows:
            if r.idx >= n and r.status == "started":
                undoes = int((r.undo or {}).get("undoes", -1))
                interrupted.add(undoes)
                await self._db(
                    runs_repo.step_finished,
                    self.run,
                    idx=r.idx,
                    ok=False,
                    now=self.ctx.clock(),
                    summary="outcome unknown",
                    error="interrupted by a restart",
                    reason=UNKNOWN,
                    undo=r.undo,
                    undoes=undoes,
                )
        next_idx = max([n - 1, *(r.idx for r in rows)]) + 1
        undone: list[str] = []
        left: list[str] = []
        stopped = False
        for r in done:
            what = undo_text.name(r.idx, r.action, r.args)
            u = r.undo or {"none": "no undo was recorded"}
            if u.get("unchanged"):
                continue  # it changed nothing: nothing to undo
            if "action" not in u:
                left.append(f"{what} ({u.get('none', 'no undo known')})")
                continue
            if not rollback or stopped:
                why = "the rollback stopped earlier" if stopped else f"on_failure is {self.plan.on_failure}"
                left.append(f"{what} (not undone: {why}; its undo is {u['action']})")
                continue
            if r.idx in interrupted and not self._idempotent_action(str(u["action"])):
                stopped = True
                left.append(f"{what} (its undo {u['action']} was interrupted and is not idempotent)")
                continue
            error = await self._undo(r, u, next_idx)
            next_idx += 1
            if error is None:
                undone.append(f"{what} by {u['action']}")
            else:
                stopped = True
                left.append(f"{what} (its undo {u['action']} failed: {error})")
        left += [f"{undo_text.name(r.idx, r.action, r.args)} (outcome unknown: it may have run)" for r in unknown]
        await self._finish(status, undo_text.outcome(reason, undone=undone, left=left))

    async def _undo(self, row: StepRow, undo: Mapping[str, Any], idx: int) -> str | None:
        """Run the undo of one completed step; None when it succeeded, else why it failed."""
        action = str(undo["action"])
        try:
            req = self.ctx.registry.request(action, undo.get("args", {}), run_id=str(self.run.id), step=idx)
        except PermanentError as exc:
            return str(exc)
        idem = self._idempotent_action(action)
        mark = {"undoes": row.idx}
        await self._db(
            runs_repo.step_started,
            self.run,
            idx=idx,
            action=action,
            args=req.args,
            idempotent=idem,
            now=self.ctx.clock(),
            undoes=row.idx,
        )
        outcome = await self._attempts(action, req, idem=idem, errors=ErrorsMode.PERMANENT)
        if isinstance(outcome, ActionError):
            await self._db(
                runs_repo.step_finished,
                self.run,
                idx=idx,
                ok=False,
                now=self.ctx.clock(),
                summary=f"undo of step {row.idx} failed",
                error=str(outcome),
                reason=outcome.reason,
                undo=mark,
                undoes=row.idx,
            )
            return str(outcome)
        summary = outcome.summary if isinstance(outcome, ActionResult) else f"error ignored: {outcome}"
        await self._db(
            runs_repo.step_finished,
            self.run,
            idx=idx,
            ok=True,
            now=self.ctx.clock(),
            summary=f"undid step {row.idx}: {summary}",
            output=outcome.output if isinstance(outcome, ActionResult) else "",
            undo=mark,
            undoes=row.idx,
        )
        return None

    def _idempotent_action(self, action: str) -> bool:
        try:
            return self.ctx.registry.spec(action).idempotent
        except PermanentError:
            return False

    def _steps(self) -> list[StepRow]:
        with self.ctx.db.read() as conn:
            return runs_repo.steps_of(conn, self.run.id)

    def _read_step(self, idx: int) -> StepRow | None:
        with self.ctx.db.read() as conn:
            return runs_repo.step(conn, self.run.id, idx)

    async def _final_verify(self) -> None:
        if self.plan.verify is None:
            await self._finish("succeeded", "all steps succeeded (no verify configured)", mitigated=True)
            return
        await self._db(
            runs_repo.advance,
            self.run,
            phase="verify",
            current_step=len(self.plan.steps),
            now=self.ctx.clock(),
        )
        result = await self._verify()
        if result.ok:
            await self._finish("succeeded", result.detail, mitigated=True)
        else:
            await self._fail("failed", f"verification failed: {result.detail}")

    async def _verify(self, cap: float | None = None) -> VerifyResult:
        assert self.plan.verify is not None
        incident_id = self.run.incident_id

        async def resolved() -> bool:
            def q() -> bool:
                with self.ctx.db.read() as conn:
                    row = inc_repo.get(conn, incident_id)
                return row is not None and row.resolved_at is not None

            return await asyncio.to_thread(q)

        try:
            return await verify(
                self.plan.verify,
                client=self.ctx.http,
                incident_resolved=resolved,
                within_cap=cap,
                prometheus_url=self.ctx.prometheus_url,
                baseline=self.baseline,
            )
        except (LeaseLost, StoreUnavailable):
            raise
        except Exception as exc:  # a verifier's bug is a failed verification, never a silent retry
            log.warning("run %s: verification raised %s", self.run.id, _describe(exc))
            return VerifyResult(False, f"the verification itself failed: {_describe(exc)}")

    async def _telemetry(self) -> tuple[TelemetryFact, ...]:
        """Ask Prometheus each ``require.telemetry`` query of the plan, just before deciding."""
        facts = []
        url = self.ctx.prometheus_url
        for query in self.plan.telemetry:
            if not url:
                facts.append(TelemetryFact(query, False, "no Prometheus: set prometheus_url in the config"))
                continue
            try:
                value = await prometheus_value(self.ctx.http, url, query)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                facts.append(TelemetryFact(query, False, f"Prometheus did not answer: {type(exc).__name__}: {exc}"))
                continue
            facts.append(TelemetryFact(query, value is not None, "" if value is not None else "no data"))
        return tuple(facts)

    async def _measure_baseline(self) -> None:
        """Before the first action: the value a 'not worse' verification compares against."""
        query = baseline_query(self.plan.verify)
        if query is None or self.baseline is not None:
            return
        url = str(self.plan.verify["prometheus"].get("url") or self.ctx.prometheus_url) if self.plan.verify else ""
        try:
            # Absent is never zero: no data leaves the baseline unknown, and the verification with it.
            self.baseline = await prometheus_value(self.ctx.http, url, query)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("run %s: no baseline for %r: %s", self.run.id, query, exc)
            return
        await self._db(
            audit.append,
            at=self.ctx.clock(),
            kind="verify.baseline",
            incident_id=self.run.incident_id,
            run_id=self.run.id,
            data={"query": query, "value": self.baseline},
        )

    async def _step(self, step: PlannedStep) -> ActionError | object | None:
        """Run one step. None: succeeded; an ``ActionError``: failed; ``REFUSED``: refused by a
        guardrail or not runnable (the run is finished)."""
        if self.lost:
            raise LeaseLost
        idem = self._idempotent(step)
        try:
            args, secrets = resolve_step_secrets(step.args)  # references resolved here, never stored
            req = self.ctx.registry.request(
                step.action,
                args,
                timeout=step.timeout,
                run_id=str(self.run.id),
                step=step.index,
            )
        except PermanentError as exc:
            await self._fail("failed", f"step {step.index}: {exc}")
            return REFUSED
        if self.runbook is None:
            await self._fail("failed", f"runbook {self.run.runbook!r} is no longer loaded; not acting")
            return REFUSED
        now = self.ctx.clock()
        decision = await self._db(
            guard.reserve,
            self.run,
            step,
            plan=self.plan,
            runbook=self.runbook,
            idempotent=idem,
            now=now,
            policy=self.ctx.policy,
            telemetry=await self._telemetry(),
        )
        refusal = decision.refusal
        if refusal is not None:
            code = refusal.code.value if refusal.code else refusal.check.value
            refused = [v for v in decision.verdicts if not v.allowed]
            if decision.retry_at is not None and all(v.code is Refusal.NOT_FIRING_LONG_ENOUGH for v in refused):
                # not yet firing long enough, and nothing else in the way: wait for it, durably
                reason = f"{code}: {refusal.reason}; waiting, evaluated again then if the alert still fires"
                await self._db(runs_repo.defer, self.run, until=decision.retry_at, now=now, reason=reason)
                log.info("run %s deferred until %s: %s", self.run.id, decision.retry_at.isoformat(), refusal.reason)
                return REFUSED
            await self._fail("refused", f"{code}: {refusal.reason}")
            return REFUSED
        self.acted_at = self.acted_at or now
        outcome = await self._attempts(step.action, req, idem=idem, errors=ErrorsMode(step.errors))
        if isinstance(outcome, ActionError):
            await self._db(
                runs_repo.step_finished,
                self.run,
                idx=step.index,
                ok=False,
                now=self.ctx.clock(),
                summary=f"{step.action} failed",
                error=mask_secrets(str(outcome), secrets),
                reason=outcome.reason,
            )
            return outcome
        if isinstance(outcome, ActionResult):
            executor = self.ctx.registry.executor(step.action)
            inverse = executor.inverse(req, outcome) if isinstance(executor, Reversible) and outcome.changed else None
            undo = undo_text.record(
                declared=step.undo,
                inverse=(inverse.action, inverse.args) if inverse is not None else None,
                changed=outcome.changed,
                action=step.action,
            )
            summary, output, reason = mask_secrets(outcome.summary, secrets), mask_secrets(outcome.output, secrets), ""
        else:
            undo = undo_text.record(declared=step.undo, inverse=None, changed=True, action=step.action)
            summary, output, reason = (
                mask_secrets(f"{step.action}: error ignored (errors: ignored): {outcome}", secrets),
                "",
                "ignored_error",
            )
        await self._db(
            runs_repo.step_finished,
            self.run,
            idx=step.index,
            ok=True,
            now=self.ctx.clock(),
            summary=summary,
            output=output,
            reason=reason,
            undo=undo,
        )
        return None

    async def _attempts(
        self, action: str, req: ActionRequest, *, idem: bool, errors: ErrorsMode
    ) -> ActionResult | ActionError | Ignored:
        """Execute with bounded retries: a retryable error is retried only for an idempotent action."""
        executor = self.ctx.registry.executor(action)
        error: ActionError | None = None
        for attempt in range(RETRIES + 1):
            try:
                return await asyncio.wait_for(executor.execute(req), req.timeout + GRACE)
            except TimeoutError:
                # The executor did not end within its own timeout: the attempt was cancelled, but a
                # thread or a remote call may still be running it, so it is never retried.
                return PermanentError(
                    f"{action} did not end within its timeout of {req.timeout:g}s (+{GRACE:g}s); the attempt "
                    "may still be running, so it is not retried",
                    reason="timeout",
                )
            except ActionError as exc:
                error = exc
            except Exception as exc:  # an error the executor did not classify: the step's errors mode says
                error = unexpected(exc, errors)
                if error is None:
                    return Ignored(_describe(exc))
            if not error.retryable or attempt == RETRIES or not idem:
                break
            asked = getattr(error, "retry_after", None)  # a RetryableError may say how long to wait
            await asyncio.sleep(min(asked.total_seconds(), req.timeout) if asked is not None else 0.5 * (2**attempt))
        assert error is not None
        return error

    async def _finish(self, status: str, reason: str, *, mitigated: bool = False) -> None:
        if self.lost:
            raise LeaseLost
        now = self.ctx.clock()

        def write(conn: object) -> RunRow:
            from sqlalchemy import Connection

            assert isinstance(conn, Connection)
            runs_repo.finish(conn, self.run, status=status, now=now, reason=reason, mitigated=mitigated)
            if status in ("succeeded", "failed"):
                guard.settle(
                    conn,
                    self.run,
                    runbook=self.runbook,
                    ok=status == "succeeded",
                    now=now,
                    reason=reason,
                    started_at=self.acted_at,
                )
            row = runs_repo.get(conn, self.run.id)
            assert row is not None
            return row

        row = await self._db(write)
        log.info("run %s (%s) %s: %s", self.run.id, self.run.runbook, status, reason)
        if self.ctx.on_finished is not None:
            await self.ctx.on_finished(row, status == "succeeded", reason)
