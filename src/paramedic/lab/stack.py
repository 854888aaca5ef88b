"""The lab's whole stack on loopback: what ``paramedic lab``, the lab tests and the benchmarks run.

``LabStack`` starts, in a fresh work dir, and stops again, leaving nothing behind:

- N sample service instances under a real supervisord, each started from a release
  (``app/releases/<v>/release.json`` behind an ``app/current`` symlink, see ``lab_instance``);
- HAProxy in front (round robin, ``/healthz`` checks every 500 ms, runtime API on a unix socket),
  with a server slot for every instance the pool may grow to;
- Prometheus scraping every instance every second (file-based discovery that follows the pool's
  size), evaluating ``RULES`` every second;
- Alertmanager (``group_wait: 1s``) routing every alert to paramedic's Alertmanager webhook;
- paramedic itself in a background thread (uvicorn + its workers, SQLite in the work dir) with the
  supervisor, haproxy and release executors pointed at the above;
- a bounded open-loop load generator sending ``GET /`` through HAProxy.

It is a context manager, sync (``with``) or async (``async with``: start and stop run in a
thread). Teardown runs on every exit path, on interpreter exit and after Ctrl-C, and kills what
it started by pid; ``leftovers()`` lists any process that still names the work dir.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from paramedic.api import views
from paramedic.api.app import create_app
from paramedic.core.config import Automation, Config, DeclaredTargets
from paramedic.engine.logs import JsonFormatter
from paramedic.engine.service import Paramedic
from paramedic.lab.supervisord import SupervisorHarness, _processes_with
from paramedic.store import incidents as inc_repo

GROUP = "web"
BACKEND = "web"
SERVICE = "web"
MEMORY_LIMIT = 250 * 1024 * 1024  # an instance "falls over" here (the container limit it would have)

RULES = """\
groups:
- name: web
  rules:
  - record: instance:http_error_ratio:rate5s
    expr: rate(http_errors_total{job="web"}[5s]) / ignoring (path) rate(http_requests_total{job="web",path="/"}[5s])
  - record: service:http_error_ratio:rate5s
    expr: >-
      sum by (service) (rate(http_errors_total{job="web"}[5s]))
      / sum by (service) (rate(http_requests_total{job="web",path="/"}[5s]))
  - record: service:http_latency_p90:rate5s
    expr: histogram_quantile(0.9, sum by (service, le) (rate(http_request_duration_seconds_bucket{job="web"}[5s])))
  - alert: InstanceDown
    expr: up{job="web"} == 0
    for: 2s
    labels: {severity: page}
    annotations: {summary: "{{ $labels.instance }} ({{ $labels.program }}) is down or not answering"}
  - alert: HighErrorRate
    expr: service:http_error_ratio:rate5s > 0.4
    for: 2s
    labels: {severity: page}
    annotations: {summary: "{{ $labels.service }}: {{ $value | humanizePercentage }} of requests fail"}
  - alert: InstanceErrorOutlier
    expr: >-
      (instance:http_error_ratio:rate5s > 0.5)
      > on (service) group_left () (1.5 * service:http_error_ratio:rate5s)
    for: 2s
    labels: {severity: warning}
    annotations: {summary: "{{ $labels.instance }} fails far more requests than its peers"}
  - alert: HighLatency
    expr: service:http_latency_p90:rate5s > 0.25
    for: 3s
    labels: {severity: page}
    annotations: {summary: "{{ $labels.service }}: p90 latency {{ $value | humanizeDuration }}"}
  - alert: MemoryLeak
    expr: predict_linear(sample_memory_bytes{job="web"}[10s], 30) > @LIMIT@
    for: 2s
    labels: {severity: warning}
    annotations: {summary: "{{ $labels.instance }} will reach its memory limit within 30s"}
  - alert: LowTraffic
    expr: sum by (service) (rate(http_requests_total{job="web",path="/"}[5s])) < 1
    for: 3s
    labels: {severity: warning}
    annotations: {summary: "{{ $labels.service }} gets almost no requests"}
