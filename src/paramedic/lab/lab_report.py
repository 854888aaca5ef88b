"""``paramedic lab``: run scenarios live, then the MTTR table (markdown) and chart (PNG).

Each scenario runs on its own stack with paramedic, then (``--baseline``) again with automation
paused — the alert waits for a human and counts as open until the scenario's limit — and, for the
crash loop, with supervisord's own ``autorestart=true``. Results go to ``OUT/mttr.md``,
``OUT/mttr.png`` and ``OUT/results.json``.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table

from paramedic.lab import scenarios
from paramedic.lab.scenarios import Result, Scenario


def _s(value: float | None, limit: float | None = None) -> str:
    if value is None:
        return f"open (>{limit:g}s)" if limit is not None else "—"
    return f"{value:.1f}s"


def _table(results: Sequence[Result]) -> Table:
    table = Table(title="lab: MTTR per scenario", show_lines=False)
    for col in ("#", "scenario", "run", "detect", "mitigate", "recover", "actions", "verdicts", "outcome"):
        table.add_column(col, overflow="fold")
    for r in results:
        sc = scenarios.BY_KEY[r.scenario]
        outcome = "[green]ok[/]" if not r.problems else f"[red]{escape('; '.join(r.problems))}[/]"
        if r.mode != "paramedic":
            outcome = escape(r.notes) or "no automation"
        table.add_row(
            str(sc.number),
            sc.key,
            r.mode,
            _s(r.detect),
            _s(r.mitigate),
            _s(r.recover, r.limit),
            escape(", ".join(r.actions)) or "—",
            escape(", ".join(r.verdicts)) or "—",
            outcome,
        )
    return table


def markdown(results: Sequence[Result], *, command: str, seconds: float) -> str:
    lines = [
        "| # | scenario | run | detect | mitigate | recover (MTTR) | actions | guardrail verdicts | outcome |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        sc = scenarios.BY_KEY[r.scenario]
        outcome = ("ok" if not r.problems else "; ".join(r.problems)) if r.mode == "paramedic" else r.notes or "—"
        lines.append(
            f"| {sc.number} | {sc.title} | {r.mode} | {_s(r.detect)} | {_s(r.mitigate)} | {_s(r.recover, r.limit)} "
            f"| {', '.join(r.actions) or '—'} | {', '.join(r.verdicts) or '—'} | {outcome} |"
        )
    uname = platform.uname()
    lines += [
        "",
        f"Times are seconds from the fault. Open means not recovered within the scenario's limit; "
        f"the chart counts it as the limit. Ran `{command}` in {seconds:.0f}s on {uname.system} "
        f"{uname.release} {uname.machine}, Python {platform.python_version()}.",
    ]
    return "\n".join(lines) + "\n"


def chart(results: Sequence[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys(r.scenario for r in results))
    modes = [m for m in ("paramedic", "baseline", "supervisord") if any(r.mode == m for r in results)]
    colors = {"paramedic": "#2a9d8f", "baseline": "#e76f51", "supervisord": "#8d99ae"}
    width = 0.8 / max(1, len(modes))
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=110)
    for n, mode in enumerate(modes):
        xs, ys = [], []
        for i, key in enumerate(keys):
            found = [r for r in results if r.scenario == key and r.mode == mode]
            if found:
                xs.append(i + (n - (len(modes) - 1) / 2) * width)
                ys.append(found[0].mttr)
        ax.bar(xs, ys, width=width, label=mode, color=colors[mode])
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([f"{scenarios.BY_KEY[k].number}. {k}" for k in keys], rotation=20, ha="right")
    ax.set_ylabel("time to recover, s (open = scenario limit)")
    ax.set_title("paramedic lab: MTTR per scenario, paramedic vs no automation")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_lab(console: Console, *, which: Sequence[Scenario], baseline: bool, out: Path | None, command: str) -> int:
    results: list[Result] = []
    log: list[str] = []
    begun = time.monotonic()

    def say(msg: str) -> None:
        log.append(f"{time.strftime('%H:%M:%S')}  {msg}")

    with Live(console=console, refresh_per_second=4, transient=False) as live:

        def show() -> None:
            spinner = Spinner("dots", text=escape(log[-1]) if log else "")
            live.update(Group(_table(results), spinner))

        for sc in which:
            for mode in scenarios.modes_for(sc, baseline=baseline):
                say(f"{sc.number}. {sc.title} [{mode}]")
                show()

                def progress(msg: str) -> None:
                    say(msg)
                    show()

                results.append(scenarios.run(sc, mode=mode, progress=progress))
                show()
        live.update(_table(results))
    seconds = time.monotonic() - begun
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "mttr.md").write_text(markdown(results, command=command, seconds=seconds))
        (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
        chart(results, out / "mttr.png")
        console.print(f"wrote {out / 'mttr.md'}, {out / 'mttr.png'} and {out / 'results.json'}")
    bad = [r for r in results if r.problems]
    console.print(f"{len(results)} runs in {seconds:.0f}s; {len(bad)} with a wrong outcome")
    return 1 if bad else 0
