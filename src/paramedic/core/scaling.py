"""One scale contract for every pool that can grow or shrink (supervisord groups, Kubernetes).

``plan_scale`` is pure: from the current size and what the runbook asks for, it returns the size
to set, clamped so capacity never goes beyond ``max`` or below ``min``.
"""

from __future__ import annotations

from dataclasses import dataclass

from paramedic.core.errors import PermanentError


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    """Either an absolute ``desired`` size or a relative ``step`` (+2, -1); bounds are inclusive."""

    current: int
    minimum: int
    maximum: int
    desired: int | None = None
    step: int | None = None


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    current: int
    target: int
    clamped: bool
    reason: str

    @property
    def changes(self) -> bool:
        return self.target != self.current


def plan_scale(req: ScaleRequest) -> ScaleDecision:
    """Decide the new size. Raises ``PermanentError`` when the request itself makes no sense."""
    if req.minimum < 0 or req.maximum < req.minimum:
        raise PermanentError(f"scale bounds are wrong: min={req.minimum} max={req.maximum}", reason="bad_arguments")
    if (req.desired is None) == (req.step is None):
        raise PermanentError("scale takes exactly one of desired or step", reason="bad_arguments")
    wanted = req.desired if req.desired is not None else req.current + (req.step or 0)
    target = min(max(wanted, req.minimum), req.maximum)
    clamped = target != wanted
    if clamped:
        bound = "max" if wanted > req.maximum else "min"
        reason = f"asked for {wanted}, held at {bound} {target}"
    elif target == req.current:
        reason = f"already at {target}"
    else:
        reason = f"{req.current} → {target}"
    return ScaleDecision(current=req.current, target=target, clamped=clamped, reason=reason)
