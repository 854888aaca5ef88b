"""The lab's nine scenarios: a real fault, the runbook a team would write, and measured MTTR.

Each scenario starts its own ``LabStack`` (so no rate limit, breaker or flap history leaks from
one into the next), injects its fault, and waits, up to its limit, for the outcome it expects.
It measures, from the moment of the fault:

- detect: paramedic first sees the alert (the incident's ``first_seen_at``);
- mitigate: the first remediation verified (``mitigated_at``);
- recover: every incident the fault caused is resolved (the alert is over).

The baseline is the same stack with automation paused: the alert reaches paramedic, nobody acts,
and the incident counts as open until the scenario's limit. The crash loop also runs against
supervisord's own ``autorestart=true``. ``check`` lists what did not go as the runbook promises
(empty: the outcome was right); the tests assert that list, never the timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from paramedic.actions.base import ActionRequest
from paramedic.actions.release import ReleaseExecutor, ReleaseRecord, current_version
from paramedic.lab.stack import MEMORY_LIMIT, LabStack, StackOptions

RUNBOOKS = Path(__file__).resolve().parents[3] / "examples" / "runbooks" / "lab"

Incidents = list[dict[str, Any]]


@dataclass(slots=True)
class Result:
    """What one run of a scenario measured and found (times in seconds from the fault)."""

    scenario: str
    mode: str  # paramedic | baseline | supervisord
    limit: float
    detect: float | None = None
    mitigate: float | None = None
    recover: float | None = None
    actions: list[str] = field(default_factory=list)  # "supervisor.restart succeeded"
    verdicts: list[str] = field(default_factory=list)  # guardrail verdict codes, in order
    statuses: list[str] = field(default_factory=list)  # incident statuses at the end
    state: dict[str, str] = field(default_factory=dict)  # the service afterwards
    problems: list[str] = field(default_factory=list)
    notes: str = ""

    @property
    def mttr(self) -> float:
        """Time to recover, an open incident counted until the limit."""
        return self.recover if self.recover is not None else self.limit

    def executed(self, action: str) -> int:
        return sum(1 for a in self.actions if a.startswith(f"{action} ") and not a.endswith(" skipped"))


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    number: int
    title: str
    alerts: tuple[str, ...]
    limit: float
    inject: Callable[[LabStack], None]
    done: Callable[[LabStack, Incidents], bool]
    check: Callable[[LabStack, Result], list[str]]
    state: Callable[[LabStack], dict[str, str]]
    options: StackOptions = field(default_factory=StackOptions)
    baseline_autorestart: bool = False


def _stack_options(sc: Scenario, *, automation: bool, autorestart: bool = False) -> StackOptions:
    o = sc.options
    return StackOptions(
        instances=o.instances,
        max_instances=o.max_instances,
        automation=automation,
        autorestart=autorestart,
        runbooks=(RUNBOOKS,),
        load_rps=o.load_rps,
        capacity=o.capacity,
        releases=o.releases,
        live_release=o.live_release,
    )


# -- reading incidents --------------------------------------------------------------------------
def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def _ours(sc: Scenario, incidents: Incidents, t0: float) -> Incidents:
    return [i for i in incidents if i["alertname"] in sc.alerts and (_ts(i["first_seen_at"]) or 0) >= t0 - 1]


def _measure(sc: Scenario, result: Result, incidents: Incidents, t0: float) -> None:
    firsts = [t for i in incidents if (t := _ts(i["first_seen_at"])) is not None]
    mitigated = [t for i in incidents if (t := _ts(i.get("mitigated_at"))) is not None]
    if not mitigated:  # the alert resolved while the run was still verifying: the action's end counts
        mitigated = [
            t
            for i in incidents
            for run in i["runs"]
            if run["status"] != "failed"
            for s in run["steps"]
            if s["status"] == "succeeded" and (t := _ts(s["finished_at"])) is not None
        ]
    resolved = [_ts(i.get("resolved_at")) for i in incidents]
    result.detect = min(firsts) - t0 if firsts else None
    result.mitigate = min(mitigated) - t0 if mitigated else None
    done = [t for t in resolved if t is not None]
    result.recover = max(done) - t0 if incidents and len(done) == len(resolved) else None
    if result.recover is not None and result.recover > result.limit:
        result.recover = None
    for inc in incidents:
        result.statuses.append(str(inc["status"]))
        for run in inc["runs"]:
            result.verdicts += [str(v["code"] or "allowed") if not v["allowed"] else "allowed" for v in run["verdicts"]]
            result.actions += [f"{s['action']} {s['status']}" for s in run["steps"]]


def _all_resolved(incidents: Incidents) -> bool:
    return bool(incidents) and all(i["status"] == "resolved" for i in incidents)


# -- the scenarios --------------------------------------------------------------------------------
def _hang(stack: LabStack) -> None:
    stack.fault(stack.instance(1), "hang")


def _healthy_pool(stack: LabStack) -> dict[str, str]:
    return {
        i.server: f"{stack.process_state(i.program)}/{'serving' if stack.serving(i.server) else 'out'}"
        for i in stack.instances
    }


def _check_hung(stack: LabStack, r: Result) -> list[str]:
    out = []
    if r.executed("supervisor.restart") != 1:
        out.append(f"expected one restart, got {r.actions}")
    if r.verdicts and r.verdicts[0] != "allowed":
        out.append(f"first verdict {r.verdicts[0]}, expected allowed")
    if r.state.get("web-1") != "RUNNING/serving":
        out.append(f"web-1 is {r.state.get('web-1')} afterwards")
    return out


def _crashloop(stack: LabStack) -> None:
    stack.fault(stack.instance(2), "crashloop")


# What may stop the restarts of a crash loop: the rate limit, flapping, the breaker — or the blast
# radius, when the loop fires again while the first restart is still being verified (a run holds its
# max_concurrent reservation until it ends, verification included).
CRASH_STOPS = ("rate_limited", "flapping", "circuit_open", "blast_radius")


def _crash_done(stack: LabStack, incidents: Incidents) -> bool:
    codes = [v["code"] for i in incidents for run in i["runs"] for v in run["verdicts"]]
    return any(c in CRASH_STOPS for c in codes) and incidents[-1]["status"] == "escalated"


def _check_crash(stack: LabStack, r: Result) -> list[str]:
    out = []
    if not 1 <= r.executed("supervisor.restart") <= 2:
        out.append(f"expected one or two restarts (the rate limit is 2), got {r.actions}")
    refusals = [c for c in r.verdicts if c != "allowed"]
    if not refusals or refusals[0] not in CRASH_STOPS:
        out.append(f"expected a guardrail to stop the restarts, verdicts {r.verdicts}")
    if "escalated" not in r.statuses:
        out.append(f"expected an escalation, statuses {r.statuses}")
    if r.state.get("web-2", "").startswith("RUNNING/serving"):
        out.append("web-2 serves, though its crash loop was never fixed")
    return out


def _leak(stack: LabStack) -> None:
    stack.fault(stack.instance(3), "leak")


def _check_leak(stack: LabStack, r: Result) -> list[str]:
    out = []
    if r.executed("supervisor.restart") != 1:
        out.append(f"expected one restart, got {r.actions}")
    peak = stack.query(f'max_over_time(sample_memory_bytes{{instance="{stack.instance(3).address}"}}[2m])')
    r.state["web-3 peak memory MiB"] = f"{(peak or 0) / 2**20:.0f}"
    if peak is None or peak >= MEMORY_LIMIT:
        out.append(f"web-3 reached its memory limit ({peak})")
    if r.state.get("web-3") != "RUNNING/serving":
        out.append(f"web-3 is {r.state.get('web-3')} afterwards")
    return out


def _release_executor(stack: LabStack) -> ReleaseExecutor:
    return ReleaseExecutor.from_config(stack.paramedic_config().executors["release"])


def _deploy_v2(stack: LabStack) -> None:
    """The team's CD pipeline deploys v2 (the same executor, so the history records it)."""
    request = ActionRequest("release.deploy", {"app": "web", "version": "v2"}, timeout=60)
    asyncio.run(_release_executor(stack).execute(request))


