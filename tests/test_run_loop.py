"""The run loop keeps its promises: a run reserves its guardrail budget once, before its first step,
and a refusal can only come before anything ran (issue 14). Through a real server and real
subprocesses (``shell.run``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, TargetState
from paramedic.actions.registry import build_registry
from paramedic.core.config import Config
from paramedic.core.errors import StoreUnavailable
from paramedic.engine.service import Paramedic
from paramedic.store.db import Database
from paramedic.store.tables import runs
from tests.conftest import Server
from tests.support import wait_for


def runbook(*, steps: str, guardrails: str = "", on_failure: str = "escalate", verify: str = "") -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: fix
    owner: team
    match: {{alertname: Broken}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    on_failure: {on_failure}
    guardrails:
{guardrails or "      {}"}
    steps:
{steps}
{verify}
"""


def touch(path: Path, extra: str = "") -> str:
    return f'      - action: shell.run\n        with: {{argv: ["touch", "{path}"]}}\n{extra}'


def fire(c: httpx.Client, instance: str = "h1", **labels: str) -> int:
    r = c.post("/api/v1/alerts", json={"name": "Broken", "labels": {"instance": instance, **labels}})
    assert r.status_code == 202
    return int(r.json()["alerts"][0]["incident_id"])


def incident(c: httpx.Client, i: int) -> dict[str, Any]:
    return c.get(f"/api/v1/incidents/{i}").json()  # type: ignore[no-any-return]


def settled(i: int, *statuses: str) -> Callable[[httpx.Client], bool]:
    return lambda c: incident(c, i)["status"] in statuses


def test_a_rate_limit_counts_remediations_not_steps(make_server: Callable[..., Server], tmp_path: Path) -> None:
    """753e177 ran step 1 of a 3-step runbook with ``rate_limit: {max: 1}`` and refused step 2."""
    steps = "".join(touch(tmp_path / f"step{n}") for n in range(3))
    rl = "      rate_limit: {max: 1, per: 1h, scope: target}"
    srv = make_server(runbook(steps=steps, guardrails=rl))
    with srv.client() as c:
        first = fire(c, n="1")
        srv.wait(settled(first, "mitigated"))
        run = incident(c, first)["runs"][0]
        assert [s["status"] for s in run["steps"]] == ["succeeded"] * 3
        second = fire(c, n="2")
        srv.wait(settled(second, "escalated"))
        refused = incident(c, second)["runs"][0]
    assert run["status"] == "succeeded"
    assert refused["status"] == "refused"
    assert refused["reason"].startswith("rate_limited: rate limit: 1 of 1 remediations on target h1")
    assert refused["steps"] == []  # refused before anything ran


class Buggy:
    """An executor at paramedic's own boundary whose ``execute`` raises what a client library raises
    on a reply it did not expect (a ``KeyError``), counting each call."""

    def __init__(self, raises: BaseException | None = None, *, idempotent: bool = True) -> None:
        self.calls = 0
        self.raises = raises if raises is not None else KeyError("'statename'")
        self.idempotent = idempotent

    def actions(self) -> Sequence[ActionSpec]:
        return [ActionSpec(name="buggy.poke", summary="fails like a bug", idempotent=self.idempotent)]

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.calls += 1
        raise self.raises

    async def describe(self, request: ActionRequest) -> str:
        return "poke"

    async def read_state(self, request: ActionRequest) -> TargetState:
        return TargetState(target="", healthy=None)

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        return None


def serve(tmp_path: Path, text: str, executor: Any, **config: Any) -> Server:
    rb = tmp_path / "rb"
    rb.mkdir(exist_ok=True)
    (rb / "r.yaml").write_text(text)
    cfg = Config(database=f"sqlite:///{tmp_path / 'p.db'}", runbooks=[str(rb)], **config)
    registry = build_registry({})
    registry.add(executor)
    return Server(Paramedic.from_config(cfg, registry=registry))


POKE = "      - action: buggy.poke\n"


