"""The real servers tests run on loopback, each one ``Process`` (so each stops its whole tree):

- ``Serve``: ``python -m paramedic.cli serve --config FILE``; ``serve_config`` writes a config,
  ``replicas`` starts several at once;
- ``Prometheus`` (Debian's ``prometheus``), scraping given targets every second;
- ``Alertmanager`` (Debian's ``prometheus-alertmanager``), alone or one peer of an HA pair
  (``alertmanager_pair``);
- ``Haproxy``: Debian's HAProxy as the load balancer in front of replicas;
- ``SampleService``: the lab's sample service, optionally with steady traffic.

Nothing here is faked; a start that fails shows the tail of the server's own log.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.support import REPO, free_port, require_binary
from tests.support.process import Process


def answers(url: str, *, timeout: float = 1.0) -> bool:
    """True once ``url`` answers 200 (connection refused or a timeout: not yet)."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def paramedic_env() -> dict[str, str]:
    """The environment for a paramedic child: this checkout's sources, no PARAMEDIC_* of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH", "")]))
    return env


# ---- paramedic serve ---------------------------------------------------------------------------------


def serve_config(
    workdir: Path,
    *,
    database: str,
    runbooks: str,
    lease: str = "2s",
    workers: int = 2,
    name: str = "replica",
    runbooks_file: str = "runbooks.yaml",
) -> Path:
    """A config (and its runbooks folder) for one ``serve``; several replicas may share the runbooks."""
    rb = workdir / "runbooks"
    rb.mkdir(parents=True, exist_ok=True)
    (rb / runbooks_file).write_text(runbooks)
    config = workdir / f"{name}.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            listen: 127.0.0.1:{free_port()}
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


class Serve(Process):
    """``python -m paramedic.cli serve --config FILE`` as a child process, its log beside the config."""

    def __init__(self, config: Path, *, log: Path | None = None) -> None:
        listen = next(line for line in config.read_text().splitlines() if line.startswith("listen:"))
        self.port = int(listen.rpartition(":")[2])
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [sys.executable, "-m", "paramedic.cli", "serve", "--config", str(config)],
            log=log or config.with_suffix(".log"),
            env=paramedic_env(),
            cwd=config.parent,
            name=f"paramedic serve ({config.name})",
        )

    def ready(self) -> bool:
        """True once /readyz answers 200; fails the test (with the log's tail) if serve has exited."""
        self.check()
        return answers(f"{self.url}/readyz")

    def started(self) -> Serve:
        """Start and wait until ready."""
        return self.start(self.ready)

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}{path}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()


@contextlib.contextmanager
def replicas(configs: list[Path]) -> Iterator[list[Serve]]:
    """Start every replica at once (their imports and migrations overlap), wait until all are ready."""
    started: list[Serve] = []
    try:
        for c in configs:
            started.append(Serve(c).start())
        for r in started:
            r.wait_until(r.ready, timeout=90, what="ready")
        yield started
    finally:
        for r in started:
            r.stop()


# ---- Prometheus --------------------------------------------------------------------------------------


class Prometheus(Process):
    """A real Prometheus on a free loopback port scraping ``targets`` every second; ``flags`` are
    extra command-line flags (``--enable-feature=exemplar-storage``)."""

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[str],
        *,
        job: str = "app",
        labels: Mapping[str, str] | None = None,
        flags: Sequence[str] = (),
    ) -> None:
        binary = require_binary("prometheus")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        static: dict[str, Any] = {"targets": list(targets)}
        if labels:
            static["labels"] = dict(labels)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": job, "static_configs": [static]}],
        }
        cfg = workdir / "prometheus.yml"
        cfg.write_text(json.dumps(config))  # JSON is YAML
        super().__init__(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *flags,
            ],
            log=workdir / "prometheus.log",
            name="prometheus",
        )

    def __enter__(self) -> Prometheus:
        return self if self.proc is not None else self.start(lambda: answers(f"{self.url}/-/ready"))

    def value(self, query: str) -> float | None:
        data = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=5).json()["data"]["result"]
        return float(data[0]["value"][1]) if data else None

    def wait_for_samples(self, query: str, timeout: float = 60) -> None:
        """Until ``query`` returns a sample (scrapes are every second)."""
        self.wait_until(lambda: self.value(query) is not None, timeout=timeout, what=f"returning {query}", every=0.3)


# ---- Alertmanager ------------------------------------------------------------------------------------


