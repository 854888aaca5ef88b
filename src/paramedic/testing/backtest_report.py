"""How a backtest is shown: a rich table for the terminal, JSON for tooling, and a report folder
(``report.html`` with two PNG charts: actions over time, refusals by reason).

Alert labels are untrusted: the terminal gets them through ``rich.markup.escape``, the HTML
through ``html.escape``, and chart texts are set with matplotlib's math text turned off.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, timedelta
from pathlib import Path

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paramedic.testing.backtest import BacktestResult, Kind
from paramedic.testing.backtest_summary import RunbookSummary, reason_name, summarize, unmatched
from paramedic.testing.data_quality import DataQuality

_PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#999999"]
MAX_SERIES = 7  # runbooks drawn one by one in the actions chart; the rest are summed as "others"


def to_json(result: BacktestResult, quality: DataQuality, *, decisions: bool = False) -> dict[str, object]:
    data: dict[str, object] = {
        "period": {"start": result.period.start.isoformat(), "end": result.period.end.isoformat()},
        "episodes": len(result.episodes),
        "assumptions": {
            "as_auto": result.settings.as_auto,
            "firing_for_waits": result.settings.defer_firing_for,
            "outcome": getattr(result.settings.outcome, "__name__", "custom"),
            "soon_s": result.settings.soon.total_seconds(),
        },
        "runbooks": [s.to_json() for s in summarize(result)],
        "unmatched": dict(unmatched(result).most_common()),
        "mode_changes": [
            {"runbook": m.runbook, "at": m.at.isoformat(), "mode": str(m.mode), "reason": m.reason}
            for m in result.mode_changes
        ],
        "data_quality": quality.to_json(),
    }
    if decisions:
        data["decisions"] = [d.to_json() for d in result.decisions]
    return data


def _refusals(s: RunbookSummary) -> str:
    return ", ".join(f"{reason_name(k)} {v}" for k, v in sorted(s.refusals.items(), key=lambda kv: -kv[1])) or "-"


def render_table(result: BacktestResult, quality: DataQuality, console: Console) -> None:
    summaries = summarize(result)
    p = result.period
    console.print(
        f"backtest of {len(result.runbooks)} runbook(s) over {len(result.episodes)} episode(s), "
        f"{p.start:%Y-%m-%d %H:%M} → {p.end:%Y-%m-%d %H:%M} UTC"
        + (" (every runbook as if in auto mode)" if result.settings.as_auto else ""),
        highlight=False,
    )
    table = Table(show_lines=False)
    for col, justify in (
        ("runbook", "left"),
        ("mode", "left"),
        ("matched", "right"),
        ("acted", "right"),
        ("refused by", "left"),
        ("no plan", "right"),
        ("peak", "right"),
        ("targets", "right"),
        ("self-resolved", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        acted = f"{s.acted}" + (f" ({s.failed} unverified)" if s.failed else "")
        table.add_row(
            escape(s.runbook),
            s.mode,
            str(s.matched),
            acted,
            _refusals(s),
            str(s.plan_errors),
            str(s.peak_concurrency),
            str(len(s.targets)),
            str(len(s.weak)),
        )
    console.print(table)
    lost = unmatched(result)
    if lost:
        names = ", ".join(f"{escape(n)} ×{c}" for n, c in lost.most_common(5))
        console.print(f"no runbook for {sum(lost.values())} episode(s) (a human is paged): {names}", highlight=False)
    for m in result.mode_changes:
        would = "would have moved" if result.settings.as_auto else "moved"
        console.print(
            f"{m.at:%Y-%m-%d %H:%M} {escape(m.runbook)} {would} to {m.mode}: {escape(m.reason)}", highlight=False
        )
    _render_quality(quality, console)


def _render_quality(q: DataQuality, console: Console) -> None:
    for f in q.flapping[:10]:
        console.print(
            f"[yellow]flapping[/]: {escape(f.alertname)} {escape(_labels(f.labels))}: {f.episodes} episodes, "
            f"{f.most_in_window} within one flap window",
            highlight=False,
        )
    for m in q.missing_labels[:10]:
        console.print(
            f"[yellow]{m.problem} label[/] {escape(m.label)!r} in {m.episodes} episode(s) of "
            f"{escape(m.alertname)}, read by runbook {escape(m.runbook)}",
            highlight=False,
        )
    for a in q.absent_series[:10]:
        console.print(
            f"[yellow]absent series[/]: {escape(a.query)} (verify of {escape(a.runbook)}) had no data in "
            f"{a.absent} of {a.checked} episode(s) checked",
            highlight=False,
        )


def _labels(labels: dict[str, str], keys: Sequence[str] = ("instance", "service", "job")) -> str:
    return ",".join(f"{k}={labels[k]}" for k in keys if k in labels)


# ---- charts ------------------------------------------------------------------------------------
def _bucket(period_span: timedelta) -> timedelta:
    if period_span <= timedelta(days=2):
        return timedelta(hours=1)
    return timedelta(days=1)


def actions_chart(result: BacktestResult, path: Path) -> None:
    """Actions per hour (short periods) or per day, stacked by runbook."""
    span = result.period.end - result.period.start
    size = _bucket(span)
    first = result.period.start.astimezone(UTC)
    start = first.replace(minute=0, second=0, microsecond=0)
    if size >= timedelta(days=1):
        start = start.replace(hour=0)
    buckets = max(1, int((result.period.end - start) / size) + 1)
    per: dict[str, list[int]] = defaultdict(lambda: [0] * buckets)
    totals: Counter[str] = Counter()
    for d in result.decisions:
        if d.kind is Kind.ACTED:
            i = min(buckets - 1, max(0, int((d.at - start) / size)))
            per[d.runbook][i] += 1
            totals[d.runbook] += 1
    names = [n for n, _ in totals.most_common(MAX_SERIES)]
    others = [0] * buckets
    for n, counts in per.items():
        if n not in names:
            others = [a + b for a, b in zip(others, counts, strict=True)]
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [float(mdates.date2num(start + i * size)) for i in range(buckets)]  # type: ignore[no-untyped-call]
    bottom = [0] * buckets
    width = size / timedelta(days=1) * 0.9
    series = [(n, per[n]) for n in names] + ([("others", others)] if any(others) else [])
    for i, (name, counts) in enumerate(series):
        ax.bar(xs, counts, width=width, bottom=bottom, align="edge", label=name[:40], color=_PALETTE[i % 8])
        bottom = [a + b for a, b in zip(bottom, counts, strict=True)]
    ax.set_xlim(xs[0], xs[-1] + size / timedelta(days=1))
    unit = "hour" if size == timedelta(hours=1) else "day"
    ax.set_title(f"Actions the runbooks would have taken, per {unit}", fontsize=11)
    ax.set_ylabel("actions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fmt = "%m-%d %H:%M" if unit == "hour" else "%m-%d"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=UTC))  # type: ignore[no-untyped-call]
    every = max(1, buckets // 12)
    if unit == "hour":
        ax.xaxis.set_major_locator(mdates.HourLocator(interval=every, tz=UTC))  # type: ignore[no-untyped-call]
    else:
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=every, tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlabel("UTC")
    ax.grid(axis="y", alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="upper left", frameon=False)
    else:
        ax.text(0.5, 0.5, "no action in this period", ha="center", va="center", transform=ax.transAxes)
    fig.autofmt_xdate()
    fig.tight_layout()
    _plain_text(fig)
    fig.savefig(path, format="png")


def refusals_chart(result: BacktestResult, path: Path) -> None:
    """Refusals by guardrail reason, over every runbook."""
    counts = Counter(reason_name(d.code) for d in result.decisions if d.kind is Kind.REFUSED)
    fig = Figure(figsize=(7, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    items = counts.most_common()
    if items:
        labels = [k for k, _ in items][::-1]
        values = [v for _, v in items][::-1]
        bars = ax.barh(labels, values, color="#D55E00")
        for bar, value in zip(bars, values, strict=True):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value}", va="center", fontsize=9)
        ax.set_xlim(0, max(values) * 1.15)
    else:
        ax.text(0.5, 0.5, "no refusal in this period", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title("Refusals by guardrail", fontsize=11)
    ax.set_xlabel("refused runs")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    _plain_text(fig)
    fig.savefig(path, format="png")


def _plain_text(fig: Figure) -> None:
    """Runbook names and labels are shown as typed: no ``$…$`` math text from untrusted text."""
    for text in fig.findobj(match=lambda o: hasattr(o, "set_usetex")):
        text.set_usetex(False)  # type: ignore[attr-defined]
        if hasattr(text, "set_parse_math"):
            text.set_parse_math(False)


# ---- the report file --------------------------------------------------------------------------
def write_report(result: BacktestResult, quality: DataQuality, folder: Path, *, command: str = "") -> Path:
    """``report.html``, ``actions.png`` and ``refusals.png`` in ``folder``; returns the HTML path."""
    folder.mkdir(parents=True, exist_ok=True)
    actions_chart(result, folder / "actions.png")
    refusals_chart(result, folder / "refusals.png")
    e = html.escape
    summaries = summarize(result)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{e(str(c))}</td>"
            for c in (
                s.runbook,
                s.mode,
                s.matched,
                s.acted,
                s.failed,
                _refusals(s),
                s.approvals + s.observed,
                s.plan_errors,
                s.peak_concurrency,
                ", ".join(s.targets[:8]) + (" …" if len(s.targets) > 8 else ""),
                len(s.weak),
            )
        )
        + "</tr>"
        for s in summaries
    )
    quality_items = (
        [
            f"<li>flapping: {e(f.alertname)} {e(_labels(f.labels))}: {f.episodes} episodes, "
            f"{f.most_in_window} within one flap window</li>"
            for f in quality.flapping
        ]
        + [
            f"<li>{m.problem} label <code>{e(m.label)}</code> in {m.episodes} episode(s) of {e(m.alertname)}, "
            f"read by runbook {e(m.runbook)}</li>"
            for m in quality.missing_labels
        ]
        + [
            f"<li>absent series <code>{e(a.query)}</code> (verify of {e(a.runbook)}): no data in {a.absent} "
            f"of {a.checked} episode(s) checked</li>"
            for a in quality.absent_series
        ]
    )
    if not quality.checked_series:
        quality_items.append("<li>series the verifications read were not checked (no Prometheus given)</li>")
    weak = "".join(
        f"<li>{e(s.runbook)}: {len(s.weak)} of {s.acted} acted-on episodes resolved by themselves within "
        f"{e(str(result.settings.soon))} — consider a longer <code>require.firing_for</code></li>"
        for s in summaries
        if s.weak
    )
    changes = "".join(
        f"<li>{m.at:%Y-%m-%d %H:%M} {e(m.runbook)} → {e(str(m.mode))}: {e(m.reason)}</li>" for m in result.mode_changes
    )
    lost = unmatched(result)
    p = result.period
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paramedic backtest</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:left}}
th,code{{background:#f4f4f4}}</style>
</head><body>
<h1>Backtest</h1>
<p>{len(result.episodes)} episodes from {p.start:%Y-%m-%d %H:%M} to {p.end:%Y-%m-%d %H:%M} UTC,
{len(result.runbooks)} runbooks{" replayed as if in auto mode" if result.settings.as_auto else ""}. Nothing was run.
{("Command: <code>" + e(command) + "</code>") if command else ""}</p>
<h2>Per runbook</h2>
<table><tr><th>runbook</th><th>mode</th><th>episodes matched</th><th>acted</th><th>unverified</th>
<th>refused by</th><th>waited for a human</th><th>no plan</th><th>peak concurrency</th><th>targets touched</th>
<th>resolved by themselves soon after</th></tr>{rows}</table>
<p>No runbook matched {sum(lost.values())} episodes ({e(", ".join(f"{n} ×{c}" for n, c in lost.most_common(8)))}).</p>
<h2>Actions over time</h2><img src="actions.png" alt="actions over time">
<h2>Refusals by reason</h2><img src="refusals.png" alt="refusals by guardrail reason">
<h2>Weak triggers</h2><ul>{weak or "<li>none</li>"}</ul>
<h2>Mode changes the record would have caused</h2><ul>{changes or "<li>none</li>"}</ul>
<h2>Data quality</h2><ul>{"".join(quality_items) or "<li>no finding</li>"}</ul>
<p>Assumptions: an action counts as verified when the alert resolved within the runbook's verification
window in the history ({e(getattr(result.settings.outcome, "__name__", "custom"))});
a run refused only for <code>require.firing_for</code>
{"waits and is decided again" if result.settings.defer_firing_for else "is refused"}.</p>
</body></html>
"""
    out = folder / "report.html"
    out.write_text(page)
    return out
