"""Renders a metric's time series as a PNG for a human in a hurry: the series, and vertical lines
where the alert fired, where paramedic acted, and where a deploy landed.

Matplotlib's object API with the Agg canvas (no pyplot, no global figure state, no display); one
lock around rendering because matplotlib's font and text caches are not thread-safe, and the
engine renders charts in worker threads.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from paramedic.enrich.base import Mark, number

_LOCK = threading.Lock()
MAX_LINES = 8
# A palette that stays readable for common colour blindness (Okabe–Ito, without yellow).
_PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#999999"]
_MARK_STYLE = {
    "alert": ("#C0392B", "--", "alert fired"),
    "action": ("#1E8449", "-", ""),
    "mitigated": ("#2471A3", ":", "mitigated"),
    "change": ("#B9770E", "-.", ""),
    "resolved": ("#7F8C8D", ":", "resolved"),
}


@dataclass(frozen=True, slots=True)
class Series:
    """One labelled line: ``points`` are (unix seconds, value) in time order."""

    label: str
    points: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.points if v == v]  # NaN dropped

    @property
    def peak(self) -> float:
        vals = self.values
        return max(vals) if vals else float("nan")


def render(
    *,
    title: str,
    subtitle: str,
    series: Sequence[Series],
    marks: Sequence[Mark],
    start: datetime,
    end: datetime,
) -> bytes:
    """One PNG (1000×420 px). The busiest ``MAX_LINES`` series are drawn; the rest are counted."""
    shown = sorted(series, key=lambda s: -s.peak if s.peak == s.peak else 0.0)[:MAX_LINES]
    with _LOCK:
        fig = Figure(figsize=(10, 4.2), dpi=100, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for i, s in enumerate(shown):
            xs = [_num(datetime.fromtimestamp(t, UTC)) for t, _ in s.points]
            ax.plot(xs, [v for _, v in s.points], color=_PALETTE[i % len(_PALETTE)], linewidth=1.8, label=s.label)
        _draw_marks(ax, marks, start=start, end=end)
        ax.set_xlim(_num(start), _num(end))
        low = min(0.0, *(min(s.values, default=0.0) for s in shown))
        high = max((s.peak for s in shown if math.isfinite(s.peak)), default=1.0)
        ax.set_ylim(low, high * 1.3 if high > 0 else 1.0)  # headroom for the marks' labels
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=9))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))  # type: ignore[no-untyped-call]
        ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _pos: number(x)))
        ax.set_xlabel(f"UTC, {start:%Y-%m-%d}")
        ax.grid(True, color="#DDDDDD", linewidth=0.8)
        ax.spines[["top", "right"]].set_visible(False)
        hidden = len(series) - len(shown)
        fig.suptitle(_clip(title, 110), fontsize=12, fontweight="bold", x=0.01, ha="left")
        ax.set_title(
            _clip(subtitle + (f"  (+{hidden} more series not drawn)" if hidden else ""), 140),
            fontsize=9,
            loc="left",
            color="#555555",
        )
        if len(shown) > 1 or (shown and shown[0].label != "value"):
            fig.legend(loc="outside upper right", fontsize=8, frameon=False, ncols=min(4, len(shown)))
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _draw_marks(ax: Axes, marks: Sequence[Mark], *, start: datetime, end: datetime) -> None:
    visible = sorted((m for m in marks if start <= m.at <= end), key=lambda m: m.at)
    for n, m in enumerate(visible):
        color, style, default = _MARK_STYLE.get(m.kind, ("#555555", "-", ""))
        ax.axvline(_num(m.at), color=color, linestyle=style, linewidth=1.6, alpha=0.9)
        label = _clip(m.label or default, 40) + f" {m.at:%H:%M:%S}"
        # staggered heights so that marks close together do not print over each other
        late = (m.at - start) > (end - start) * 0.8  # near the right edge: write to the left of the line
        ax.annotate(
            label,
            xy=(_num(m.at), 1.0 - 0.09 * (n % 4)),
            xycoords=("data", "axes fraction"),
            xytext=(-4 if late else 4, -4),
            textcoords="offset points",
            fontsize=8,
            color=color,
            va="top",
            ha="right" if late else "left",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )


def _num(at: datetime) -> float:
    """Matplotlib's date number (days since its epoch) of an aware time."""
    return float(mdates.date2num(at))  # type: ignore[no-untyped-call]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
