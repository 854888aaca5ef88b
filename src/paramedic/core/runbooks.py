"""The runbook format of DESIGN §3, validated with pydantic.

A ``RunbookFile`` holds several ``Runbook`` entries. Validation here is structural and pure; the
loader in ``core.loader`` maps each pydantic error back to a file, line and column.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from paramedic.core.durations import parse_duration
from paramedic.core.matchers import LabelMatcher, MatcherSyntaxError, parse_matchers

COLLECTOR_KINDS = frozenset({"prometheus", "logs", "loki", "kubernetes", "changes", "target", "traces"})
"""The evidence collectors a runbook's ``enrich`` list may name (``paramedic.enrich``)."""


class Mode(StrEnum):
    OBSERVE = "observe"
    APPROVE = "approve"
    AUTO = "auto"

    def promoted(self) -> Mode:
        return {Mode.OBSERVE: Mode.APPROVE, Mode.APPROVE: Mode.AUTO, Mode.AUTO: Mode.AUTO}[self]

    def demoted(self) -> Mode:
        return {Mode.AUTO: Mode.APPROVE, Mode.APPROVE: Mode.OBSERVE, Mode.OBSERVE: Mode.OBSERVE}[self]


class OnFailure(StrEnum):
    ESCALATE = "escalate"
    NEXT = "next"
    ROLLBACK = "rollback"


class ErrorsMode(StrEnum):
    """What an error the executor did not classify (a bug, a reply it did not expect) means for a
    step, after kopf's ``ErrorsMode``. ``ActionError``s carry their own meaning in their type."""

    PERMANENT = "permanent"  # the step fails at once (the default)
    TEMPORARY = "temporary"  # retried with backoff like a RetryableError, if the step is idempotent
    IGNORED = "ignored"  # the step counts as done; the error is recorded on it


def _duration(value: Any) -> timedelta:
    return parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Strict):
    max: int = Field(ge=1)
    per: Duration
    scope: Literal["runbook", "target", "service", "global"] = "target"


class BlastRadius(_Strict):
    scope: list[str] = Field(default_factory=lambda: ["service"])
    max_concurrent: int = Field(default=1, ge=1)
    max_fraction: float = Field(default=1.0, gt=0, le=1)
    min_healthy: int = Field(default=0, ge=0)
    window: Duration = timedelta(hours=1)
    # More unhealthy targets than this at once and nothing is remediated: the failure looks
    # systemic. A count (2) or a share of the known targets ("40%", rounded down), like Cluster
    # API's MachineHealthCheck maxUnhealthy.
    max_unhealthy: int | str | None = None

    @field_validator("max_unhealthy", mode="before")
    @classmethod
    def _unhealthy(cls, value: object) -> int | str | None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit() and int(value[:-1]) <= 100:
            return value
        raise ValueError("max_unhealthy is a count (like 2) or a percentage of the known targets (like '40%')")

    def unhealthy_limit(self, known: int) -> int | None:
        """The most targets of ``known`` that may be unhealthy at once for paramedic to act."""
        if self.max_unhealthy is None:
            return None
        if isinstance(self.max_unhealthy, int):
            return self.max_unhealthy
        return int(self.max_unhealthy[:-1]) * known // 100


class CircuitBreaker(_Strict):
    failures: int = Field(ge=1)
    window: Duration
    cooldown: Duration
    scope: list[str] = Field(default_factory=list)


class Guardrails(_Strict):
    rate_limit: RateLimit | None = None
    blast_radius: BlastRadius | None = None
    circuit_breaker: CircuitBreaker | None = None


class Flap(_Strict):
    max: int = Field(default=4, ge=1)
    window: Duration = timedelta(minutes=30)


class Require(_Strict):
    firing_for: Duration = timedelta(0)
    max_age: Duration | None = None
    flap: Flap | None = None
    # PromQL queries (templated) that must return data before paramedic acts: the telemetry the
    # runbook's verification and judgement rely on. Missing data refuses with missing_telemetry.
    telemetry: list[str] = Field(default_factory=list)


class Promote(_Strict):
    after: int = Field(ge=1)
    min_success_rate: float = Field(default=0.95, ge=0, le=1)


class Param(_Strict):
    pattern: str
    max_length: int = Field(default=256, ge=1)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern does not compile: {exc}") from exc
        return value


