"""The ``Context`` a Python runbook receives (DESIGN §3.2), as a recorder.

Every call on it records into a tape and touches no system: ``ctx.act`` checks the action and its
arguments against the executor registry and records a step, ``ctx.verify.*`` records the plan's
verification, ``ctx.evidence.add`` asks for evidence. Labels are validated when read, exactly as a
template reads them; a value that fails its pattern refuses the plan even if the code catches the
error. ``ctx.changes`` reads the change feed passed in, ``ctx.now`` is the planning time passed in.

    PlanningError     the runbook could not be planned: its code raised or ran out of budget
     └── Escalation   the runbook declined on purpose: ``ctx.escalate(reason)``
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn, TypeVar, overload

from pydantic import ValidationError

from paramedic.actions.registry import ExecutorRegistry, check_args
from paramedic.core.alerts import Alert
from paramedic.core.durations import parse_duration
from paramedic.core.errors import ActionError, ParamedicError, TemplateError
from paramedic.core.plan import PlannedStep
from paramedic.core.runbooks import Param, Runbook, Verify
from paramedic.core.templating import _CONTROL, DEFAULT_PARAM, MAX_RENDERED, LabelView, check_value

log = logging.getLogger("paramedic.runbook")

T = TypeVar("T")
DurationLike = str | float | timedelta


class PlanningError(ParamedicError):
    """A Python runbook could not be planned; the run is refused with this reason."""


class Escalation(PlanningError):
    """The runbook declined to act (``ctx.escalate``): a human takes over, with the reason."""


# ---- recent changes ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Change:
    """One deploy, rollback or configuration change of a service, from the change feed."""

    at: datetime
    service: str
    kind: str = "deploy"
    version: str = ""
    description: str = ""
    actor: str = ""


# (service or "" for every service, since, until) → changes in that window
ChangeSource = Callable[[str, datetime, datetime], Awaitable[Sequence[Change]]]


async def no_changes(service: str, since: datetime, until: datetime) -> Sequence[Change]:
    """The change feed of a dry run without recorded changes: empty."""
    return ()


def changes_from(changes: Sequence[Change]) -> ChangeSource:
    """A change feed over a fixed list (test cases)."""

    async def source(service: str, since: datetime, until: datetime) -> Sequence[Change]:
        return [c for c in changes if since <= c.at <= until and (not service or c.service == service)]

    return source


class Changes:
    """``ctx.changes``: recent changes of a service (the alert's ``service`` label by default)."""

    def __init__(self, source: ChangeSource, *, now: datetime, labels: Labels) -> None:
        self._source = source
        self._now = now
        self._labels = labels

    async def recent(
        self,
        *,
        service: str | None = None,
        kind: str | None = None,
        within: DurationLike = "24h",
        before: datetime | None = None,
    ) -> list[Change]:
        """Changes in the ``within`` before ``before`` (default: now), newest first."""
        until = min(before or self._now, self._now)
        svc = service if service is not None else (self._labels.get("service") or "")
        found = await self._source(svc, until - parse_duration(within), until)
        return sorted((c for c in found if kind is None or c.kind == kind), key=lambda c: c.at, reverse=True)

    async def latest(
        self,
        *,
        service: str | None = None,
        kind: str | None = None,
        within: DurationLike = "24h",
        before: datetime | None = None,
    ) -> Change | None:
        """The newest change in the ``within`` before ``before`` (default: now), or ``None``."""
        found = await self.recent(service=service, kind=kind, within=within, before=before)
        return found[0] if found else None


# ---- what the function sees ----------------------------------------------------------------------
class Labels(LabelView):
    """Labels validated on access like a template reads them. A value that fails its pattern
    refuses the whole plan, even if the runbook's code catches the error."""

    def __init__(
        self, prefix: str, values: Mapping[str, str], params: Mapping[str, Param], failures: list[TemplateError]
    ) -> None:
        super().__init__(prefix, values, params)
        self._failures = failures

    def __getitem__(self, key: str) -> str:
        try:
            return super().__getitem__(key)
        except TemplateError as exc:
            if key in self._values:
                self._failures.append(exc)
            raise

    def __contains__(self, key: object) -> bool:
        return key in self._values

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | T) -> str | T: ...
    def get(self, key: str, /, default: object = None) -> object:
        return self[key] if key in self._values else default


