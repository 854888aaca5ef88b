"""The one protocol every executor implements, and the value types that cross it.

An executor serves a family of actions (``supervisor.restart``, ``haproxy.drain`` …). The engine
only ever calls the five methods of ``Executor`` (and ``Reversible.inverse`` where an executor
knows how to undo an action); the dry run is one more implementation
(``actions.dryrun.DryRunExecutor``), not a flag passed around. Errors leave an executor as
``RetryableError`` or ``PermanentError`` (``core.errors``), never as a foreign exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

ParamType = Literal["str", "int", "float", "bool", "list[str]", "dict"]

MAX_OUTPUT = 8192


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One argument of an action, as shown by ``paramedic actions`` and checked before a run."""

    name: str
    type: ParamType = "str"
    required: bool = True
    default: Any = None
    help: str = ""


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """What an action is called, what it takes, and whether repeating it is harmless."""

    name: str
    summary: str
    params: tuple[ParamSpec, ...] = ()
    idempotent: bool = False
    default_timeout: float = 30.0

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One action to carry out. ``args`` have been rendered, validated and type-checked."""

    action: str
    args: Mapping[str, Any]
    timeout: float = 30.0
    run_id: str = ""
    step: int = 0


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of an action that completed. Failures are raised, not returned."""

    summary: str
    changed: bool = True
    output: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TargetState:
    """A read-back of a target, for verification, evidence and the blast-radius guardrail."""

    target: str
    healthy: bool | None
    detail: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Executor(Protocol):
    """An adapter to one target system."""

    def actions(self) -> Sequence[ActionSpec]:
        """The actions this executor serves."""
        ...

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Carry the action out; raise ``RetryableError`` or ``PermanentError`` on failure."""
        ...

    async def describe(self, request: ActionRequest) -> str:
        """Say exactly what ``execute`` would change, without changing anything (the dry run)."""
        ...

    async def read_state(self, request: ActionRequest) -> TargetState:
        """Read back the state of the target the request names."""
        ...

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        """Targets of a scope this executor can list (group members, backend servers), or None."""
        ...


@dataclass(frozen=True, slots=True)
class Inverse:
    """The action that puts back what a completed action changed (drain → ready)."""

    action: str
    args: Mapping[str, Any]


@runtime_checkable
class Reversible(Protocol):
    """An executor that knows the natural inverse of some of its actions."""

    def inverse(self, request: ActionRequest, result: ActionResult) -> Inverse | None:
        """The inverse of ``request`` given what it did (``result.details``), or None if none is known.
        Only called when ``result.changed``."""
        ...


def truncate(text: str, limit: int = MAX_OUTPUT) -> str:
    """Keep the head and the tail of long output, which is where errors usually are."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut] …\n{text[-half:]}"
