"""``python -m bench.replicas [--quick]``: throughput of 1, 2 and 3 replicas on one PostgreSQL.

For each replica count: that many ``paramedic serve`` child processes on a fresh schema of one
PostgreSQL, HAProxy (Debian's) in front of them, and the receiver of ``bench.receiver`` as the
action target. Two closed loads, each bounded in alerts and seconds, all on 127.0.0.1:

1. ingest: single-alert Alertmanager webhooks from concurrent clients; each alert opens an
   incident and records a planned run (observe mode), with its audit entries;
2. actions: alerts whose runbook acts (auto mode, one ``http.request`` to the receiver); the figure
   is alerts sent to actions done, first webhook to last action.

While each load runs it samples ``pg_stat_activity`` (the replicas connect with their own
``application_name``) to see how many of their sessions wait for the advisory lock that orders
audited writes, and reads every process's CPU time from /proc. Last, in one process with one alert
at a time, it measures how long each alert holds that lock (the serial section of the cluster).
``--write`` (the default for a full run) replaces the tables of the section "Replicas on
PostgreSQL" in ``docs/benchmarks.md`` (between its markers) and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench import loads
from bench.run import machine
from bench.stack import INGEST_ALERT, LATENCY_ALERT, REPO, Child, free_port, runbooks_yaml
from paramedic.store.db import WRITE_LOCK

DOC = REPO / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:replicas:begin (written by `python -m bench.replicas`; edit outside these markers) -->"
END = "<!-- bench:replicas:end -->"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Sizes:
    ingest_alerts: int
    ingest_clients: int
    action_alerts: int
    action_clients: int
    time_limit: float
    workers: int


FULL = Sizes(ingest_alerts=4000, ingest_clients=24, action_alerts=800, action_clients=16, time_limit=30, workers=4)
QUICK = Sizes(ingest_alerts=600, ingest_clients=16, action_alerts=150, action_clients=8, time_limit=10, workers=4)


# ---- CPU and lock sampling ---------------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


@dataclass(frozen=True)
class LockFigures:
    """Means over the samples of one load."""

    waiting: float  # sessions waiting for the advisory write lock
    held: float  # share of samples in which a replica's session held it
    holder_in_client: float  # of those, share in which the holder was idle in transaction: the replica's turn
    running: float  # sessions executing a statement (not waiting for a lock)


@dataclass
class LockSampler:
    """Samples the replicas' sessions every 50 ms: who waits for the advisory write lock, whether
    one holds it, and whether the holder is executing a statement in PostgreSQL (``active``) or
    the server is waiting for the replica's next statement (``idle in transaction``)."""

    url: str
    app: str
    samples: list[tuple[int, int, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LockSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        engine = create_engine(self.url)
        q = text(
            "SELECT"
            " (SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"
            "   AND wait_event_type = 'Lock' AND wait_event = 'advisory'),"
            " (SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"
            "   AND state = 'active' AND wait_event_type IS DISTINCT FROM 'Lock'),"
            " (SELECT a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            "   WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key"
            "   AND a.application_name = :app LIMIT 1)"
        )
        try:
            with engine.connect() as conn:
                while not self._stop.is_set():
                    waiting, running, holder = conn.execute(q, {"app": self.app, "key": WRITE_LOCK}).one()
                    conn.commit()
                    self.samples.append((int(waiting), int(running), holder))
                    self._stop.wait(0.05)
        finally:
            engine.dispose()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def figures(self) -> LockFigures:
        n = max(1, len(self.samples))
        held = [h for _, _, h in self.samples if h is not None]
        return LockFigures(
            waiting=sum(w for w, _, _ in self.samples) / n,
            held=len(held) / n,
            holder_in_client=sum(1 for h in held if h.startswith("idle")) / max(1, len(held)),
            running=sum(r for _, r, _ in self.samples) / n,
        )


@dataclass
class CpuWindow:
    """CPU seconds used by each group of processes, and the machine's busy share, over a load."""

    groups: dict[str, list[int]]
    start: dict[str, float] = field(default_factory=dict)  # CPU seconds per pid at the start
    used: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0
    _m0: tuple[float, float] = (0.0, 0.0)

    def __enter__(self) -> CpuWindow:
        self.groups["postgres"] = postgres_pids()
        self.groups["load generator"] = [os.getpid()]
        self.start = {str(p): cpu_of(p) for pids in self.groups.values() for p in pids}
        self._m0 = machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        m1 = machine_busy()
        self.busy = (m1[0] - self._m0[0]) / max(1.0, m1[1] - self._m0[1])
        # PostgreSQL backends come and go: count every one alive at the end, from zero if born since
        self.groups["postgres"] = postgres_pids()
        self.used = {
            k: sum(max(0.0, cpu_of(p) - self.start.get(str(p), 0.0)) for p in pids) for k, pids in self.groups.items()
        }


# ---- the cluster under test --------------------------------------------------------------------------


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield schema
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class Cluster:
    receiver: str
    entry: str  # HAProxy's frontend (or the only replica)
    replicas: list[Child]
    ports: list[int]
    lb: Child | None
    app: str


@contextmanager
def cluster(workdir: Path, *, url: str, schema: str, replicas: int, workers: int) -> Iterator[Cluster]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(REPO / "src"), env.get("PYTHONPATH", "")]))
    children: list[Child] = []
    app = f"bench_{schema}"
    sep = "&" if "?" in url else "?"
    database = f"{url}{sep}options=-csearch_path%3D{schema}&application_name={app}"
    try:
        rport = free_port()
        receiver = f"http://127.0.0.1:{rport}"
        children.append(
            Child(
                [sys.executable, "-m", "bench.receiver", "--port", str(rport)],
                ready_url=f"{receiver}/hits",
                log=workdir / "receiver.log",
                env=env,
                cwd=REPO,
            )
        )
        (workdir / "runbooks").mkdir()
        (workdir / "runbooks" / "bench.yaml").write_text(runbooks_yaml(receiver))
        members: list[Child] = []
        ports: list[int] = []
        for i in range(replicas):
            port = free_port()
            config = workdir / f"replica{i}.yaml"
            config.write_text(
                textwrap.dedent(
                    f"""\
                    listen: 127.0.0.1:{port}
                    database: "{database}"
                    runbooks: [runbooks/]
                    workers: {workers}
                    log_format: text
                    """
                )
            )
            member = Child(
                [sys.executable, "-m", "paramedic.cli", "serve", "--config", str(config)],
                ready_url=f"http://127.0.0.1:{port}/readyz",
                log=workdir / f"replica{i}.log",
                env=env,
                cwd=workdir,
            )
            children.append(member)
            members.append(member)
            ports.append(port)
        lb, entry = None, f"http://127.0.0.1:{ports[0]}"
        haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
        if haproxy and replicas > 1:
            lport = free_port()
            servers = "\n".join(f"    server r{i} 127.0.0.1:{p} check inter 1s" for i, p in enumerate(ports))
            (workdir / "haproxy.cfg").write_text(
                "defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n"
                f"frontend paramedic\n    bind 127.0.0.1:{lport}\n    default_backend replicas\n"
                "backend replicas\n    balance roundrobin\n    option httpchk\n"
                "    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1\n"
                f"{servers}\n"
            )
            entry = f"http://127.0.0.1:{lport}"
            lb = Child(
                [haproxy, "-f", str(workdir / "haproxy.cfg"), "-db"],
                ready_url=f"{entry}/healthz",
                log=workdir / "haproxy.log",
                env=env,
                cwd=workdir,
            )
            children.append(lb)
        yield Cluster(receiver=receiver, entry=entry, replicas=members, ports=ports, lb=lb, app=app)
    finally:
        for child in reversed(children):
            child.stop()


