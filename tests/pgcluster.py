"""Helpers for the multi-replica and failure tests: real processes on loopback, nothing faked.

- ``fresh_schema``: a new schema on the shared PostgreSQL (``PARAMEDIC_TEST_POSTGRES_URL``), as
  ``conftest`` makes one per test, dropped afterwards.
- ``PrivateCluster``: a PostgreSQL cluster of the test's own (``initdb`` in a temporary folder, a
  free port, its unix socket in that folder), so a test may restart it; the shared server is never
  touched.
- ``TcpProxy``: an asyncio TCP proxy between paramedic and PostgreSQL that can drop every
  connection and refuse new ones (a network partition) and heal again.
- ``Replica``: one ``python -m paramedic.cli serve`` child process; ``Haproxy``: Debian's HAProxy
  as the load balancer in front of the replicas, config written here; ``AlertmanagerPeer``: one
  real Alertmanager of an HA cluster (gossip on loopback).

Every helper is a context manager or has ``stop``; each stops its processes and closes its
sockets, so no process outlives the test that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support import REQUIRE, free_port, require_binary, wait_for

PG_URL = os.environ.get("PARAMEDIC_TEST_POSTGRES_URL", "")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REPO = Path(__file__).resolve().parents[1]


def require_pg_url() -> str:
    """The shared PostgreSQL URL, or skip: these tests need PostgreSQL (paramedic's scale-out store)."""
    if not PG_URL:
        pytest.skip("PARAMEDIC_TEST_POSTGRES_URL is not set (multi-replica tests need PostgreSQL)")
    return PG_URL


def with_schema(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new, empty schema on ``url``; yields a URL whose connections use it; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield with_schema(url, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# ---- a private PostgreSQL cluster ------------------------------------------------------------------


class PrivateCluster:
    """``initdb`` + ``pg_ctl`` in a temporary folder under /tmp, on a free loopback port.

    As root, initdb refuses to run, so the cluster belongs to the ``postgres`` user and its
    commands run through ``runuser``; its folder is outside pytest's tmp_path (mode 0700, root's).
    """

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (PG_BIN / tool).exists():
                message = f"PostgreSQL 15 server binaries are not installed ({PG_BIN / tool})"
                if REQUIRE:
                    pytest.fail(f"PARAMEDIC_REQUIRE_INTEGRATION=1 but {message}")
                pytest.skip(message)
        self.root = Path(tempfile.mkdtemp(prefix="paramedic-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str, timeout: float = 60) -> None:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr or done.stdout}")

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"

    def __enter__(self) -> PrivateCluster:
        try:
            self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", self._options(), "-w",
            "start",
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (clients see 'terminating connection due to administrator command')."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def log(self) -> str:
        path = self.root / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


# ---- a TCP proxy that can partition paramedic from its database ------------------------------------


class TcpProxy:
    """An asyncio TCP proxy on a free loopback port in a thread of its own.

    ``partition()`` aborts every open connection (both ends see a reset) and refuses new ones
    until ``heal()``: to paramedic, the database has dropped off the network. ``stall()`` keeps
    the connections open but forwards nothing until ``heal()``, like a network that silently drops
    packets: neither end sees an error, each waits for the other.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.partitioned = False
        self._flowing: asyncio.Event | None = None
        self.accepted = 0
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()

        async def start() -> asyncio.Server:
            self._flowing = asyncio.Event()
            self._flowing.set()
            return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

        self._server = self._call(start())
        return self

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.partitioned:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            assert self._flowing is not None
            try:
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)

    async def _abort_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()

    def partition(self) -> None:
        self.partitioned = True
        self._call(self._abort_all())

    def stall(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def heal(self) -> None:
        self.partitioned = False
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def __exit__(self, *exc: object) -> None:
        self.partitioned = True
        if self._server is not None:
            self._server.close()
            self._call(self._abort_all())
            self._call(self._server.wait_closed())

            async def drain_tasks() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            self._call(drain_tasks())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# ---- paramedic replicas ------------------------------------------------------------------------------


def write_replica_config(
    workdir: Path, *, database: str, runbooks: str, lease: str = "2s", workers: int = 2, name: str = "replica"
) -> Path:
    """A config (and its runbooks folder) for one replica; all replicas may share the runbooks."""
    rb = workdir / "runbooks"
    rb.mkdir(parents=True, exist_ok=True)
    (rb / "runbooks.yaml").write_text(runbooks)
    port = free_port()
    config = workdir / f"{name}.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            listen: 127.0.0.1:{port}
            database: "{database}"
            runbooks: [runbooks/]
            lease: {lease}
            workers: {workers}
            log_format: text
            instance_name: {name}
            """
        )
    )
    return config


class Replica:
    """``python -m paramedic.cli serve --config FILE`` as a child process of the test."""

    def __init__(self, config: Path) -> None:
        self.config = config
        listen = next(line for line in config.read_text().splitlines() if line.startswith("listen:"))
        self.port = int(listen.rpartition(":")[2])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = config.with_suffix(".log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH", "")]))
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "paramedic.cli", "serve", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config.parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"paramedic serve exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}{path}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, leases stay held until they expire."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


