"""Runbook test cases (format: docs/runbook-tests.md).

A case is a YAML file (``*.case.yaml``) holding a recorded payload (a file next to it, or inline),
the facts the guardrails should see (a pause, earlier actions, known targets, breakers, earlier
firing episodes, recent changes) and the expected outcome: which runbooks match, the rendered plan,
each guardrail verdict, the mode and whether the plan would run. ``paramedic test`` evaluates every
case through ``testing.dryrun`` (nothing executes) and lists each difference; one difference, or a
case that cannot be read, makes the command exit 1. Time is fixed by the case, never the clock.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rich.console import Console
from rich.markup import escape as _markup_escape

from paramedic.core import guardrails as g
from paramedic.core.breaker import BreakerState, BreakerStatus
from paramedic.core.durations import parse_duration
from paramedic.core.errors import ConfigError, ParamedicError
from paramedic.core.freeze import parse_freeze_windows
from paramedic.core.runbooks import Duration, Mode
from paramedic.core.text import printable
from paramedic.ingest import payloads
from paramedic.runbooks.dsl import Change
from paramedic.testing.dryrun import (
    AlertReport,
    BreakerFact,
    DryRun,
    Facts,
    KnownTargets,
    MatchReport,
    PriorAction,
    Report,
    read_payload,
)


def escape(value: object) -> str:
    """Untrusted text (alert labels, runbook reasons) for a rich line: markup and control escaped."""
    return _markup_escape(printable(value))


CASE_SUFFIXES = (".case.yaml", ".case.yml")
REFERENCE = datetime(2024, 1, 1, tzinfo=UTC)  # the start of an alert that states none (no `now:`)
VERDICT_VALUES = {"allowed", "refused", *(r.value for r in g.Refusal)}
Outcome = Literal["run", "approval", "observe", "refused", "plan_refused"]


class CaseError(ConfigError):
    """A case file that cannot be read or does not follow the format."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionSpec(_Model):
    runbook: str
    target: str
    ago: Duration
    took: Duration = timedelta(seconds=30)
    outcome: Literal["succeeded", "failed", "in_flight"] = "succeeded"
    labels: dict[str, str] = Field(default_factory=dict)


class TargetsSpec(_Model):
    scope: dict[str, str]
    healthy: list[str] = Field(default_factory=list)
    unhealthy: list[str] = Field(default_factory=list)


class BreakerSpec(_Model):
    runbook: str
    scope: dict[str, str] = Field(default_factory=dict)
    status: Literal["open", "half_open", "closed"] = "open"
    opened: Duration = timedelta(minutes=1)
    failures: list[Duration] = Field(default_factory=list)


class StateSpec(_Model):
    paused: bool = False
    freeze: list[dict[str, Any]] = Field(default_factory=list)
    actions: list[ActionSpec] = Field(default_factory=list)
    targets: list[TargetsSpec] = Field(default_factory=list)
    breakers: list[BreakerSpec] = Field(default_factory=list)
    episodes: list[Duration] = Field(default_factory=list)


class ChangeSpec(_Model):
    service: str
    kind: str = "deploy"
    version: str = ""
    description: str = ""
    actor: str = ""
    ago: Duration | None = None
    at: datetime | None = None


class StepSpec(_Model):
    action: str
    args: dict[str, Any] = Field(default_factory=dict)


class RunbookExpect(_Model):
    mode: Mode | None = None
    target: str | None = None
    plan: list[StepSpec] | None = None
    verify: dict[str, Any] | None = None
    verdicts: dict[g.Check, str] | None = None
    outcome: Outcome | None = None
    would_run: bool | None = None
    refused: str | None = None

    @field_validator("verdicts")
    @classmethod
    def _known(cls, value: dict[g.Check, str] | None) -> dict[g.Check, str] | None:
        for check, want in (value or {}).items():
            if want not in VERDICT_VALUES:
                raise ValueError(f"{check.value}: {want!r} is not one of {', '.join(sorted(VERDICT_VALUES))}")
        return value


class Expect(RunbookExpect):
    matches: list[str] | None = None
    runbooks: dict[str, RunbookExpect] = Field(default_factory=dict)

    def flat(self) -> RunbookExpect | None:
        keys = self.model_fields_set & set(RunbookExpect.model_fields)
        return RunbookExpect(**{k: getattr(self, k) for k in keys}) if keys else None


