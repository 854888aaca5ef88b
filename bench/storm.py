"""``python -m bench.storm``: an alert storm against a real ``paramedic serve`` on SQLite.

10,000 distinct alerts arrive as Alertmanager would send them in a storm: Alertmanager-sized groups
(``--group`` alerts per webhook, each alert with realistic labels and annotations) posted by
``--concurrency`` clients at once. Then one body holding every alert at once (``--single``; what an
Alertmanager without ``max_alerts`` sends when one group holds them all). Reported:

- every alert stored (incidents in the database, counted with sqlite3 after the run);
- the slowest delivery (Alertmanager's default webhook timeout is 10 s; PagerDuty's is 5 s);
- the notifications a human would receive: rows the outbox holds for the storm, per sink and
  event, and how long the log sink took to send them all.

Half the alerts match an ``observe`` runbook (matched and planned, recorded as a suggestion), half
match none; both are escalated to a human, so each alert is one notification unless notifications
are grouped. Bounded: a fixed number of requests to 127.0.0.1, each with a timeout; the server is
stopped at the end, always.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.stack import INGEST_ALERT, Stack

JSON = {"Content-Type": "application/json"}


def storm_alert(n: int, *, matched: bool, run: str) -> dict[str, object]:
    """One alert as Alertmanager 0.25 sends it, sized like a real rule's (labels and annotations)."""
    alertname = INGEST_ALERT if matched else "StormInstanceDown"
    instance = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}:9100"
    labels = {
        "alertname": alertname,
        "service": "bench",
        "instance": instance,
        "job": "node",
        "cluster": "prod-eu-1",
        "namespace": "payments",
        "pod": f"payments-api-{n:05d}-7d9f8",
        "severity": "page",
        "team": "payments",
        "storm": run,
    }
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": f"Instance {instance} of job node has been down for more than 1 minute.",
            "description": f"{instance} of job node (pod payments-api-{n:05d}) stopped answering its scrape; "
            "the node exporter is unreachable and the pod may be stuck.",
            "runbook_url": "https://runbooks.example.com/node/InstanceDown",
        },
        "startsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up%7Bjob%3D%22node%22%7D+%3D%3D+0&g0.tab=1",
        "fingerprint": hashlib.sha256(f"{run}/{n}".encode()).hexdigest()[:16],
    }


def webhook(alerts: list[dict[str, object]], group: int) -> bytes:
    common = {"service": "bench", "storm": alerts[0]["labels"]["storm"]}  # type: ignore[index]
    return json.dumps(
        {
            "receiver": "paramedic",
            "status": "firing",
            "alerts": alerts,
            "groupLabels": {"service": "bench", "shard": str(group)},
            "commonLabels": common,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example.com:9093",
            "version": "4",
            "groupKey": f'{{}}:{{service="bench", shard="{group}"}}',
            "truncatedAlerts": 0,
        }
    ).encode()


@dataclass
class Result:
    name: str
    deliveries: int
    alerts: int
    megabytes: float
    statuses: dict[int, int]
    slowest_s: float
    total_s: float


async def send(url: str, bodies: list[bytes], *, concurrency: int, name: str, alerts: int) -> Result:
    queue = list(enumerate(bodies))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    began = time.perf_counter()

    async def client() -> None:
        async with httpx.AsyncClient(timeout=120) as c:
            while queue:
                _, body = queue.pop()
                t0 = time.perf_counter()
                try:
                    r = await c.post(url, content=body, headers=JSON)
                    code = r.status_code
                except httpx.HTTPError:
                    code = 0
                latencies.append(time.perf_counter() - t0)
                statuses[code] = statuses.get(code, 0) + 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Result(
        name,
        len(bodies),
        alerts,
        sum(len(b) for b in bodies) / 1e6,
        statuses,
        max(latencies),
        time.perf_counter() - began,
    )


def stored(db: Path, run: str) -> int:
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM incidents WHERE json_extract(labels, '$.storm') = ?", (run,)
        ).fetchone()
    return int(n)


async def all_stored(db: Path, run: str, expected: int, limit: float) -> float:
    """Seconds until every alert of ``run`` is an incident (large deliveries are recorded after their
    202, from the inbox), bounded by ``limit``."""
    began = time.perf_counter()
    while time.perf_counter() - began < limit:
        if stored(db, run) >= expected:
            return time.perf_counter() - began
        await asyncio.sleep(0.5)
    return float("inf")


