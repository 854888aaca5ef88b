"""The user's install: build the wheel, install it with no extras into a fresh venv, and use it.

``pip install .`` (what the Dockerfile runs) must give a paramedic whose commands work; CI and
``make`` install ``.[dev]``, which would hide a runtime import that only an extra brings. This
script copies the sources the Dockerfile copies into a temporary folder (nothing is written into
the work tree), builds the wheel there, installs it into a new venv, then runs ``validate``,
``test``, ``actions`` and ``serve``: a smoke alert posted to the server must be stored, run its
runbook and be listed by ``paramedic incidents list``. Everything is removed afterwards; the
server is stopped even when a step fails.

Usage: python3 .ci/wheel_check.py [--keep]   (standard library only; exit 0 when the install works)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = """\
apiVersion: paramedic/v1
runbooks:
  - name: smoke
    owner: team-ci
    match: {alertname: WheelSmoke}
    target: "{{ labels.instance }}"
    mode: auto
    steps:
      - action: shell.run
        with: {argv: ["touch", "MARKER"]}
    verify:
      command: {argv: ["test", "-f", "MARKER"], within: 10s}
    params:
      instance: {pattern: '^[a-z0-9.-]{1,64}$'}
"""
ALERT = {"name": "WheelSmoke", "labels": {"service": "ci", "instance": "web-1"}, "annotations": {"summary": "smoke"}}


BEGAN = time.monotonic()


def step(title: str) -> None:
    print(f"wheel-check [{time.monotonic() - BEGAN:5.1f}s]: {title}", flush=True)


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        sys.exit(f"wheel-check: {' '.join(map(str, argv))} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"wheel-check: paramedic serve exited {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:  # noqa: S310 (http on loopback)
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    sys.exit("wheel-check: paramedic serve was not ready within 180 s")


def check(tmp: Path) -> None:
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))

    step("building the wheel")
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp)
    py, pip = venv / "bin" / "python", venv / "bin" / "pip"
    run(pip, "wheel", "-q", "--no-deps", "-w", tmp / "dist", src, cwd=tmp)
    wheel = next((tmp / "dist").glob("paramedic-*.whl"))
    step(f"installing {wheel.name} with no extras into a fresh venv")
    run(pip, "install", "-q", "--no-compile", wheel, cwd=tmp)
    deps_check = ROOT.parent / "shared" / "tools" / "runtime-deps-check"
    if deps_check.is_file():
        step("every runtime import is reachable from [project].dependencies")
        run(py, deps_check, src, cwd=tmp)

    work = tmp / "work"
    (work / "runbooks").mkdir(parents=True)
    marker = work / "smoke-ran"
    (work / "runbooks" / "smoke.yaml").write_text(RUNBOOK.replace("MARKER", str(marker)))
    (work / "alert.json").write_text(json.dumps(ALERT))
    port = free_port()
    (work / "paramedic.yaml").write_text(
        f"listen: 127.0.0.1:{port}\ndatabase: sqlite:///{work / 'paramedic.db'}\nrunbooks: [runbooks/]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
    env["MPLCONFIGDIR"] = str(tmp / "mpl")
    exe = venv / "bin" / "paramedic"
    step("validate, test, actions")
    run(exe, "validate", "runbooks/", "paramedic.yaml", cwd=work, env=env)
    plan = run(exe, "test", "runbooks/", "--alert", "alert.json", "--json", cwd=work, env=env)
    if "smoke" not in plan:
        sys.exit(f"wheel-check: paramedic test did not match the smoke runbook:\n{plan}")
    if "kubernetes.restart" not in run(exe, "actions", cwd=work, env=env):
        sys.exit("wheel-check: paramedic actions does not list kubernetes.restart")

    step("serve, post a smoke alert, read it back")
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "serve.log").open("w")
    server = subprocess.Popen(
        [str(exe), "serve", "--config", "paramedic.yaml"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_ready(url, server, time.monotonic() + 180)
        req = urllib.request.Request(  # noqa: S310
            f"{url}/api/v1/alerts", data=json.dumps(ALERT).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            answer = json.load(resp)
        if resp.status != 202 or answer.get("accepted") != 1:
            sys.exit(f"wheel-check: the smoke alert was answered {resp.status} {answer}")
        deadline = time.monotonic() + 120
        while not marker.exists():
            if time.monotonic() > deadline:
                sys.exit("wheel-check: the smoke runbook did not run within 120 s")
            time.sleep(0.2)
        listing = run(exe, "incidents", "list", "--url", url, cwd=work, env=env)
        if "WheelSmoke" not in listing:
            sys.exit(f"wheel-check: paramedic incidents list does not show the smoke alert:\n{listing}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    if server.returncode not in (0, -signal.SIGTERM):
        sys.exit(f"wheel-check: paramedic serve exited {server.returncode}:\n{(tmp / 'serve.log').read_text()}")
    step("ok: the wheel installs with no extras and serves, validates, tests and lists actions")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="paramedic-wheel-"))
    try:
        check(tmp)
    finally:
        if "--keep" in sys.argv:
            print(f"wheel-check: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