""".replace("@LIMIT@", str(MEMORY_LIMIT))

_LIVE: set[LabStack] = set()
_HOOKED = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_live() -> None:
    for stack in list(_LIVE):
        stack.stop()


@dataclass(frozen=True, slots=True)
class StackOptions:
    """How one lab stack is built; a scenario and its baseline differ only here."""

    instances: int = 3
    max_instances: int = 6
    automation: bool = True  # False: automation paused (the baseline: alerts wait for a human)
    autorestart: bool = False  # supervisord's own autorestart (a baseline of the crash loop)
    runbooks: tuple[Path, ...] = ()
    load_rps: float = 30.0
    capacity: float = 40.0  # GET / per second one instance can serve
    releases: Mapping[str, float] = field(default_factory=lambda: {"v1": 0.0, "v2": 0.6})
    live_release: str = "v1"
    keep_workdir: bool = False


@dataclass(frozen=True, slots=True)
class Instance:
    program: str  # supervisord namespec, e.g. web:web-1
    server: str  # HAProxy server name, e.g. web-1
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(slots=True)
class LoadStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    shed: int = 0  # not sent: too many requests already in flight (the bound on the load)


class _Harness(SupervisorHarness):
    """The supervisord harness, with instances started from the release layout."""

    def __init__(self, workdir: Path, *, release_root: Path, capacity: float, **kw: Any) -> None:
        super().__init__(workdir, **kw)
        self.release_root = release_root
        self.capacity = capacity

    def write_config(self) -> None:
        super().write_config()
        text = self.include_file.read_text()
        launcher = (
            f"-m paramedic.lab.lab_instance serve --release-root {self.release_root} --capacity {self.capacity:g}"
        )
        self.include_file.write_text(text.replace("-m paramedic.lab.sample_service", launcher, 1))


class _Proc:
    """A child process we started; stopped by pid (TERM, then KILL)."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self.proc.wait(5)


