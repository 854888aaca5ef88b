"""HAProxy executor against a real HAProxy (Debian ``haproxy``) started for this module.

The backends point at tiny HTTP servers the test runs, so health checks pass and servers are
really UP; every assertion reads ``show servers state`` straight from HAProxy's runtime API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from paramedic.actions.base import ActionRequest
from paramedic.actions.haproxy import HaproxyExecutor, parse_servers_state
from paramedic.actions.registry import ExecutorRegistry
from paramedic.core.errors import PermanentError, RetryableError
from tests.support import free_port, require_binary, wait_for

ZONES = {"zone-a": ["web/w1", "web/w2"], "zone-b": ["web/w3", "api/a1"]}


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Haproxy:
    unix: str
    tcp: str
    pid: int

    def raw(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.unix.removeprefix("unix://"))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def state(self, backend: str) -> dict[str, dict[str, str]]:
        """``show servers state`` rows keyed by server name, columns named by the header."""
        header: list[str] = []
        rows: dict[str, dict[str, str]] = {}
        for line in self.raw(f"show servers state {backend}").splitlines():
            if line.startswith("#"):
                header = line[1:].split()
            elif header and line.strip():
                row = dict(zip(header, line.split(), strict=False))
                rows[row["srv_name"]] = row
        return rows


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def haproxy() -> Iterator[Haproxy]:
    binary = require_binary("haproxy", "/usr/sbin/haproxy")
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(4)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    ports = [s.server_address[1] for s in servers]
    # A short directory: unix socket paths are limited to 107 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="pm-hx-"))
    sock = workdir / "admin.sock"
    stats_port, front_port = free_port(), free_port()
    checks = "check inter 200ms rise 1 fall 1"
    (workdir / "haproxy.cfg").write_text(
        f"""global
  stats socket {sock} mode 600 level admin
  stats socket ipv4@127.0.0.1:{stats_port} level admin
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
frontend fe
  bind 127.0.0.1:{front_port}
  default_backend web
backend web
  server w1 127.0.0.1:{ports[0]} {checks}
  server w2 127.0.0.1:{ports[1]} {checks}
  server w3 127.0.0.1:{ports[2]} {checks}
backend api
  server a1 127.0.0.1:{ports[3]} {checks}