@pytest.mark.parametrize("errors", ["", "        errors: permanent\n", "        errors: temporary\n"])
def test_an_unexpected_executor_error_fails_the_step_once(tmp_path: Path, errors: str) -> None:
    """753e177 logged it, let the lease expire and re-executed: 14 attempts in 25 s, never escalated.
    Now the step fails with the error's type and message; ``temporary`` retries it a bounded number
    of times (idempotent step), then fails."""
    buggy = Buggy()
    rl = "      rate_limit: {max: 1, per: 1h, scope: target}"
    text = runbook(steps=POKE + errors, guardrails=rl)
    with serve(tmp_path, text, buggy, lease=timedelta(seconds=1)) as srv, srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "escalated"))
        data = incident(c, i)
    step = data["runs"][0]["steps"][0]
    assert step["status"] == "failed"
    assert step["reason"] == "unexpected_error"
    assert "KeyError: \"'statename'\"" in step["error"]
    assert data["runs"][0]["status"] == "failed"
    assert buggy.calls == (3 if "temporary" in errors else 1)


def test_an_ignored_error_lets_the_run_go_on(tmp_path: Path) -> None:
    buggy = Buggy()
    marker = tmp_path / "after"
    steps = POKE + "        errors: ignored\n" + touch(marker)
    with serve(tmp_path, runbook(steps=steps), buggy) as srv, srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "mitigated"))
        step = incident(c, i)["runs"][0]["steps"][0]
    assert step["status"] == "succeeded"
    assert "error ignored" in step["summary"]
    assert "KeyError" in step["summary"]
    assert marker.exists()
    assert buggy.calls == 1


def test_a_run_claimed_too_often_fails_and_escalates(tmp_path: Path) -> None:
    """A run whose earlier claims all ended without finishing (crashes, lost leases) is not claimed
    forever: past ``max_run_attempts`` it fails, executes nothing more, and escalates."""
    buggy = Buggy()
    text = runbook(steps=POKE).replace("mode: auto", "mode: approve")
    with serve(tmp_path, text, buggy, max_run_attempts=2) as srv, srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "awaiting_approval"))
        run_id = incident(c, i)["runs"][0]["id"]
        with srv.pm.db.write() as conn:  # as if two workers had claimed it and died mid-step
            conn.execute(update(runs).where(runs.c.id == run_id).values(status="running", attempts=2, lease_until=None))
        srv.pm._signal(1)
        srv.wait(settled(i, "escalated"))
        run = incident(c, i)["runs"][0]
    assert run["status"] == "failed"
    assert "claimed 3 times (max_run_attempts is 2)" in run["reason"]
    assert buggy.calls == 0


def wait_file(path: Path) -> str:
    """A step that runs until ``path`` exists (the test decides when it ends)."""
    script = f"import os, time\nwhile not os.path.exists({str(path)!r}): time.sleep(0.05)"
    return f"      - action: shell.run\n        with: {{argv: [python3, -c, {script!r}], timeout: 30}}\n"


def test_a_pause_mid_run_takes_the_undo_path(make_server: Callable[..., Server], tmp_path: Path) -> None:
    """A pause while step 1 runs stops the run before step 2, and with ``on_failure: rollback`` the
    completed steps are undone (here step 0, by its declared ``undo:``). 753e177 refused step 2 and
    left step 0's change in place, unnamed."""
    made, go, never = tmp_path / "made", tmp_path / "go", tmp_path / "never"
    undo = f'        undo: {{action: shell.run, with: {{argv: ["rm", "{made}"]}}}}\n'
    steps = touch(made, undo) + wait_file(go) + touch(never)
    srv = make_server(runbook(steps=steps, on_failure="rollback"))
    with srv.client() as c:
        i = fire(c)
        srv.wait(lambda c: len(incident(c, i)["runs"][0]["steps"]) == 2)
        assert c.post("/api/v1/automation/pause", json={}).status_code == 200
        go.touch()
        srv.wait(settled(i, "escalated"))
        run = incident(c, i)["runs"][0]
    assert run["status"] == "refused"
    assert run["reason"].startswith("paused: automation is paused")
    assert "rolled back: step 0 shell.run by shell.run" in run["reason"]
    assert "left in state: step 1 shell.run timeout=30 (shell.run has no known inverse)" in run["reason"]
    assert [s["status"] for s in run["steps"]] == ["undone", "succeeded", "succeeded"]
    assert not made.exists()
    assert not never.exists()


