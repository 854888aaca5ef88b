"""The system under test: ``paramedic serve`` on SQLite in a temporary folder, and the receiver
its runbook's ``http.request`` calls, each as a child process on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parents[1]

LATENCY_ALERT = "BenchLatency"
INGEST_ALERT = "BenchIngest"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """A child process that is ready once ``ready_url`` answers 200; stopped on exit, always."""

    def __init__(self, argv: list[str], *, ready_url: str, log: Path, env: dict[str, str], cwd: Path) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{argv[2:4]} exited with {self.proc.returncode}:\n{log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[2:4]} did not become ready; see {log}")
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (from /proc, Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def runbooks_yaml(receiver: str) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: paramedic/v1
        runbooks:
          - name: bench-latency
            owner: bench
            description: every alert calls the receiver once; the receiver stamps the arrival
            match: {{alertname: {LATENCY_ALERT}, labels: {{service: bench}}}}
            target: "{{{{ labels.instance }}}}"
            mode: auto
            steps:
              - action: http.request
                with:
                  url: {receiver}/hit
                  method: POST
                  json: {{id: "{{{{ labels.instance }}}}"}}
                  expect_status: 200
          - name: bench-ingest
            owner: bench
            description: matched and planned for every alert, recorded as a suggestion (observe)
            match: {{alertname: {INGEST_ALERT}, labels: {{service: bench}}}}
            target: "{{{{ labels.instance }}}}"
            mode: observe
            steps:
              - action: http.request
                with:
                  url: {receiver}/hit
                  method: POST
                  json: {{id: "{{{{ labels.instance }}}}"}}
                  expect_status: 200
        """
    )


class Stack:
    """Receiver + paramedic server; a context manager that leaves no process behind."""

    def __init__(self, workdir: Path, *, workers: int) -> None:
        self.workdir = workdir
        self.workers = workers
        self.children: list[Child] = []
        self.receiver_url = ""
        self.paramedic_url = ""
        self.server: Child | None = None

    def __enter__(self) -> Stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        try:
            rport = free_port()
            self.receiver_url = f"http://127.0.0.1:{rport}"
            self.children.append(
                Child(
                    [sys.executable, "-m", "bench.receiver", "--port", str(rport)],
                    ready_url=f"{self.receiver_url}/hits",
                    log=self.workdir / "receiver.log",
                    env=env,
                    cwd=REPO,
                )
            )
            (self.workdir / "runbooks").mkdir()
            (self.workdir / "runbooks" / "bench.yaml").write_text(runbooks_yaml(self.receiver_url))
            pport = free_port()
            self.paramedic_url = f"http://127.0.0.1:{pport}"
            config = self.workdir / "paramedic.yaml"
            config.write_text(
                textwrap.dedent(
                    f"""\
                    listen: 127.0.0.1:{pport}
                    database: sqlite:///{self.workdir / "paramedic.db"}
                    runbooks: [runbooks/]
                    workers: {self.workers}
                    log_format: text
                    """
                )
            )
            self.server = Child(
                [sys.executable, "-m", "paramedic.cli", "serve", "--config", str(config)],
                ready_url=f"{self.paramedic_url}/readyz",
                log=self.workdir / "paramedic.log",
                env=env,
                cwd=self.workdir,
            )
            self.children.append(self.server)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @property
    def webhook(self) -> str:
        return f"{self.paramedic_url}/api/v1/alerts/alertmanager"

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