def _release_state(stack: LabStack) -> dict[str, str]:
    return {"current": current_version(stack.release_root) or "", **_healthy_pool(stack)}


def _check_release(stack: LabStack, r: Result) -> list[str]:
    out = []
    if r.executed("release.rollback") != 1:
        out.append(f"expected one rollback, got {r.actions}")
    if r.state.get("current") != "v1":
        out.append(f"current is {r.state.get('current')}, expected v1")
    bad = [h.version for h in _release_executor(stack).history() if h.status == "bad"]
    if bad != ["v2"]:
        out.append(f"expected v2 marked bad, history says bad={bad}")
    return out


def _overload(stack: LabStack) -> None:
    stack.load_rps = 150.0  # three instances serve 120/s


def _scale_state(stack: LabStack) -> dict[str, str]:
    return {"instances": str(len(stack.instances)), **_healthy_pool(stack)}


def _check_scale(stack: LabStack, r: Result) -> list[str]:
    out = []
    if r.executed("supervisor.scale") != 1:
        out.append(f"expected one scale, got {r.actions}")
    if r.state.get("instances") != "5":
        out.append(f"expected 5 instances, got {r.state.get('instances')}")
    if any(v != "RUNNING/serving" for k, v in r.state.items() if k.startswith("web-")):
        out.append(f"not every instance serves: {r.state}")
    return out


