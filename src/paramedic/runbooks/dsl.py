"""Python runbooks (DESIGN §3.2): the ``runbook`` decorator and planning by recording.

A Python runbook never acts directly. To plan, paramedic calls the function with a recording
``Context``: ``ctx.act`` checks the action and its arguments and records a step, ``ctx.verify.*``
records the verification, ``ctx.evidence.add`` asks for evidence. What the function recorded
becomes an ordinary ``Plan``, so each of its actions then passes the same guardrails, approval,
durable execution and audit trail as a YAML step. Recording has no side effect and a time
budget; time comes from the context (``ctx.now``), so a plan is deterministic under test.

The function runs before any action does: it decides from the alert, its labels and recent
changes, never from the result of an earlier action (``verify`` and ``on_failure`` cover that).
Labels are validated when read, exactly as templates read them (``params`` or the strict default).

``runbooks.context`` holds the ``Context`` and its recorders; ``runbooks.pyloader`` imports ``.py``
files and checks them statically for ``paramedic validate``.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import PrivateAttr

from paramedic.actions.registry import ExecutorRegistry
from paramedic.core.alerts import Alert
from paramedic.core.errors import TemplateError
from paramedic.core.plan import Plan, build_plan
from paramedic.core.runbooks import Runbook
from paramedic.runbooks.context import (
    Change,
    ChangeSource,
    Context,
    DurationLike,
    Escalation,
    PlanningError,
    changes_from,
    no_changes,
    recorded,
)

__all__ = [
    "Change",
    "ChangeSource",
    "Context",
    "Escalation",
    "PlanningError",
    "PythonRunbook",
    "Recording",
    "changes_from",
    "no_changes",
    "plan_for",
    "record",
    "runbook",
]

RunbookFunction = Callable[[Context], Awaitable[None]]
F = TypeVar("F", bound=RunbookFunction)

DECLARATION = "__paramedic_runbook__"
DEFAULT_BUDGET = timedelta(seconds=3)
MAX_BUDGET = timedelta(seconds=10)  # planning runs before an alert is stored: keep ingest fast


# ---- declaration --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Declaration:
    """What ``@runbook`` was given; validated by the loader, which knows the file and lines."""

    options: Mapping[str, Any]
    budget: DurationLike


def runbook(
    *,
    match: Mapping[str, Any] | str | Sequence[str] | None = None,
    owner: str | None = None,
    mode: Literal["observe", "approve", "auto"] | None = None,
    name: str | None = None,
    description: str | None = None,
    target: str | None = None,
    require: Mapping[str, Any] | None = None,
    guardrails: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    verify: Mapping[str, Any] | None = None,
    enrich: Sequence[Mapping[str, Any]] | None = None,
    on_failure: Literal["escalate", "next", "rollback"] | None = None,
    promote: Mapping[str, Any] | None = None,
    approval_timeout: DurationLike | None = None,
    approvers: int | None = None,
    priority: int | None = None,
    budget: DurationLike = DEFAULT_BUDGET,
) -> Callable[[F], F]:
    """Declare an ``async def fn(ctx: Context) -> None`` as a runbook.

    The keywords are the YAML runbook keys, with the same meaning and defaults (``name``
    defaults to the function's name with ``-`` for ``_``, ``description`` to its docstring).
    ``target``, ``verify`` and ``enrich`` given here are templates, rendered like YAML;
    ``budget`` bounds how long planning may take (default 3s, at most 10s). ``match`` takes the
    YAML mapping, or Alertmanager matchers as a string or a list of strings
    (``match='alertname="HighErrorRate", severity=~"critical|page"'``).
    """
    given: dict[str, Any] = {
        "match": list(match) if isinstance(match, (list, tuple)) else match,
        "owner": owner,
        "mode": mode,
        "name": name,
        "description": description,
        "target": target,
        "require": require,
        "guardrails": guardrails,
        "params": params,
        "verify": verify,
        "enrich": list(enrich) if enrich is not None else None,
        "on_failure": on_failure,
        "promote": promote,
        "approval_timeout": approval_timeout,
        "approvers": approvers,
        "priority": priority,
    }
    declaration = Declaration({k: v for k, v in given.items() if v is not None}, budget)

    def decorate(fn: F) -> F:
        setattr(fn, DECLARATION, declaration)
        return fn

    return decorate


class PythonRunbook(Runbook):
    """A runbook declared by ``@runbook``. Its ``steps`` are the actions the loader found in the
    function's code (for validation, lints and target discovery); its plan comes from calling
    the function (``record``)."""

    _function: RunbookFunction | None = PrivateAttr(default=None)
    _budget: float = PrivateAttr(default=DEFAULT_BUDGET.total_seconds())
    _file: str = PrivateAttr(default="")

    def bind(self, function: RunbookFunction, *, budget: timedelta, file: str) -> PythonRunbook:
        self._function = function
        self._budget = budget.total_seconds()
        self._file = file
        return self

    @property
    def function(self) -> RunbookFunction:
        assert self._function is not None, "a PythonRunbook is bound to its function by the loader"
        return self._function

    @property
    def budget(self) -> float:
        return self._budget

    @property
    def file(self) -> str:
        return self._file


# ---- planning ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Recording:
    """A plan and the notes the runbook logged while it was made."""

    plan: Plan
    log: tuple[str, ...] = ()


def _where(exc: BaseException, file: str) -> str:
    """``rb.py:12``: the last line of the runbook's file the error passed through, or ``""``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == file]
    return f"{Path(file).name}:{frames[-1].lineno}" if frames else ""


def _at(exc: BaseException, file: str) -> str:
    where = _where(exc, file)
    return f" at {where}" if where else ""


async def record(
    runbook: Runbook,
    alert: Alert,
    *,
    now: datetime,
    registry: ExecutorRegistry,
    changes: ChangeSource = no_changes,
) -> Recording:
    """Plan ``runbook`` for ``alert``. A YAML runbook is rendered (``core.plan.build_plan``); a
    Python runbook is called with a recording ``Context`` within its budget.

    Raises ``TemplateError`` when a label fails its pattern (as YAML does) and ``PlanningError``
    when the runbook's code raised, exceeded its budget or escalated.
    """
    if not isinstance(runbook, PythonRunbook):
        return Recording(build_plan(runbook, alert))
    base = build_plan(runbook.model_copy(update={"steps": []}), alert)  # target, scope, static parts
    ctx = Context(runbook=runbook, alert=alert, now=now, registry=registry, changes=changes)
    file = runbook.file
    try:
        async with asyncio.timeout(runbook.budget) as budget:
            await runbook.function(ctx)
    except Escalation as exc:
        raise Escalation(f"escalated by the runbook: {exc}") from None
    except TemplateError:
        raise
    except PlanningError as exc:  # a bad ctx.act / ctx.verify call: say where it was made
        at = _where(exc, file)
        raise PlanningError(f"{exc} ({at})" if at else str(exc)) from None
    except TimeoutError as exc:
        if budget.expired():
            raise PlanningError(
                f"planning took longer than the budget of {runbook.budget:g}s; refused, nothing runs"
            ) from None
        raise PlanningError(f"the runbook raised TimeoutError{_at(exc, file)}: {exc}") from exc
    except Exception as exc:  # the runbook's own code: refuse the plan and say where it failed
        raise PlanningError(f"the runbook raised {type(exc).__name__}{_at(exc, file)}: {exc}") from exc
    tape = recorded(ctx)
    if tape.failures:
        raise tape.failures[0]
    plan = replace(
        base,
        steps=tuple(tape.steps),
        verify=tape.verify if tape.verify is not None else base.verify,
        enrich=(*base.enrich, *tape.enrich),
    )
    return Recording(plan, tuple(tape.log))


async def plan_for(
    runbook: Runbook,
    alert: Alert,
    *,
    now: datetime,
    registry: ExecutorRegistry,
    changes: ChangeSource = no_changes,
) -> Plan:
    """The plan of any runbook, YAML or Python (see ``record``)."""
    return (await record(runbook, alert, now=now, registry=registry, changes=changes)).plan
