"""``python -m bench.run [--quick]``: measure paramedic and write ``docs/benchmarks.md``.

1. runbook match time through ``MatchIndex`` at 10 … 10,000 runbooks (in process);
2. webhook → executor latency at a steady 50 alerts/s, one alert per Alertmanager webhook;
3. sustained ingest: single-alert webhooks from concurrent clients, and 50-alert batches.

(2) and (3) run against ``paramedic serve`` as a child process on SQLite in a temporary folder;
the load generator is this process. The full run writes its tables between the markers in
``docs/benchmarks.md`` and keeps the rest of that file (the analysis) as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import loads, matching
from bench.stack import INGEST_ALERT, LATENCY_ALERT, REPO, Stack

DOC = REPO / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:results:begin (written by `python -m bench.run`; edit outside these markers) -->"
END = "<!-- bench:results:end -->"
AIM_P99_MS = 20.0
AIM_BATCH_ALERTS_PER_S = 2000.0


@dataclass(frozen=True)
class Sizes:
    latency: tuple[tuple[float, float], ...]  # (alerts/s, seconds): the last one is the aim's
    single_alerts: int
    single_concurrency: int
    batch_alerts: int
    batch_size: int
    batch_concurrency: int
    match_lookups: int
    time_limit: float


FULL = Sizes(((10, 10), (50, 20)), 5000, 16, 10_000, 50, 4, 200_000, 60)
QUICK = Sizes(((10, 3), (50, 5)), 1000, 16, 2500, 50, 4, 20_000, 30)


@dataclass
class Report:
    """One table: a title, its columns and rows, and notes printed under it."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    mem = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU model": cpu,
        "RAM": mem,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "commit": commit,
        "load average at start (1 min)": f"{os.getloadavg()[0]:.2f}",
    }


def ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def match_report(sizes: Sizes) -> Report:
    report = Report(
        "Runbook match time (MatchIndex, in process)",
        ["runbooks", "regex-only runbooks", "matches timed", "index build ms", "µs per match", "alerts matched"],
    )
    for count, regex in ((10, 0), (1000, 0), (10_000, 0), (10_000, 100)):
        r = matching.measure(count, lookups=sizes.match_lookups, regex_only=regex)
        report.rows.append(
            [
                f"{r.runbooks:,}",
                str(r.regex_only),
                f"{r.lookups:,}",
                f"{r.build_ms:.1f}",
                f"{r.us_per_match:.2f}",
                f"{r.hit_rate:.0%}",
            ]
        )
    report.notes.append(
        "Each runbook matches its own alertname and a service label; one alert in ten matches nothing. "
        "Regex-only runbooks cannot be indexed and are checked against every alert."
    )
    return report


async def server_loads(stack: Stack, sizes: Sizes, sampler_dir: Path | None) -> tuple[Report, Report]:
    from bench.profiling import Sampler

    def sampler(name: str) -> Sampler | None:
        if sampler_dir is None or stack.server is None:
            return None
        return Sampler(stack.server.pid, sampler_dir / f"{name}.txt")

    profiles: list[tuple[str, Sampler]] = []

    server = stack.server
    assert server is not None
    latency = Report(
        "Webhook → action latency (one alert per Alertmanager webhook, open loop)",
        [
            "alerts/s",
            "seconds",
            "alerts sent",
            "actions run",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "202 p50 / p99 ms",
            "server CPU ms/alert",
            "aim p99 < 20 ms",
        ],
    )
    repeats = 0
    for n, (rate, seconds) in enumerate(sizes.latency):
        spy = sampler(f"latency-{rate:g}")
        cpu = server.cpu_seconds()
        lat = await loads.latency(
            webhook=stack.webhook,
            receiver=stack.receiver_url,
            alertname=LATENCY_ALERT,
            prefix=f"lat{n}",
            rate=rate,
            seconds=seconds,
        )
        cpu_ms = (server.cpu_seconds() - cpu) * 1000 / max(1, lat.accepted)
        if spy:
            spy.stop()
            profiles.append((f"latency at {rate:g}/s", spy))
        repeats = lat.repeats
        latency.rows.append(
            [
                f"{rate:g}",
                f"{seconds:g}",
                str(lat.sent),
                str(lat.executed),
                ms(lat.p50_ms),
                ms(lat.p90_ms),
                ms(lat.p99_ms),
                ms(lat.max_ms),
                f"{ms(lat.accept_p50_ms)} / {ms(lat.accept_p99_ms)}",
                f"{cpu_ms:.1f}",
                ("met" if lat.p99_ms < AIM_P99_MS else "missed") if rate >= 50 else "",
            ]
        )
    latency.notes.append(
        "Latency = the receiver's arrival time of the runbook's http.request minus the send time of the "
        "webhook carrying the alert; '202' is how long the webhook took to be stored and answered. "
        f"Actions run more than once for one alert: {repeats}."
    )

    ingest = Report(
        "Sustained ingest (Alertmanager webhooks, stored and answered 202)",
        [
            "payload",
            "clients",
            "alerts",
            "errors",
            "seconds",
            "alerts/s",
            "request p50 ms",
            "request p99 ms",
            "server CPU ms/alert",
            "aim",
        ],
    )
    runs = [
        ("single", "1 alert per webhook", 1, sizes.single_alerts, sizes.single_concurrency),
        (
            "batch",
            f"{sizes.batch_size} alerts per webhook",
            sizes.batch_size,
            sizes.batch_alerts,
            sizes.batch_concurrency,
        ),
    ]
    for name, label, per_request, total, concurrency in runs:
        spy = sampler(f"ingest-{name}")
        cpu = server.cpu_seconds()
        r = await loads.ingest(
            webhook=stack.webhook,
            label=label,
            alertname=INGEST_ALERT,
            prefix=name,
            total_alerts=total,
            per_request=per_request,
            concurrency=concurrency,
            time_limit=sizes.time_limit,
        )
        if spy:
            spy.stop()
            profiles.append((f"ingest-{name}", spy))
        aim = ""
        if per_request > 1:
            aim = "met" if r.alerts_per_s > AIM_BATCH_ALERTS_PER_S else f"missed (> {AIM_BATCH_ALERTS_PER_S:,.0f}/s)"
        ingest.rows.append(
            [
                label,
                str(r.concurrency),
                f"{r.alerts:,}",
                str(r.errors),
                f"{r.seconds:.1f}",
                f"{r.alerts_per_s:,.0f}",
                ms(r.request_p50_ms),
                ms(r.request_p99_ms),
                f"{(server.cpu_seconds() - cpu) * 1000 / max(1, r.alerts):.2f}",
                aim,
            ]
        )
    ingest.notes.append(
        "Every alert is new: it opens an incident, matches a runbook in observe mode and gets a planned run "
        "recorded as a suggestion, each with its hash-chained audit entries, in one transaction per webhook."
    )
    for name, spy in profiles:
        print(f"\nserver profile during {name} ({spy.out}), share of GIL-holding samples:")
        print("  innermost  inclusive  paramedic function")
        for frame, inclusive, innermost in spy.top(30):
            print(f"  {innermost:9.1%}  {inclusive:9.1%}  {frame}")
    return latency, ingest