class LabStack:
    """The monitoring stack, the service and paramedic, all on loopback, started and stopped whole."""

    def __init__(self, options: StackOptions | None = None, *, workdir: Path | None = None) -> None:
        self.options = options or StackOptions()
        self._given_workdir = workdir
        self.workdir = Path()
        self.harness: _Harness | None = None
        self.pm: Paramedic | None = None
        self.load = LoadStats()
        self.load_rps = self.options.load_rps
        self.pm_port = self.prom_port = self.am_port = self.fe_port = 0
        self._procs: list[_Proc] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._pm_ready = threading.Event()
        self._pm_error: BaseException | None = None
        self._sock_dir: Path | None = None
        self._log_handler: logging.Handler | None = None
        self._started = False

    # -- addresses -----------------------------------------------------------------------------
    @property
    def paramedic_url(self) -> str:
        return f"http://127.0.0.1:{self.pm_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.am_port}"

    @property
    def frontend_url(self) -> str:
        return f"http://127.0.0.1:{self.fe_port}"

    @property
    def haproxy_socket(self) -> Path:
        assert self._sock_dir is not None
        return self._sock_dir / "haproxy.sock"

    @property
    def release_root(self) -> Path:
        return self.workdir / "app"

    @property
    def instances(self) -> list[Instance]:
        assert self.harness is not None
        return [Instance(p, p.split(":", 1)[1], port) for p, port in self.harness.instances.items()]

    def instance(self, n: int) -> Instance:
        """The n-th instance, counted from 1 (``web:web-n``)."""
        assert self.harness is not None
        port = self.harness.port_of(n)
        return Instance(f"{GROUP}:{GROUP}-{n}", f"{GROUP}-{n}", port)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> LabStack:
        if self._started:
            return self
        self._started = True
        _hook()
        _LIVE.add(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        o = self.options
        if self._given_workdir is not None:
            self.workdir = self._given_workdir.resolve()
            self.workdir.mkdir(parents=True, exist_ok=True)
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix="pm-lab-"))
        self._sock_dir = Path(tempfile.mkdtemp(prefix="pm-ha-"))  # unix socket paths must stay short
        self._write_releases()
        self.harness = _Harness(
            self.workdir / "supervisor",
            release_root=self.release_root,
            capacity=o.capacity,
            group=GROUP,
            numprocs=o.instances,
            max_instances=o.max_instances,
            autorestart=o.autorestart,
        )
        self.harness.start()
        self.pm_port, self.prom_port, self.am_port, self.fe_port = (_free_port() for _ in range(4))
        self._write_targets()
        self._start_paramedic()
        self._start_haproxy()
        self._start_alertmanager()
        self._start_prometheus()
        self._spawn("discovery", self._discovery)
        self._wait(self._pm_ready.is_set, 20, "paramedic did not start")
        if self._pm_error is not None:
            raise RuntimeError(f"paramedic failed to start: {self._pm_error}")
        if not o.automation:
            # The global pause, as an on-call engineer sets it (config automation.paused alone
            # does not pause a running engine: the pause lives in the database).
            r = httpx.post(f"{self.paramedic_url}/api/v1/automation/pause", json={"reason": "lab baseline"}, timeout=5)
            r.raise_for_status()
        self._wait(lambda: self._ready(f"{self.alertmanager_url}/-/ready"), 30, "alertmanager not ready")
        self._wait(lambda: self._ready(f"{self.prometheus_url}/-/ready"), 30, "prometheus not ready")
        self._wait(self._all_serving, 20, "haproxy does not see every instance up")
        self._spawn("load", self._load_thread)
        # Settle: every instance scraped up and the traffic-based series defined, so the first
        # alert anyone sees is the one a scenario causes.
        want = float(o.instances)
        self._wait(lambda: self.query('sum(up{job="web"})') == want, 30, "prometheus does not scrape every instance")
        self._wait(
            lambda: self.query("service:http_error_ratio:rate5s") is not None, 30, "no request traffic in prometheus"
        )

    def stop(self) -> None:
        """Stop everything, in reverse order; safe to call twice and from any exit path."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        for t in reversed(self._threads):
            t.join(15)
        self._threads.clear()
        for p in reversed(self._procs):
            p.stop()
        self._procs.clear()
        if self._log_handler is not None:
            logging.getLogger("paramedic").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        if self.harness is not None:
            self.harness.stop()
        for pid in _processes_with(f"{self.workdir}/", "paramedic.lab.lab_instance") if self._started else []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self._sock_dir is not None:
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            self._sock_dir = None
        if self._started and self._given_workdir is None and not self.options.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        _LIVE.discard(self)

    def leftovers(self) -> list[int]:
        """Pids of processes that still mention this stack's work dir (should be none after stop)."""
        return [p for p in _processes_with(str(self.workdir)) if p != os.getpid()]

    def __enter__(self) -> LabStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LabStack:
        try:
            return await asyncio.to_thread(self.start)
        except asyncio.CancelledError:
            self.stop()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- pieces ----------------------------------------------------------------------------------
    def _write_releases(self) -> None:
        o = self.options
        for version, rate in o.releases.items():
            d = self.release_root / "releases" / version
            d.mkdir(parents=True, exist_ok=True)
            (d / "release.json").write_text(json.dumps({"version": version, "error_rate": rate}))
        (self.release_root / "current").symlink_to(Path("releases") / o.live_release)

    def _targets(self) -> list[dict[str, Any]]:
        return [
            {
                "targets": [i.address],
                "labels": {"service": SERVICE, "program": i.program, "server": i.server, "backend": BACKEND},
            }
            for i in self.instances
        ]

    def _write_targets(self) -> None:
        path = self.workdir / "targets.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._targets()))
        os.replace(tmp, path)

    def _discovery(self) -> None:
        """Service discovery: Prometheus follows the pool's size (the supervisord include file)."""
        last = json.dumps(self._targets())
        while not self._stopping.wait(0.25):
            with contextlib.suppress(OSError, ValueError):
                now = json.dumps(self._targets())
                if now != last:
                    self._write_targets()
                    last = now

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=f"lab-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def _start_haproxy(self) -> None:
        assert self.harness is not None
        servers = "\n".join(
            f"  server {GROUP}-{n} 127.0.0.1:{self.harness.port_of(n)} check inter 500ms fall 2 rise 1"
            for n in range(1, self.options.max_instances + 1)
        )
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(
            "global\n"
            f"  stats socket {self.haproxy_socket} mode 600 level admin\n"
            "  maxconn 1024\n"
            "defaults\n  mode http\n  timeout connect 1s\n  timeout client 10s\n  timeout server 5s\n"
            "  timeout check 800ms\n  option http-keep-alive\n"
            f"frontend fe\n  bind 127.0.0.1:{self.fe_port}\n  default_backend {BACKEND}\n"
            f"backend {BACKEND}\n  balance roundrobin\n  option httpchk GET /healthz\n{servers}\n"
        )
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self._procs.append(_Proc("haproxy", [binary, "-db", "-f", str(cfg)], self.workdir / "haproxy.log"))

    def _start_alertmanager(self) -> None:
        d = self.workdir / "alertmanager"
        d.mkdir(exist_ok=True)
        config = {
            "route": {
                "receiver": "paramedic",
                "group_by": ["alertname", "service"],
                "group_wait": "1s",
                "group_interval": "2s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "paramedic",
                    "webhook_configs": [
                        {"url": f"{self.paramedic_url}/api/v1/alerts/alertmanager", "send_resolved": True}
                    ],
                }
            ],
        }
        (d / "alertmanager.yml").write_text(json.dumps(config, indent=1))
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "alertmanager"
        argv = [
            binary,
            f"--config.file={d / 'alertmanager.yml'}",
            f"--storage.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.am_port}",
            "--cluster.listen-address=",
        ]
        self._procs.append(_Proc("alertmanager", argv, self.workdir / "alertmanager.log"))

    def _start_prometheus(self) -> None:
        d = self.workdir / "prometheus"
        d.mkdir(exist_ok=True)
        (d / "rules.yml").write_text(RULES)
        (d / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms,"
            " external_labels: {cluster: lab}}\n"
            "rule_files: [rules.yml]\n"
            f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{self.am_port}']}}]}}]}}\n"
            "scrape_configs:\n"
            "  - job_name: web\n"
            f"    file_sd_configs: [{{files: ['{self.workdir / 'targets.json'}'], refresh_interval: 1s}}]\n"
        )
        binary = shutil.which("prometheus") or "prometheus"
        argv = [
            binary,
            f"--config.file={d / 'prometheus.yml'}",
            f"--storage.tsdb.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.prom_port}",
        ]
        self._procs.append(_Proc("prometheus", argv, self.workdir / "prometheus.log"))

    def paramedic_config(self) -> Config:
        assert self.harness is not None
        return Config(
            listen=f"127.0.0.1:{self.pm_port}",
            database=f"sqlite:///{self.workdir / 'paramedic.db'}",
            runbooks=[str(p) for p in self.options.runbooks],
            automation=Automation(paused=not self.options.automation),
            # The instances the lab started are the service's known targets; an alert cannot add one.
            targets=[DeclaredTargets(scope={"service": SERVICE}, members=[i.address for i in self.instances])],
            executors={
                "supervisor": self.harness.executor_config(),
                "haproxy": {"socket": f"unix://{self.haproxy_socket}"},
                "release": {
                    "apps": {
                        SERVICE: {
                            "root": str(self.release_root),
                            "restart_argv": [
                                sys.executable,
                                "-m",
                                "paramedic.lab.lab_instance",
                                "restart",
                                "--url",
                                self.harness.url,
                                "--group",
                                GROUP,
                            ],
                            "health_url": f"{self.frontend_url}/healthz",
                            "health_timeout": 20,
                        }
                    }
                },
            },
            prometheus_url=self.prometheus_url,
            enrich_defaults=[
                {
                    "prometheus": {
                        "query": 'sum by (instance) (rate(http_requests_total{job="web"}[30s]))',
                        "range": "5m",
                    }
                }
            ],
            workers=4,
            log_format="text",
        )

    def _start_paramedic(self) -> None:
        config = self.paramedic_config()
        handler = logging.FileHandler(self.workdir / "paramedic.log")
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger("paramedic")
        self._log_handler = handler
        root.handlers[:] = [handler]
        root.setLevel(logging.INFO)
        root.propagate = False
        self.pm = Paramedic.from_config(config)
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.pm),
                host="127.0.0.1",
                port=self.pm_port,
                log_level="error",
                access_log=False,
                lifespan="on",
            )
        )
        self._spawn("paramedic", self._paramedic_thread)

    def _paramedic_thread(self) -> None:
        server = self._server
        assert server is not None

        async def main() -> None:
            task = asyncio.create_task(server.serve())
            while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no started event
                await asyncio.sleep(0.05)
            self._pm_ready.set()
            await task

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._pm_error = exc
            self._pm_ready.set()

    def _load_thread(self) -> None:
        asyncio.run(self._load_main())

    async def _load_main(self) -> None:
        bound = 64
        in_flight = asyncio.Semaphore(bound)
        tasks: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=bound, max_keepalive_connections=bound)
        async with httpx.AsyncClient(limits=limits, timeout=6.0) as client:

            async def one() -> None:
                try:
                    r = await client.get(f"{self.frontend_url}/")
                    if r.status_code < 500:
                        self.load.ok += 1
                    else:
                        self.load.failed += 1
                except httpx.HTTPError:
                    self.load.failed += 1
                finally:
                    in_flight.release()

            next_at = time.monotonic()
            while not self._stopping.is_set():
                rps = self.load_rps
                if rps <= 0:
                    await asyncio.sleep(0.1)
                    next_at = time.monotonic()
                    continue
                next_at += 1.0 / rps
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -1.0:
                    next_at = time.monotonic()
                if in_flight.locked():
                    self.load.shed += 1
                    continue
                await in_flight.acquire()
                self.load.sent += 1
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- waiting and looking -------------------------------------------------------------------
    def _wait(self, pred: Callable[[], bool], limit: float, what: str) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for p in self._procs:
                if not p.alive():
                    tail = p.log.read_text(errors="replace")[-1500:] if p.log.exists() else ""
                    raise RuntimeError(f"{p.name} exited with {p.proc.returncode}:\n{tail}")
            if pred():
                return
            time.sleep(0.1)
        raise RuntimeError(f"lab stack: {what} within {limit:g}s (work dir {self.workdir})")

    @staticmethod
    def _ready(url: str) -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> float | None:
        """An instant query's value (the sum of a vector), None when empty or unreachable."""
        try:
            r = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=3)
            data = r.json()["data"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        if not data["result"]:
            return None
        return sum(float(s["value"][1]) for s in data["result"])

    def haproxy(self, command: str) -> str:
        """One command on HAProxy's runtime API."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(str(self.haproxy_socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def servers(self) -> dict[str, dict[str, str]]:
        """``show servers state`` of the backend: server name → its fields."""
        lines = self.haproxy(f"show servers state {BACKEND}").splitlines()
        header = next((ln for ln in lines if ln.startswith("# be_id")), "")
        cols = header.lstrip("# ").split()
        out: dict[str, dict[str, str]] = {}
        for ln in lines:
            if ln and not ln.startswith("#") and len(ln.split()) >= len(cols) > 0:
                row = dict(zip(cols, ln.split(), strict=False))
                out[row["srv_name"]] = row
        return out

    def serving(self, server: str) -> bool:
        """UP and in normal admin state (not drained, not in maintenance)."""
        row = self.servers().get(server)
        return row is not None and row["srv_op_state"] == "2" and row["srv_admin_state"] == "0"

    def _all_serving(self) -> bool:
        try:
            return all(self.serving(i.server) for i in self.instances)
        except OSError:
            return False

    def fault(self, inst: Instance, kind: str, **query: str | int | float) -> None:
        """Inject a fault into one instance (``POST /fault/<kind>``)."""
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"http://{inst.address}/fault/{kind}", params=query, timeout=2)

    def process_state(self, program: str) -> str:
        assert self.harness is not None
        with self.harness.rpc() as rpc:
            info: Any = rpc.supervisor.getProcessInfo(program)
        return str(info["statename"])

    def incidents(self) -> list[dict[str, Any]]:
        """Every incident with its runs, verdicts and steps (the API's detail view), oldest first."""
        assert self.pm is not None
        with self.pm.db.read() as conn:
            rows = inc_repo.listing(conn, limit=500)
            return [views.incident_detail(conn, r) for r in sorted(rows, key=lambda r: r.id)]

    def runbooks_state(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.paramedic_url}/api/v1/runbooks", timeout=5)
        r.raise_for_status()
        body: Any = r.json()
        return list(body["runbooks"] if isinstance(body, dict) else body)

    def post_alert(self, body: Mapping[str, Any]) -> None:
        httpx.post(f"{self.paramedic_url}/api/v1/alerts", json=dict(body), timeout=5).raise_for_status()


def _hook() -> None:
    global _HOOKED
    if not _HOOKED:
        _HOOKED = True
        atexit.register(_stop_live)


@contextlib.contextmanager
def running(options: StackOptions | None = None, *, workdir: Path | None = None) -> Iterator[LabStack]:
    """``with running(opts) as stack:`` — the same as ``with LabStack(opts) as stack:``."""
    with LabStack(options, workdir=workdir) as stack:
        yield stack