def notifications(db: Path) -> dict[tuple[str, str, str], int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT sink, event, status, count(*) FROM outbox GROUP BY sink, event, status").fetchall()
    return {(str(s), str(e), str(st)): int(n) for s, e, st, n in rows}


def messages(db: Path) -> int:
    """Messages a human receives: sent rows not folded into another row's grouped message."""
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute("SELECT count(*) FROM outbox WHERE status = 'sent' AND grouped_into IS NULL").fetchone()
    return int(n)


async def drained(db: Path, limit: float) -> tuple[float, int]:
    """Seconds until the outbox has nothing pending (``inf`` past ``limit``), and what is still pending."""
    began = time.perf_counter()
    pending = -1
    while time.perf_counter() - began < limit:
        with sqlite3.connect(db) as conn:
            (pending,) = conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()
        if pending == 0:
            return time.perf_counter() - began, 0
        await asyncio.sleep(0.5)
    return float("inf"), int(pending)


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="paramedic-storm-") as tmp, Stack(Path(tmp), workers=4) as stack:
        db = Path(tmp) / "paramedic.db"
        results = []
        run = "grouped"
        alerts = [storm_alert(n, matched=n % 2 == 0, run=run) for n in range(args.alerts)]
        bodies = [webhook(alerts[i : i + args.group], i // args.group) for i in range(0, len(alerts), args.group)]
        results.append(
            await send(
                stack.webhook,
                bodies,
                concurrency=args.concurrency,
                name=f"{args.group}-alert groups",
                alerts=len(alerts),
            )
        )
        grouped_store_s = await all_stored(db, run, len(alerts), args.drain_limit)
        grouped_stored = stored(db, run)
        drain_s, still_pending = await drained(db, args.drain_limit)
        grouped_notes = notifications(db)
        sent_messages = messages(db)
        single_stored, single_store_s = None, float("nan")
        if args.single:
            run = "single"
            alerts = [storm_alert(n, matched=n % 2 == 0, run=run) for n in range(args.alerts)]
            results.append(
                await send(stack.webhook, [webhook(alerts, 0)], concurrency=1, name="one body", alerts=len(alerts))
            )
            single_store_s = await all_stored(db, run, len(alerts), args.drain_limit)
            single_stored = stored(db, run)
        cpu = stack.server.cpu_seconds() if stack.server else float("nan")

    print(f"storm: {args.alerts} alerts; {args.concurrency} concurrent clients; paramedic serve on SQLite, 4 workers")
    print(f"{'deliveries':<22}{'count':>7}{'alerts':>8}{'MB':>7}{'answers':>16}{'slowest s':>11}{'total s':>9}")
    for r in results:
        answers = ",".join(f"{k}x{v}" for k, v in sorted(r.statuses.items()))
        print(
            f"{r.name:<22}{r.deliveries:>7}{r.alerts:>8}{r.megabytes:>7.1f}{answers:>16}{r.slowest_s:>11.2f}{r.total_s:>9.1f}"
        )
    print(
        f"stored (grouped run): {grouped_stored} of {args.alerts} incidents,"
        f" {grouped_store_s:.1f} s after the last answer"
    )
    if single_stored is not None:
        print(
            f"stored (one body):    {single_stored} of {args.alerts} incidents, {single_store_s:.1f} s after its answer"
        )
    total = sum(n for (_, _, _), n in grouped_notes.items())
    print(
        f"notifications queued for the grouped run: {total}; outbox drained {drain_s:.1f} s after every alert"
        f" was stored ({still_pending} still pending at the {args.drain_limit:g} s limit)"
    )
    for (sink, event, status), n in sorted(grouped_notes.items()):
        print(f"  {sink:<10} {event:<16} {status:<8} {n}")
    print(f"messages a human receives (each grouped message counted once): {sent_messages}")
    print(f"server CPU: {cpu:.1f} s")
    return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--alerts", type=int, default=10_000, help="distinct alerts in the storm (default 10,000)")
    p.add_argument("--group", type=int, default=250, help="alerts per Alertmanager webhook (default 250)")
    p.add_argument("--concurrency", type=int, default=8, help="clients posting at once (default 8)")
    p.add_argument("--single", action="store_true", help="then send every alert again in one body")
    p.add_argument("--drain-limit", type=float, default=600.0, help="seconds to wait for the outbox to drain")
    raise SystemExit(asyncio.run(main_async(p.parse_args())))


if __name__ == "__main__":
    main()
