"""Known targets come only from sources that know them, on a real HAProxy backend of four servers.

At 753e177 every alert added its ``instance`` to the known targets and a resolved alert added it
again as healthy, so alerts inflated the denominator of ``max_fraction``: with ``max_fraction:
0.5`` paramedic drained three of four servers within the hour, and alerts that matched no runbook
turned a ``blast_radius`` refusal into an executed drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from paramedic.core.config import DeclaredTargets
from paramedic.core.guardrails import scope_key
from paramedic.store import state
from tests.conftest import Server
from tests.support import free_port, require_binary, wait_for
from tests.test_haproxy_executor import Haproxy, _Ok, _pid_alive

pytestmark = pytest.mark.integration

RUNBOOK = """
apiVersion: paramedic/v1
runbooks:
  - name: drain-bad-server
    owner: team-edge
    match: {alertname: ServerErrors, labels: {backend: web}}
    target: "web/{{ labels.server }}"
    mode: auto
    guardrails:
      blast_radius: {scope: [backend], max_concurrent: 4, max_fraction: 0.5, min_healthy: 1}
    steps:
      - action: haproxy.drain
        with: {backend: web, server: "{{ labels.server }}"}
    params:
      server: {pattern: '^s[0-9]$'}
"""


@pytest.fixture
def haproxy4() -> Iterator[Haproxy]:
    """A real HAProxy whose backend ``web`` has four servers s1..s4, all UP."""
    binary = require_binary("haproxy", "/usr/sbin/haproxy")
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(4)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    workdir = Path(tempfile.mkdtemp(prefix="pm-kt-"))
    sock = workdir / "admin.sock"
    checks = "check inter 200ms rise 1 fall 1"
    lines = "\n".join(f"  server s{n + 1} 127.0.0.1:{s.server_address[1]} {checks}" for n, s in enumerate(servers))
    (workdir / "haproxy.cfg").write_text(
        f"global\n  stats socket {sock} mode 600 level admin\n"
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n"
        f"frontend fe\n  bind 127.0.0.1:{free_port()}\n  default_backend web\nbackend web\n{lines}\n"
    )
    pidfile = workdir / "haproxy.pid"
    subprocess.run(
        [binary, "-f", str(workdir / "haproxy.cfg"), "-D", "-p", str(pidfile)],
        check=True,
        capture_output=True,
        timeout=20,
    )
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "" and sock.exists())
    env = Haproxy(unix=f"unix://{sock}", tcp="", pid=int(pidfile.read_text().split()[0]))
    try:
        wait_for(lambda: [r["srv_op_state"] for r in env.state("web").values()] == ["2"] * 4)
        yield env
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(env.pid, signal.SIGTERM)
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


def drained(hx: Haproxy) -> set[str]:
    """Servers whose admin state has the drain bit (HAProxy's SRV_ADMF_FDRAIN, 0x08)."""
    return {name for name, row in hx.state("web").items() if int(row["srv_admin_state"]) & 0x08}


def alert(c: httpx.Client, server: str, *, status: str = "firing", name: str = "ServerErrors", **labels: str) -> Any:
    body = {
        "name": name,
        "status": status,
        "labels": {"backend": "web", "server": server, "instance": f"10.9.9.{server[-1:]}:80", **labels},
        "starts_at": "2026-12-01T00:00:00Z",
    }
    r = c.post("/api/v1/alerts", json=body)
    assert r.status_code == 202, r.text
    return r.json()["alerts"][0]


def settle(srv: Server, c: httpx.Client, incident: int) -> dict[str, Any]:
    srv.wait(lambda c: c.get(f"/api/v1/incidents/{incident}").json()["status"] in ("mitigated", "escalated"))
    return c.get(f"/api/v1/incidents/{incident}").json()["runs"][0]  # type: ignore[no-any-return]


def test_alerts_cannot_inflate_a_real_backend_past_max_fraction(
    haproxy4: Haproxy, make_server: Callable[..., Server]
) -> None:
    srv = make_server(RUNBOOK, executors={"haproxy": {"socket": haproxy4.unix}})
    assert asyncio.run(srv.pm.refresh_executor_targets()) == 4
    with srv.client() as c:
        for server in ("s1", "s2"):  # floor(0.5 x 4) = 2 may be touched within the hour
            first = alert(c, server)
            assert settle(srv, c, first["incident_id"])["status"] == "succeeded"
            alert(c, server, status="resolved")  # resolved: its (real) target is healthy again
        for n in range(6):  # six alerts for servers nobody lists, firing then resolved
            alert(c, f"x{n}", name="Unrelated", instance=f"10.8.8.{n}:80")
            alert(c, f"x{n}", name="Unrelated", instance=f"10.8.8.{n}:80", status="resolved")
        third = alert(c, "s3")
        run = settle(srv, c, third["incident_id"])
    assert run["status"] == "refused"
    assert "3 of 4 targets of backend=web touched" in run["reason"]
    assert drained(haproxy4) == {"s1", "s2"}
    with srv.pm.db.read() as conn:
        known = state.known_targets(conn, scope_key({"backend": "web"}, ["backend"]))
    assert sorted(t for t, _ in known) == ["web/s1", "web/s2", "web/s3", "web/s4"]


def test_a_resolved_alert_marks_the_runbooks_target_not_its_instance_label(
    haproxy4: Haproxy, make_server: Callable[..., Server]
) -> None:
    srv = make_server(RUNBOOK, executors={"haproxy": {"socket": haproxy4.unix}})
    asyncio.run(srv.pm.refresh_executor_targets())
    key = scope_key({"backend": "web"}, ["backend"])
    with srv.client() as c:
        fired = alert(c, "s4")
        settle(srv, c, fired["incident_id"])
        with srv.pm.db.read() as conn:
            assert dict(state.known_targets(conn, key))["web/s4"] is False
        alert(c, "s4", status="resolved")
    with srv.pm.db.read() as conn:
        health = dict(state.known_targets(conn, key))
    assert health == {"web/s1": True, "web/s2": True, "web/s3": True, "web/s4": True}


def test_a_server_removed_from_the_listing_stops_counting(
    haproxy4: Haproxy, make_server: Callable[..., Server]
) -> None:
    """Executor listings replace what that executor listed before: no ghost targets forever."""
    srv = make_server(RUNBOOK, executors={"haproxy": {"socket": haproxy4.unix}})
    key = scope_key({"backend": "web"}, ["backend"])
    with srv.pm.db.write() as conn:
        state.add_targets(conn, key, ["web/gone"], origin="executor:haproxy", now=srv.pm.clock())
    asyncio.run(srv.pm.refresh_executor_targets())
    with srv.pm.db.read() as conn:
        assert sorted(t for t, _ in state.known_targets(conn, key)) == ["web/s1", "web/s2", "web/s3", "web/s4"]


def test_targets_declared_in_the_config_are_known(make_server: Callable[..., Server]) -> None:
    """Without an executor that lists the scope, the config can declare its members."""
    runbook = RUNBOOK.replace("haproxy.drain", "shell.run").replace(
        'with: {backend: web, server: "{{ labels.server }}"}', 'with: {argv: ["true"]}'
    )
    declared = [DeclaredTargets(scope={"backend": "web"}, members=["web/s1", "web/s2"])]
    srv = make_server(runbook, targets=declared)
    with srv.client() as c:
        ok = settle(srv, c, alert(c, "s1")["incident_id"])
        unknown = settle(srv, c, alert(c, "s7")["incident_id"])
    assert ok["status"] == "succeeded"
    assert unknown["status"] == "refused"
    assert "target web/s7 is not one of the 2 known targets" in unknown["reason"]
