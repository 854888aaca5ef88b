"""MTTR figures and their charts for the web UI: per runbook or per service, automated vs human.

``summarize`` is pure arithmetic over ``queries.MttrSample``; ``mttr_png`` draws the figures as a
PNG on the server with matplotlib's Agg backend (no pyplot, no display, one figure per call, under a
lock because matplotlib's font and text caches are shared by threads).
"""

from __future__ import annotations

import io
import statistics
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from paramedic.api.queries import MttrSample
from paramedic.core.durations import format_duration

GroupBy = Literal["runbook", "service", "owner"]
_LOCK = threading.Lock()

# the UI's dark palette (api/web/static/app.css), so charts sit in the page without a white box
BG, PANEL, TEXT, MUTED, GRID = "#0d1117", "#161b22", "#e6edf3", "#9aa7b4", "#30363d"
AUTOMATED, HUMAN = "#3fb950", "#f0883e"


@dataclass(frozen=True, slots=True)
class Stats:
    count: int
    median_s: float
    p90_s: float
    mean_s: float

    @property
    def median(self) -> str:
        return format_duration(self.median_s)

    @property
    def p90(self) -> str:
        return format_duration(self.p90_s)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    automated: Stats | None
    human: Stats | None

    @property
    def count(self) -> int:
        return (self.automated.count if self.automated else 0) + (self.human.count if self.human else 0)


def stats(values: Iterable[float]) -> Stats | None:
    xs = sorted(values)
    if not xs:
        return None
    p90 = xs[min(len(xs) - 1, max(0, round(0.9 * len(xs) + 0.5) - 1))]
    return Stats(count=len(xs), median_s=statistics.median(xs), p90_s=p90, mean_s=statistics.fmean(xs))


def summarize(samples: Sequence[MttrSample], by: GroupBy) -> list[Group]:
    """MTTR per runbook, service or owner, split automated / human; busiest group first."""
    names = sorted({getattr(s, by) for s in samples})
    groups = [
        Group(
            name=name,
            automated=stats(s.mttr_s for s in samples if getattr(s, by) == name and s.automated),
            human=stats(s.mttr_s for s in samples if getattr(s, by) == name and not s.automated),
        )
        for name in names
    ]
    return sorted(groups, key=lambda g: (-g.count, g.name))


def totals(samples: Sequence[MttrSample]) -> Group:
    return Group(
        name="all",
        automated=stats(s.mttr_s for s in samples if s.automated),
        human=stats(s.mttr_s for s in samples if not s.automated),
    )


def saved_seconds(total: Group) -> float | None:
    """Hours a human would have spent: automated incidents × (human median − automated median)."""
    if total.automated is None or total.human is None:
        return None
    return max(0.0, total.human.median_s - total.automated.median_s) * total.automated.count


def _unit(max_s: float) -> tuple[float, str]:
    if max_s >= 2 * 3600:
        return 3600.0, "hours"
    if max_s >= 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def mttr_png(groups: Sequence[Group], *, title: str) -> bytes:
    """A horizontal bar chart of median MTTR per group, automated and human side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = list(groups[:12])
    with _LOCK:
        height = 1.4 + 0.62 * max(1, len(shown))
        fig = Figure(figsize=(8.0, height), dpi=100, facecolor=BG)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1, facecolor=PANEL)
        top = max(
            [g.automated.median_s for g in shown if g.automated] + [g.human.median_s for g in shown if g.human] + [1.0]
        )
        scale, unit = _unit(top)
        bar = 0.38
        for i, g in enumerate(reversed(shown)):
            both = g.automated is not None and g.human is not None
            for offset, st, color in ((bar / 2, g.automated, AUTOMATED), (-bar / 2, g.human, HUMAN)):
                if st is None:
                    continue
                offset = offset if both else 0.0  # a lone bar sits on its label
                ax.barh(i + offset, st.median_s / scale, height=bar * 0.92, color=color)
                ax.text(
                    st.median_s / scale,
                    i + offset,
                    f"  {st.median} (n={st.count})",
                    va="center",
                    ha="left",
                    color=TEXT,
                    fontsize=10,
                )
        ax.set_yticks(range(len(shown)), [g.name[:28] for g in reversed(shown)], color=TEXT, fontsize=11)
        ax.set_xlim(0, top / scale * 1.45)
        ax.set_ylim(-0.6, len(shown) - 0.4)
        ax.set_xlabel(f"median MTTR ({unit})", color=MUTED, fontsize=10, loc="left")
        ax.set_title(title, color=TEXT, fontsize=13, loc="left", pad=12)
        ax.tick_params(axis="x", colors=MUTED)
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", color=GRID, linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
        handles = [
            ax.bar([0], [0], color=AUTOMATED, label="automated"),
            ax.bar([0], [0], color=HUMAN, label="human"),
        ]
        ax.legend(
            handles=handles,
            loc="upper right",  # under the axis, beside its label: never over a long title
            bbox_to_anchor=(1.0, -0.06 if len(shown) > 2 else -0.12),
            frameon=False,
            fontsize=10,
            labelcolor=TEXT,
            ncols=2,
            borderaxespad=0.2,
        )
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", facecolor=BG, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.15)
    return buf.getvalue()
