"""From a runbook and an alert to a concrete plan: every template rendered, every label checked.

A plan is what a human approves and what a worker executes; its ``digest`` lets an approval be
refused if the plan changed after the human looked at it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import Any

from paramedic.core.alerts import Alert
from paramedic.core.runbooks import Mode, OnFailure, Runbook, Step
from paramedic.core.templating import Renderer, check_url


@dataclass(frozen=True, slots=True)
class PlannedStep:
    index: int
    action: str
    args: Mapping[str, Any]
    idempotent: bool | None = None
    timeout: float | None = None
    name: str = ""
    errors: str = "permanent"  # an ``ErrorsMode``
    undo: Mapping[str, Any] | bool | None = None  # {action, args}; False: nothing undoes it


@dataclass(frozen=True, slots=True)
class Plan:
    runbook: str
    mode: Mode
    target: str
    service: str
    scope: Mapping[str, str]
    steps: tuple[PlannedStep, ...]
    verify: Mapping[str, Any] | None
    on_failure: OnFailure
    enrich: tuple[Mapping[str, Any], ...] = field(default=())
    telemetry: tuple[str, ...] = ()  # rendered require.telemetry queries
    recovery: bool = False  # the runbook's ``recover`` steps, after its alert stayed resolved

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for step in data["steps"]:  # defaults left out: a plan stored before they existed keeps its digest
            if step["errors"] == "permanent":
                del step["errors"]
            if step["undo"] is None:
                del step["undo"]
        data["mode"] = str(self.mode)
        data["on_failure"] = str(self.on_failure)
        if not self.telemetry:  # plans without it keep the digest they always had
            del data["telemetry"]
        if not self.recovery:
            del data["recovery"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            runbook=data["runbook"],
            mode=Mode(data["mode"]),
            target=data["target"],
            service=data["service"],
            scope=dict(data["scope"]),
            steps=tuple(PlannedStep(**s) for s in data["steps"]),
            verify=data["verify"],
            on_failure=OnFailure(data["on_failure"]),
            enrich=tuple(data.get("enrich", ())),
            telemetry=tuple(data.get("telemetry", ())),
            recovery=bool(data.get("recovery", False)),
        )

    @property
    def digest(self) -> str:
        blob = json.dumps(self.to_json(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _seconds(value: Any) -> Any:
    """Durations as seconds, so a stored plan is plain JSON and validates again on load."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: _seconds(v) for k, v in value.items()}
    return value


def _check_urls(template: Any, rendered: Any, r: Renderer, *, what: str) -> None:
    """Every value under a ``url`` key is checked as a URL whose host the runbook fixes."""
    if isinstance(template, Mapping) and isinstance(rendered, Mapping):
        for key, value in template.items():
            if key == "url" and isinstance(value, str) and isinstance(rendered.get(key), str):
                check_url(value, rendered[key], render=r.render_str, what=f"{what} url")
            elif key in rendered:
                _check_urls(value, rendered[key], r, what=what)


def _undo(step: Step, r: Renderer) -> Mapping[str, Any] | bool | None:
    if step.undo is None:
        return None
    if step.undo is False:
        return False
    return {"action": step.undo.action, "args": r.render(dict(step.undo.with_))}


def build_plan(runbook: Runbook, alert: Alert, *, mode: Mode | None = None) -> Plan:
    """Render ``runbook`` for ``alert``. Raises ``TemplateError`` naming the offending label."""
    r = Renderer(alert, runbook.params)
    target = r.render_str(runbook.target)
    scope_keys = runbook.guardrails.blast_radius.scope if runbook.guardrails.blast_radius else []
    scope = {k: r.labels[k] for k in sorted(set(scope_keys) | ({"service"} & set(alert.labels)))}
    steps = tuple(
        PlannedStep(
            index=i,
            action=s.action,
            args=r.render(dict(s.with_)),
            idempotent=s.idempotent,
            timeout=s.timeout.total_seconds() if s.timeout else None,
            name=s.name or s.action,
            errors=str(s.errors),
            undo=_undo(s, r),
        )
        for i, s in enumerate(runbook.steps)
    )
    for spec, planned in zip(runbook.steps, steps, strict=True):
        _check_urls(spec.with_, planned.args, r, what=f"step {planned.index} ({planned.action})")
        if spec.undo and isinstance(planned.undo, Mapping):
            _check_urls(spec.undo.with_, planned.undo["args"], r, what=f"step {planned.index} undo")
    verify = None
    if runbook.verify is not None:
        raw = _seconds(runbook.verify.model_dump(exclude_none=True))
        verify = r.render(raw)
        _check_urls(raw, verify, r, what="verify")
    enrich = tuple(r.render(dict(e)) for e in runbook.enrich)
    telemetry = tuple(r.render_str(q) for q in runbook.require.telemetry)
    return Plan(
        runbook=runbook.name,
        mode=mode or runbook.mode,
        target=target,
        service=scope.get("service", ""),
        scope=scope,
        steps=steps,
        verify=verify,
        on_failure=runbook.on_failure,
        enrich=enrich,
        telemetry=telemetry,
    )


def build_recovery_plan(runbook: Runbook, alert: Alert) -> Plan | None:
    """The plan of ``runbook.recover`` for ``alert`` (its labels as when it fired), or None when
    the runbook declares no way back. Raises ``TemplateError`` like ``build_plan``."""
    if runbook.recover is None:
        return None
    back = runbook.model_copy(update={"steps": runbook.recover.steps, "verify": runbook.recover.verify, "enrich": []})
    return replace(build_plan(back, alert), recovery=True)