"""
    )
    pidfile = workdir / "haproxy.pid"
    subprocess.run(
        [binary, "-f", str(workdir / "haproxy.cfg"), "-D", "-p", str(pidfile)],
        check=True,
        capture_output=True,
        timeout=20,
    )
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "" and sock.exists())
    env = Haproxy(
        unix=f"unix://{sock}",
        tcp=f"tcp://127.0.0.1:{stats_port}",
        pid=int(pidfile.read_text().split()[0]),
    )
    try:
        wait_for(lambda: all(r["srv_op_state"] == "2" for b in ("web", "api") for r in env.state(b).values()))
        yield env
    finally:
        for pid in pidfile.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _pid_alive(env.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(env.pid):
            os.kill(env.pid, signal.SIGKILL)
        for s in servers:
            s.shutdown()
            s.server_close()
        for child in workdir.iterdir():
            child.unlink()
        workdir.rmdir()


@pytest.fixture
def hx(haproxy: Haproxy) -> HaproxyExecutor:
    """A fresh executor on the unix socket, with every server back to ready and weight 1."""
    for backend, server in (("web", "w1"), ("web", "w2"), ("web", "w3"), ("api", "a1")):
        assert haproxy.raw(f"set server {backend}/{server} state ready").strip() == ""
        assert haproxy.raw(f"set server {backend}/{server} weight 1").strip() == ""
    return HaproxyExecutor.from_config({"socket": haproxy.unix, "timeout": "3s", "zones": ZONES})


def req(action: str, **args: object) -> ActionRequest:
    registry = ExecutorRegistry([HaproxyExecutor(socket=None)])
    return registry.request(action, args)


@pytest.mark.integration
def test_drain_then_ready_one_server(haproxy: Haproxy, hx: HaproxyExecutor) -> None:
    result = asyncio.run(hx.execute(req("haproxy.drain", backend="web", server="w1")))
    assert result.changed
    assert result.summary == "set server web/w1 state drain"
    row = haproxy.state("web")["w1"]
    assert row["srv_admin_state"] == "8"  # SRV_ADMF_FDRAIN
    assert row["srv_op_state"] == "2"

    again = asyncio.run(hx.execute(req("haproxy.drain", backend="web", server="w1")))
    assert not again.changed  # idempotent: already drained

    state = asyncio.run(hx.read_state(req("haproxy.drain", backend="web", server="w1")))
    assert state.healthy is False
    assert state.fields["srv_admin_state"] == "8"

    asyncio.run(hx.execute(req("haproxy.ready", backend="web", server="w1")))
    assert haproxy.state("web")["w1"]["srv_admin_state"] == "0"
    state = asyncio.run(hx.read_state(req("haproxy.ready", backend="web", server="w1")))
    assert state.healthy is True


@pytest.mark.integration
def test_maint_then_ready(haproxy: Haproxy, hx: HaproxyExecutor) -> None:
    asyncio.run(hx.execute(req("haproxy.maint", backend="web", server="w2")))
    assert haproxy.state("web")["w2"]["srv_admin_state"] == "1"  # SRV_ADMF_FMAINT
    asyncio.run(hx.execute(req("haproxy.ready", backend="web", server="w2")))
    assert haproxy.state("web")["w2"]["srv_admin_state"] == "0"


@pytest.mark.integration
def test_zone_drain_drains_every_server_of_the_zone(haproxy: Haproxy, hx: HaproxyExecutor) -> None:
    result = asyncio.run(hx.execute(req("haproxy.drain", zone="zone-a")))
    assert result.changed
    web = haproxy.state("web")
    assert (web["w1"]["srv_admin_state"], web["w2"]["srv_admin_state"]) == ("8", "8")
    assert web["w3"]["srv_admin_state"] == "0"

    zone = asyncio.run(hx.read_state(req("haproxy.drain", zone="zone-a")))
    assert zone.target == "zone:zone-a"
    assert zone.healthy is False
    assert zone.detail == "0 of 2 servers serving"

    asyncio.run(hx.execute(req("haproxy.ready", zone="zone-a")))
    web = haproxy.state("web")
    assert (web["w1"]["srv_admin_state"], web["w2"]["srv_admin_state"]) == ("0", "0")


@pytest.mark.integration
def test_refuses_to_drain_the_last_healthy_server(haproxy: Haproxy, hx: HaproxyExecutor) -> None:
    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.drain", backend="api", server="a1")))
    assert err.value.reason == "last_healthy"
    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.maint", backend="api", server="a1")))
    assert err.value.reason == "last_healthy"
    assert haproxy.state("api")["a1"]["srv_admin_state"] == "0"


@pytest.mark.integration
def test_zone_refusal_changes_nothing(haproxy: Haproxy, hx: HaproxyExecutor) -> None:
    asyncio.run(hx.execute(req("haproxy.drain", zone="zone-a")))
    # zone-b holds web/w3, now the last serving server of web, and api/a1, the only one of api.
    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.drain", zone="zone-b")))
    assert err.value.reason == "last_healthy"
    assert haproxy.state("web")["w3"]["srv_admin_state"] == "0"
    assert haproxy.state("api")["a1"]["srv_admin_state"] == "0"

    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.drain", backend="web", server="w3")))
    assert err.value.reason == "last_healthy"


@pytest.mark.integration
def test_draining_a_down_server_is_allowed(haproxy: Haproxy, hx: HaproxyExecutor) -> None:
    asyncio.run(hx.execute(req("haproxy.maint", backend="web", server="w1")))
    asyncio.run(hx.execute(req("haproxy.maint", backend="web", server="w2")))
    # w1 and w2 take no traffic, so putting w1 in drain removes no capacity.
    asyncio.run(hx.execute(req("haproxy.drain", backend="web", server="w1")))
    assert haproxy.state("web")["w1"]["srv_admin_state"] == "8"


@pytest.mark.integration
def test_set_weight(haproxy: Haproxy, hx: HaproxyExecutor) -> None:
    result = asyncio.run(hx.execute(req("haproxy.set_weight", backend="web", server="w3", weight=50)))
    assert result.summary == "set server web/w3 weight 50"
    assert haproxy.state("web")["w3"]["srv_uweight"] == "50"
    same = asyncio.run(hx.execute(req("haproxy.set_weight", backend="web", server="w3", weight="50")))
    assert not same.changed

    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.set_weight", backend="api", server="a1", weight=0)))
    assert err.value.reason == "last_healthy"
    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.set_weight", backend="web", server="w3", weight=999)))
    assert err.value.reason == "bad_arguments"
    assert haproxy.state("web")["w3"]["srv_uweight"] == "50"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("backend", "server"),
    [
        pytest.param("web", "w9", id="unknown-server"),
        pytest.param("nope", "w1", id="unknown-backend"),
    ],
)
def test_unknown_target_is_not_found(hx: HaproxyExecutor, backend: str, server: str) -> None:
    for action in ("haproxy.drain", "haproxy.ready"):
        with pytest.raises(PermanentError) as err:
            asyncio.run(hx.execute(req(action, backend=backend, server=server)))
        assert err.value.reason == "not_found"


@pytest.mark.integration
def test_unknown_zone_and_bad_names(hx: HaproxyExecutor) -> None:
    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.drain", zone="zone-z")))
    assert err.value.reason == "not_found"
    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.drain", backend="web", server="w1; shutdown")))
    assert err.value.reason == "bad_arguments"
    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.drain", backend="web")))
    assert err.value.reason == "bad_arguments"


@pytest.mark.integration
def test_describe_reads_state_and_changes_nothing(haproxy: Haproxy, hx: HaproxyExecutor) -> None:
    text = asyncio.run(hx.describe(req("haproxy.drain", zone="zone-a")))
    assert text == (
        "would run `set server web/w1 state drain` (now UP, weight 1); "
        "would run `set server web/w2 state drain` (now UP, weight 1)"
    )
    assert haproxy.state("web")["w1"]["srv_admin_state"] == "0"
    text = asyncio.run(hx.describe(req("haproxy.ready", backend="web", server="w1")))
    assert text == "web/w1 is already as asked (UP, weight 1); nothing to do"


@pytest.mark.integration
def test_tcp_socket_and_known_targets(haproxy: Haproxy) -> None:
    hx = HaproxyExecutor.from_config({"socket": haproxy.tcp, "zones": ZONES})
    assert asyncio.run(hx.known_targets({"backend": "web"})) == ["web/w1", "web/w2", "web/w3"]
    assert asyncio.run(hx.known_targets({"zone": "zone-b"})) == ["web/w3", "api/a1"]
    assert asyncio.run(hx.known_targets({"backend": "nope"})) is None
    assert asyncio.run(hx.known_targets({"service": "web"})) is None
    asyncio.run(hx.execute(req("haproxy.drain", backend="web", server="w2")))
    assert haproxy.state("web")["w2"]["srv_admin_state"] == "8"
    asyncio.run(hx.execute(req("haproxy.ready", backend="web", server="w2")))


def test_unreachable_socket_is_retryable(tmp_path: Path) -> None:
    hx = HaproxyExecutor(socket=f"unix://{tmp_path}/missing.sock")
    with pytest.raises(RetryableError) as err:
        asyncio.run(hx.execute(req("haproxy.drain", backend="web", server="w1")))
    assert err.value.reason == "unreachable"


def test_not_configured() -> None:
    hx = HaproxyExecutor.from_config({})
    assert [s.name for s in hx.actions()] == [
        "haproxy.drain",
        "haproxy.ready",
        "haproxy.maint",
        "haproxy.set_weight",
    ]
    with pytest.raises(PermanentError) as err:
        asyncio.run(hx.execute(req("haproxy.drain", backend="web", server="w1")))
    assert err.value.reason == "not_configured"


def test_parse_servers_state_by_header_names() -> None:
    text = (
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
        "srv_iweight srv_port\n3 web 1 w1 127.0.0.1 2 8 10 1 8080\n\n"
    )
    (srv,) = parse_servers_state(text)
    assert (srv.ref, srv.up, srv.drain, srv.maint, srv.weight) == ("web/w1", True, True, False, 10)
    assert not srv.serving
    with pytest.raises(PermanentError) as err:
        parse_servers_state("garbage\n")
    assert err.value.reason == "protocol"


# -- undo: natural inverses, and a run that rolls back on a real HAProxy ------------------------------------


def test_inverse_puts_back_the_state_read_before_the_action(hx: HaproxyExecutor, haproxy: Haproxy) -> None:
    drain = req("haproxy.drain", backend="web", server="w1")
    done = asyncio.run(hx.execute(drain))
    inverse = hx.inverse(drain, done)
    assert inverse is not None
    assert (inverse.action, dict(inverse.args)) == ("haproxy.ready", {"backend": "web", "server": "w1"})
    maint = req("haproxy.maint", backend="web", server="w1")  # from drain: its undo drains again
    inverse = hx.inverse(maint, asyncio.run(hx.execute(maint)))
    assert inverse is not None
    assert inverse.action == "haproxy.drain"
    weight = req("haproxy.set_weight", backend="web", server="w2", weight=7)
    inverse = hx.inverse(weight, asyncio.run(hx.execute(weight)))
    assert inverse is not None
    assert dict(inverse.args) == {"backend": "web", "server": "w2", "weight": 1}
    asyncio.run(hx.execute(req(inverse.action, **inverse.args)))
    assert haproxy.state("web")["w2"]["srv_uweight"] == "1"


def _drain_restart_ready(on_failure: str) -> str:
    return f"""