def _outlier(stack: LabStack) -> None:
    stack.fault(stack.instance(2), "errors", rate=1.0)


def _check_outlier(stack: LabStack, r: Result) -> list[str]:
    out = []
    want = ["haproxy.drain succeeded", "supervisor.restart succeeded", "haproxy.ready succeeded"]
    if r.actions != want:
        out.append(f"expected drain, restart, ready; got {r.actions}")
    if r.state.get("web-2") != "RUNNING/serving":
        out.append(f"web-2 is {r.state.get('web-2')} afterwards, expected back in rotation")
    return out


ALREADY_STARTED, NOT_RUNNING = 60, 70  # supervisord's fault codes


def _flap(stack: LabStack) -> None:
    """A flaky host: something outside paramedic kills web-3 and brings it back, four times."""
    program = stack.instance(3).program
    assert stack.harness is not None
    for _ in range(4):
        with stack.harness.rpc() as rpc, _already(NOT_RUNNING):
            if stack.process_state(program) == "RUNNING":
                rpc.supervisor.stopProcess(program, True)
        time.sleep(4.0)
        with stack.harness.rpc() as rpc, _already(ALREADY_STARTED):  # paramedic's restart may have won
            if stack.process_state(program) != "RUNNING":
                rpc.supervisor.startProcess(program, True)
        time.sleep(3.0)


@contextlib.contextmanager
def _already(code: int) -> Iterator[None]:
    """The process is already where the injector wanted it (someone else moved it first)."""
    try:
        yield
    except xmlrpc.client.Fault as fault:
        if fault.faultCode != code:
            raise


def _check_flap(stack: LabStack, r: Result) -> list[str]:
    out = []
    if r.executed("supervisor.restart") > 2:
        out.append(f"remediation storm: {r.actions}")
    if len(r.statuses) < 3:
        out.append(f"expected at least three firing episodes, got {len(r.statuses)}")
    if not any(c in ("flapping", "rate_limited") for c in r.verdicts):
        out.append(f"expected flapping or rate_limited refusals, got {r.verdicts}")
    if r.state.get("web-3") != "RUNNING/serving":
        out.append(f"web-3 is {r.state.get('web-3')} afterwards")
    return out


def _unknown(stack: LabStack) -> None:
    stack.load_rps = 0.0  # the upstream stops sending: no runbook knows this one


