"""The test harness for external processes (``tests.support.process``): what every integration
test relies on to leave nothing behind and to say why a start failed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support import Process
from tests.support.process import _alive

# a parent that starts a grandchild in a session of its own (as supervisord's programs and detached
# steps are), writes its pid, and sleeps
TREE = """\
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(600)
"""


def test_stop_ends_children_in_other_sessions(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    proc = Process([sys.executable, "-c", TREE, str(pidfile)], log=tmp_path / "tree.log")
    proc.start(lambda: pidfile.exists() and pidfile.read_text() != "")
    child = int(pidfile.read_text())
    assert os.getsid(child) != os.getsid(proc.pid)
    proc.stop()
    assert not _alive(proc.pid)
    assert not _alive(child)


def test_kill_leaves_the_orphan_then_stop_ends_it(tmp_path: Path) -> None:
    """``kill`` is a crash of the main process: its child lives on, re-parented, until ``stop``."""
    pidfile = tmp_path / "child.pid"
    proc = Process([sys.executable, "-c", TREE, str(pidfile)], log=tmp_path / "tree.log")
    proc.start(lambda: pidfile.exists() and pidfile.read_text() != "")
    child = int(pidfile.read_text())
    proc.kill()
    assert _alive(child)
    proc.stop()
    assert not _alive(child)


def test_a_process_that_exits_before_ready_fails_with_its_log_tail(tmp_path: Path) -> None:
    script = "import sys; print('listen: address already in use'); sys.exit(3)"
    proc = Process([sys.executable, "-c", script], log=tmp_path / "bad.log", name="bad-server")
    with pytest.raises(pytest.fail.Exception) as failed:
        proc.start(lambda: False)
    assert "bad-server exited with status 3" in str(failed.value)
    assert "address already in use" in str(failed.value)