class AlertInfo:
    """``ctx.alert``: the alert's facts. ``name`` and ``fingerprint`` come from the sender, so
    they are checked like a label (``params.alertname`` or the strict default)."""

    def __init__(self, alert: Alert, params: Mapping[str, Param], failures: list[TemplateError]) -> None:
        self._alert = alert
        self._params = params
        self._failures = failures
        self.source: str = alert.source
        self.status: str = str(alert.status)
        self.firing: bool = alert.firing
        self.starts_at: datetime = alert.starts_at
        self.ends_at: datetime | None = alert.ends_at

    def _checked(self, name: str, value: str) -> str:
        try:
            return check_value(name, value, self._params.get(name, DEFAULT_PARAM))
        except TemplateError as exc:
            self._failures.append(exc)
            raise

    @property
    def name(self) -> str:
        return self._checked("alertname", self._alert.name)

    @property
    def fingerprint(self) -> str:
        return self._checked("fingerprint", self._alert.fingerprint)


class _Done:
    """Returned by recording calls: the call has already recorded, so a forgotten ``await``
    cannot silently drop a step. Awaiting it is still the documented form."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_DONE = _Done()


def _plain(value: Any, where: str) -> Any:
    """A JSON-like copy of an argument, checked like a rendered template value."""
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise PlanningError(f"{where}: the value contains a control character")
        if len(value) > MAX_RENDERED:
            raise PlanningError(f"{where}: the value is {len(value)} characters long, over {MAX_RENDERED}")
        return value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PlanningError(f"{where}: {value} is not a finite number")
        return value
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise PlanningError(f"{where}: keys must be strings, not {type(k).__name__}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    raise PlanningError(
        f"{where}: a {type(value).__name__} cannot go into a plan; pass str, int, float, bool, list or dict"
    )


@dataclass
class Tape:
    """Everything one planning call recorded."""

    steps: list[PlannedStep] = field(default_factory=list)
    verify: dict[str, Any] | None = None
    enrich: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    failures: list[TemplateError] = field(default_factory=list)


class VerifyRecorder:
    """``ctx.verify``: how paramedic checks that the remediation worked (one per plan)."""

    def __init__(self, tape: Tape) -> None:
        self._tape = tape

    def _set(self, kind: str, options: Mapping[str, Any]) -> Awaitable[None]:
        if self._tape.verify is not None:
            raise PlanningError(f"ctx.verify.{kind}: a plan has one verification and one was already recorded")
        given = {k: v for k, v in options.items() if v is not None}
        try:
            model = Verify.model_validate({kind: given})
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or kind}: {e['msg']}" for e in exc.errors())
            raise PlanningError(f"ctx.verify.{kind}: {detail}") from None
        self._tape.verify = _plain(seconds(model.model_dump(exclude_none=True)), f"ctx.verify.{kind}")
        return _DONE

    def http(
        self,
        url: str,
        *,
        expect_status: int | None = None,
        within: DurationLike | None = None,
        every: DurationLike | None = None,
        stable_for: DurationLike | None = None,
        method: Literal["GET", "HEAD", "POST"] | None = None,
    ) -> Awaitable[None]:
        """Healthy when ``url`` answers ``expect_status`` (200) within ``within`` (60s)."""
        return self._set(
            "http",
            {
                "url": url,
                "expect_status": expect_status,
                "within": within,
                "every": every,
                "stable_for": stable_for,
                "method": method,
            },
        )

    def command(
        self,
        argv: Sequence[str],
        *,
        within: DurationLike | None = None,
        every: DurationLike | None = None,
        expect_exit: int | None = None,
    ) -> Awaitable[None]:
        """Healthy when ``argv`` exits ``expect_exit`` (0) within ``within`` (60s); no shell."""
        return self._set("command", {"argv": list(argv), "within": within, "every": every, "expect_exit": expect_exit})

    def prometheus(
        self,
        query: str,
        *,
        within: DurationLike | None = None,
        every: DurationLike | None = None,
        url: str | None = None,
        compare: Literal["none", "not_worse"] | None = None,
        worse_factor: float | None = None,
    ) -> Awaitable[None]:
        """Healthy when the PromQL ``query`` returns a result (or is not worse than before)."""
        return self._set(
            "prometheus",
            {
                "query": query,
                "within": within,
                "every": every,
                "url": url,
                "compare": compare,
                "worse_factor": worse_factor,
            },
        )

    def alert_resolved(self, *, within: DurationLike | None = None) -> Awaitable[None]:
        """Healthy when the alert itself resolves within ``within`` (5m)."""
        return self._set("alert_resolved", {"within": within})


class EvidenceRecorder:
    """``ctx.evidence``: evidence to gather for the on-call engineer (the ``enrich:`` list)."""

    def __init__(self, tape: Tape) -> None:
        self._tape = tape

    def add(self, kind: str, /, **options: Any) -> Awaitable[None]:
        """``ctx.evidence.add("prometheus", query=..., range="30m")``, like ``- prometheus: {...}``."""
        if not kind.isidentifier():
            raise PlanningError(f"ctx.evidence.add: {kind!r} is not an evidence kind (prometheus, logs, changes…)")
        self._tape.enrich.append({kind: _plain(options, f"ctx.evidence.add({kind!r})")})
        return _DONE


class RunbookLog:
    """``ctx.log``: notes shown by ``paramedic test`` and written to paramedic's log."""

    def __init__(self, tape: Tape, runbook: str) -> None:
        self._tape = tape
        self._runbook = runbook

    def _note(self, level: int, message: str) -> None:
        self._tape.log.append(f"{logging.getLevelName(level).lower()}: {message}")
        log.log(level, "runbook %s: %s", self._runbook, message)

    def info(self, message: str) -> None:
        self._note(logging.INFO, message)

    def warning(self, message: str) -> None:
        self._note(logging.WARNING, message)