class Alertmanager(Process):
    """A real ``prometheus-alertmanager`` on a free loopback port sending to ``webhooks``.

    Alone (``cluster_port`` None) it has no gossip port. As one peer of an HA cluster it gossips on
    ``cluster_port`` with ``peers``; ``peer_timeout`` is how long a peer waits for the ones before
    it to notify (Alertmanager's default is 15s); shorter than the gossip round trip, both peers
    notify: the duplicate delivery an HA pair produces whenever gossip lags.
    """

    def __init__(
        self,
        workdir: Path,
        webhooks: list[str],
        *,
        group_interval: str = "1h",
        cluster_port: int | None = None,
        peers: Sequence[int] = (),
        peer_timeout: str = "15s",
        receiver: str = "paramedic",
        config: Mapping[str, Any] | None = None,
        port: int | None = None,
    ) -> None:
        """``config`` replaces the whole routing config (``webhooks`` is then ignored)."""
        binary = require_binary("prometheus-alertmanager", "alertmanager")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = config or {
            "route": {
                "receiver": receiver,
                "group_wait": "1s",
                "group_interval": group_interval,
                "repeat_interval": "1h",
                "group_by": ["alertname", "service"],
            },
            "receivers": [{"name": receiver, "webhook_configs": [{"url": u, "send_resolved": True} for u in webhooks]}],
        }
        cfg = workdir / "alertmanager.yml"
        cfg.write_text(json.dumps(config))  # JSON is YAML
        argv = [
            binary,
            f"--config.file={cfg}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        if cluster_port is None:
            argv.append("--cluster.listen-address=")
        else:
            argv += [
                f"--cluster.listen-address=127.0.0.1:{cluster_port}",
                f"--cluster.advertise-address=127.0.0.1:{cluster_port}",
                *[f"--cluster.peer=127.0.0.1:{p}" for p in peers],
                f"--cluster.peer-timeout={peer_timeout}",
                # gossip (and so the notification log) reaches the other peer only after about a
                # second: the window in which an HA pair delivers twice, made wide enough to hit
                "--cluster.gossip-interval=1s",
                "--cluster.pushpull-interval=10s",
                "--cluster.settle-timeout=1s",
            ]
        super().__init__(argv, log=workdir / "alertmanager.log", name="alertmanager")

    def ready(self) -> bool:
        self.check()
        return answers(f"{self.url}/-/ready")

    def status(self) -> dict[str, Any]:
        self.check()
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

    def silences(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"{self.url}/api/v2/silences", timeout=5).json()
        return found


@contextlib.contextmanager
def alertmanager_pair(workdir: Path, *, webhooks: list[str], peer_timeout: str) -> Iterator[list[Alertmanager]]:
    """Two Alertmanagers gossiping with each other, both sending to ``webhooks``; ready and clustered."""
    ports = [free_port(), free_port()]
    peers: list[Alertmanager] = []
    try:
        for i, port in enumerate(ports):
            others = [p for p in ports if p != port]
            am = Alertmanager(workdir / f"am{i}", webhooks, cluster_port=port, peers=others, peer_timeout=peer_timeout)
            peers.append(am.start())
        for p in peers:
            p.wait_until(lambda p=p: p.clustered(len(ports)), timeout=60, what="clustered", every=0.2)  # type: ignore[misc]
        yield peers
    finally:
        for p in peers:
            p.stop()


# ---- HAProxy in front of the replicas ----------------------------------------------------------------


class Haproxy(Process):
    """Debian's HAProxy in the foreground, round robin over the replicas, health-checked on /readyz."""

    def __init__(self, workdir: Path, servers: Sequence[Serve]) -> None:
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
        super().__init__([binary, "-f", str(cfg), "-db"], log=workdir / "haproxy.log", name="haproxy")
        self.start(lambda: answers(f"{self.url}/healthz"))


# ---- the lab's sample service ------------------------------------------------------------------------


class SampleService(Process):
    """``python -m paramedic.lab.sample_service``; with ``traffic``, a thread sends it steady requests."""

    def __init__(
        self, workdir: Path, *, name: str = "web-1", fault_dir: Path | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "paramedic.lab.sample_service", "--port", str(self.port), "--name", name]
        if fault_dir is not None:
            argv += ["--fault-dir", str(fault_dir)]
        super().__init__(argv, log=workdir / f"{name}.log", env=paramedic_env(), name=f"sample service {name}")
        self._traffic_stop = threading.Event()
        self._traffic: threading.Thread | None = None

    def up(self) -> bool:
        return answers(f"{self.url}/healthz", timeout=0.5)

    def started(self, *, traffic: bool = False) -> SampleService:
        self.start(self.up)
        if traffic:
            self._traffic = threading.Thread(target=self._send, daemon=True)
            self._traffic.start()
        return self

    def _send(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._traffic_stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get(f"{self.url}/")
                time.sleep(0.02)

    def stop(self, grace: float = 10.0) -> None:
        self._traffic_stop.set()
        if self._traffic is not None:
            self._traffic.join(5)
        super().stop(grace)


__all__ = [
    "Alertmanager",
    "Haproxy",
    "Prometheus",
    "SampleService",
    "Serve",
    "alertmanager_pair",
    "answers",
    "paramedic_env",
    "replicas",
    "serve_config",
]
