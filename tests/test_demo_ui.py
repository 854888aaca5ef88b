"""The new user's path, end to end: `paramedic demo --ui` runs its scenarios, then web-3 hangs and
its runbook waits for approval; in real Chromium the user opens the page, approves the restart
and watches the incident resolve. Ctrl-C then stops everything the demo started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support import Process, free_port, require_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Process, Path]]:
    """The demo as a user starts it; every binary the test needs is looked up before it starts, and
    teardown ends the demo's whole tree (its supervisord and sample services run in other sessions)."""
    require_binary("supervisord", str(Path(sys.executable).parent / "supervisord"))
    require_binary("chromium", "/usr/bin/chromium")
    port = free_port()
    work = tmp_path / "demo"
    argv = [sys.executable, "-m", "paramedic.cli", "demo", "--ui", "--port", str(port), "--workdir", str(work)]
    with Process(argv, log=tmp_path / "demo.out", env={**os.environ, "COLUMNS": "120"}, name="paramedic demo") as proc:
        yield f"http://127.0.0.1:{port}", proc, work


def _waiting_incident(url: str, limit: float = 150) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            rows = httpx.get(f"{url}/api/v1/incidents", timeout=2).json()["incidents"]
        except (httpx.HTTPError, ValueError, KeyError):
            rows = []
        for row in rows:
            if row["status"] == "awaiting_approval" and row["labels"].get("program") == "web:web-3":
                return int(row["id"])
        time.sleep(0.5)
    pytest.fail("the demo did not leave a restart waiting for approval")


def _leftovers(work: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if str(work) in line]


def test_new_user_approves_the_pending_restart_in_the_demo_ui(
    demo: tuple[str, Process, Path],
) -> None:
    url, proc, work = demo
    incident_id = _waiting_incident(url)
    exe = require_binary("chromium", "/usr/bin/chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(url + "/")
            page.locator(f"a[href='/incidents/{incident_id}']").first.click()
            expect(page).to_have_url(re.compile(rf"/incidents/{incident_id}$"))
            status = page.locator("[data-status]").first
            expect(status).to_have_attribute("data-status", "awaiting_approval")
            page.fill("form.approve input[name=reason]", "web-3 hangs, a restart is safe")
            page.click("button[data-action=approve]")
            expect(status).to_have_attribute("data-status", re.compile("mitigated|resolved"), timeout=30_000)
            expect(status).to_have_attribute("data-status", "resolved", timeout=30_000)
        finally:
            browser.close()
    data = httpx.get(f"{url}/api/v1/incidents/{incident_id}", timeout=5).json()
    run = data["runs"][0]
    assert run["runbook"] == "restart-with-approval"
    assert run["approvals"][0]["reason"] == "web-3 hangs, a restart is safe"
    assert run["steps"][0]["action"] == "supervisor.restart"
    assert run["steps"][0]["status"] == "succeeded"

    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    assert proc.wait_exit(30) == 130
    assert _leftovers(work) == []
