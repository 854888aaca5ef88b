"""The demo stops cleanly on SIGTERM and SIGHUP as on Ctrl-C: it says so, exits 128 + the signal,
and leaves no supervisord or sample service behind (they run in a session of their own, so only
the demo's own shutdown can stop them)."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import Process, free_port, require_binary
from tests.test_demo_ui import _leftovers

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_demo_leaves_nothing_behind_after_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    require_binary("supervisord", str(Path(sys.executable).parent / "supervisord"))
    port = free_port()
    work = tmp_path / "demo"
    argv = [sys.executable, "-m", "paramedic.cli", "demo", "--port", str(port), "--workdir", str(work)]

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    demo = Process(argv, log=tmp_path / "demo.out", env={**os.environ, "COLUMNS": "80"}, name="paramedic demo")
    with demo.start(up, timeout=60) as proc:

        def named() -> list[int]:
            return [int(p) for p in re.findall(r"web-\d=127\.0\.0\.1:(\d+)", (tmp_path / "demo.out").read_text())]

        proc.wait_until(lambda: len(named()) == 3, timeout=30, what="the demo names its three sample instances")
        ports = named()
        proc.wait_until(lambda: all(answers(p) for p in ports), timeout=30, what="the sample services answer")
        os.kill(proc.pid, sig)
        assert proc.wait_exit(40) == 128 + sig
    assert not any(answers(p) for p in ports), "a sample service is still running"
    assert _leftovers(work) == []
    assert f"stopped by {sig.name}: everything the demo started has been stopped" in (tmp_path / "demo.out").read_text()


def answers(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except httpx.HTTPError:
        return False
    return True
