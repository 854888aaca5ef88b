"""Hot reload of runbooks: through the admin API and ``paramedic reload``, and on SIGHUP to a real
``paramedic serve``. Validated first: a bad edit keeps the running set and says why. The audit
trail names the version of the runbook that decided each run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from paramedic.cli import main
from tests.conftest import Server
from tests.support import free_port, wait_for

RUNBOOK = """
apiVersion: paramedic/v1
runbooks:
  - name: restart-web
    owner: team-web
    match: {{alertname: WebDown}}
    target: "{{{{ labels.instance }}}}"
    mode: {mode}
    steps:
      - action: {action}
        with: {{argv: ["true"]}}
"""


def write(folder: Path, *, mode: str = "auto", action: str = "shell.run") -> None:
    (folder / "runbooks.yaml").write_text(RUNBOOK.format(mode=mode, action=action))


def fire(c: httpx.Client, instance: str) -> int:
    r = c.post("/api/v1/alerts", json={"name": "WebDown", "labels": {"instance": instance, "service": "web"}})
    assert r.status_code == 202, r.text
    return int(r.json()["alerts"][0]["incident_id"])


def created(c: httpx.Client, iid: int) -> dict[str, str]:
    timeline = c.get(f"/api/v1/incidents/{iid}").json()["timeline"]
    data: dict[str, str] = next(t["data"] for t in timeline if t["kind"] == "run.created")
    return data


def test_reload_applies_an_edit_and_a_bad_edit_keeps_the_running_set(make_server: Callable[..., Server]) -> None:
    srv = make_server(RUNBOOK.format(mode="auto", action="shell.run"))
    folder = Path(srv.pm.config.runbooks[0])
    with srv.client() as c:
        before = created(c, fire(c, "web-1"))
        assert before["mode"] == "auto"

        write(folder, mode="approve")
        result = CliRunner().invoke(main, ["reload", "--url", srv.url])
        assert result.exit_code == 0, result.output
        assert "runbooks reloaded: 0 added, 1 changed, 0 removed, 0 unchanged" in result.output
        after = created(c, fire(c, "web-2"))
        assert after["mode"] == "approve"
        assert after["status"] == "awaiting_approval"
        assert after["version"] != before["version"]
        reloaded = [e for e in c.get("/api/v1/audit").json()["entries"] if e["kind"] == "runbooks.reloaded"]
        assert reloaded[0]["data"]["changed"] == {"restart-web": [before["version"], after["version"]]}

        write(folder, mode="auto", action="shell.rnu")
        bad = c.post("/api/v1/reload", json={})
        assert bad.status_code == 422
        assert "reload refused, the running runbooks stay in force" in bad.json()["error"]
        assert "unknown action 'shell.rnu'" in bad.json()["error"]
        kept = created(c, fire(c, "web-3"))
        assert kept["mode"] == "approve"
        assert kept["version"] == after["version"]


@pytest.mark.integration
def test_sighup_reloads_a_running_serve(tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    write(folder, mode="auto")
    port = free_port()
    config = tmp_path / "paramedic.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\ndatabase: sqlite:///{tmp_path / 'pm.db'}\nrunbooks: [{folder}]\nlog_format: text\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "paramedic.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PARAMEDIC_CONFIG": ""},
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30)
        with httpx.Client(base_url=url, timeout=10) as c:
            assert created(c, fire(c, "web-1"))["mode"] == "auto"
            write(folder, mode="observe")
            proc.send_signal(signal.SIGHUP)
            wait_for(
                lambda: any(e["kind"] == "runbooks.reloaded" for e in c.get("/api/v1/audit").json()["entries"]),
                timeout=15,
            )
            assert created(c, fire(c, "web-2"))["mode"] == "observe"
        assert proc.poll() is None, "SIGHUP must not stop the server"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it: the exit status says "terminated"
    assert proc.returncode in (0, -signal.SIGTERM), log
    assert "runbooks reloaded by SIGHUP" in log