# ---- the loads -----------------------------------------------------------------------------------------


@dataclass
class Row:
    replicas: int
    ingest: loads.IngestResult
    ingest_lock: LockFigures
    ingest_cpu: CpuWindow
    actions_sent: int
    actions_done: int
    actions_repeats: int
    actions_seconds: float
    actions_lock: LockFigures
    actions_cpu: CpuWindow

    @property
    def actions_per_s(self) -> float:
        return self.actions_done / self.actions_seconds if self.actions_seconds > 0 else 0.0


async def action_load(c: Cluster, sizes: Sizes, prefix: str) -> tuple[int, int, int, float]:
    """Send alerts whose runbook acts; wait for their actions. (sent, done, repeats, seconds)."""
    began = time.monotonic_ns()
    sent = await loads.ingest(
        webhook=f"{c.entry}/api/v1/alerts/alertmanager",
        label="actions",
        alertname=LATENCY_ALERT,
        prefix=prefix,
        total_alerts=sizes.action_alerts,
        per_request=1,
        concurrency=sizes.action_clients,
        time_limit=sizes.time_limit,
    )
    deadline = time.monotonic() + sizes.time_limit + 30
    arrivals: dict[str, int] = {}
    repeats = 0
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            data = (await client.get(f"{c.receiver}/hits")).json()
            arrivals = {k: v for k, v in data["arrivals"].items() if k.startswith(prefix)}
            repeats = int(data["repeats"])
            if len(arrivals) >= sent.alerts:
                break
            await asyncio.sleep(0.1)
    last = max(arrivals.values(), default=began)
    return sent.alerts, len(arrivals), repeats, (last - began) / 1e9