apiVersion: paramedic/v1
runbooks:
  - name: bounce-w1
    owner: team
    match: {{alertname: Slow}}
    target: "{{{{ labels.instance }}}}"
    mode: auto
    on_failure: {on_failure}
    steps:
      - action: haproxy.drain
        with: {{backend: web, server: w1}}
      - action: shell.run
        name: restart
        with: {{argv: ["false"]}}
      - action: haproxy.ready
        with: {{backend: web, server: w1}}
"""


@pytest.mark.parametrize("on_failure", ["rollback", "escalate"])
def test_a_failed_restart_between_drain_and_ready(
    haproxy: Haproxy, hx: HaproxyExecutor, tmp_path: Path, on_failure: str
) -> None:
    """drain → restart → ready on a real HAProxy, where the restart fails (a command that exits 1
    stands in for it). 753e177 left w1 drained with a generic "step 1 failed". Rollback puts w1 back
    in rotation and says so; escalate leaves it drained and names that state and its undo."""
    from paramedic.core.config import Config
    from paramedic.engine.service import Paramedic
    from tests.conftest import Server

    rb = tmp_path / "rb"
    rb.mkdir()
    (rb / "r.yaml").write_text(_drain_restart_ready(on_failure))
    cfg = Config(
        database=f"sqlite:///{tmp_path / 'p.db'}",
        runbooks=[str(rb)],
        executors={"haproxy": {"socket": haproxy.unix, "timeout": "3s"}},
    )
    with Server(Paramedic.from_config(cfg)) as srv, srv.client() as c:
        r = c.post("/api/v1/alerts", json={"name": "Slow", "labels": {"instance": "web/w1"}})
        i = r.json()["alerts"][0]["incident_id"]
        srv.wait(lambda c: c.get(f"/api/v1/incidents/{i}").json()["status"] == "escalated")
        data = c.get(f"/api/v1/incidents/{i}").json()
    run = data["runs"][0]
    admin = haproxy.state("web")["w1"]["srv_admin_state"]
    assert run["status"] == "failed"
    assert run["reason"].startswith("step 1 (shell.run) failed")
    kinds = [t["kind"] for t in data["timeline"]]
    if on_failure == "rollback":
        assert admin == "0"  # in rotation again
        assert "rolled back: step 0 haproxy.drain backend=web server=w1 by haproxy.ready" in run["reason"]
        assert [s["status"] for s in run["steps"]] == ["undone", "failed", "succeeded"]
        assert run["steps"][2]["action"] == "haproxy.ready"
        order = [
            kinds.index(k) for k in ("step.failed", "run.rolling_back", "undo.started", "undo.succeeded", "run.failed")
        ]
        assert order == sorted(order)
    else:
        assert int(admin) & 0x08  # still drained, and the escalation says so
        assert (
            "left in state: step 0 haproxy.drain backend=web server=w1 "
            "(not undone: on_failure is escalate; its undo is haproxy.ready)"
        ) in run["reason"]
        assert "undo.started" not in kinds
