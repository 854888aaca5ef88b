"""Trust a runbook earns (DESIGN §3.1): run figures, promotion one mode up, demotion on a trip.

Humans own the mode. The mode in the runbook file is a ceiling set by its owner: trust moves a
runbook only between ``observe`` and that ceiling, and a stored mode (set by trust or by hand) is in
force only while the file still says what it said when that mode was set, so an edit to the file
takes effect at the next load (``mode_in_force``).

A runbook that declares ``promote: {after: 10, min_success_rate: 0.95}`` moves one mode up
(observe → approve → auto, never past the ceiling) once it has ``after`` results since its last
mode change with at least that share of successes. In approve and auto a result is a finished run;
in observe nothing runs, so a result is a suggestion a responder marked right or wrong. Any
circuit-breaker trip moves it one mode down. The store counts the figures and writes each change
to the audit trail; this module only decides.
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


_RANK = {Mode.OBSERVE: 0, Mode.APPROVE: 1, Mode.AUTO: 2}


def rank(mode: Mode) -> int:
    """observe 0 < approve 1 < auto 2."""
    return _RANK[mode]


def mode_in_force(ceiling: Mode, stored: Mode | None = None, stored_ceiling: Mode | None = None) -> Mode:
    """The mode a runbook runs in: the stored one while the file's mode (``ceiling``) is still the
    one it was set under, and never above it; otherwise the file's."""
    if stored is None or stored_ceiling != ceiling:
        return ceiling
    return stored if rank(stored) <= rank(ceiling) else ceiling


def manual_mode_problem(requested: Mode, ceiling: Mode) -> str | None:
    """Why a human may not set ``requested`` by hand, or None: nobody sets a mode above the file's."""
    if rank(requested) > rank(ceiling):
        return (
            f"the runbook file says mode {ceiling}, the highest it may run in;"
            f" edit the file to allow {requested} (its owner decides)"
        )
    return None


def next_mode(current: Mode, figures: TrustFigures, promote: Promote | None, ceiling: Mode = Mode.AUTO) -> Mode | None:
    """The mode to promote to, or ``None`` to stay. ``figures`` count since the last change."""
    if promote is None or rank(current) >= rank(ceiling):
        return None
    if figures.runs < promote.after or figures.success_rate < promote.min_success_rate:
        return None
    return current.promoted()


def promotion_reason(current: Mode, figures: TrustFigures, promote: Promote | None, ceiling: Mode = Mode.AUTO) -> str:
    """One line for the audit trail and the UI: why the runbook moves up, or what it still needs."""
    if promote is None:
        return f"stays {current}: the runbook declares no promote rule"
    if current is Mode.AUTO:
        return "stays auto: already the highest mode"
    if rank(current) >= rank(ceiling):
        return f"stays {current}: the runbook file's mode {ceiling} is the ceiling"
    what = "suggestions marked" if current is Mode.OBSERVE else "runs"
    verb = "marked right" if current is Mode.OBSERVE else "succeeded"
    rate = f"{figures.success_rate:.0%} {verb} (needs {promote.min_success_rate:.0%})"
    runs = f"{figures.runs} of {promote.after} {what} since the last mode change"
    target = next_mode(current, figures, promote, ceiling)
    if target is not None:
        return f"promoted {current} → {target}: {runs}, {rate}"
    return f"stays {current}: {runs}, {rate}"


def demoted(mode: Mode) -> Mode:
    """The mode after a circuit-breaker trip: one step down, observe stays observe."""
    return mode.demoted()