def measure(n: int, *, url: str, sizes: Sizes) -> Row:
    with (
        fresh_schema(url) as schema,
        tempfile.TemporaryDirectory(prefix="paramedic-bench-replicas-") as tmp,
        cluster(Path(tmp), url=url, schema=schema, replicas=n, workers=sizes.workers) as c,
    ):
        groups = {"replicas": [m.pid for m in c.replicas], "haproxy": [c.lb.pid] if c.lb else []}
        # warm up every replica (connections, first statements), then measure
        asyncio.run(
            loads.ingest(
                webhook=f"{c.entry}/api/v1/alerts/alertmanager",
                label="warm-up",
                alertname=INGEST_ALERT,
                prefix="warm",
                total_alerts=30 * n,
                per_request=1,
                concurrency=4,
                time_limit=10,
            )
        )
        with LockSampler(url, c.app) as lock_i, CpuWindow(dict(groups)) as cpu_i:
            ingest = asyncio.run(
                loads.ingest(
                    webhook=f"{c.entry}/api/v1/alerts/alertmanager",
                    label="1 alert per webhook",
                    alertname=INGEST_ALERT,
                    prefix="ingest",
                    total_alerts=sizes.ingest_alerts,
                    per_request=1,
                    concurrency=sizes.ingest_clients,
                    time_limit=sizes.time_limit,
                )
            )
        with LockSampler(url, c.app) as lock_a, CpuWindow(dict(groups)) as cpu_a:
            sent, done, repeats, seconds = asyncio.run(action_load(c, sizes, "act"))
    return Row(
        replicas=n,
        ingest=ingest,
        ingest_lock=lock_i.figures(),
        ingest_cpu=cpu_i,
        actions_sent=sent,
        actions_done=done,
        actions_repeats=repeats,
        actions_seconds=seconds,
        actions_lock=lock_a.figures(),
        actions_cpu=cpu_a,
    )


# ---- the serial section, in process --------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Advisory write lock held per alert, by transaction, measured in one process without contention."""

    alerts: int
    per_alert: dict[str, tuple[float, float]]  # transaction → (transactions per alert, mean ms held)

    @property
    def total_ms(self) -> float:
        return sum(n * ms for n, ms in self.per_alert.values())


def _kind(statement: str) -> str:
    """Name a transaction by its first statement after the lock."""
    if statement.startswith("SELECT trust."):
        return "ingest"
    if "SKIP LOCKED" in statement:
        return "worker claim"
    if statement.startswith("SELECT runs.lease_owner"):
        return "run step (guardrails, step result, end)"
    return "other (approvals, outbox, …)"


def lock_budget(url: str, *, alertname: str, alerts: int, receiver: str) -> Budget:
    """Alerts one at a time through ``Paramedic.ingest`` (workers running), on a fresh schema; the
    time from ``pg_advisory_xact_lock`` returning to COMMIT, summed per kind of transaction."""
    import statistics

    from sqlalchemy import event

    from paramedic.core.config import Config
    from paramedic.engine.service import Paramedic
    from paramedic.ingest import alertmanager as am

    held: dict[str, list[float]] = {}
    since: dict[int, tuple[float, str | None]] = {}
    with fresh_schema(url) as schema, tempfile.TemporaryDirectory(prefix="paramedic-bench-budget-") as tmp:
        (Path(tmp) / "bench.yaml").write_text(runbooks_yaml(receiver))
        sep = "&" if "?" in url else "?"
        pm = Paramedic.from_config(
            Config(database=f"{url}{sep}options=-csearch_path%3D{schema}", runbooks=[tmp], workers=4)
        )

        @event.listens_for(pm.db.engine, "after_cursor_execute")
        def _statement(conn: Any, _c: Any, statement: str, *_: Any) -> None:
            if "pg_advisory_xact_lock" in statement:
                since[id(conn)] = (time.perf_counter(), None)
            elif id(conn) in since and since[id(conn)][1] is None:
                since[id(conn)] = (since[id(conn)][0], _kind(statement))

        @event.listens_for(pm.db.engine, "commit")
        def _commit(conn: Any) -> None:
            began, kind = since.pop(id(conn), (None, None))
            if began is not None:
                held.setdefault(kind or "empty", []).append((time.perf_counter() - began) * 1000)

        async def drive() -> None:
            await pm.start()
            try:
                await asyncio.sleep(1.0)
                held.clear()
                for i in range(alerts):
                    body = loads.am_webhook(alertname, [loads.am_alert(alertname, f"budget-{i}")])
                    await pm.ingest(am.parse(json.loads(body)))
                    await asyncio.sleep(0.05)  # let this alert's run finish before the next one
                await asyncio.sleep(2.0)
            finally:
                await pm.stop()

        asyncio.run(drive())
    return Budget(alerts, {k: (len(v) / alerts, statistics.mean(v)) for k, v in held.items()})