def _unknown_done(stack: LabStack, incidents: Incidents) -> bool:
    return any(i["status"] == "escalated" and i["evidence"] for i in incidents)


def _check_unknown(stack: LabStack, r: Result) -> list[str]:
    out = []
    if r.actions or r.verdicts:
        out.append(f"an unknown alert must not be automated: {r.actions} {r.verdicts}")
    if "escalated" not in r.statuses:
        out.append(f"expected an escalation, statuses {r.statuses}")
    if r.state.get("evidence", "0") == "0":
        out.append("the escalation carries no evidence")
    return out


def _unknown_state(stack: LabStack) -> dict[str, str]:
    evidence = sum(len(i["evidence"]) for i in stack.incidents() if i["alertname"] == "LowTraffic")
    return {"evidence": str(evidence), **_healthy_pool(stack)}


def _worse_setup_history(stack: LabStack) -> None:
    """v1 then v2 were deployed and both were good; v2 is live."""
    now = datetime.now(UTC)
    records = [
        ReleaseRecord("web", "deploy", "v1", None, now - timedelta(days=2), "known-good"),
        ReleaseRecord("web", "deploy", "v2", "v1", now - timedelta(days=1), "known-good"),
    ]
    path = stack.release_root / ".paramedic-releases.json"
    path.write_text(json.dumps({"format": 1, "records": [r.to_json() for r in records]}))


def _worse(stack: LabStack) -> None:
    """A dependency fails 55% of the requests on every instance; nothing was deployed."""
    _worse_setup_history(stack)
    for inst in stack.instances:
        stack.fault(inst, "errors", rate=0.55)


def _worse_done(stack: LabStack, incidents: Incidents) -> bool:
    return any(r["status"] == "failed" for i in incidents for r in i["runs"]) and any(
        i["status"] == "escalated" for i in incidents
    )


def _breaker_state(stack: LabStack) -> dict[str, str]:
    state = _release_state(stack)
    for rb in stack.runbooks_state():
        if rb.get("name") == "lab-rollback-bad-release":
            state["breaker"] = json.dumps(rb.get("breaker") or rb.get("breakers"), default=str)
            state["mode"] = str(rb.get("mode"))
    return state


def _check_worse(stack: LabStack, r: Result) -> list[str]:
    out = []
    if r.executed("release.rollback") != 1:
        out.append(f"expected exactly one rollback, then nothing: {r.actions}")
    if "escalated" not in r.statuses:
        out.append(f"expected an escalation, statuses {r.statuses}")
    if "open" not in r.state.get("breaker", ""):
        out.append(f"expected the breaker open, got {r.state.get('breaker')}")
    return out


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("hung", 1, "hung instance → restart", ("InstanceDown",), 60, _hang,
             lambda s, i: _all_resolved(i), _check_hung, _healthy_pool),
    Scenario("crashloop", 2, "crash loop → restarts stop at the rate limit, escalate", ("InstanceDown",), 60,
             _crashloop, _crash_done, _check_crash, _healthy_pool, baseline_autorestart=True),
    Scenario("leak", 3, "memory leak → restart before it falls over", ("MemoryLeak",), 60, _leak,
             lambda s, i: _all_resolved(i), _check_leak, _healthy_pool),
    Scenario("bad-release", 4, "bad release → error spike → roll back", ("HighErrorRate",), 60, _deploy_v2,
             lambda s, i: _all_resolved(i), _check_release, _release_state),
    Scenario("overload", 5, "overload → latency → scale the pool", ("HighLatency",), 60, _overload,
             lambda s, i: _all_resolved(i), _check_scale, _scale_state),
    Scenario("unhealthy", 6, "unhealthy instance → drain, restart, return", ("InstanceErrorOutlier",), 60,
             _outlier, lambda s, i: _all_resolved(i), _check_outlier, _healthy_pool),
    Scenario("flapping", 7, "flapping alert → no remediation storm", ("InstanceDown",), 60, _flap,
             lambda s, i: len(i) >= 3 and _all_resolved(i), _check_flap, _healthy_pool),
    Scenario("unknown", 8, "unknown alert → no automation, enriched escalation", ("LowTraffic",), 60, _unknown,
             _unknown_done, _check_unknown, _unknown_state),
    Scenario("worse", 9, "remediation makes it worse → breaker opens, automation stops", ("HighErrorRate",), 60,
             _worse, _worse_done, _check_worse, _breaker_state,
             options=StackOptions(releases={"v1": 1.0, "v2": 0.0}, live_release="v2")),
)  # fmt: skip
BY_KEY = {s.key: s for s in SCENARIOS}


