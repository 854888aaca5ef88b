"""How a completed step is undone, and how a run that stops half-way says what it left behind.

Pure: the runner stores ``record(...)`` on a step when it succeeds, and on a failure composes its
escalation with ``outcome(...)``. A record is ``{"action", "args"}`` (the runbook's ``undo:`` or the
executor's natural inverse), ``{"unchanged": true}`` (the step changed nothing: nothing to undo) or
``{"none": why}`` (nothing known undoes it: a failure names it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def record(
    *,
    declared: Mapping[str, Any] | bool | None,
    inverse: tuple[str, Mapping[str, Any]] | None,
    changed: bool,
    action: str,
) -> dict[str, Any]:
    """The undo of a step that succeeded: the runbook's ``undo:`` wins, then the executor's inverse."""
    if declared is False:
        return {"none": "the runbook declares that nothing undoes it (undo: false)"}
    if isinstance(declared, Mapping):
        return {"action": str(declared["action"]), "args": dict(declared.get("args", {}))}
    if not changed:
        return {"unchanged": True}
    if inverse is not None:
        return {"action": inverse[0], "args": dict(inverse[1])}
    return {"none": f"{action} has no known inverse"}


def name(idx: int, action: str, args: Mapping[str, Any]) -> str:
    """``step 1 haproxy.drain backend=web server=s1``: a step as an escalation names it."""
    shown = " ".join(f"{k}={v}" for k, v in sorted(args.items()) if not isinstance(v, (dict, list)))
    return f"step {idx} {action}" + (f" {shown}" if shown else "")


def outcome(reason: str, *, undone: Sequence[str], left: Sequence[str]) -> str:
    """The run's final reason: why it stopped, what was rolled back, and what was left in which state."""
    text = reason
    if undone:
        text += "; rolled back: " + "; ".join(undone)
    if left:
        text += "; left in state: " + "; ".join(left)
    return text