def render_rich(reports: Sequence[Report], console: Console) -> None:
    for r in reports:
        table = Table(title=r.title, title_justify="left")
        for col in r.columns:
            table.add_column(col, justify="left" if col in ("payload",) else "right")
        for row in r.rows:
            table.add_row(*row)
        console.print(table)
        for note in r.notes:
            console.print(f"[dim]{note}[/]")
        console.print()


def render_markdown(reports: Sequence[Report], info: dict[str, str], *, quick: bool, when: datetime) -> str:
    lines = [
        BEGIN,
        "",
        f"Measured {when:%Y-%m-%d %H:%M} UTC{' (quick run)' if quick else ''}."
        + (
            " Other work was running on the machine (see the load average): wall-clock figures are pessimistic."
            if float(info["load average at start (1 min)"]) > 1.0
            else ""
        ),
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        "Rerun with:",
        "",
        "```sh",
        "make bench                          # = .venv/bin/python -m bench.run (writes this file)",
        ".venv/bin/python -m bench.run --quick --no-write   # short smoke run, prints only",
        ".venv/bin/python -m bench.run --profile /tmp/prof   # also py-spy the server (pip install py-spy)",
        "```",
        "",
    ]
    for r in reports:
        lines += [f"### {r.title}", "", "| " + " | ".join(r.columns) + " |", "|" + "---|" * len(r.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in r.rows]
        lines += ["", *[f"{n}" for n in r.notes], ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


HEADER = """# Benchmarks

How fast paramedic turns an alert into an action, how many alerts it stores per second, and how
match time grows with the number of runbooks. `python -m bench.run` measures them against
`paramedic serve` on SQLite and rewrites the results section below.

"""


def update_doc(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else HEADER
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 30 s); does not write the doc")
    parser.add_argument("--write", dest="write", action="store_true", default=None, help="write docs/benchmarks.md")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    parser.add_argument("--output", type=Path, default=DOC, help="the markdown file to update")
    parser.add_argument("--workers", type=int, default=4, help="paramedic workers (the config's default is 4)")
    parser.add_argument("--profile", type=Path, help="sample the server with py-spy into this folder")
    parser.add_argument("--rate", type=float, help="alerts/s of one latency load (default: 10, then 50)")
    parser.add_argument("--seconds", type=float, help="seconds of that load (default 10 and 20; quick 3 and 5)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rate or args.seconds:
        rate, seconds = sizes.latency[-1]
        sizes = replace(sizes, latency=((args.rate or rate, args.seconds or seconds),))
    write = (not args.quick) if args.write is None else args.write
    console = Console(width=None if sys.stdout.isatty() else 140)
    info = machine()
    when = datetime.now(UTC)
    console.print(f"[bold]paramedic benchmarks[/] {'(quick)' if args.quick else ''} on {info['CPU model']}")

    reports = [match_report(sizes)]
    render_rich(reports, console)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="paramedic-bench-") as tmp, Stack(Path(tmp), workers=args.workers) as stack:
        latency, ingest = asyncio.run(server_loads(stack, sizes, args.profile))
    reports += [latency, ingest]
    render_rich(reports[1:], console)
    if write:
        update_doc(args.output, render_markdown(reports, info, quick=args.quick, when=when))
        console.print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
