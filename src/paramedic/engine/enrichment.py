"""Evidence collection for incidents: which collectors run, when, within what time, and where
their findings are stored.

When an incident is created, ``Enricher.on_ingest`` starts one asyncio task for it, apart from
the run workers, so collecting evidence never delays a remediation. The task collects the rendered
``enrich`` specs of the incident's plans, one ``target`` spec per distinct plan step (except
``http.*`` and ``shell.*``, whose targets are requests, not things with a state), and recent
changes; an alert that matches no runbook gets ``enrich_defaults`` (rendered against its labels)
or, when that lists no collector, the built-in default: recent changes, and a chart of the alert's
own PromQL expression when Alertmanager's ``generatorURL`` carries one, a Prometheus URL is
configured and the operator turned on ``settings.alert_expression`` (the URL is alert text: without
the opt-in, whoever can post an alert would choose the query run against Prometheus). Every
collector runs concurrently, each within ``min(its timeout, budget)``; one that
fails or overruns becomes a ``failed`` / ``timeout`` evidence row with the reason. All rows of an
incident are written in one transaction, so "the incident has evidence" means "collection is
over" (the notifier relies on it). A run waiting for approval gets its ``approval_needed``
notification in that same transaction: the human who approves sees the evidence.

When a run finishes and when the alert resolves, the incident's metric charts are collected again
(rows updated in place) so they show paramedic's actions and the recovery. On start, incidents
created in the last 15 minutes without evidence (paramedic stopped mid-collection) are collected.

Configuration: an ``enrich_defaults`` entry ``{settings: {prometheus_url, budget, timeout}}``
configures collection instead of adding a collector (``enrich.settings``, docs/notifications.md).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Connection, and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from paramedic.actions.registry import ExecutorRegistry
from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.config import Config
from paramedic.core.durations import parse_duration
from paramedic.core.errors import ActionError, ConfigError, TemplateError
from paramedic.core.incidents import Delivery
from paramedic.core.plan import Plan
from paramedic.core.runbooks import Runbook
from paramedic.core.templating import Renderer
from paramedic.engine.clock import Clock
from paramedic.enrich.base import CollectError, Collector, EnrichRequest, Evidence, EvidenceStatus, Mark
from paramedic.enrich.changes import Change, ChangesCollector
from paramedic.enrich.kubernetes import KubernetesCollector, PodReader
from paramedic.enrich.logs import LogsCollector
from paramedic.enrich.loki import LokiCollector
from paramedic.enrich.metrics import PrometheusCollector
from paramedic.enrich.settings import EnrichSettings as EnrichSettings  # re-exported for service
from paramedic.enrich.settings import spec_key, split_spec
from paramedic.enrich.target import TargetCollector, TargetReading
from paramedic.enrich.traces import TracesCollector
from paramedic.runbooks.context import Change as RunbookChange
from paramedic.runbooks.context import ChangeSource
from paramedic.store import incidents as inc_repo
from paramedic.store import outbox
from paramedic.store import runs as runs_repo
from paramedic.store.db import Database
from paramedic.store.rows import IncidentRow, IngestResult, RunRow
from paramedic.store.tables import changes, evidence, settings

log = logging.getLogger("paramedic.enrichment")
RESUME_WITHIN = timedelta(minutes=15)
URL_KEY = "evidence:url_key"
EVIDENCE_KIND = {"prometheus": "metrics"}  # spec kind → evidence kind, where they differ
# Actions whose "target" is a request, not a thing with a state worth showing a human.
NO_TARGET_STATE = ("http.", "shell.")


# ---- facts read from the store -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Facts:
    incident: IncidentRow
    runs: tuple[RunRow, ...]
    marks: tuple[Mark, ...]
    evidence_ids: Mapping[str, int]  # spec key → row id (rows already stored)


def _marks(conn: Connection, row: IncidentRow, runs: Sequence[RunRow]) -> tuple[Mark, ...]:
    marks = [Mark(row.starts_at, "alert fired", "alert")]
    for run in runs:
        for s in runs_repo.steps_of(conn, run.id):
            if s.started_at is not None:
                marks.append(Mark(s.started_at, f"{s.action}", "action"))
    if row.mitigated_at is not None:
        marks.append(Mark(row.mitigated_at, "mitigated", "mitigated"))
    if row.resolved_at is not None:
        marks.append(Mark(row.resolved_at, "resolved", "resolved"))
    if row.service:
        q = select(changes).where(
            and_(changes.c.service == row.service, changes.c.at >= row.starts_at - timedelta(hours=24))
        )
        for c in conn.execute(q.order_by(changes.c.at.desc()).limit(5)):
            marks.append(Mark(c.at, f"{c.kind} {c.version}".strip(), "change"))
    return tuple(marks)


def _read_facts(conn: Connection, incident_id: int) -> _Facts | None:
    row = inc_repo.get(conn, incident_id)
    if row is None:
        return None
    runs = tuple(runs_repo.for_incident(conn, incident_id))
    stored = conn.execute(select(evidence.c.id, evidence.c.data).where(evidence.c.incident_id == incident_id))
    ids = {str((r.data or {}).get("spec_key", "")): int(r.id) for r in stored}
    return _Facts(row, runs, _marks(conn, row, runs), ids)


def _alert_of(row: IncidentRow) -> Alert:
    return Alert(
        source=row.source,
        fingerprint=row.fingerprint,
        name=row.alertname,
        status=AlertStatus.FIRING,
        starts_at=row.starts_at,
        labels=row.labels,
        annotations=row.annotations,
        generator_url=row.generator_url,
    )


def alert_expression(generator_url: str) -> str | None:
    """The PromQL expression in a Prometheus ``generatorURL`` (``…/graph?g0.expr=…``), if any."""
    query = parse_qs(urlsplit(generator_url).query)
    exprs = query.get("g0.expr") or []
    return exprs[0] if exprs and exprs[0].strip() else None


# ---- the enricher --------------------------------------------------------------------------------
class Enricher:
    """Schedules and runs evidence collection; one per running ``Paramedic``."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        collectors: Iterable[Collector],
        settings: EnrichSettings,
        runbook_of: Callable[[str], Runbook | None] = lambda name: None,
    ) -> None:
        self.runbook_of = runbook_of
        self.db = db
        self.clock = clock
        self.settings = settings
        self.collectors: dict[str, Collector] = {c.kind: c for c in collectors}
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: dict[int, int] = {}
        self._closed = False

    # -- scheduling --------------------------------------------------------------------------
    def on_ingest(self, results: Iterable[IngestResult]) -> None:
        """Collect for each created incident; refresh charts of each resolved one."""
        for r in results:
            if r.incident_id is None:
                continue
            if r.delivery == Delivery.CREATED:
                self._spawn(r.incident_id, self.enrich(r.incident_id))
            elif r.delivery == Delivery.RESOLVED:
                self._spawn(r.incident_id, self.refresh(r.incident_id))

    async def on_run_finished(self, run: RunRow, ok: bool, reason: str) -> None:
        """A ``Paramedic.run_hooks`` entry: redraw the charts with the actions just taken."""
        self._spawn(run.incident_id, self.refresh(run.incident_id))

    def busy(self, incident_id: int) -> bool:
        """Whether this process is still collecting evidence for the incident."""
        return self._busy.get(incident_id, 0) > 0

    def _spawn(self, incident_id: int, coro: Any) -> None:
        if self._closed:
            coro.close()
            return
        self._busy[incident_id] = self._busy.get(incident_id, 0) + 1
        task = asyncio.create_task(self._guarded(incident_id, coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, incident_id: int, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not take the service down; the incident lacks evidence
            log.exception("evidence collection for incident %s failed", incident_id)
        finally:
            left = self._busy.get(incident_id, 1) - 1
            if left > 0:
                self._busy[incident_id] = left
            else:
                self._busy.pop(incident_id, None)

    async def run(self) -> None:
        """Resume unfinished collections, then wait; on cancellation, stop every collection."""
        try:
            await self.resume()
            await asyncio.Event().wait()
        finally:
            self._closed = True
            for t in list(self._tasks):
                t.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def resume(self) -> None:
        since = self.clock() - RESUME_WITHIN

        def pending(conn: Connection) -> list[int]:
            rows = inc_repo.listing(conn, status="open", limit=200)
            have = {
                int(r.incident_id)
                for r in conn.execute(select(evidence.c.incident_id).distinct())
                if r.incident_id is not None
            }
            return [r.id for r in rows if r.first_seen_at >= since and r.id not in have]

        with self.db.read() as conn:
            todo = pending(conn)
        for incident_id in todo:
            log.info("resuming evidence collection for incident %s", incident_id)
            self._spawn(incident_id, self.enrich(incident_id))

    # -- collection --------------------------------------------------------------------------
    def specs_for(self, facts: _Facts) -> list[tuple[str, Mapping[str, Any]] | Evidence]:
        """The collector specs of an incident; a default spec that fails to render is evidence."""
        out: list[tuple[str, Mapping[str, Any]] | Evidence] = []
        seen: set[str] = set()

        def add(kind: str, options: Mapping[str, Any]) -> None:
            key = spec_key(kind, options)
            if key not in seen:
                seen.add(key)
                out.append((kind, options))

        plans = [Plan.from_json(r.plan) for r in facts.runs if r.plan]
        planned = {p.runbook for p in plans}
        for name in facts.incident.runbooks:  # one that declined or failed planning still gathers its own
            if name not in planned:
                out.extend(self._own(name, facts.incident, add))
        for plan in plans:
            for spec in plan.enrich:
                try:
                    add(*split_spec(spec))
                except ConfigError as exc:
                    out.append(Evidence.failed("invalid", "An enrich entry of " + plan.runbook, str(exc)))
            for step in plan.steps:
                if not step.action.startswith(NO_TARGET_STATE):
                    add("target", {"action": step.action, "args": dict(step.args)})
        if not plans:
            out.extend(self._defaults(facts.incident, add))
        if not any(isinstance(s, tuple) and s[0] == "changes" for s in out):
            add("changes", {})
        return out

    def _own(self, name: str, row: IncidentRow, add: Callable[[str, Mapping[str, Any]], None]) -> list[Evidence]:
        """The ``enrich`` list of a runbook that made no plan, rendered like its plan would have;
        a spec whose label fails its pattern becomes failed evidence saying so."""
        rb = self.runbook_of(name)
        if rb is None or not rb.enrich:
            return []
        failed: list[Evidence] = []
        renderer = Renderer(_alert_of(row), rb.params)
        for i, spec in enumerate(rb.enrich):
            try:
                kind, raw = split_spec(spec, where=f"{name}.enrich[{i}]")
                add(kind, renderer.render(dict(raw)))
            except (ConfigError, TemplateError) as exc:
                failed.append(Evidence.failed("invalid", f"enrich[{i}] of {name}", f"not collected: {exc}"))
        return failed

    def _defaults(self, row: IncidentRow, add: Callable[[str, Mapping[str, Any]], None]) -> list[Evidence]:
        if all(split_spec(spec)[0] == "settings" for spec in self.settings.defaults):
            expr = alert_expression(row.generator_url) if self.settings.alert_expression else None
            if expr and self.settings.prometheus_url:
                add("prometheus", {"query": expr, "range": "30m", "title": f"{row.alertname}: the alert's expression"})
            return []
        failed: list[Evidence] = []
        renderer = Renderer(_alert_of(row), {})
        for i, spec in enumerate(self.settings.defaults):
            kind, raw = split_spec(spec, where=f"enrich_defaults[{i}]")
            if kind == "settings":
                continue
            try:
                add(kind, renderer.render(dict(raw)))
            except TemplateError as exc:
                failed.append(Evidence.failed(kind, f"{kind} (enrich_defaults[{i}])", f"not collected: {exc}"))
        return failed

    def _request(self, facts: _Facts, options: Mapping[str, Any], now: datetime) -> EnrichRequest:
        row = facts.incident
        return EnrichRequest(
            incident_id=row.id,
            alertname=row.alertname,
            labels=row.labels,
            starts_at=row.starts_at,
            now=now,
            options=options,
            marks=facts.marks,
        )

    async def collect_one(self, kind: str, options: Mapping[str, Any], request: EnrichRequest) -> Evidence:
        collector = self.collectors.get(kind)
        if collector is None:
            known = ", ".join(sorted(self.collectors))
            return Evidence.failed(kind, f"{kind} evidence", f"no collector called {kind!r} (known: {known})")
        title = collector.title(request)
        try:
            limit = min(
                parse_duration(options.get("timeout", self.settings.timeout)).total_seconds(), self.settings.budget
            )
        except ValueError as exc:
            return Evidence.failed(kind, title, f"timeout: {exc}")
        named = EVIDENCE_KIND.get(kind, kind)
        try:
            return await asyncio.wait_for(collector.collect(request), limit)
        except TimeoutError:
            return Evidence.timed_out(named, title, limit)
        except CollectError as exc:
            return Evidence.failed(named, title, str(exc))
        except Exception as exc:  # a collector bug: recorded on the evidence row, with its type
            log.exception("collector %s failed", kind)
            return Evidence.failed(named, title, f"collector error: {type(exc).__name__}: {exc}")

    async def _collect(
        self, facts: _Facts, specs: Sequence[tuple[str, Mapping[str, Any]] | Evidence], now: datetime
    ) -> list[tuple[str, Evidence]]:
        async def one(spec: tuple[str, Mapping[str, Any]] | Evidence) -> tuple[str, Evidence]:
            if isinstance(spec, Evidence):
                return "", spec
            kind, options = spec
            return spec_key(kind, options), await self.collect_one(kind, options, self._request(facts, options, now))

        return list(await asyncio.gather(*(one(s) for s in specs)))

    async def enrich(self, incident_id: int) -> list[Evidence]:
        """Collect and store every piece of evidence of a newly created incident."""
        facts = await asyncio.to_thread(self.read_facts, incident_id)
        if facts is None or facts.evidence_ids:
            return []  # gone, or already collected (another replica, or a resume)
        now = self.clock()
        found = await self._collect(facts, self.specs_for(facts), now)
        await asyncio.to_thread(self._store, incident_id, found, now)
        return [e for _, e in found]

    async def refresh(self, incident_id: int) -> None:
        """Collect the incident's metric evidence again and update those rows in place."""
        facts = await asyncio.to_thread(self.read_facts, incident_id)
        if facts is None:
            return
        specs: list[tuple[str, Mapping[str, Any]] | Evidence] = []
        for key in facts.evidence_ids:
            if key.startswith('{"prometheus"'):
                specs.append(split_spec(json.loads(key)))
        if not specs:
            return
        now = self.clock()
        found = await self._collect(facts, specs, now)
        await asyncio.to_thread(self._update, facts, found, now)

    def read_facts(self, incident_id: int) -> _Facts | None:
        """What collection needs to know of an incident (its plans, marks, stored evidence)."""
        with self.db.read() as conn:
            return _read_facts(conn, incident_id)

    @staticmethod
    def _values(incident_id: int, key: str, ev: Evidence, now: datetime) -> dict[str, Any]:
        return {
            "incident_id": incident_id,
            "kind": ev.kind,
            "title": ev.title[:2000],
            "status": str(ev.status),
            "body": ev.body,
            "data": {**dict(ev.data), "spec_key": key},
            "image": base64.b64encode(ev.image).decode() if ev.image else None,
            "at": now,
        }

    def _store(self, incident_id: int, found: Sequence[tuple[str, Evidence]], now: datetime) -> None:
        with self.db.write(serial=False) as conn:
            if conn.execute(select(evidence.c.id).where(evidence.c.incident_id == incident_id).limit(1)).first():
                return
            for key, ev in found:
                conn.execute(evidence.insert().values(**self._values(incident_id, key, ev, now)))
            waiting = [r for r in runs_repo.for_incident(conn, incident_id) if r.status == "awaiting_approval"]
            if waiting:
                outbox.enqueue(
                    conn,
                    incident_id=incident_id,
                    event="approval_needed",
                    now=now,
                    data={
                        "reason": "a runbook waits for a human to approve its plan: "
                        + ", ".join(f"{r.runbook} (run {r.id})" for r in waiting),
                        "approvals": [
                            {"run_id": r.id, "runbook": r.runbook, "plan_digest": r.plan_digest} for r in waiting
                        ],
                    },
                )

    def _update(self, facts: _Facts, found: Sequence[tuple[str, Evidence]], now: datetime) -> None:
        with self.db.write(serial=False) as conn:
            for key, ev in found:
                row_id = facts.evidence_ids.get(key)
                if row_id is None or ev.status is not EvidenceStatus.OK:
                    continue  # keep the earlier chart rather than replace it with a failure
                values = self._values(facts.incident.id, key, ev, now)
                conn.execute(update(evidence).where(evidence.c.id == row_id).values(**values))


# ---- signed image URLs ---------------------------------------------------------------------------
def _url_key(conn: Connection, now: datetime | None) -> bytes | None:
    """The key that signs chart URLs, made on first use (``now`` given: a write transaction)."""
    row = conn.execute(select(settings.c.value).where(settings.c.key == URL_KEY)).first()
    if row is not None:
        return bytes.fromhex(str(row.value))
    if now is None:
        return None
    ins = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        ins(settings)
        .values(key=URL_KEY, value=secrets.token_hex(32), updated_at=now, updated_by="paramedic")
        .on_conflict_do_nothing()
    )
    again = conn.execute(select(settings.c.value).where(settings.c.key == URL_KEY)).one()
    return bytes.fromhex(str(again.value))


def _signature(key: bytes, incident_id: int, evidence_id: int) -> str:
    return hmac.new(key, f"{incident_id}/{evidence_id}".encode(), hashlib.sha256).hexdigest()[:32]


def image_path(conn: Connection, incident_id: int, evidence_id: int, *, now: datetime) -> str:
    """The chart's path with an unguessable signature, so that Slack and PagerDuty can fetch the
    image without an API token (the URL is a capability for that one image)."""
    key = _url_key(conn, now)
    assert key is not None
    return f"/api/v1/incidents/{incident_id}/evidence/{evidence_id}.png?sig={_signature(key, incident_id, evidence_id)}"


def image_signature_ok(conn: Connection, incident_id: int, evidence_id: int, *, sig: str) -> bool:
    key = _url_key(conn, None)
    return key is not None and hmac.compare_digest(_signature(key, incident_id, evidence_id), sig)


# ---- building ----------------------------------------------------------------------------------
def build(
    *,
    config: Config,
    registry: ExecutorRegistry,
    db: Database,
    clock: Clock,
    http: Any,
    runbook_of: Callable[[str], Runbook | None] = lambda name: None,
) -> Enricher:
    """The enricher with every collector, from the configuration. Raises ``ConfigError``."""
    opts = EnrichSettings.from_config(config.enrich_defaults)
    sv = dict(config.executors.get("supervisor") or {})
    sv_url = str(sv.get("url", "http://127.0.0.1:9001/RPC2"))
    sv_auth = (str(sv["username"]), str(sv.get("password") or "")) if sv.get("username") else None

    def proxy() -> Any:
        from paramedic.actions.supervisor import make_proxy

        return make_proxy(sv_url, timeout=opts.timeout, auth=sv_auth)

    async def read_changes(service: str, since: datetime, until: datetime) -> list[Change]:
        return await asyncio.to_thread(
            functools.partial(change_feed, db=db, registry=registry, service=service, since=since, until=until)
        )

    async def read_state(action: str, args: Mapping[str, Any]) -> TargetReading:
        try:
            req = registry.request(action, args, timeout=opts.timeout)
            st = await registry.executor(action).read_state(req)
        except ActionError as exc:
            raise CollectError(f"{action}: {exc}") from None
        return TargetReading(st.target, st.healthy, st.detail, dict(st.fields))

    collectors: list[Collector] = [
        PrometheusCollector(http, default_url=opts.prometheus_url, timeout=opts.timeout),
        LogsCollector(supervisor=proxy, supervisor_url=sv_url, allowed=opts.log_dirs),
        LokiCollector(http, default_url=opts.loki_url, timeout=opts.timeout),
        KubernetesCollector(lambda: _pod_reader(registry)),
        ChangesCollector(read_changes),
        TargetCollector(read_state),
        TracesCollector(
            http,
            prometheus_url=opts.prometheus_url,
            default_url=opts.traces_url,
            default_backend=opts.traces_backend,
            timeout=opts.timeout,
        ),
    ]
    return Enricher(db=db, clock=clock, collectors=collectors, settings=opts, runbook_of=runbook_of)


def _pod_reader(registry: ExecutorRegistry) -> PodReader | None:
    """The Kubernetes executor, when one is registered: it reads pods, their logs and events."""
    for ex in registry.executors():
        if all(hasattr(ex, m) for m in ("read_pod", "pod_log", "pod_events")):
            return ex  # type: ignore[return-value]
    return None


def change_feed(
    *, db: Database, registry: ExecutorRegistry, service: str, since: datetime, until: datetime
) -> list[Change]:
    """The change feed: the ``changes`` table (``POST /api/v1/changes``) and release history."""
    q = select(changes).where(and_(changes.c.at >= since, changes.c.at <= until))
    if service:
        q = q.where(changes.c.service == service)
    with db.read() as conn:
        rows = conn.execute(q.order_by(changes.c.at.desc()).limit(200)).all()
    out = [Change(r.at, r.service, r.kind, r.version, r.description, r.actor, "api") for r in rows]
    for ex in registry.executors():
        history = getattr(ex, "history", None)
        if history is None:
            continue
        try:
            records = history()
        except ActionError as exc:  # a broken history file must not hide the changes table
            log.warning("release history unavailable: %s", exc)
            continue
        for rec in records:
            if since <= rec.at <= until and (not service or rec.app == service):
                out.append(
                    Change(rec.at, rec.app, rec.action, rec.version, f"status {rec.status}", "paramedic", "release")
                )
    return out


def changes_from_db(db: Database, registry: ExecutorRegistry) -> ChangeSource:
    """The live change feed a Python runbook reads through ``ctx.changes``: the ``changes`` table
    (``POST /api/v1/changes`` from CI/CD) and the release executor's history."""

    def read(service: str, since: datetime, until: datetime) -> list[RunbookChange]:
        rows = change_feed(db=db, registry=registry, service=service, since=since, until=until)
        return [RunbookChange(c.at, c.service, c.kind, c.version, c.description, c.actor) for c in rows]

    async def source(service: str, since: datetime, until: datetime) -> Sequence[RunbookChange]:
        return await asyncio.to_thread(read, service, since, until)

    return source
