"""Runbook match time through ``paramedic.core.matcher.MatchIndex``, in process, with no I/O.

Each runbook matches its own alertname (plus a ``service`` label), the common shape of a large
runbook repository; optionally a share of the runbooks match by regex only, which the index
cannot key on and has to check for every alert.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from paramedic.core.alerts import Alert, AlertStatus, Source
from paramedic.core.matcher import MatchIndex
from paramedic.core.runbooks import Match, Runbook

SERVICES = 50


@dataclass(frozen=True, slots=True)
class MatchResult:
    runbooks: int
    regex_only: int
    lookups: int
    build_ms: float
    us_per_match: float
    hit_rate: float


def _runbooks(count: int, regex_only: int) -> list[Runbook]:
    books = []
    for i in range(count):
        if i < regex_only:
            match = Match(alertname=f"~Regex{i}[A-Z]+", labels={"service": f"~svc-{i % SERVICES}"})
        else:
            match = Match(alertname=f"Alert{i}", labels={"service": f"svc-{i % SERVICES}"})
        books.append(Runbook(name=f"rb-{i}", owner="bench", match=match))
    return books


def _alerts(count: int, runbooks: int, rng: random.Random) -> list[Alert]:
    now = datetime.now(UTC)
    out = []
    for n in range(count):
        i = rng.randrange(runbooks)
        name = f"Alert{i}" if n % 10 else f"Unknown{n}"  # one in ten matches nothing
        labels = {"alertname": name, "service": f"svc-{i % SERVICES}", "instance": f"10.0.{n % 250}.{i % 250}:9100"}
        out.append(
            Alert(
                source=Source.ALERTMANAGER,
                fingerprint=f"{n:016x}",
                name=name,
                status=AlertStatus.FIRING,
                starts_at=now,
                labels=labels,
            )
        )
    return out


def measure(runbooks: int, *, lookups: int, regex_only: int = 0, seed: int = 7) -> MatchResult:
    """Build the index over ``runbooks`` runbooks, then time ``lookups`` matches (µs each)."""
    books = _runbooks(runbooks, regex_only)
    began = time.perf_counter()
    index = MatchIndex.build(books)
    build_ms = (time.perf_counter() - began) * 1000
    alerts = _alerts(min(lookups, 5000), runbooks, random.Random(seed))
    for a in alerts[:200]:  # warm up, and check the answers while at it
        hits = index.match(a)
        assert len(hits) <= 1 or regex_only, (a.name, [h.name for h in hits])
    matched = 0
    began = time.perf_counter()
    for n in range(lookups):
        if index.match(alerts[n % len(alerts)]):
            matched += 1
    elapsed = time.perf_counter() - began
    return MatchResult(
        runbooks=runbooks,
        regex_only=regex_only,
        lookups=lookups,
        build_ms=build_ms,
        us_per_match=elapsed / lookups * 1e6,
        hit_rate=matched / lookups,
    )
