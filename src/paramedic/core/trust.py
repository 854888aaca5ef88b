"""Trust a runbook earns (DESIGN §3.1): run figures, promotion one mode up, demotion on a trip.

A runbook that declares ``promote: {after: 10, min_success_rate: 0.95}`` moves one mode up
(observe → approve → auto) once it has run ``after`` times since its last mode change with at
least that success rate. Any circuit-breaker trip moves it one mode down. The store counts the
figures and writes each change to the audit trail; this module only decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from paramedic.core.runbooks import Mode, Promote


@dataclass(frozen=True, slots=True)
class TrustFigures:
    """Finished runs of one runbook. For ``next_mode`` count them since the last mode change."""

    runs: int = 0
    successes: int = 0
    failures: int = 0
    last_failure_at: datetime | None = None

    def __post_init__(self) -> None:
        if min(self.runs, self.successes, self.failures) < 0:
            raise ValueError("trust figures cannot be negative")
        if self.successes + self.failures > self.runs:
            raise ValueError("successes and failures cannot exceed runs")

    @property
    def success_rate(self) -> float:
        """Share of runs that succeeded; 0.0 before the first run (nothing earned yet)."""
        return self.successes / self.runs if self.runs else 0.0


def next_mode(current: Mode, figures: TrustFigures, promote: Promote | None) -> Mode | None:
    """The mode to promote to, or ``None`` to stay. ``figures`` count since the last change."""
    if promote is None or current is Mode.AUTO:
        return None
    if figures.runs < promote.after or figures.success_rate < promote.min_success_rate:
        return None
    return current.promoted()


def promotion_reason(current: Mode, figures: TrustFigures, promote: Promote | None) -> str:
    """One line for the audit trail and the UI: why the runbook moves up, or what it still needs."""
    if promote is None:
        return f"stays {current}: the runbook declares no promote rule"
    if current is Mode.AUTO:
        return "stays auto: already the highest mode"
    rate = f"{figures.success_rate:.0%} succeeded (needs {promote.min_success_rate:.0%})"
    runs = f"{figures.runs} of {promote.after} runs since the last mode change"
    target = next_mode(current, figures, promote)
    if target is not None:
        return f"promoted {current} → {target}: {runs}, {rate}"
    return f"stays {current}: {runs}, {rate}"


def demoted(mode: Mode) -> Mode:
    """The mode after a circuit-breaker trip: one step down, observe stays observe."""
    return mode.demoted()
