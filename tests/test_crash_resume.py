"""A real ``paramedic serve`` process killed with SIGKILL in the middle of a step, then restarted.

DESIGN §1: a run is durable; on resume paramedic verifies first and re-executes an interrupted
step only if the runbook marks it idempotent. The step here is a small Python script that appends
one line to a counter file and then sleeps, so the test can kill the server while the step is in
flight and count afterwards how often the step really ran.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, wait_for
from tests.support.services import Serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STEP_SECONDS = 3.0

STEP_SCRIPT = """\
import os, sys, time
counter, marker, pids = sys.argv[1:4]
with open(pids, "a") as f:
    f.write(f"{os.getpid()}\\n")
with open(counter, "a") as f:
    f.write("ran\\n")
if marker != "-":
    open(marker, "w").close()
time.sleep(float(sys.argv[4]))
"""

# exit 0 once the file at argv[1] exists and has at least argv[2] lines
CHECK_SCRIPT = """\
import sys
try:
    with open(sys.argv[1]) as f:
        lines = len(f.readlines())
except FileNotFoundError:
    sys.exit(1)
sys.exit(0 if lines >= int(sys.argv[2]) else 1)
"""


@dataclass(frozen=True)
class Case:
    name: str
    idempotent: bool
    step_creates_marker: bool  # C: the interrupted step already brought the service back
    verify_lines: int | None  # B: verification passes once the step has run this many times
    expect_run: str
    expect_step: str
    expect_lines: int
    expect_attempts: int


CASES = [
    pytest.param(
        Case("crash-a", False, False, None, "failed", "failed", 1, 1),
        id="non-idempotent-verify-fails-escalates-without-repeat",
    ),
    pytest.param(
        Case("crash-b", True, False, 2, "succeeded", "succeeded", 2, 2),
        id="idempotent-step-is-re-executed",
    ),
    pytest.param(
        Case("crash-c", False, True, None, "succeeded", "succeeded", 1, 1),
        id="non-idempotent-verify-passes-no-repeat",
    ),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The step runs in its own session (executors detach it), so a SIGKILL of the server leaves it
    running until its sleep ends; ``Serve.stop`` ends it too, by the marker it inherits."""
    return tmp_path


def write_config(workdir: Path, case: Case) -> Path:
    (workdir / "step.py").write_text(STEP_SCRIPT)
    (workdir / "check.py").write_text(CHECK_SCRIPT)
    counter, marker = workdir / "counter", workdir / "marker"
    if case.verify_lines is not None:
        verify_argv = [sys.executable, str(workdir / "check.py"), str(counter), str(case.verify_lines)]
    else:
        verify_argv = ["test", "-f", str(marker)]
    step_argv = [
        sys.executable,
        str(workdir / "step.py"),
        str(counter),
        str(marker) if case.step_creates_marker else "-",
        str(workdir / "pids"),
        str(STEP_SECONDS),
    ]
    runbooks = workdir / "runbooks"
    runbooks.mkdir()
    (runbooks / "crash.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: paramedic/v1
            runbooks:
              - name: {case.name}
                owner: team-web
                match: {{alertname: CrashTest, labels: {{service: web}}}}
                target: "{{{{ labels.instance }}}}"
                mode: auto
                steps:
                  - action: shell.run
                    with: {{argv: {step_argv!r}, timeout: 30}}
                    idempotent: {"true" if case.idempotent else "false"}
                verify:
                  command: {{argv: {verify_argv!r}, within: 2s, every: 200ms}}
                on_failure: escalate
            """
        )
    )
    port = free_port()
    config = workdir / "cfg.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            listen: 127.0.0.1:{port}
            database: sqlite:///{workdir / "paramedic.db"}
            runbooks: [runbooks/]
            lease: 2s
            workers: 2
            log_format: text
            """
        )
    )
    return config


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_python_m_paramedic_cli_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paramedic.cli", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "paramedic" in done.stdout


@pytest.mark.parametrize("case", CASES)
def test_sigkill_during_a_step_resumes_the_run(workdir: Path, case: Case) -> None:
    config = write_config(workdir, case)
    counter = workdir / "counter"

    first = Serve(config, log=workdir / "serve1.log").started()
    try:
        r = httpx.post(
            f"{first.url}/api/v1/alerts",
            json={"name": "CrashTest", "labels": {"service": "web", "instance": "127.0.0.1:9"}},
            timeout=10,
        )
        assert r.status_code == 202, r.text
        incident_id = r.json()["alerts"][0]["incident_id"]
        wait_for(lambda: lines(counter) == 1, timeout=20)  # the step is running now
        started = first.get(f"/api/v1/incidents/{incident_id}")
        assert [s["status"] for s in started["runs"][0]["steps"]] == ["started"]
    finally:
        first.kill()

    second = Serve(config, log=workdir / "serve2.log").started()
    try:

        def run_ended() -> bool:
            run = second.get(f"/api/v1/incidents/{incident_id}")["runs"][0]
            return run["status"] not in ("pending", "running", "approved")

        wait_for(run_ended, timeout=30, every=0.2)
        time.sleep(0.5)  # nothing more may happen after the run ended
        detail = second.get(f"/api/v1/incidents/{incident_id}")
    finally:
        second.stop()
        first.stop()  # the first server's detached step, if it still sleeps

    [run] = detail["runs"]
    [step] = run["steps"]
    kinds = [e["kind"] for e in detail["timeline"]]
    assert "run.resumed" in kinds, kinds
    assert run["status"] == case.expect_run, run["reason"]
    assert step["status"] == case.expect_step, step
    assert step["attempts"] == case.expect_attempts
    assert lines(counter) == case.expect_lines
    assert kinds.count("step.started") == case.expect_attempts
    if case.expect_run == "failed":
        assert step["reason"] == "unknown_outcome"
        assert "not idempotent" in run["reason"]
        assert detail["status"] == "escalated"
        assert "incident.escalated" in kinds
    else:
        assert detail["status"] == "mitigated"
        assert detail["mitigated_at"] is not None
    if case.name == "crash-c":
        assert "not repeated" in step["summary"]