@contextlib.contextmanager
def replicas(configs: list[Path], *, timeout: float = 40) -> Iterator[list[Replica]]:
    """Start every replica at once (their imports and migrations overlap), wait until all are ready."""
    started: list[Replica] = []
    try:
        for c in configs:
            started.append(Replica(c))
        wait_for(lambda: all(r.ready() for r in started), timeout=timeout, every=0.1)
        yield started
    finally:
        for r in started:
            r.stop()


# ---- HAProxy in front of the replicas ----------------------------------------------------------------


class Haproxy:
    """Debian's HAProxy in the foreground, round robin over the replicas, health-checked on /readyz."""

    def __init__(self, workdir: Path, servers: list[Replica]) -> None:
        binary = require_binary("haproxy", "/usr/sbin/haproxy")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = workdir / "haproxy.sock"
        lines = "\n".join(
            f"    server r{i} 127.0.0.1:{s.port} check inter 300ms fall 2 rise 1" for i, s in enumerate(servers)
        )
        cfg = workdir / "haproxy.cfg"
        cfg.write_text(
            textwrap.dedent(
                """\
                global
                    stats socket {sock} mode 600 level admin
                defaults
                    mode http
                    timeout connect 2s
                    timeout client 30s
                    timeout server 30s
                    retries 3
                    option redispatch
                    retry-on conn-failure empty-response response-timeout
                frontend paramedic
                    bind 127.0.0.1:{port}
                    default_backend replicas
                backend replicas
                    balance roundrobin
                    option httpchk
                    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1
                {servers}
                """
            ).format(sock=self.socket, port=self.port, servers=lines)
        )
        self._log = (workdir / "haproxy.log").open("wb")
        self.proc = subprocess.Popen([binary, "-f", str(cfg), "-db"], stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for(self._ready, timeout=15, every=0.1)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"haproxy exited with {self.proc.returncode}; see {self._log.name}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


# ---- an Alertmanager HA cluster ----------------------------------------------------------------------


class AlertmanagerPeer:
    """One real ``prometheus-alertmanager`` of an HA cluster: gossip on a loopback port, the other
    peers listed with ``--cluster.peer``. ``peer_timeout`` is how long a peer waits for the ones
    before it to notify (Alertmanager's default is 15s); shorter than the gossip round trip, both
    peers notify: the duplicate delivery an HA pair produces whenever gossip lags."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        *,
        webhooks: list[str],
        cluster_port: int,
        peers: list[int],
        peer_timeout: str = "15s",
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "route": {
                "receiver": "paramedic",
                "group_wait": "1s",
                "group_interval": "1h",
                "repeat_interval": "1h",
                "group_by": ["alertname", "service"],
            },
            "receivers": [
                {"name": "paramedic", "webhook_configs": [{"url": u, "send_resolved": True} for u in webhooks]}
            ],
        }
        cfg = workdir / "alertmanager.yml"
        cfg.write_text(json.dumps(config))  # JSON is YAML
        self._log = (workdir / "alertmanager.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--cluster.listen-address=127.0.0.1:{cluster_port}",
                f"--cluster.advertise-address=127.0.0.1:{cluster_port}",
                *[f"--cluster.peer=127.0.0.1:{p}" for p in peers],
                f"--cluster.peer-timeout={peer_timeout}",
                # gossip (and so the notification log) reaches the other peer only after about a
                # second: the window in which an HA pair delivers twice, made wide enough to hit
                "--cluster.gossip-interval=1s",
                "--cluster.pushpull-interval=10s",
                "--cluster.settle-timeout=1s",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def status(self) -> dict[str, Any]:
        if self.proc.poll() is not None:
            pytest.fail(f"alertmanager exited with {self.proc.returncode}; see {self._log.name}")
        try:
            r = httpx.get(f"{self.url}/api/v2/status", timeout=1)
        except httpx.HTTPError:
            return {}
        return dict(r.json()) if r.status_code == 200 else {}

    def clustered(self, size: int) -> bool:
        cluster = self.status().get("cluster") or {}
        return cluster.get("status") == "ready" and len(cluster.get("peers") or []) == size

    def push(self, alerts: list[dict[str, Any]]) -> None:
        r = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5)
        assert r.status_code == 200, r.text

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


@contextlib.contextmanager
def alertmanager_pair(workdir: Path, *, webhooks: list[str], peer_timeout: str) -> Iterator[list[AlertmanagerPeer]]:
    """Two Alertmanagers gossiping with each other, both sending to ``webhooks``; ready and clustered."""
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    ports = [free_port(), free_port()]
    peers: list[AlertmanagerPeer] = []
    try:
        for i, port in enumerate(ports):
            others = [p for p in ports if p != port]
            peers.append(
                AlertmanagerPeer(
                    binary,
                    workdir / f"am{i}",
                    webhooks=webhooks,
                    cluster_port=port,
                    peers=others,
                    peer_timeout=peer_timeout,
                )
            )
        wait_for(lambda: all(p.clustered(len(ports)) for p in peers), timeout=30, every=0.2)
        yield peers
    finally:
        for p in peers:
            p.stop()


def pids_in(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def kill_pids(path: Path) -> None:
    """End step processes a test's runbook started (executors detach them from paramedic)."""
    for pid in pids_in(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
