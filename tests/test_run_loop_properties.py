"""Property tests over the run loop (issue 14): hypothesis draws runbooks (steps, idempotency,
on_failure) and, for every execution, what happens (success, no change, a failure, a retryable
failure, an executor bug, a process crash, a pause from a human), time injected. The real runner
runs each run to its end on a real SQLite store, resumed after each crash as another worker would.

Whatever the sequence: no run ends with a completed step that is neither undone nor named in its
reason (the escalation), and no step executes more often than its run allowed.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, Inverse, ParamSpec, TargetState
from paramedic.actions.registry import build_registry
from paramedic.core import undo as undo_text
from paramedic.core.alerts import Alert, AlertStatus, fingerprint_of
from paramedic.core.config import Config
from paramedic.core.errors import PermanentError, RetryableError
from paramedic.engine.runner import RETRIES, RunContext, Runner
from paramedic.engine.service import Paramedic
from paramedic.store import runs as runs_repo
from paramedic.store import state

OUTCOMES = ("ok", "unchanged", "fail", "retry", "bug", "crash", "pause")
LEASE = timedelta(seconds=30)
MAX_ATTEMPTS = 3


class Crash(BaseException):
    """The worker process dies in the middle of a step (nothing more of it runs)."""


@dataclass
class Script:
    """What each execution does, in order; once drawn outcomes run out, everything succeeds."""

    outcomes: list[str]
    undo_fails: bool
    executed: Counter[int] = field(default_factory=Counter)
    pause: object = None  # set to a callable that pauses automation

    def next(self) -> str:
        return self.outcomes.pop(0) if self.outcomes else "ok"


class Scripted:
    """An executor at paramedic's boundary whose every call follows the script."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def actions(self) -> Sequence[ActionSpec]:
        i = ParamSpec("i", "int")
        return [
            ActionSpec("p.idem", "an idempotent action", (i,), idempotent=True),
            ActionSpec("p.once", "a non-idempotent action", (i,), idempotent=False),
            ActionSpec("p.undo", "puts back what p.idem or p.once changed", (i,), idempotent=True),
        ]

    async def execute(self, request: ActionRequest) -> ActionResult:
        if request.action == "p.undo":
            if self.script.undo_fails:
                raise PermanentError("the undo was refused", reason="refused")
            return ActionResult(summary=f"undid {request.args['i']}")
        self.script.executed[int(request.args["i"])] += 1
        what = self.script.next()
        if what == "unchanged":
            return ActionResult(summary="nothing to do", changed=False)
        if what == "fail":
            raise PermanentError("refused by the target", reason="refused")
        if what == "retry":
            raise RetryableError("try again", reason="unreachable", retry_after=timedelta(0))
        if what == "bug":
            raise KeyError("statename")
        if what == "crash":
            raise Crash
        if what == "pause":
            assert callable(self.script.pause)
            self.script.pause()
        return ActionResult(summary="done")

    async def describe(self, request: ActionRequest) -> str:
        return request.action

    async def read_state(self, request: ActionRequest) -> TargetState:
        return TargetState(target="", healthy=None)

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        return None

    def inverse(self, request: ActionRequest, result: ActionResult) -> Inverse | None:
        return Inverse("p.undo", {"i": request.args["i"]})


def runbook(steps: Sequence[bool], on_failure: str, undo_false: Sequence[bool]) -> str:
    lines = []
    for i, (idem, no_undo) in enumerate(zip(steps, undo_false, strict=True)):
        lines.append(f"      - action: {'p.idem' if idem else 'p.once'}\n        with: {{i: {i}}}\n")
        if no_undo:
            lines.append("        undo: false\n")
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: prop
    owner: team
    match: {{alertname: Broken}}
    mode: auto
    on_failure: {on_failure}
    steps:
{"".join(lines)}"""


async def drive(pm: Paramedic, clock: list[datetime], script: Script) -> tuple[int, int]:
    """Ingest one alert and run its run to the end; returns (run id, claims)."""
    now = clock[0]
    labels = {"alertname": "Broken", "instance": "h1"}
    alert = Alert(
        source="generic",
        fingerprint=fingerprint_of("Broken", labels),
        name="Broken",
        status=AlertStatus.FIRING,
        starts_at=now,
        labels=labels,
    )
    (result,) = await pm.ingest([alert])
    (run_id,) = result.runs
    claims = 0
    async with httpx.AsyncClient() as http:
        for n in range(MAX_ATTEMPTS + 3):
            ctx = RunContext(
                db=pm.db,
                registry=pm.registry,
                clock=lambda: clock[0],
                owner=f"worker-{n}",
                lease=LEASE,
                max_attempts=MAX_ATTEMPTS,
                http=http,
                runbook_of=pm.runbooks.get,
                policy=pm.policy,
            )
            with pm.db.write() as conn:
                run = runs_repo.claim(conn, owner=ctx.owner, now=clock[0], lease=LEASE)
            if run is None:
                break
            claims += 1
            try:
                await Runner(ctx, run).execute()
            except Crash:
                clock[0] += LEASE + timedelta(seconds=1)  # the lease of the dead worker expires
    return run_id, claims


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.booleans(), min_size=1, max_size=4),
    on_failure=st.sampled_from(["escalate", "rollback", "next"]),
    undo_false=st.lists(st.booleans(), min_size=4, max_size=4),
    outcomes=st.lists(st.sampled_from(OUTCOMES), max_size=8),
    undo_fails=st.booleans(),
)
def test_every_completed_step_is_undone_or_named_and_none_runs_more_than_allowed(
    steps: list[bool], on_failure: str, undo_false: list[bool], outcomes: list[str], undo_fails: bool
) -> None:
    script = Script(outcomes=list(outcomes), undo_fails=undo_fails)
    with tempfile.TemporaryDirectory(prefix="pm-prop-") as tmp:
        rb = Path(tmp) / "rb"
        rb.mkdir()
        (rb / "r.yaml").write_text(runbook(steps, on_failure, undo_false[: len(steps)]))
        clock = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
        registry = build_registry({})
        registry.add(Scripted(script))
        cfg = Config(database=f"sqlite:///{tmp}/p.db", runbooks=[str(rb)], max_run_attempts=MAX_ATTEMPTS)
        pm = Paramedic.from_config(cfg, clock=lambda: clock[0], registry=registry)

        def pause() -> None:
            with pm.db.write() as conn:
                state.set_paused(conn, True, now=clock[0], by="oncall")

        script.pause = pause
        try:
            run_id, claims = asyncio.run(drive(pm, clock, script))
            with pm.db.read() as conn:
                run = runs_repo.get(conn, run_id)
                rows = runs_repo.steps_of(conn, run_id)
        finally:
            pm.db.dispose()

    assert run is not None
    assert run.status in ("succeeded", "failed", "refused"), run.status
    assert claims <= MAX_ATTEMPTS + 1
    n = len(steps)
    if run.status != "succeeded":
        for row in rows:
            if row.idx >= n or (row.undo or {}).get("unchanged"):
                continue
            changed = row.status == "succeeded" or (row.status == "failed" and row.reason == "unknown_outcome")
            if changed:
                assert undo_text.name(row.idx, row.action, row.args) in run.reason, (row, run.reason)
    for i, idem in enumerate(steps):
        allowed = (RETRIES + 1) * MAX_ATTEMPTS if idem else 1
        assert script.executed[i] <= allowed, (i, script.executed, run.reason)
