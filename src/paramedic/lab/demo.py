"""``paramedic demo``: the main job on an embedded default, end to end on real processes.

Three instances of the sample service run under a real supervisord; paramedic runs in this
process on SQLite with its own health probes and serves its API and UI. The demo hangs one
instance (alive, no longer answering) and crash-loops another, fires an alert no runbook knows,
shows every incident live, and ends with an MTTR table. Everything it starts is stopped on exit,
also after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from paramedic.api.app import create_app
from paramedic.core.config import Config, Probe
from paramedic.core.durations import format_duration
from paramedic.engine.logs import JsonFormatter
from paramedic.engine.service import Paramedic
from paramedic.lab.supervisord import SupervisorHarness
from paramedic.store import incidents as inc_repo
from paramedic.store import runs as runs_repo
from paramedic.store.rows import IncidentRow

_STEPS = """
    guardrails:
      rate_limit: {max: 3, per: 10m, scope: target}
      blast_radius: {scope: [service], max_concurrent: 1, max_fraction: 0.67, min_healthy: 1}
      circuit_breaker: {failures: 3, window: 10m, cooldown: 10m}
    steps:
      - action: supervisor.restart
        with: {program: "{{ labels.program }}"}
    verify:
      http: {url: "http://{{ labels.instance }}/healthz", within: 8s, every: 0.25s, stable_for: 2s}
    on_failure: escalate
    params:
      program: {pattern: '^web:web-[0-9]{1,2}$'}
      instance: {pattern: '^127\\.0\\.0\\.1:[0-9]{2,5}$'}
"""

RUNBOOKS = (
    """\