# ---- the report ----------------------------------------------------------------------------------------


def cpu_text(w: CpuWindow, seconds: float) -> str:
    parts = [f"{k} {v / seconds:.2f}" for k, v in w.used.items() if w.groups.get(k)]
    return ", ".join(parts) + f"; machine {w.busy:.0%} busy"


def lock_text(f: LockFigures) -> str:
    return f"{f.held:.0%} ({f.holder_in_client:.0%}) | {f.waiting:.1f}"


def render(
    rows: Sequence[Row], budgets: Sequence[tuple[str, Budget]], info: dict[str, str], *, when: datetime, quick: bool
) -> str:
    base_i = rows[0].ingest.alerts_per_s or 1.0
    base_a = rows[0].actions_per_s or 1.0
    lines = [
        BEGIN,
        "",
        "## Replicas on PostgreSQL",
        "",
        f"Measured {when:%Y-%m-%d %H:%M} UTC{' (quick run)' if quick else ''} with `python -m bench.replicas`"
        f" on {info['CPUs (nproc)']} CPUs ({info['CPU model']}), commit {info['commit']}. PostgreSQL 15 on the same"
        " machine, HAProxy round robin in front of 2 and 3 replicas (4 workers each), the load generator in one"
        " more process: every process shares those CPUs.",
        "",
        "| replicas | ingest alerts/s | × 1 replica | request p50 / p99 ms | errors | write lock held"
        " (holder idle in transaction) | sessions waiting for it | CPU cores used |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.replicas} | {r.ingest.alerts_per_s:,.0f} | {r.ingest.alerts_per_s / base_i:.2f} | "
            f"{r.ingest.request_p50_ms:.0f} / {r.ingest.request_p99_ms:.0f} | {r.ingest.errors} | "
            f"{lock_text(r.ingest_lock)} | {cpu_text(r.ingest_cpu, r.ingest.seconds)} |"
        )
    lines += [
        "",
        "| replicas | alerts → actions | actions/s | × 1 replica | actions repeated | write lock held"
        " (holder idle in transaction) | sessions waiting for it | CPU cores used |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.replicas} | {r.actions_sent} → {r.actions_done} | {r.actions_per_s:,.1f} | "
            f"{r.actions_per_s / base_a:.2f} | {r.actions_repeats} | {lock_text(r.actions_lock)} | "
            f"{cpu_text(r.actions_cpu, r.actions_seconds)} |"
        )
    lines += [
        "",
        f"Ingest: {rows[0].ingest.concurrency} clients post single-alert Alertmanager webhooks back to back"
        " (observe-mode runbook: incident, planned run and audit entries per alert, one transaction per webhook)."
        f" Actions: {rows[0].actions_sent} alerts of an auto-mode runbook whose step is one `http.request`, sent by"
        f" {(QUICK if quick else FULL).action_clients} clients; the rate is"
        " alerts sent to actions done, first webhook to last action. 'Write lock held' is the share of 50 ms"
        " samples of `pg_stat_activity`/`pg_locks` in which a replica's session held the advisory lock that"
        " orders audited writes; in brackets, the share of those in which PostgreSQL was waiting for that"
        " replica's next statement. CPU is cores used on average per process group (replicas together,"
        " PostgreSQL with all its backends, HAProxy, the load generator) and how busy the whole machine was.",
        "",
        "The serial section: how long each alert holds the advisory write lock, measured in one process with"
        " one alert at a time (no waiting: from `pg_advisory_xact_lock` returning to COMMIT, per transaction):",
        "",
        "| alert | transaction | per alert | mean ms held | ms held per alert |",
        "|---|---|---|---|---|",
    ]
    for label, b in budgets:
        for kind, (count, mean) in sorted(b.per_alert.items(), key=lambda kv: -kv[1][0] * kv[1][1]):
            lines.append(f"| {label} | {kind} | {count:.2f} | {mean:.1f} | {count * mean:.1f} |")
        lines.append(
            f"| {label} | **all** | | | **{b.total_ms:.1f}** → at most {1000 / b.total_ms:,.0f} alerts/s"
            " for the whole cluster |"
        )
    lines += ["", END]
    return "\n".join(lines) + "\n"


