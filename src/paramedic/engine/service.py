"""The paramedic service object: ingest, workers, probes, the notifier, and operator commands.

One instance per process. ``ingest`` stores alerts durably (one transaction per request) and wakes
the workers; workers claim runs with leases and execute them through ``engine.runner``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError
from sqlalchemy import Connection

from paramedic.actions.registry import ExecutorRegistry, build_registry
from paramedic.core import trust
from paramedic.core.alerts import Alert
from paramedic.core.config import Config, Probe
from paramedic.core.errors import (
    ActionError,
    ConfigError,
    ParamedicError,
    PayloadError,
    StoreUnavailable,
    TemplateError,
)
from paramedic.core.freeze import parse_freeze_windows
from paramedic.core.guardrails import scope_key
from paramedic.core.incidents import Delivery
from paramedic.core.matcher import pinned
from paramedic.core.plan import Plan, build_recovery_plan
from paramedic.core.routing import owner_of_service
from paramedic.core.runbooks import Mode, Runbook
from paramedic.engine import enrichment, guard
from paramedic.engine.clock import Clock, utcnow
from paramedic.engine.metrics import METRICS
from paramedic.engine.notifier import Notifier, SettingsTickets
from paramedic.engine.runner import RunContext, Runner
from paramedic.engine.settings import environment, format_errors, read_audit_key, resolve_secrets
from paramedic.engine.silences import Silencer
from paramedic.ingest import alertmanager, generic, grafana
from paramedic.ingest import probes as probe_mod
from paramedic.ingest.common import Batch
from paramedic.notify import factory as sink_factory
from paramedic.runbooks import dsl as pyrunbooks
from paramedic.runbooks import loading as rb_loader
from paramedic.store import audit, checkpoints, inbox, lifecycle, migrate, readiness, state
from paramedic.store import incidents as inc_repo
from paramedic.store import runs as runs_repo
from paramedic.store.db import Database, make_engine
from paramedic.store.incidents import RunSeed
from paramedic.store.rows import IncidentRow, IngestResult, RunRow

log = logging.getLogger("paramedic.engine")
# alerts per transaction when recording a large delivery: short transactions, so that deliveries
# arriving meanwhile wait little for the write lock (250 made the slowest answer of a storm 19 s)
INBOX_CHUNK = 50
READERS: dict[str, Callable[..., Batch]] = {
    "alertmanager": alertmanager.read,
    "grafana": grafana.read,
    "generic": generic.read,
}
T = TypeVar("T")


class OperationError(ParamedicError):
    """An operator request that cannot be carried out (HTTP 409/404 with this message)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Paramedic:
    config: Config
    db: Database
    registry: ExecutorRegistry
    runbooks: rb_loader.RunbookSet
    clock: Clock = utcnow
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    _work: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))
    _tokens: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _http: httpx.AsyncClient | None = None
    notifier: Notifier | None = None
    enricher: enrichment.Enricher | None = None
    silencer: Silencer | None = None
    run_hooks: list[Callable[[RunRow, bool, str], Awaitable[None]]] = field(default_factory=list)
    policy: guard.Policy = field(default_factory=guard.Policy)
    _probe_health: dict[str, bool] = field(default_factory=dict)
    _inbox_ready: asyncio.Event = field(default_factory=asyncio.Event)
    _last_checkpoint: tuple[int, str] | None = None
    config_file: Path | None = None  # read again by ``reload`` (owners, route, runbooks)
    reload_on_sighup: bool = False  # ``paramedic serve`` sets it; threads in tests cannot take signals

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        clock: Clock = utcnow,
        registry: ExecutorRegistry | None = None,
        upgrade: bool = True,
    ) -> Paramedic:
        config = resolve_secrets(config)  # a Config built in code (tests, the demo) names them too
        registry = registry or build_registry(config.executors)
        loaded = rb_loader.load(config.runbooks, registry, lint=False)
        if loaded.errors:
            raise ConfigError(
                "runbooks are invalid:\n"
                + "\n".join(str(p) for p in loaded.errors)
                + "\nrun `paramedic validate` for details"
            )
        db = Database(make_engine(config.database))
        audit.bind_key(db.engine, read_audit_key(config))
        if upgrade:
            try:
                migrate.upgrade(db)
            except StoreUnavailable:
                raise
            except Exception as exc:  # translated: a wrong URL or an unreachable server
                raise StoreUnavailable(f"cannot prepare the database {config.database!r}: {exc}") from exc
        bind_routing(db, config)
        sink_factory.validate(config.sinks, environment())  # a bad sink or enrich entry fails here, not at start()
        enrichment.EnrichSettings.from_config(config.enrich_defaults)
        try:
            freeze = parse_freeze_windows(config.automation.freeze)
        except ValidationError as exc:
            raise ConfigError(format_errors(exc, "automation.freeze")) from None
        return cls(
            config=config,
            db=db,
            registry=registry,
            runbooks=rb_loader.RunbookSet.of(loaded),
            clock=clock,
            policy=guard.Policy(freeze=freeze, default_flap=config.automation.flap),
        )

    # ---- helpers ------------------------------------------------------------------------------
    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            with self.db.write() as conn:
                return fn(conn, *args, **kwargs)

        return await asyncio.to_thread(self.db.retrying, call)

    async def readiness(self) -> list[str]:
        """Why this replica should not take traffic now (empty when ready): the database must
        answer, take a write, and for SQLite have disk room (``store.readiness``)."""

        def check() -> list[str]:
            try:
                with self.db.read() as conn:
                    state.paused(conn)
            except StoreUnavailable as exc:
                return [str(exc)]
            reasons = [r] if (r := readiness.write_problem(self.db)) else []
            if (path := readiness.sqlite_file(self.db)) is not None and (r := readiness.disk_problem(path)):
                reasons.append(r)
            return reasons

        return await asyncio.to_thread(check)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            with self.db.read() as conn:
                return fn(conn, *args, **kwargs)

        return await asyncio.to_thread(call)

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient()
        return self._http

    # ---- ingest -------------------------------------------------------------------------------
    async def seeds_for(self, alert: Alert) -> list[RunSeed]:
        """Match and plan, before the transaction. A YAML runbook is rendered at once; a Python
        runbook is planned by recording, within its time budget (``runbooks.dsl``)."""
        if not alert.firing or alert.unreadable is not None:  # an unreadable alert goes to a human
            return []
        seeds = []
        for rb in self.runbooks.match(alert):
            try:
                plan = await pyrunbooks.plan_for(
                    rb, alert, now=self.clock(), registry=self.registry, changes=self._changes
                )
                version = self.runbooks.version(rb.name)
                seeds.append(RunSeed(rb.name, rb.mode, plan, approval_timeout=rb.approval_timeout, version=version))
            except (TemplateError, pyrunbooks.PlanningError) as exc:
                seeds.append(
                    RunSeed(rb.name, rb.mode, None, error=f"{rb.name}: {exc}", version=self.runbooks.version(rb.name))
                )
        return seeds

    @property
    def _changes(self) -> pyrunbooks.ChangeSource:
        """The change feed a Python runbook reads through ``ctx.changes``."""
        return enrichment.changes_from_db(self.db, self.registry)

    def _record(self, conn: Connection, alerts: Sequence[Alert], seeds: Sequence[list[RunSeed]]) -> list[IngestResult]:
        now = self.clock()
        rows = state.all_trust(conn)
        out = []
        for alert, s in zip(alerts, seeds, strict=True):
            s = [dataclasses.replace(x, mode=self._mode_in_force(x, rows.get(x.runbook))) for x in s]
            result = inc_repo.record(
                conn,
                alert,
                s,
                now=now,
                unknown_escalates=self.config.automation.unknown_alerts == "escalate",
                owner=self._owner_of(alert, s),
            )
            self._note_alert_targets(conn, alert, s, result, now)
            self._observe(conn, alert, result, now)
            if result.delivery is Delivery.RESOLVED and result.incident_id is not None:
                self._schedule_way_back(conn, alert, result.incident_id, now)
            out.append(result)
        return out

    def _schedule_way_back(self, conn: Connection, alert: Alert, incident_id: int, now: datetime) -> None:
        """The alert resolved: each runbook that acted on it and declares ``recover`` gets a run of
        its way back, claimable once the alert has stayed resolved for ``recover.after``."""
        done: set[str] = set()
        for run in runs_repo.for_incident(conn, incident_id):
            rb = self.runbooks.get(run.runbook)
            if run.status != "succeeded" or rb is None or rb.recover is None or run.runbook in done:
                continue
            if (run.plan or {}).get("recovery"):
                continue
            done.add(run.runbook)
            try:
                plan = build_recovery_plan(rb, alert)
            except TemplateError as exc:
                inc_repo.escalate(conn, incident_id, now=now, reason=f"{rb.name}: cannot plan its way back: {exc}")
                continue
            if plan is None:
                continue
            seed = RunSeed(rb.name, Mode(run.mode), plan, approval_timeout=rb.approval_timeout)
            inc_repo.schedule_recovery(conn, incident_id, seed, not_before=now + rb.recover.after, now=now)

    def _mode_in_force(self, seed: RunSeed, row: Any) -> Mode:
        """The file's mode is the ceiling; a mode trust or a human stored applies below it."""
        rb = self.runbooks.get(seed.runbook)
        return Mode(seed.mode) if rb is None else guard.mode_of(row, rb)

    def _observe(self, conn: Connection, alert: Alert, result: IngestResult, now: datetime) -> None:
        """Observed runs record every guardrail verdict, as if they were to act."""
        for run_id in result.runs:
            run = runs_repo.get(conn, run_id)
            rb = self.runbooks.get(run.runbook) if run is not None else None
            if run is None or rb is None or run.status != "observed" or not run.plan:
                continue
            guard.observe(
                conn, run, runbook=rb, plan=Plan.from_json(run.plan), labels=alert.labels, now=now, policy=self.policy
            )

    def _owner_of(self, alert: Alert, seeds: Sequence[RunSeed]) -> str:
        """The first matching runbook's owner, else the owner the config names for the service."""
        for seed in seeds:
            rb = self.runbooks.get(seed.runbook)
            if rb is not None:
                return rb.owner
        return owner_of_service(self.config.owners, alert.service)

    def _scope_lists(self) -> list[list[str]]:
        lists = {
            tuple(sorted(rb.guardrails.blast_radius.scope))
            for rb in self.runbooks.by_name.values()
            if rb.guardrails.blast_radius is not None
        }
        return [list(x) for x in sorted(lists)]

    def _note_alert_targets(
        self, conn: Connection, alert: Alert, seeds: Sequence[RunSeed], result: IngestResult, now: datetime
    ) -> None:
        """An alert marks the health of its runbooks' targets, never adds one: firing marks the
        planned target unhealthy, resolving marks the target its runs acted on healthy again. A
        target nothing lists (an executor, a probe, the config) stays unknown."""
        if result.delivery is Delivery.CREATED:
            marks = [(seed.runbook, seed.plan.target) for seed in seeds if seed.plan is not None]
        elif result.delivery is Delivery.RESOLVED and result.incident_id is not None:
            marks = runs_repo.targets_of_incident(conn, result.incident_id)
        else:
            return
        for name, target in marks:
            rb = self.runbooks.get(name)
            br = rb.guardrails.blast_radius if rb is not None else None
            if br is None or not target:
                continue
            state.mark_health(
                conn,
                scope_key(alert.labels, br.scope),
                target,
                healthy=result.delivery is Delivery.RESOLVED,
                origin="alert",
                now=now,
            )

    async def ingest(
        self, alerts: Sequence[Alert], *, also: Callable[[Connection], None] | None = None
    ) -> list[IngestResult]:
        """Store alerts durably; returns once committed. Raises ``StoreUnavailable`` (→ 503).
        ``also`` runs in the same transaction (the inbox records its progress there)."""
        seeds = [await self.seeds_for(a) for a in alerts]

        def record(conn: Connection) -> list[IngestResult]:
            out = self._record(conn, alerts, seeds)
            if also is not None:
                also(conn)
            return out

        results = await self.write(record)
        for a, r in zip(alerts, results, strict=True):
            METRICS.alerts.labels(source=a.source, delivery=r.delivery).inc()
        self._signal(sum(len(r.runs) for r in results))
        if self.enricher is not None:  # evidence for created incidents, fresh charts for resolved ones
            self.enricher.on_ingest(results)
        if self.notifier is not None and any(r.incident_id for r in results):
            self.notifier.kick()
        return results

    async def ingest_batch(self, batch: Batch) -> list[IngestResult]:
        """Store one delivery as read at the edge: its alerts (unreadable ones become escalated
        incidents of their own) and its echoes of paramedic's own notifications (linked to their
        incidents, in the same transaction as nothing else: an echo opens no incident)."""
        results = await self.ingest(batch.alerts) if batch.alerts else []
        if batch.echoes:
            now = self.clock()

            def link(conn: Connection) -> list[IngestResult]:
                return [inc_repo.link_echo(conn, echo, now=now) for echo in batch.echoes]

            linked = await self.write(link)
            for echo, r in zip(batch.echoes, linked, strict=True):
                METRICS.alerts.labels(source=echo.source, delivery=r.delivery).inc()
            results += linked
        return results

    # ---- the inbox: large deliveries, recorded after their 202 ---------------------------------
    async def enqueue(self, *, source: str, body: str, total: int) -> int:
        """Store a large delivery as received (``store.inbox``); returns once committed."""
        inbox_id = await self.write(inbox.put, source=source, body=body, total=total, now=self.clock())
        self._inbox_ready.set()
        return inbox_id

    async def drain_inbox(self) -> bool:
        """Record one waiting delivery, chunk by chunk; whether there was one."""
        lease = self.config.lease

        def claim() -> inbox.Pending | None:
            with self.db.write(serial=False) as conn:  # no audit entry: not behind the audit lock
                return inbox.claim(conn, now=self.clock(), lease=lease)

        pending = await asyncio.to_thread(claim)
        if pending is None:
            return False
        try:
            batch = READERS[pending.source](json.loads(pending.body), now=pending.received_at)
        except (KeyError, ValueError, PayloadError) as exc:  # it passed the envelope checks: a bug
            log.error("inbox delivery %s (%s) cannot be read again: %s", pending.id, pending.source, exc)
            await self.write(inbox.finish, pending.id, now=self.clock())
            return True
        for alert in batch.alerts[pending.done :]:
            if alert.unreadable is not None:
                METRICS.unreadable.labels(source=pending.source, reason=alert.unreadable.reason).inc()
        for start in range(pending.done, len(batch.alerts), INBOX_CHUNK):
            chunk = batch.alerts[start : start + INBOX_CHUNK]
            done = start + len(chunk)

            def progress(conn: Connection, done: int = done) -> None:
                inbox.advance(conn, pending.id, done=done, now=self.clock(), lease=lease)

            await self.ingest(chunk, also=progress)
        await self.write(inbox.finish, pending.id, now=self.clock())
        log.info("inbox delivery %s: %s %s alerts recorded", pending.id, len(batch.alerts), pending.source)
        return True

    async def _drain_inbox_forever(self) -> None:
        while True:
            try:
                while await self.drain_inbox():
                    pass
            except StoreUnavailable as exc:  # the lease lapses; this or another replica resumes
                log.error("inbox: %s; retrying", exc)
            self._inbox_ready.clear()
            with contextlib.suppress(TimeoutError):  # other replicas' deliveries, and leases that lapsed
                await asyncio.wait_for(self._inbox_ready.wait(), 2.0)

    # ---- workers ------------------------------------------------------------------------------
    def _signal(self, runs: int) -> None:
        """Wake one idle worker per new run (not all of them: each wake costs a write transaction)."""
        for _ in range(min(runs, self.config.workers - self._tokens)):
            self._tokens += 1
            self._work.release()

    async def _worker(self, n: int) -> None:
        ctx = RunContext(
            db=self.db,
            registry=self.registry,
            clock=self.clock,
            owner=f"{self.owner}/w{n}",
            lease=self.config.lease,
            max_attempts=self.config.max_run_attempts,
            http=self.http,
            runbook_of=self.runbooks.get,
            policy=self.policy,
            prometheus_url=self.config.prometheus_url,
            on_finished=self._on_finished,
        )
        poll = 1.0  # also how soon an expired lease (a crashed worker's run) is taken over
        while True:
            try:
                run = await self.write(runs_repo.claim, owner=ctx.owner, now=self.clock(), lease=ctx.lease)
            except StoreUnavailable as exc:
                log.error("worker %s: %s; retrying", n, exc)
                await asyncio.sleep(1.0)
                continue
            if run is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.acquire(), poll)
                    self._tokens = max(0, self._tokens - 1)
                continue
            try:
                if self.silencer is not None:
                    await self.silencer.on_claimed(run)
                await Runner(ctx, run).execute()
            except StoreUnavailable as exc:
                log.error("run %s interrupted: %s; it will resume when its lease expires", run.id, exc)
            except Exception:
                log.exception("run %s crashed; it will resume when its lease expires", run.id)

    async def _on_finished(self, run: RunRow, ok: bool, reason: str) -> None:
        METRICS.runs.labels(runbook=run.runbook, status="succeeded" if ok else "failed").inc()
        for hook in self.run_hooks:
            await hook(run, ok, reason)
        if self.notifier is not None:
            self.notifier.kick()

    async def refresh_executor_targets(self) -> int:
        """Ask executors for the members of each runbook's blast-radius scope (supervisord group
        members, HAProxy backend servers). Only where the runbook's match fixes every scope label,
        so the scope is known without an alert. Returns how many targets were listed."""
        listed = 0
        for rb in self.runbooks.by_name.values():
            br = rb.guardrails.blast_radius
            scope = static_scope(rb, br.scope) if br is not None else None
            if br is None or scope is None:
                continue
            executors = {
                id(ex): ex
                for step in rb.steps
                if step.action in self.registry.names()
                for ex in [self.registry.executor(step.action)]
            }
            for ex in executors.values():
                origin = "executor:" + ex.actions()[0].name.split(".")[0] if ex.actions() else "executor"
                try:
                    names = await asyncio.wait_for(ex.known_targets(scope), 10)
                except (ActionError, TimeoutError) as exc:
                    log.info("runbook %s: targets of %s not listed: %s", rb.name, scope, exc)
                    continue
                if names is not None:  # None: this executor cannot list the scope; [] : it is empty
                    listed += len(names)
                    await self.write(
                        state.replace_targets,
                        scope_key(scope, br.scope),
                        list(names),
                        origin=origin[:32],
                        now=self.clock(),
                    )
        return listed

    def declare_targets(self, conn: Connection) -> int:
        """The config's ``targets:`` become the known targets of each blast-radius scope with
        exactly those labels (replacing what the config declared before). Returns how many."""
        state.forget_origin(conn, "config")
        declared = 0
        for decl in self.config.targets:
            for keys in self._scope_lists():
                if set(keys) == set(decl.scope):
                    state.add_targets(
                        conn, scope_key(decl.scope, keys), decl.members, origin="config", now=self.clock()
                    )
                    declared += len(decl.members)
        return declared

    async def _refresh_targets_forever(self, every: float = 30.0) -> None:
        while True:
            try:
                await self.refresh_executor_targets()
            except StoreUnavailable as exc:
                log.error("cannot record executor targets: %s", exc)
            await asyncio.sleep(every)

    async def write_checkpoint(self) -> bool:
        """Sign the audit chain's head and append it to the checkpoint file, if the head moved
        since the last one this process wrote. Returns whether a checkpoint was written."""
        cps, key = self.config.audit.checkpoints, audit.bound_key(self.db.engine)
        if cps is None or key is None:
            return False
        cp = await self.read(audit.checkpoint, key, now=self.clock())
        if (cp.seq, cp.hash) == self._last_checkpoint:
            return False
        await asyncio.to_thread(checkpoints.write, Path(cps.file), cp)
        self._last_checkpoint = (cp.seq, cp.hash)
        return True

    async def _checkpoint_forever(self) -> None:
        assert self.config.audit.checkpoints is not None
        every = self.config.audit.checkpoints.every.total_seconds()
        while True:
            await asyncio.sleep(every)
            try:
                await self.write_checkpoint()
            except StoreUnavailable as exc:
                log.error("audit checkpoint not written: %s", exc)
            except OSError as exc:
                log.error("audit checkpoint not written to %s: %s", self.config.audit.checkpoints.file, exc)

    async def _expire_approvals(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.write(self._expire_once)
            except StoreUnavailable:
                continue

    def _expire_once(self, conn: Connection) -> None:
        now = self.clock()
        lifecycle.end_snoozes(conn, now=now)  # reminders go out on the notifier's next poll
        for run in runs_repo.expired_approvals(conn, now=now):
            runs_repo.finish(
                conn,
                run,
                status="expired",
                now=now,
                reason="nobody approved before the approval timed out",
            )

    # ---- probes -------------------------------------------------------------------------------
    async def _emit(self, alert: Alert) -> None:
        try:
            await self.ingest([alert])
        except StoreUnavailable as exc:
            log.error("probe alert %s not stored: %s", alert.name, exc)

    async def _on_check(self, probe: Probe, ok: bool) -> None:
        """Probes make their targets known to the blast-radius guardrail (written on change only)."""
        METRICS.probe_up.labels(probe=probe.name).set(1 if ok else 0)
        if self._probe_health.get(probe.name) == ok:
            return
        self._probe_health[probe.name] = ok
        target = probe.labels.get("instance") or probe.http or probe.tcp or probe.name

        def note(conn: Connection) -> None:
            for keys in self._scope_lists():
                state.note_targets(
                    conn, scope_key(probe.labels, keys), [(target, ok)], origin="probe", now=self.clock()
                )

        try:
            await self.write(note)
        except StoreUnavailable as exc:
            log.error("probe %s: cannot record target health: %s", probe.name, exc)

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self._work = asyncio.Semaphore(0)
        self._tokens = 0
        if self.reload_on_sighup:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
        if self.config.automation.paused:  # the config says paused: pause before any worker starts
            await self.set_paused(True, actor="config", reason="automation.paused is true in the config")
        # Every database call runs in a thread; the default pool (cores + 4) is far too small for
        # concurrent webhooks plus workers.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=64, thread_name_prefix="paramedic-db")
        )
        if self.enricher is not None and self.enricher.on_run_finished in self.run_hooks:
            self.run_hooks.remove(self.enricher.on_run_finished)
        self.enricher = enrichment.build(
            config=self.config,
            registry=self.registry,
            db=self.db,
            clock=self.clock,
            http=self.http,
            runbook_of=lambda name: self.runbooks.get(name),  # follows a reload of the runbooks
        )
        self.run_hooks.append(self.enricher.on_run_finished)  # charts redrawn with the actions taken
        if self.silencer is not None and self.silencer.on_finished in self.run_hooks:
            self.run_hooks.remove(self.silencer.on_finished)
        if self.config.silences is not None:  # no page for what is already being fixed
            self.silencer = Silencer(db=self.db, clock=self.clock, http=lambda: self.http, cfg=self.config.silences)
            self.run_hooks.append(self.silencer.on_finished)
        sinks = sink_factory.build_sinks(
            self.config.sinks, client=self.http, tickets=SettingsTickets(self.db, self.clock), env=environment()
        )
        self.notifier = Notifier(
            self.db,
            self.clock,
            sinks=sinks,
            collecting=self.enricher.busy,
            evidence_budget=self.enricher.settings.budget,
            policy=self.config.notifications,
        )
        self._tasks.append(asyncio.create_task(self.notifier.run()))
        self._tasks.append(asyncio.create_task(self.enricher.run()))
        for n in range(self.config.workers):
            self._tasks.append(asyncio.create_task(self._worker(n)))
        self._tasks.append(asyncio.create_task(self._expire_approvals()))
        self._inbox_ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._drain_inbox_forever()))
        await self.write(self.declare_targets)
        self._tasks.append(asyncio.create_task(self._refresh_targets_forever()))
        if self.config.audit.checkpoints is not None:
            await self.write_checkpoint()
            self._tasks.append(asyncio.create_task(self._checkpoint_forever()))
        for probe in self.config.probes:
            self._tasks.append(
                asyncio.create_task(
                    probe_mod.run_probe(
                        probe,
                        client=self.http,
                        clock=self.clock,
                        emit=self._emit,
                        on_check=self._on_check,
                    )
                )
            )
        log.info(
            "paramedic started: %d workers, %d probes, %d runbooks",
            self.config.workers,
            len(self.config.probes),
            len(self.runbooks.by_name),
        )

    async def stop(self) -> None:
        if self.reload_on_sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for t in self._tasks:
            t.cancel()
        if self.config.audit.checkpoints is not None:  # the head as this process leaves it
            try:
                await self.write_checkpoint()
            except (StoreUnavailable, OSError) as exc:
                log.error("final audit checkpoint not written: %s", exc)
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        for ex in self.registry.executors():
            close = getattr(ex, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        await self._drain_connections()
        self.db.dispose()

    async def _drain_connections(self, limit: float = 5.0) -> None:
        """Let database calls already running in threads finish before the pool is disposed, so
        no connection is left to the garbage collector (cancelling a task does not stop its thread)."""
        pool = self.db.engine.pool
        checked_out = getattr(pool, "checkedout", None)
        deadline = time.monotonic() + limit
        while checked_out is not None and checked_out() > 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - the pool offers no event
            await asyncio.sleep(0.05)

    # ---- operator commands --------------------------------------------------------------------
    async def on_incident(self, incident_id: int, change: Callable[..., IncidentRow], **kwargs: Any) -> IncidentRow:
        """A human change to an incident (``store.lifecycle``): 404 if it does not exist, 409 if
        it is resolved already. The change and its audit entry are one transaction."""
        try:
            row = await self.write(change, incident_id, now=self.clock(), **kwargs)
        except lifecycle.IncidentMissing as exc:
            raise OperationError(str(exc), status=404) from exc
        except lifecycle.IncidentClosed as exc:
            raise OperationError(str(exc)) from exc
        if self.notifier is not None:
            self.notifier.kick()
        return row

    async def reload(self, *, actor: str) -> dict[str, Any]:
        """Load the runbooks (and the config's ``owners`` and ``route``) again, validated first.
        Any error keeps the running set and raises ``OperationError`` (422) naming every problem;
        success swaps the set at once and audits which runbook changed to which version."""
        from paramedic.engine.settings import load_config

        def refused(why: str) -> OperationError:
            return OperationError(f"reload refused, the running runbooks stay in force: {why}", status=422)

        config = self.config
        restart: list[str] = []
        if self.config_file is not None:
            try:
                fresh = load_config(self.config_file)
            except ConfigError as exc:
                raise refused(str(exc)) from None
            live = {"owners", "route", "runbooks"}
            restart = sorted(
                k for k in Config.model_fields if k not in live and getattr(fresh, k) != getattr(config, k)
            )
            config = config.model_copy(update={k: getattr(fresh, k) for k in live})
        loaded = await asyncio.to_thread(rb_loader.load, config.runbooks, self.registry, lint=False)
        if loaded.errors:
            raise refused("; ".join(str(p) for p in loaded.errors))
        books = rb_loader.RunbookSet.of(loaded)
        old = self.runbooks.versions
        change = {
            "added": {n: v for n, v in books.versions.items() if n not in old},
            "removed": sorted(set(old) - set(books.versions)),
            "changed": {n: [old[n], v] for n, v in books.versions.items() if n in old and old[n] != v},
            "unchanged": sum(1 for n, v in books.versions.items() if old.get(n) == v),
            "restart_needed_for": restart,
        }
        self.runbooks, self.config = books, config
        bind_routing(self.db, config)
        await self.write(audit.append, at=self.clock(), kind="runbooks.reloaded", actor=actor, data=change)
        log.info("runbooks reloaded by %s: %s", actor, change)
        return change

    def _on_sighup(self) -> None:
        async def go() -> None:
            try:
                await self.reload(actor="SIGHUP")
            except OperationError as exc:
                log.error("%s", exc)

        self._tasks.append(asyncio.create_task(go()))

    async def reset_breaker(self, runbook: str, *, actor: str) -> int:
        if self.runbooks.get(runbook) is None:
            raise OperationError(f"no runbook named {runbook!r} is loaded", status=404)
        return await self.write(guard.reset_breaker, runbook, now=self.clock(), actor=actor)

    async def set_mode(self, runbook: str, mode: Mode, *, actor: str, reason: str) -> Mode:
        """Set a runbook's mode by hand, at most the file's mode (the ceiling), audited."""
        rb = self.runbooks.get(runbook)
        if rb is None:
            raise OperationError(f"no runbook named {runbook!r} is loaded", status=404)
        problem = trust.manual_mode_problem(mode, rb.mode)
        if problem is not None:
            raise OperationError(f"{runbook}: {problem}")

        def tx(conn: Connection) -> Mode:
            state.set_mode(
                conn,
                runbook,
                mode.value,
                ceiling=rb.mode.value,
                now=self.clock(),
                by=actor,
                reason=reason or "set by hand",
            )
            return guard.mode_of(state.trust_row(conn, runbook), rb)

        return await self.write(tx)

    async def mark_suggestion(self, run_id: int, *, right: bool, actor: str, reason: str = "") -> Mode:
        """A responder marks an observed run's suggestion right or wrong; returns the mode in force
        afterwards (marks count toward promotion from observe)."""

        def tx(conn: Connection) -> Mode:
            run = runs_repo.get(conn, run_id)
            if run is None:
                raise OperationError(f"run {run_id} does not exist", status=404)
            if run.status != "observed":
                raise OperationError(f"run {run_id} is {run.status}: only an observed suggestion is marked")
            rb = self.runbooks.get(run.runbook)
            if rb is None:
                raise OperationError(f"runbook {run.runbook!r} of run {run_id} is no longer loaded", status=404)
            return guard.mark_suggestion(conn, run, rb, right=right, actor=actor, reason=reason, now=self.clock())

        return await self.write(tx)

    async def mark_backtest(
        self, runbook: str, marks: Sequence[guard.BacktestMark], *, actor: str, backtest: str
    ) -> Mode:
        """A responder marks backtested episodes of ``runbook`` right or wrong (``paramedic backtest
        --marks``); in observe they count toward promotion. Returns the mode in force afterwards."""
        rb = self.runbooks.get(runbook)
        if rb is None:
            raise OperationError(f"no runbook named {runbook!r} is loaded", status=404)
        return await self.write(guard.mark_backtest, rb, marks, actor=actor, backtest=backtest, now=self.clock())

    async def set_paused(self, value: bool, *, actor: str, reason: str = "") -> None:
        await self.write(state.set_paused, value, now=self.clock(), by=actor, reason=reason)

    async def decide(
        self, run_id: int, *, actor: str, approve: bool, reason: str = "", digest: str | None = None
    ) -> RunRow:
        """Approve or deny a pending run. Refused if the alert resolved or the plan changed."""

        def tx(conn: Connection) -> RunRow:
            now = self.clock()
            run = runs_repo.get(conn, run_id)
            if run is None:
                raise OperationError(f"run {run_id} does not exist", status=404)
            if run.status != "awaiting_approval":
                raise OperationError(
                    f"run {run_id} is {run.status}, not awaiting approval"
                    + (" (the alert resolved)" if run.status == "cancelled" else "")
                )
            if digest is not None and digest != run.plan_digest:
                raise OperationError("the plan changed since you looked at it; review it again")
            if approve and state.paused(conn):
                # approving now would only hand the run to the pause guardrail, which refuses it for
                # good; refuse the approval instead and leave the run waiting for one after resume
                raise OperationError(
                    f"automation is paused, so nothing was approved; run {run_id} is still awaiting approval "
                    f"(until {run.approval_expires_at.isoformat() if run.approval_expires_at else 'it expires'}): "
                    "`paramedic resume`, then approve again"
                )
            rb = self.runbooks.get(run.runbook)
            needed = rb.approvers if rb else 1
            if not approve:
                try:
                    runs_repo.record_decision(
                        conn,
                        run,
                        actor=actor,
                        decision="deny",
                        reason=reason,
                        digest=run.plan_digest,
                        now=now,
                    )
                except runs_repo.AlreadyDecided as exc:
                    raise OperationError(f"{exc}; another responder can deny it") from exc
                inc_repo.acknowledge(conn, run.incident_id, at=now, by="human")
                runs_repo.finish(conn, run, status="denied", now=now, reason=f"denied by {actor}: {reason}")
            else:
                try:
                    approvers = runs_repo.record_decision(
                        conn,
                        run,
                        actor=actor,
                        decision="approve",
                        reason=reason,
                        digest=run.plan_digest,
                        now=now,
                    )
                except runs_repo.AlreadyDecided as exc:
                    raise OperationError(f"{exc}; a second approver is needed") from exc
                inc_repo.acknowledge(conn, run.incident_id, at=now, by="human")
                if len(approvers) >= needed:
                    runs_repo.set_run_status(conn, run.id, "approved", now=now)
            row = runs_repo.get(conn, run_id)
            assert row is not None
            return row

        row = await self.write(tx)
        self._signal(1)
        return row


def static_scope(rb: Runbook, keys: Sequence[str]) -> dict[str, str] | None:
    """The scope labels a runbook's match pins to one plain value each, or None."""
    out = {}
    by_matcher = pinned(rb.match.label_matchers)
    for key in keys:
        value = rb.match.labels.get(key)
        if value is None and key in by_matcher:
            out[key] = by_matcher[key]
            continue
        if not isinstance(value, str) or value.startswith(("~", "!")):
            return None
        out[key] = value
    return out


def bind_routing(db: Database, config: Config) -> None:
    """Route the events queued in ``db`` to the config's sinks, by its routing tree and owners."""
    from paramedic.store import outbox

    sink_names = [str(s.get("name", s.get("type", ""))) for s in config.sinks]
    outbox.bind(db.engine, outbox.Routing.of(sink_names, tree=config.route, owners=config.owners))