apiVersion: paramedic/v1
runbooks:
  - name: restart-unhealthy-instance
    owner: team-web
    description: An instance stops answering its health check; restart it under supervisord.
    match: {alertname: InstanceUnhealthy, labels: {service: web, program: "!web:web-3"}}
    target: "{{ labels.instance }}"
    mode: auto"""
    + _STEPS
    + """\
  - name: restart-with-approval
    owner: team-web
    description: The same remedy for web-3, which has not earned automation yet; a human approves.
    match: {alertname: InstanceUnhealthy, labels: {service: web, program: "web:web-3"}}
    target: "{{ labels.instance }}"
    mode: approve"""
    + _STEPS
)

PHASE_LIMIT = 45.0


@dataclass
class Fault:
    name: str
    instance: str
    injected_at: float = 0.0
    incident_ids: list[int] = field(default_factory=list)


@dataclass
class DemoState:
    narration: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)  # SIGTERM / SIGHUP received (``_stop_on_signals``)

    def say(self, text: str) -> None:
        self.narration.append(f"{time.strftime('%H:%M:%S')}  {text}")


def _probes(harness: SupervisorHarness) -> list[Probe]:
    out = []
    for program, port in harness.instances.items():
        name = program.split(":")[1]
        out.append(
            Probe(
                name=name,
                http=f"http://127.0.0.1:{port}/healthz",
                every=0.5,
                timeout=0.4,
                failures=3,
                successes=2,
                labels={
                    "alertname": "InstanceUnhealthy",
                    "service": "web",
                    "severity": "page",
                    "instance": f"127.0.0.1:{port}",
                    "program": program,
                },
            )
        )
    return out


def _clock(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S") if value else "—"


def _wrapped(lines: list[str], width: int) -> str:
    """Narration lines wrapped to the terminal, continuation lines indented under the text, so an
    80-column terminal shows every word (the console itself does not wrap: ``soft_wrap``)."""
    out = []
    for line in lines:
        out.append(textwrap.fill(line, width=max(40, width - 1), subsequent_indent=" " * 10, break_on_hyphens=False))
    return "\n".join(out)


def _incident_table(rows: list[IncidentRow], actions: dict[int, str]) -> Table:
    table = Table(title="incidents (live)", expand=False, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for col in ("#", "alert", "instance", "status", "detected", "resolved"):
        table.add_column(col, no_wrap=True)
    table.add_column("action", min_width=18, overflow="fold")
    style = {"resolved": "green", "mitigated": "cyan", "escalated": "red", "remediating": "yellow"}
    for r in sorted(rows, key=lambda x: x.id):
        table.add_row(
            str(r.id),
            r.alertname.removeprefix("Instance"),
            r.labels.get("instance", "").removeprefix("127.0.0.1"),
            Text(r.status, style=style.get(r.status, "")),
            _clock(r.starts_at),
            _clock(r.resolved_at),
            escape(actions.get(r.id, "")),
        )
    return table


def _actions_for(conn: Any, incident_id: int) -> str:
    """A short account of what was done: each step's action and result, then the run's end."""
    parts = []
    mark = {"succeeded": "✓", "failed": "✗", "started": "…"}
    for run in runs_repo.for_incident(conn, incident_id):
        steps = runs_repo.steps_of(conn, run.id)
        did = ", ".join(f"{s.action} {mark.get(s.status, s.status)}" for s in steps) or "nothing ran"
        parts.append(f"{did} → {run.status}")
    return "; ".join(parts) or "no runbook: escalated"


def _snapshot(pm: Paramedic) -> tuple[list[IncidentRow], dict[int, str]]:
    with pm.db.read() as conn:
        rows = inc_repo.listing(conn, limit=50)
        return rows, {r.id: _actions_for(conn, r.id) for r in rows}


async def _wait(pred: Callable[[], Awaitable[bool]], limit: float = PHASE_LIMIT) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await pred():
            return True
        await asyncio.sleep(0.2)
    return False


async def _incidents_for(pm: Paramedic, instance: str, since: float) -> list[IncidentRow]:
    rows, _ = await asyncio.to_thread(_snapshot, pm)
    return [r for r in rows if r.labels.get("instance") == instance and r.first_seen_at.timestamp() >= since - 1]


async def _scenario(pm: Paramedic, harness: SupervisorHarness, http: httpx.AsyncClient, st: DemoState) -> bool:
    ports = list(harness.instances.items())
    (_, p1), (prog2, p2) = ports[0], ports[1]
    ok = True

    # 1. a hung instance: alive, but it stops answering
    hung = Fault("hung instance", f"127.0.0.1:{p1}", time.time())
    st.faults.append(hung)
    st.say(f"fault 1: web-1 (:{p1}) hangs: the process stays up but stops answering")
    with contextlib.suppress(httpx.HTTPError):
        await http.post(f"http://127.0.0.1:{p1}/fault/hang", timeout=1)

    async def hung_resolved() -> bool:
        rows = await _incidents_for(pm, hung.instance, hung.injected_at)
        hung.incident_ids = [r.id for r in rows]
        return any(r.status == "resolved" for r in rows)

    if await _wait(hung_resolved):
        st.say("healed: runbook restart-unhealthy-instance restarted web-1, verified it; alert resolved")
    else:
        ok = False
        st.say("[red]web-1 did not recover in time[/]")

    # 2. a crash loop: a restart does not fix it, so paramedic escalates, and a human fixes it
    loop = Fault("crash loop", f"127.0.0.1:{p2}", time.time())
    st.faults.append(loop)
    st.say(f"fault 2: web-2 (:{p2}) crash-loops: it exits 0.3 s after every start")
    with contextlib.suppress(httpx.HTTPError):
        await http.post(f"http://127.0.0.1:{p2}/fault/crashloop", timeout=1)

    async def loop_escalated() -> bool:
        rows = await _incidents_for(pm, loop.instance, loop.injected_at)
        loop.incident_ids = [r.id for r in rows]
        return any(r.status == "escalated" for r in rows)

    if await _wait(loop_escalated):
        st.say("the restart did not hold (verification failed): escalated to the on-call engineer")
    else:
        ok = False
        st.say("[red]the crash loop was not escalated in time[/]")
    await asyncio.sleep(1.5)
    st.say("the on-call engineer removes the bad config and starts web-2 (a human fix)")
    for marker in harness.fault_dir.glob("*.crashloop"):
        marker.unlink()

    def start_again() -> None:
        with contextlib.suppress(Exception), harness.rpc() as rpc:
            rpc.supervisor.startProcess(prog2, True)

    await asyncio.to_thread(start_again)

    async def loop_resolved() -> bool:
        rows = await _incidents_for(pm, loop.instance, loop.injected_at)
        loop.incident_ids = [r.id for r in rows]
        return bool(rows) and all(r.status == "resolved" for r in rows)

    if not await _wait(loop_resolved):
        ok = False
        st.say("[red]web-2 did not come back in time[/]")

    # 3. an alert no runbook knows: no automation, a human is told
    unknown = Fault("unknown alert", "db-1:5432", time.time())
    st.faults.append(unknown)
    st.say("fault 3: DiskFillingUp on db-1, which no runbook knows: no guessing, a human is told")
    body = {
        "name": "DiskFillingUp",
        "labels": {"service": "db", "instance": "db-1:5432", "severity": "warning"},
        "fingerprint": "demo-disk",
    }
    r = await http.post(f"http://{pm.config.listen}/api/v1/alerts", json=body)
    unknown.incident_ids = [int(r.json()["alerts"][0]["incident_id"])]
    await asyncio.sleep(2.0)
    st.say("a human cleans up the disk; the alert resolves")

    async def unknown_row() -> IncidentRow | None:
        with pm.db.read() as conn:
            return inc_repo.get(conn, unknown.incident_ids[0])

    row = await unknown_row()
    started = row.starts_at.isoformat() if row else None
    await http.post(
        f"http://{pm.config.listen}/api/v1/alerts",
        json={**body, "status": "resolved", **({"starts_at": started} if started else {})},
    )
    await asyncio.sleep(0.5)
    return ok


def _mttr_table(pm: Paramedic, faults: list[Fault]) -> Table:
    table = Table(title="MTTR", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for col in ("fault", "detected", "mitigated", "MTTR"):
        table.add_column(col, no_wrap=True)
    table.add_column("action taken", min_width=18, overflow="fold")
    table.add_column("by", no_wrap=True)
    with pm.db.read() as conn:
        for f in faults:
            for iid in f.incident_ids:
                row = inc_repo.get(conn, iid)
                if row is None:
                    continue
                mttr = format_duration(row.resolved_at - row.starts_at) if row.resolved_at else "open"
                table.add_row(
                    f.name,
                    _clock(row.starts_at),
                    _clock(row.mitigated_at),
                    mttr,
                    escape(_actions_for(conn, iid)),
                    row.handled_by or "human",
                )
    return table


async def _demo(
    console: Console, *, ui: bool, port: int, work: Path, workdir_kept: bool, stopped: list[int] | None = None
) -> int:
    st = DemoState()
    st.signals = stopped if stopped is not None else []
    log_file = work / "paramedic.log"
    _log_to(log_file)
    harness = SupervisorHarness(work / "supervisor", numprocs=3)
    _stop_on_signals(st)
    console.print("[bold]paramedic demo[/]: starting 3 sample instances under supervisord …")
    server_task: asyncio.Task[None] | None = None
    server: uvicorn.Server | None = None
    try:
        await asyncio.to_thread(harness.start)
        rb_dir = work / "runbooks"
        rb_dir.mkdir(parents=True, exist_ok=True)
        (rb_dir / "demo.yaml").write_text(RUNBOOKS)
        config = Config(
            listen=f"127.0.0.1:{port}",
            database=f"sqlite:///{work / 'paramedic.db'}",
            runbooks=[str(rb_dir)],
            probes=_probes(harness),
            executors={"supervisor": harness.executor_config()},
            workers=2,
            log_format="text",
        )
        pm = Paramedic.from_config(config)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(pm), host="127.0.0.1", port=port, log_level="error", access_log=False, lifespan="on"
            )
        )
        server_task = asyncio.create_task(server.serve())
        if not await _wait(lambda: _true(server.started), 15):
            console.print(f"[red]paramedic could not listen on 127.0.0.1:{port}; try --port[/]")
            return 1
        console.print(
            textwrap.fill(
                f"paramedic is up at http://127.0.0.1:{port} (API docs at /docs) with "
                f"{len(config.probes)} probes; instances: "
                + ", ".join(f"{k.split(':')[1]}=127.0.0.1:{v}" for k, v in harness.instances.items()),
                width=max(40, console.width - 1),
                break_on_hyphens=False,
            ),
            highlight=False,
        )
        await asyncio.sleep(1.5)  # let the probes see every instance healthy first

        async with httpx.AsyncClient() as http:
            scenario = asyncio.create_task(_scenario(pm, harness, http, st))
            with Live(console=console, refresh_per_second=4, transient=False) as live:
                while not scenario.done():
                    rows, actions = await asyncio.to_thread(_snapshot, pm)
                    narration = Text.from_markup(_wrapped(st.narration[-8:], console.width))
                    live.update(Group(narration, _incident_table(rows, actions)))
                    await asyncio.sleep(0.25)
                rows, actions = await asyncio.to_thread(_snapshot, pm)
                final = Text.from_markup(_wrapped(st.narration[-8:], console.width))
                live.update(Group(final, _incident_table(rows, actions)))
            ok = scenario.result()
        console.print()
        console.print(_mttr_table(pm, st.faults))
        console.print(
            textwrap.fill(
                "Automated: the hung instance (no human woke up). Human-handled: the crash loop and the "
                "unknown alert, each escalated with its evidence instead of guessed at.",
                width=max(40, console.width - 1),
            )
        )
        if ui:
            await _hang_for_approval(harness, console, port)
            console.print(f"[bold]web UI: http://127.0.0.1:{port}/[/] — Ctrl-C to stop")
            await asyncio.Event().wait()
        return 0 if ok else 1
    finally:
        if server is not None:
            server.should_exit = True
        if server_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(server_task, 10)
        await asyncio.to_thread(harness.stop)


async def _hang_for_approval(harness: SupervisorHarness, console: Console, port: int) -> None:
    """With --ui: web-3 hangs, and its runbook waits for a human to approve the restart in the UI."""
    program, p3 = list(harness.instances.items())[2]
    async with httpx.AsyncClient() as http:
        with contextlib.suppress(httpx.HTTPError):
            await http.post(f"http://127.0.0.1:{p3}/fault/hang", timeout=1)
    console.print(
        f"\n[bold]Your turn:[/] {program.split(':')[1]} (127.0.0.1:{p3}) now hangs too. Its runbook "
        "restart-with-approval has not earned automation, so it waits for you: open "
        f"http://127.0.0.1:{port}/ , open the incident and press Approve, then watch it resolve."
    )


def _stop_on_signals(st: DemoState) -> None:
    """SIGTERM and SIGHUP stop the demo as Ctrl-C does: the main task is cancelled, so every
    ``finally`` runs and supervisord and the sample services (in their own session, where a signal
    to the demo's process group does not reach them) are stopped before the demo exits."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None

    def stop(sig: signal.Signals) -> None:
        st.signals.append(int(sig))
        main.cancel()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop, sig)


def _log_to(path: Path) -> None:
    """Paramedic's structured log (notifications included) goes to a file, not over the live view."""
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("paramedic")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


async def _true(value: bool) -> bool:
    return value


def run_demo(*, console: Console, ui: bool, port: int, workdir: Path | None) -> int:
    temp = workdir is None
    work = Path(tempfile.mkdtemp(prefix="paramedic-demo-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    st_signal: list[int] = []
    try:
        return asyncio.run(_demo(console, ui=ui, port=port, work=work, workdir_kept=not temp, stopped=st_signal))
    except KeyboardInterrupt:
        console.print("interrupted: everything the demo started has been stopped")
        return 130
    except asyncio.CancelledError:  # SIGTERM or SIGHUP (``_stop_on_signals``)
        name = signal.Signals(st_signal[0]).name if st_signal else "a signal"
        console.print(f"stopped by {name}: everything the demo started has been stopped")
        return 128 + (st_signal[0] if st_signal else signal.SIGTERM)
    finally:
        if temp:
            shutil.rmtree(work, ignore_errors=True)
