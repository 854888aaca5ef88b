"""process.signal against real child processes and real pid files."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paramedic.actions.base import ActionRequest
from paramedic.actions.process import ProcessExecutor
from paramedic.actions.registry import ExecutorRegistry
from paramedic.core.errors import PermanentError
from tests.support import wait_for

CHILD = r"""
import signal, sys, time
marker = sys.argv[1]
def hup(*_):
    with open(marker, "a") as f:
        f.write("HUP\n")
signal.signal(signal.SIGHUP, hup)
open(marker, "w").close()
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def child(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(marker)])
    pidfile = tmp_path / "child.pid"
    pidfile.write_text(f"{proc.pid}\n")
    try:
        wait_for(marker.exists)
        yield proc, pidfile, marker
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def req(**args: object) -> ActionRequest:
    return ExecutorRegistry([ProcessExecutor()]).request("process.signal", args)


def test_hup_reaches_the_process_and_term_stops_it(child: tuple[subprocess.Popen[bytes], Path, Path]) -> None:
    proc, pidfile, marker = child
    ex = ProcessExecutor()
    name = Path(f"/proc/{proc.pid}/comm").read_text().strip()
    text = asyncio.run(ex.describe(req(pidfile=str(pidfile), signal="HUP")))
    assert text.startswith(f"would send SIGHUP to pid {proc.pid} ({name}, state ")

    result = asyncio.run(ex.execute(req(pidfile=str(pidfile), signal="HUP", process_name=name)))
    assert result.summary.startswith(f"sent SIGHUP to pid {proc.pid}")
    wait_for(lambda: marker.read_text() == "HUP\n")
    assert proc.poll() is None
    state = asyncio.run(ex.read_state(req(pidfile=str(pidfile), signal="HUP")))
    assert (state.healthy, state.fields["pid"]) == (True, str(proc.pid))

    asyncio.run(ex.execute(req(pidfile=str(pidfile), signal="SIGTERM")))
    assert proc.wait(timeout=10) == -15


def test_a_zombie_and_a_reaped_process_are_not_found(child: tuple[subprocess.Popen[bytes], Path, Path]) -> None:
    proc, pidfile, _ = child
    ex = ProcessExecutor()
    os.kill(proc.pid, 9)
    wait_for(lambda: Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req(pidfile=str(pidfile), signal="TERM")))
    assert err.value.reason == "not_found"
    proc.wait(timeout=10)
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req(pidfile=str(pidfile), signal="TERM")))
    assert err.value.reason == "not_found"
    state = asyncio.run(ex.read_state(req(pidfile=str(pidfile), signal="TERM")))
    assert (state.healthy, state.fields) == (False, {"alive": "false"})


def test_stale_pid_file_pointing_at_another_program(child: tuple[subprocess.Popen[bytes], Path, Path]) -> None:
    proc, pidfile, _ = child
    with pytest.raises(PermanentError) as err:
        asyncio.run(ProcessExecutor().execute(req(pidfile=str(pidfile), signal="TERM", process_name="nginx")))
    assert err.value.reason == "pid_mismatch"
    assert proc.poll() is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(None, "not_found", id="no-pid-file"),
        pytest.param("", "bad_pidfile", id="empty"),
        pytest.param("hello", "bad_pidfile", id="garbage"),
        pytest.param("1", "refused", id="init"),
        pytest.param("0", "refused", id="process-group"),
        pytest.param("-5", "bad_pidfile", id="negative"),
        pytest.param(str(os.getpid()), "refused", id="paramedic-itself"),
    ],
)
def test_bad_pid_files(tmp_path: Path, content: str | None, reason: str) -> None:
    pidfile = tmp_path / "x.pid"
    if content is not None:
        pidfile.write_text(content)
    with pytest.raises(PermanentError) as err:
        asyncio.run(ProcessExecutor().execute(req(pidfile=str(pidfile), signal="HUP")))
    assert err.value.reason == reason


def test_bad_signal_and_paths(child: tuple[subprocess.Popen[bytes], Path, Path], tmp_path: Path) -> None:
    proc, pidfile, _ = child
    with pytest.raises(PermanentError) as err:
        asyncio.run(ProcessExecutor().execute(req(pidfile=str(pidfile), signal="STOP")))
    assert err.value.reason == "bad_arguments"
    with pytest.raises(PermanentError) as err:
        asyncio.run(ProcessExecutor().execute(req(pidfile="relative.pid", signal="HUP")))
    assert err.value.reason == "bad_arguments"
    confined = ProcessExecutor.from_config({"pidfile_dirs": [str(tmp_path / "run")]})
    with pytest.raises(PermanentError) as err:
        asyncio.run(confined.execute(req(pidfile=str(pidfile), signal="HUP")))
    assert err.value.reason == "refused"
    assert proc.poll() is None