def update_doc(path: Path, block: str) -> None:
    """Replace this benchmark's tables (between its markers) or append them; the rest of the file,
    the analysis under the tables included, stays as it is. The file is read right before it is
    written, since another benchmark and its author write it too."""
    text_ = path.read_text() if path.exists() else "# Benchmarks\n"
    body = block
    if BEGIN in text_ and END in text_:
        head, _, rest = text_.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text_ = head + body.rstrip("\n") + tail
    else:
        text_ = text_.rstrip("\n") + "\n\n" + body
    path.write_text(text_)


def measure_budgets(url: str, *, quick: bool) -> list[tuple[str, Budget]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    with tempfile.TemporaryDirectory(prefix="paramedic-bench-receiver-") as tmp:
        port = free_port()
        receiver = f"http://127.0.0.1:{port}"
        child = Child(
            [sys.executable, "-m", "bench.receiver", "--port", str(port)],
            ready_url=f"{receiver}/hits",
            log=Path(tmp) / "receiver.log",
            env=env,
            cwd=REPO,
        )
        try:
            return [
                (
                    "observe-mode",
                    lock_budget(url, alertname=INGEST_ALERT, alerts=50 if quick else 200, receiver=receiver),
                ),
                (
                    "auto-mode",
                    lock_budget(url, alertname=LATENCY_ALERT, alerts=30 if quick else 100, receiver=receiver),
                ),
            ]
        finally:
            child.stop()


def print_rows(rows: Sequence[Row]) -> None:
    for r in rows:
        print(
            f"{r.replicas} replica(s): ingest {r.ingest.alerts_per_s:,.0f} alerts/s "
            f"(p50 {r.ingest.request_p50_ms:.1f} ms, p99 {r.ingest.request_p99_ms:.1f} ms, {r.ingest.errors} errors; "
            f"lock held {r.ingest_lock.held:.0%} (holder idle in transaction {r.ingest_lock.holder_in_client:.0%}),"
            f" {r.ingest_lock.waiting:.1f} waiting; {cpu_text(r.ingest_cpu, r.ingest.seconds)})"
        )
        print(
            f"   actions {r.actions_sent} → {r.actions_done} in {r.actions_seconds:.1f}s = {r.actions_per_s:,.1f}/s "
            f"(repeats {r.actions_repeats}; lock held {r.actions_lock.held:.0%} (holder idle in transaction"
            f" {r.actions_lock.holder_in_client:.0%}), {r.actions_lock.waiting:.1f} waiting;"
            f" {cpu_text(r.actions_cpu, r.actions_seconds)})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run; does not write the doc")
    parser.add_argument("--write", dest="write", action="store_true", default=None, help="write docs/benchmarks.md")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    parser.add_argument("--database", default=os.environ.get("PARAMEDIC_TEST_POSTGRES_URL") or DEFAULT_URL)
    parser.add_argument("--replicas", default="1,2,3", help="comma-separated replica counts (at most 3)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    counts = [min(3, max(1, int(x))) for x in args.replicas.split(",")]
    write = (not args.quick) if args.write is None else args.write
    info = machine()
    when = datetime.now(UTC)
    rows = []
    for n in counts:
        print(f"measuring {n} replica(s) …", flush=True)
        rows.append(measure(n, url=args.database, sizes=sizes))
        print_rows(rows[-1:])
    budgets = measure_budgets(args.database, quick=args.quick)
    for label, b in budgets:
        print(f"write lock held per {label} alert: {b.total_ms:.1f} ms ({b.per_alert})")
    if write:
        update_doc(DOC, render(rows, budgets, info, when=when, quick=args.quick))
        print(f"results written to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
