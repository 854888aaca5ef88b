"""``paramedic backtest`` at the size of a real month: 30 days, 100 runbooks, 50,000 episodes.

The history is generated in memory (no Prometheus: this measures the replay, not the reader):
100 alert names, each with its own runbook, spread over 20 services of 10 instances; every
runbook has a rate limit, a third add a blast radius over declared targets, a third a circuit
breaker, a quarter ``require.firing_for``; episodes last from seconds to an hour, and some alerts
flap. The time covers the replay, the per-runbook summary, the data-quality checks and writing the
report with both charts.

Run: ``.venv/bin/python -m bench.backtest`` (``--episodes``, ``--runbooks``, ``--days``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from paramedic.core.runbooks import Runbook
from paramedic.testing.backtest import Backtest, Settings, declared_targets
from paramedic.testing.backtest_report import write_report
from paramedic.testing.backtest_summary import summarize
from paramedic.testing.data_quality import assess
from paramedic.testing.history import Episode, Period

SERVICES = 20
INSTANCES = 10
START = datetime(2026, 10, 1, tzinfo=UTC)


def runbooks(count: int) -> list[Runbook]:
    books = []
    for i in range(count):
        guardrails: dict[str, object] = {"rate_limit": {"max": 3, "per": "1h", "scope": "target"}}
        if i % 3 == 0:
            guardrails["blast_radius"] = {"scope": ["service"], "max_concurrent": 2, "max_fraction": 0.3}
        if i % 3 == 1:
            guardrails["circuit_breaker"] = {"failures": 3, "window": "1h", "cooldown": "30m"}
        books.append(
            Runbook.model_validate(
                {
                    "name": f"rb-{i}",
                    "owner": "bench",
                    "match": {"alertname": f"Alert{i}"},
                    "target": "{{ labels.instance }}",
                    "require": {"firing_for": "1m"} if i % 4 == 0 else {},
                    "guardrails": guardrails,
                    "steps": [{"action": "shell.run", "with": {"argv": ["true", "{{ labels.instance }}"]}}],
                    "verify": {"alert_resolved": {"within": "5m"}},
                }
            )
        )
    return books


def episodes(count: int, *, names: int, days: int, seed: int = 7) -> list[Episode]:
    rnd = random.Random(seed)
    span = timedelta(days=days).total_seconds()
    out = []
    for n in range(count):
        name = rnd.randrange(names)
        service = name % SERVICES
        start = START + timedelta(seconds=rnd.uniform(0, span))
        if rnd.random() < 0.1:  # a flapping burst: short episodes close together
            lasted = timedelta(seconds=rnd.uniform(5, 90))
        else:
            lasted = timedelta(seconds=rnd.expovariate(1 / 600))
        labels = {"service": f"svc-{service}", "instance": f"svc-{service}-{rnd.randrange(INSTANCES)}"}
        out.append(
            Episode(
                key=f"e{n}",
                source="alertmanager",
                name=f"Alert{name}",
                labels=labels,
                starts_at=start,
                seen_at=start + timedelta(seconds=30),
                ends_at=start + lasted,
            )
        )
    return sorted(out, key=lambda e: (e.seen_at, e.key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50_000)
    parser.add_argument("--runbooks", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    books = runbooks(args.runbooks)
    history = episodes(args.episodes, names=args.runbooks, days=args.days)
    period = Period(START, START + timedelta(days=args.days))
    declared = [({"service": f"svc-{s}"}, [f"svc-{s}-{i}" for i in range(INSTANCES)]) for s in range(SERVICES)]
    settings = Settings(targets=declared_targets(declared, books))
    c0, t0 = time.process_time(), time.perf_counter()
    result = asyncio.run(Backtest(books).run(history, period, settings))
    t1 = time.perf_counter()
    summaries = summarize(result)
    quality = assess(result)
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        write_report(result, quality, Path(out))
    t3, c3 = time.perf_counter(), time.process_time()
    acted = sum(s.acted for s in summaries)
    refused = sum(sum(s.refusals.values()) for s in summaries)
    print(
        f"{args.episodes} episodes, {args.runbooks} runbooks, {args.days} days: "
        f"{len(result.decisions)} decisions ({acted} acted, {refused} refused)"
    )
    print(
        f"replay {t1 - t0:.1f}s, summary + data quality {t2 - t1:.1f}s, report {t3 - t2:.1f}s, "
        f"total {t3 - t0:.1f}s wall, {c3 - c0:.1f}s CPU; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