def test_a_failed_verification_rolls_back_and_names_what_stays(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    made = tmp_path / "made"
    steps = touch(made, f'        undo: {{action: shell.run, with: {{argv: ["rm", "{made}"]}}}}\n')
    steps += '      - action: shell.run\n        with: {argv: ["true"]}\n        undo: false\n'
    verify = f'    verify:\n      command: {{argv: ["test", "-f", "{tmp_path}/never"], within: 0.3s, every: 0.1s}}\n'
    srv = make_server(runbook(steps=steps, on_failure="rollback", verify=verify))
    with srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "escalated"))
        run = incident(c, i)["runs"][0]
    assert run["reason"].startswith("verification failed")
    assert "rolled back: step 0 shell.run by shell.run" in run["reason"]
    assert (
        "left in state: step 1 shell.run (the runbook declares that nothing undoes it (undo: false))" in run["reason"]
    )
    assert not made.exists()


def _gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie waiting for its reaper)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X")


def test_a_timed_out_step_ends_its_whole_process_group(make_server: Callable[..., Server], tmp_path: Path) -> None:
    """753e177 killed only the direct child on the executor's timeout: a program's own children
    (here a ``sleep`` it started) went on running after the step was reported as timed out."""
    pidfile = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"
        "p.wait()"
    )
    steps = f"      - action: shell.run\n        with: {{argv: [python3, -c, {script!r}], timeout: 4}}\n"
    srv = make_server(runbook(steps=steps))
    with srv.client() as c:
        i = fire(c)
        srv.wait(settled(i, "escalated"))
        step = incident(c, i)["runs"][0]["steps"][0]
    assert step["reason"] == "timeout"
    assert "process group was killed" in step["error"]
    grandchild = int(pidfile.read_text())
    wait_for(lambda: _gone(grandchild), timeout=5)


class Stuck(Buggy):
    """An executor that ignores its own timeout: its work goes on in a thread the runner cannot stop."""

    def __init__(self) -> None:
        super().__init__(idempotent=True)
        self.release = threading.Event()

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.calls += 1
        await asyncio.to_thread(self.release.wait, 30)
        return ActionResult(summary="finally done")


def test_a_step_past_the_runners_timeout_is_not_retried(tmp_path: Path) -> None:
    """753e177 retried an idempotent step whose executor overran its timeout (3 attempts), while the
    first one was still running in its thread."""
    stuck = Stuck()
    steps = "      - action: buggy.poke\n        timeout: 0.3s\n"
    try:
        with serve(tmp_path, runbook(steps=steps), stuck) as srv, srv.client() as c:
            i = fire(c)
            srv.wait(settled(i, "escalated"))
            step = incident(c, i)["runs"][0]["steps"][0]
    finally:
        stuck.release.set()
    assert step["reason"] == "timeout"
    assert "may still be running, so it is not retried" in step["error"]
    assert stuck.calls == 1


class Outage:
    """Makes the database unreachable for this process for ``seconds`` once ``start`` is called:
    every transaction raises ``StoreUnavailable``, as the store does when PostgreSQL restarts."""

    def __init__(self, db: Database, seconds: float) -> None:
        self.seconds = seconds
        self.until = 0.0
        self.refused = 0
        original = db.write

        @contextlib.contextmanager
        def write(*, serial: bool = True) -> Iterator[Any]:
            if time.monotonic() < self.until:
                self.refused += 1
                raise StoreUnavailable("the database is unavailable: connection refused (injected)")
            with original(serial=serial) as conn:
                yield conn

        db.write = write  # type: ignore[method-assign]

    def start(self) -> None:
        self.until = time.monotonic() + self.seconds