class CaseSpec(_Model):
    description: str = ""
    alert: str | dict[str, Any] | list[Any]
    source: str | None = None
    now: datetime | None = None
    firing_for: Duration = timedelta(minutes=5)
    changes: list[ChangeSpec] = Field(default_factory=list)
    state: StateSpec = StateSpec()
    expect: Expect | list[Expect]


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    description: str
    mismatches: list[str] = field(default_factory=list)
    report: Report | None = None

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_json(self) -> dict[str, Any]:
        return {"case": self.name, "passed": self.passed, "mismatches": self.mismatches, "report": self.report}


# ---- reading -------------------------------------------------------------------------------------
def _utc(at: datetime) -> datetime:
    """A time written without a zone is UTC (never the machine's zone: cases must replay anywhere)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def find_cases(paths: Sequence[Path]) -> list[Path]:
    """Case files under ``paths`` (a file is taken as given)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(CASE_SUFFIXES)))
        elif p.is_file():
            out.append(p)
    return out


def load_case(path: Path) -> CaseSpec:
    """Parse one case file; raises ``CaseError`` naming the file and the key."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise CaseError(f"{path}: not valid YAML: {exc}") from None
    try:
        return CaseSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # drop the names pydantic gives union members (``Expect``, ``list[Expect]``, ``str``)
        parts = [
            str(p) for p in first["loc"] if not (isinstance(p, str) and (p[:1].isupper() or "[" in p or p == "str"))
        ]
        where = ".".join(parts) or "case"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise CaseError(f"{path}: {where}: {first['msg']}{more}; see docs/runbook-tests.md") from None


def _facts(spec: CaseSpec, now: datetime) -> Facts:
    st = spec.state
    try:
        freeze = parse_freeze_windows(st.freeze)
    except ValidationError as exc:
        raise CaseError(f"state.freeze: {exc.errors()[0]['msg']}") from None
    actions = tuple(
        PriorAction(
            runbook=a.runbook,
            target=a.target,
            started_at=now - a.ago,
            finished_at=None if a.outcome == "in_flight" else min(now, now - a.ago + a.took),
            outcome=a.outcome,
            labels=a.labels,
        )
        for a in st.actions
    )
    breakers = []
    for b in st.breakers:
        status = BreakerStatus(b.status)
        bs = BreakerState(
            status=status,
            failures=tuple(sorted(now - f for f in b.failures)),
            opened_at=None if status is BreakerStatus.CLOSED else now - b.opened,
        )
        breakers.append(BreakerFact(runbook=b.runbook, scope=b.scope, state=bs))
    changes = []
    for c in spec.changes:
        if (c.at is None) == (c.ago is None):
            raise CaseError(f"changes: give either at or ago for the {c.kind} of {c.service}")
        at = _utc(c.at) if c.at is not None else now - (c.ago or timedelta(0))
        changes.append(Change(at, c.service, c.kind, c.version, c.description, c.actor))
    return Facts(
        paused=st.paused,
        freeze=freeze,
        actions=actions,
        targets=tuple(
            KnownTargets(scope=t.scope, healthy=tuple(t.healthy), unhealthy=tuple(t.unhealthy)) for t in st.targets
        ),
        breakers=tuple(breakers),
        episodes=tuple(now - e for e in st.episodes),
        changes=tuple(changes),
    )


# ---- comparing -----------------------------------------------------------------------------------
def _verdict(v: dict[str, Any]) -> str:
    return "allowed" if v["allowed"] else str(v["code"] or "refused")


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, str) and isinstance(got, int | float) and not isinstance(got, bool):
        try:
            return parse_duration(want).total_seconds() == got  # within: 60s against 60.0
        except ValueError:
            return False
    return bool(want == got)


def _subset(want: Any, got: Any, path: str) -> list[str]:
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected {want!r}, got {got!r}"]
        out = []
        for k, v in want.items():
            out.extend(_subset(v, got[k], f"{path}.{k}") if k in got else [f"{path}.{k}: expected {v!r}, missing"])
        return out
    if _same(want, got):
        return []
    if isinstance(want, str) and isinstance(got, int | float) and not isinstance(got, bool):
        return [f"{path}: expected {want}, got {got:g}s"]  # a duration, stored in seconds
    return [f"{path}: expected {want!r}, got {got!r}"]


def _dump(value: Any) -> list[str]:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True).splitlines()


def _compare_runbook(want: RunbookExpect, got: MatchReport, who: str) -> list[str]:
    out: list[str] = []
    refusal = got.get("refused")
    if want.refused is not None:
        if refusal is None:
            out.append(f"{who}: expected the plan to be refused ({want.refused!r}), but it was planned")
        elif want.refused.lower() not in refusal.lower():
            out.append(f"{who}: refusal: expected it to mention {want.refused!r}, got {refusal!r}")
    elif refusal is not None and (want.plan is not None or want.verdicts or want.target or want.verify):
        out.append(f"{who}: the plan was refused: {refusal}")
        return out
    for key in ("mode", "target", "outcome", "would_run"):
        expected = getattr(want, key)
        actual = got.get(key)
        if expected is not None and str(expected) != str(actual):
            out.append(f"{who}: {key}: expected {expected}, got {actual}")
    if want.plan is not None and refusal is None:
        expected_plan = [s.model_dump() for s in want.plan]
        actual_plan = [{"action": s["action"], "args": s["args"]} for s in got.get("steps", [])]
        if expected_plan != actual_plan:
            out.append(f"{who}: plan differs (- expected, + got):")
            diff = difflib.unified_diff(_dump(expected_plan), _dump(actual_plan), lineterm="", n=2)
            out.extend(f"    {line}" for line in list(diff)[2:] if not line.startswith("@@"))
    if "verify" in want.model_fields_set and refusal is None:
        if want.verify is None and got.get("verify") is not None:
            out.append(f"{who}: verify: expected none, got {got.get('verify')!r}")
        elif want.verify is not None:
            out.extend(f"{who}: {line}" for line in _subset(want.verify, got.get("verify"), "verify"))
    for check, expected in (want.verdicts or {}).items():
        v = next((x for x in got.get("verdicts", []) if x["check"] == check.value), None)
        if v is None:
            out.append(f"{who}: verdict {check.value}: expected {expected}, got no verdict")
            continue
        actual = _verdict(v)
        if not (expected == actual or (expected == "refused" and actual != "allowed")):
            out.append(f"{who}: verdict {check.value}: expected {expected}, got {actual} ({v['reason']})")
    return out


def compare(want: Expect, got: AlertReport, where: str = "") -> list[str]:
    """Every difference between an expectation and what the dry run found for one alert."""
    out: list[str] = []
    names = [m["runbook"] for m in got["matches"]]
    by_name = {m["runbook"]: m for m in got["matches"]}
    if want.matches is not None and sorted(want.matches) != sorted(names):
        out.append(f"{where}matches: expected {sorted(want.matches)}, got {sorted(names)}")
    expected = dict(want.runbooks)
    flat = want.flat()
    if flat is not None:
        sole = want.matches if want.matches is not None else names
        if len(sole) != 1:
            out.append(
                f"{where}mode, plan, verdicts… at the top of expect need exactly one matching runbook "
                f"(got {len(sole)}); use runbooks: {{name: {{...}}}}"
            )
        else:
            expected[sole[0]] = flat
    for name, exp in expected.items():
        m = by_name.get(name)
        if m is None:
            if want.matches is None or name in want.matches:
                out.append(f"{where}{name}: expected to match, but it did not")
            continue
        out.extend(_compare_runbook(exp, m, f"{where}{name}"))
    return out


# ---- running -------------------------------------------------------------------------------------
def _alerts_and_now(spec: CaseSpec, file: Path) -> tuple[Any, str | None, datetime, list[Any]]:
    if isinstance(spec.alert, str):
        payload_file = (file.parent / spec.alert).resolve()
        data = read_payload(payload_file)
        source = spec.source or payloads.source_from_name(payload_file)
    else:
        data, source = spec.alert, spec.source
    if spec.now is not None:
        now = _utc(spec.now)
        alerts = payloads.parse(data, now=now - spec.firing_for, source=source)
    else:
        alerts = payloads.parse(data, now=REFERENCE, source=source)
        now = max(a.starts_at for a in alerts) + spec.firing_for
    return data, source, now, alerts


async def run_case(dry: DryRun, file: Path, *, name: str | None = None) -> CaseResult:
    """Evaluate one case file; a case that cannot be read is a failed result, not an exception."""
    label = name or str(file)
    try:
        spec = load_case(file)
        _, _, now, alerts = _alerts_and_now(spec, file)
        report = await dry.evaluate(alerts, now=now, facts=_facts(spec, now))
    except ParamedicError as exc:
        return CaseResult(label, "", [f"cannot run this case: {exc}"])
    wants = spec.expect if isinstance(spec.expect, list) else [spec.expect] * len(report["alerts"])
    if len(wants) != len(report["alerts"]):
        return CaseResult(
            label,
            spec.description,
            [f"expect lists {len(wants)} alert(s), the payload holds {len(report['alerts'])}"],
            report,
        )
    many = len(wants) > 1
    mismatches = []
    for i, (want, got) in enumerate(zip(wants, report["alerts"], strict=True)):
        mismatches.extend(compare(want, got, f"alert {i} ({got['alertname']}): " if many else ""))
    return CaseResult(label, spec.description, mismatches, report)


async def run_cases(dry: DryRun, files: Sequence[Path], *, root: Path | None = None) -> list[CaseResult]:
    results = []
    for f in files:
        try:
            name = str(f.relative_to(root)) if root is not None else str(f)
        except ValueError:
            name = str(f)
        results.append(await run_case(dry, f, name=name))
    return results


def render_results(results: Sequence[CaseResult], console: Console) -> None:
    for r in results:
        about = f" — {escape(r.description)}" if r.description else ""
        if r.passed:
            console.print(f"[green]PASS[/] {escape(r.name)}{about}", highlight=False)
            continue
        console.print(f"[red]FAIL[/] {escape(r.name)}{about}", highlight=False)
        for line in r.mismatches:
            console.print(f"     {escape(line)}", highlight=False)
    failed = sum(not r.passed for r in results)
    style = "red" if failed else "green"
    console.print(f"[{style}]{len(results)} case(s): {len(results) - failed} passed, {failed} failed[/]")


# ---- skeletons -----------------------------------------------------------------------------------
def _snapshot(m: MatchReport) -> dict[str, Any]:
    if "refused" in m:
        return {"mode": m["mode"], "refused": m["refused"], "outcome": m["outcome"]}
    return {
        "mode": m["mode"],
        "target": m.get("target", ""),
        "plan": [{"action": s["action"], "args": s["args"]} for s in m.get("steps", [])],
        "verdicts": {v["check"]: _verdict(v) for v in m.get("verdicts", [])},
        "outcome": m["outcome"],
        "would_run": m["would_run"],
    }


def _expectation(entry: AlertReport) -> dict[str, Any]:
    names = [m["runbook"] for m in entry["matches"]]
    if len(names) == 1:
        return {"matches": names, **_snapshot(entry["matches"][0])}
    return {"matches": names, "runbooks": {m["runbook"]: _snapshot(m) for m in entry["matches"]}}


def skeleton(payload: Path, *, report: Report | None, source: str | None, firing_for: str = "5m") -> str:
    """A case for a recorded payload, to save as ``<payload>.case.yaml`` next to it. With a dry
    run ``report`` the expectations are what the runbooks do today: review them before committing."""
    case: dict[str, Any] = {
        "description": f"recorded {source or 'alert'} payload {payload.name}",
        "alert": payload.name,
    }
    if source:
        case["source"] = source
    case["firing_for"] = firing_for
    if report is None:
        case["expect"] = {"matches": []}
        head = "# expectations left empty: fill in matches, plan, verdicts (docs/runbook-tests.md)\n"
    else:
        wants = [_expectation(a) for a in report["alerts"]]
        case["expect"] = wants[0] if len(wants) == 1 else wants
        head = "# expectations are what the runbooks do today: review them before you commit this case\n"
    return head + yaml.safe_dump(case, sort_keys=False, allow_unicode=True, width=100)


async def skeleton_for(payload: Path, runbooks: Sequence[str | Path] | None, *, firing_for: str = "5m") -> str:
    """``skeleton`` with expectations from a dry run against ``runbooks`` (when given)."""
    source = payloads.source_from_name(payload)
    report = None
    if runbooks:
        dry = DryRun.load(runbooks)
        spec = CaseSpec.model_validate(
            {"alert": payload.name, "source": source, "firing_for": firing_for, "expect": {}}
        )
        _, _, now, alerts = _alerts_and_now(spec, payload)
        report = await dry.evaluate(alerts, now=now)
    return skeleton(payload, report=report, source=source, firing_for=firing_for)