def run(
    sc: Scenario,
    *,
    mode: str = "paramedic",
    progress: Callable[[str], None] | None = None,
    poll: float = 0.5,
) -> Result:
    """Run one scenario on a fresh stack. ``mode``: paramedic, baseline or supervisord."""
    say = progress or (lambda _msg: None)
    automation = mode == "paramedic"
    options = _stack_options(sc, automation=automation, autorestart=mode == "supervisord")
    result = Result(scenario=sc.key, mode=mode, limit=sc.limit)
    say(f"{sc.key} [{mode}]: starting the stack")
    with LabStack(options) as stack:
        say(f"{sc.key} [{mode}]: injecting the fault")
        t0 = time.time()
        # The injection may take a while (the flapping host); it runs beside the watching.
        injector = _Background(lambda: sc.inject(stack))
        # supervisord's own restarts are watched for a while, not for the whole limit: a crash
        # loop it cannot fix stays open either way.
        deadline = time.monotonic() + (min(sc.limit, 20.0) if mode == "supervisord" else sc.limit)
        ours: Incidents = []
        restarts = _Restarts(stack, sc) if mode == "supervisord" else None
        while time.monotonic() < deadline:
            time.sleep(poll)
            if restarts is not None:
                restarts.sample()
            ours = _ours(sc, stack.incidents(), t0)
            if not injector.done():
                continue
            if automation and sc.done(stack, ours):
                break
            if not automation and ours and mode == "baseline":
                break  # detected; from here nobody acts, so it is open until the limit
        injector.join()
        ours = _ours(sc, stack.incidents(), t0)
        _measure(sc, result, ours, t0)
        if not automation:
            result.mitigate = result.recover = None
            if restarts is not None:
                result.notes = f"supervisord restarted the instance {restarts.count} times; still crash-looping"
        result.state = sc.state(stack)
        if automation:
            result.problems = sc.check(stack, result)
        say(f"{sc.key} [{mode}]: {'ok' if not result.problems else '; '.join(result.problems)}")
    return result


class _Background:
    def __init__(self, fn: Callable[[], None]) -> None:
        import threading

        self.error: BaseException | None = None

        def target() -> None:
            try:
                fn()
            except BaseException as exc:
                self.error = exc

        self._t = threading.Thread(target=target, name="lab-inject", daemon=True)
        self._t.start()

    def done(self) -> bool:
        return not self._t.is_alive()

    def join(self) -> None:
        self._t.join(120)
        if self.error is not None:
            raise self.error


class _Restarts:
    """Counts supervisord's own restarts of the crash-looping instance (pid changes)."""

    def __init__(self, stack: LabStack, sc: Scenario) -> None:
        self.stack = stack
        self.program = stack.instance(2).program
        self.pids: set[int] = set()

    @property
    def count(self) -> int:
        return max(0, len(self.pids) - 1)

    def sample(self) -> None:
        assert self.stack.harness is not None
        with self.stack.harness.rpc() as rpc:
            info: Any = rpc.supervisor.getProcessInfo(self.program)
        if info["pid"]:
            self.pids.add(int(info["pid"]))


def modes_for(sc: Scenario, *, baseline: bool) -> Sequence[str]:
    if not baseline:
        return ("paramedic",)
    return ("paramedic", "baseline", "supervisord") if sc.baseline_autorestart else ("paramedic", "baseline")