class StartsOutage(Buggy):
    """Succeeds, and the database goes away just as it returns (before the result is written)."""

    def __init__(self) -> None:
        super().__init__(idempotent=False)
        self.outage: Outage | None = None

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.calls += 1
        assert self.outage is not None
        self.outage.start()
        return ActionResult(summary="poked")


def test_a_database_blip_after_a_step_keeps_its_outcome(tmp_path: Path) -> None:
    """753e177 gave up on the write after about 0.6 s, crashed the run, and on resume reported a
    step that had succeeded as "outcome unknown", escalated as if a restart had interrupted it."""
    ex = StartsOutage()
    with serve(tmp_path, runbook(steps=POKE), ex, lease=timedelta(seconds=6)) as srv, srv.client() as c:
        ex.outage = Outage(srv.pm.db, seconds=1.5)
        i = fire(c)
        srv.wait(settled(i, "mitigated"))
        run = incident(c, i)["runs"][0]
    assert ex.outage.refused > 3  # the outage really met the worker's writes
    assert run["status"] == "succeeded"
    assert run["steps"][0]["status"] == "succeeded"
    assert run["steps"][0]["summary"] == "poked"
    assert ex.calls == 1


class Clock:
    """Time injected into paramedic; the test moves it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def firing_for(tmp_path: Path, clock: Clock) -> Server:
    text = runbook(steps=touch(tmp_path / "acted")).replace(
        "    on_failure: escalate\n", "    on_failure: escalate\n    require: {firing_for: 30s}\n"
    )
    rb = tmp_path / "rb"
    rb.mkdir(exist_ok=True)
    (rb / "r.yaml").write_text(text)
    cfg = Config(database=f"sqlite:///{tmp_path / 'p.db'}", runbooks=[str(rb)])
    return Server(Paramedic.from_config(cfg, clock=clock))


def test_firing_for_waits_then_acts_if_the_alert_still_fires(tmp_path: Path) -> None:
    """753e177 refused for good (and paged) when the first delivery was younger than firing_for."""
    clock = Clock()
    with firing_for(tmp_path, clock) as srv, srv.client() as c:
        i = fire(c)
        srv.wait(lambda c: "run.deferred" in [t["kind"] for t in incident(c, i)["timeline"]])
        waiting = incident(c, i)
        assert waiting["status"] != "escalated"
        assert waiting["runs"][0]["status"] == "pending"
        assert waiting["runs"][0]["reason"].startswith("not_firing_long_enough:")
        assert not (tmp_path / "acted").exists()
        clock.now += timedelta(seconds=31)
        srv.wait(settled(i, "mitigated"))
        run = incident(c, i)["runs"][0]
        with srv.pm.db.read() as conn:
            attempts = conn.execute(select(runs.c.attempts).where(runs.c.id == run["id"])).scalar_one()
    assert run["status"] == "succeeded"
    assert attempts == 1  # the wait did not use up a claim
    assert (tmp_path / "acted").exists()


def test_firing_for_wait_ends_when_the_alert_resolves(tmp_path: Path) -> None:
    clock = Clock()
    with firing_for(tmp_path, clock) as srv, srv.client() as c:
        i = fire(c)
        srv.wait(lambda c: "run.deferred" in [t["kind"] for t in incident(c, i)["timeline"]])
        r = c.post("/api/v1/alerts", json={"name": "Broken", "labels": {"instance": "h1"}, "status": "resolved"})
        assert r.status_code == 202
        srv.wait(settled(i, "resolved"))
        clock.now += timedelta(seconds=31)
        data = incident(c, i)
    assert data["runs"][0]["status"] == "cancelled"
    assert data["escalated_at"] is None
    assert not (tmp_path / "acted").exists()