class Undo(_Strict):
    """How a completed step is undone, when the executor's natural inverse is not the right one."""

    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Step(_Strict):
    action: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    idempotent: bool | None = None
    timeout: Duration | None = None
    name: str = ""
    errors: ErrorsMode = ErrorsMode.PERMANENT
    # an action that undoes this step; ``false``: nothing undoes it (not even the executor's inverse)
    undo: Undo | Literal[False] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HttpVerify(_Strict):
    url: str
    expect_status: int = 200
    within: Duration = timedelta(seconds=60)
    every: Duration = timedelta(seconds=1)
    stable_for: Duration = timedelta(0)  # healthy for this long without a miss (not a blip)
    method: Literal["GET", "HEAD", "POST"] = "GET"


class CommandVerify(_Strict):
    argv: list[str]
    within: Duration = timedelta(seconds=60)
    every: Duration = timedelta(seconds=1)
    expect_exit: int = 0


class AlertResolvedVerify(_Strict):
    within: Duration = timedelta(minutes=5)


class PrometheusVerify(_Strict):
    query: str
    within: Duration = timedelta(minutes=2)
    every: Duration = timedelta(seconds=5)
    url: str = ""
    compare: Literal["none", "not_worse"] = "none"
    worse_factor: float = Field(default=1.5, gt=0)
    # Values at or under this are never "worse", whatever the baseline: a baseline of 0 would
    # otherwise make any value worse.
    worse_floor: float | None = Field(default=None, ge=0)


class Verify(_Strict):
    http: HttpVerify | None = None
    command: CommandVerify | None = None
    alert_resolved: AlertResolvedVerify | None = None
    prometheus: PrometheusVerify | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Verify:
        kinds = [k for k in ("http", "command", "alert_resolved", "prometheus") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("verify takes exactly one of: http, command, alert_resolved, prometheus")
        return self

    @property
    def kind(self) -> str:
        for k in ("http", "command", "alert_resolved", "prometheus"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("unreachable")  # pragma: no cover


MatchValue = str | list[str]


def _matcher_group(value: Any) -> tuple[LabelMatcher, ...]:
    if isinstance(value, tuple) and all(isinstance(m, LabelMatcher) for m in value):
        return value
    if not isinstance(value, str):
        raise ValueError("a matcher is a string such as 'severity=~\"critical|page\"'")
    try:
        group = tuple(parse_matchers(value))
    except MatcherSyntaxError as exc:
        raise ValueError(str(exc)) from exc
    if not group:
        raise ValueError("an empty matcher string")
    return group


def _group_text(group: tuple[LabelMatcher, ...]) -> str:
    return ", ".join(str(m) for m in group)


MatcherGroup = Annotated[
    tuple[LabelMatcher, ...],
    PlainValidator(_matcher_group),
    PlainSerializer(_group_text),
    WithJsonSchema({"type": "string"}),
]


class Match(_Strict):
    """What a runbook answers to. ``alertname``, ``labels`` and ``source`` take paramedic's own
    values (plain = equal, list = any of, ``~regex``, ``!value``); ``matchers`` takes Alertmanager's
    (``severity=~"critical|page"``, see ``core.matchers``). All conditions must hold.

    A whole ``match:`` given as a string or a list of strings is read as ``matchers``.
    """

    alertname: MatchValue | None = None
    labels: dict[str, MatchValue] = Field(default_factory=dict)
    source: MatchValue | None = None
    matchers: list[MatcherGroup] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _matcher_strings(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"matchers": [data]}
        if isinstance(data, list) and all(isinstance(v, str) for v in data):
            return {"matchers": data}
        return data

    @property
    def label_matchers(self) -> tuple[LabelMatcher, ...]:
        return tuple(m for group in self.matchers for m in group)


class Recover(_Strict):
    """The way back (``engine.service``): once the alert resolved and stayed resolved for ``after``,
    these steps run as a run of their own, through the same guardrails and audit — a drained
    server is readied, a scale-up is scaled back. An alert that fires again first cancels it."""

    after: Duration = timedelta(minutes=10)
    steps: list[Step] = Field(min_length=1)
    verify: Verify | None = None


class Runbook(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")
    owner: str = Field(min_length=1)
    description: str = ""
    match: Match
    target: str = "{{ labels.instance }}"
    mode: Mode = Mode.OBSERVE
    require: Require = Require()
    guardrails: Guardrails = Guardrails()
    enrich: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    verify: Verify | None = None
    on_failure: OnFailure = OnFailure.ESCALATE
    recover: Recover | None = None
    params: dict[str, Param] = Field(default_factory=dict)
    promote: Promote | None = None
    approval_timeout: Duration = timedelta(minutes=15)
    approvers: int = Field(default=1, ge=1, le=2)
    priority: int = 0


class RunbookFile(_Strict):
    api_version: Literal["paramedic/v1"] = Field(alias="apiVersion")
    runbooks: list[Runbook]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