class Context:
    """What a Python runbook receives. Every call records; nothing here touches a system."""

    def __init__(
        self,
        *,
        runbook: Runbook,
        alert: Alert,
        now: datetime,
        registry: ExecutorRegistry,
        changes: ChangeSource = no_changes,
    ) -> None:
        self._tape = Tape()
        self._registry = registry
        self.runbook: str = runbook.name
        self.now: datetime = now
        self.labels = Labels("label", alert.labels, runbook.params, self._tape.failures)
        self.annotations = Labels("annotations", alert.annotations, runbook.params, self._tape.failures)
        self.alert = AlertInfo(alert, runbook.params, self._tape.failures)
        self.changes = Changes(changes, now=now, labels=self.labels)
        self.verify = VerifyRecorder(self._tape)
        self.evidence = EvidenceRecorder(self._tape)
        self.log = RunbookLog(self._tape, runbook.name)

    def act(self, action: str, /, **args: Any) -> Awaitable[None]:
        """Record one action with its arguments, e.g. ``await ctx.act("supervisor.restart",
        program=ctx.labels["program"])``. It runs later, after the guardrails allow it."""
        return self.step(action, args)

    def step(
        self,
        action: str,
        args: Mapping[str, Any] | None = None,
        *,
        name: str = "",
        idempotent: bool | None = None,
        timeout: DurationLike | None = None,
    ) -> Awaitable[None]:
        """``act`` with the step options of YAML (``name``, ``idempotent``, ``timeout``)."""
        index = len(self._tape.steps)
        where = f"ctx.act({action!r}) (step {index})"
        try:
            spec = self._registry.spec(action)
        except ActionError as exc:
            raise PlanningError(f"{where}: {exc}") from None
        clean = _plain(dict(args or {}), where)
        try:
            check_args(spec, clean)
        except ActionError as exc:
            raise PlanningError(f"{where}: {exc}") from None
        try:
            seconds = parse_duration(timeout).total_seconds() if timeout is not None else None
        except ValueError as exc:
            raise PlanningError(f"{where}: timeout: {exc}") from None
        self._tape.steps.append(
            PlannedStep(
                index=index, action=action, args=clean, idempotent=idempotent, timeout=seconds, name=name or action
            )
        )
        return _DONE

    def escalate(self, reason: str) -> NoReturn:
        """Decline to act: nothing runs, and a human gets the incident with ``reason``."""
        raise Escalation(reason)


def seconds(value: Any) -> Any:
    """Durations inside a dumped model as seconds, as ``core.plan`` stores them."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: seconds(v) for k, v in value.items()}
    return value


def recorded(ctx: Context) -> Tape:
    """What a planning call recorded (for ``runbooks.dsl.record``)."""
    return ctx._tape
