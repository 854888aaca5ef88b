"""systemd executor.

Most tests put a stand-in ``systemctl`` program at paramedic's own boundary (the argv it runs),
which records its arguments and answers like systemctl does, so argv building and error
classification run everywhere. The test against the real systemctl skips where systemd is not
running (no /run/systemd/system), as in most containers.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from paramedic.actions.base import ActionRequest
from paramedic.actions.registry import ExecutorRegistry
from paramedic.actions.systemd import SystemdExecutor, check_unit
from paramedic.core.errors import PermanentError, RetryableError

FAKE_SYSTEMCTL = r"""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["SYSTEMCTL_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
state_file = os.environ["SYSTEMCTL_LOG"] + ".pid"
pid = int(open(state_file).read()) if os.path.exists(state_file) else 100
args = [a for a in args if a != "--user"]
unit = args[1]
if args[0] == "show":
    if unit.startswith("missing"):
        print("LoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=0")
    else:
        print(f"LoadState=loaded\nActiveState=active\nSubState=running\nMainPID={pid}\nNRestarts=0")
    sys.exit(0)
if unit.startswith("crashy"):
    print(f"Job for {unit} failed because the control process exited with error code.", file=sys.stderr)
    sys.exit(1)
if unit.startswith("locked"):
    print("Failed to restart locked.service: Access denied", file=sys.stderr)
    sys.exit(4)
if unit.startswith("busy"):
    print(f"Job for {unit} canceled.", file=sys.stderr)
    sys.exit(1)
open(state_file, "w").write(str(pid + 1))
"""


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    program = tmp_path / "systemctl"
    program.write_text(f"#!{sys.executable}\n{FAKE_SYSTEMCTL}")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("SYSTEMCTL_LOG", str(log))
    return program, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def req(unit: str) -> ActionRequest:
    return ExecutorRegistry([SystemdExecutor()]).request("systemd.restart", {"unit": unit}, timeout=10)


def test_restart_runs_systemctl_restart_with_an_argv(systemctl: tuple[Path, Path]) -> None:
    program, log = systemctl
    ex = SystemdExecutor.from_config({"systemctl": str(program)})
    assert asyncio.run(ex.describe(req("web.service"))) == (
        f"would run `{program} restart web.service` (now active/running, pid 100)"
    )
    result = asyncio.run(ex.execute(req("web.service")))
    assert result.summary == "restarted web.service: active/running, pid 100 → active/running, pid 101"
    props = "--property=LoadState,ActiveState,SubState,MainPID,NRestarts,ActiveEnterTimestamp"
    assert calls(log) == [
        ["show", "web.service", props],  # describe
        ["show", "web.service", props],
        ["restart", "web.service"],
        ["show", "web.service", props],
    ]
    state = asyncio.run(ex.read_state(req("web.service")))
    assert (state.healthy, state.fields["MainPID"]) == (True, "101")


def test_user_manager_and_allow_list(systemctl: tuple[Path, Path]) -> None:
    program, log = systemctl
    ex = SystemdExecutor.from_config({"systemctl": str(program), "user": True, "allowed_units": ["web.service"]})
    asyncio.run(ex.execute(req("web.service")))
    assert calls(log)[1] == ["--user", "restart", "web.service"]
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req("db.service")))
    assert err.value.reason == "refused"


@pytest.mark.parametrize(
    ("unit", "error", "reason"),
    [
        pytest.param("missing.service", PermanentError, "not_found", id="unknown-unit"),
        pytest.param("crashy.service", PermanentError, "failed", id="start-fails"),
        pytest.param("locked.service", PermanentError, "forbidden", id="access-denied"),
        pytest.param("busy.service", RetryableError, "conflict", id="job-canceled"),
    ],
)
def test_failures_are_classified(systemctl: tuple[Path, Path], unit: str, error: type[Exception], reason: str) -> None:
    ex = SystemdExecutor.from_config({"systemctl": str(systemctl[0])})
    with pytest.raises(error) as err:
        asyncio.run(ex.execute(req(unit)))
    assert getattr(err.value, "reason", None) == reason


@pytest.mark.parametrize(
    "unit",
    ["web", "web.mount", "-H.service", "web.service; reboot", "web service", "../web.service", "--now.service"],
)
def test_unit_names_are_validated(unit: str) -> None:
    with pytest.raises(PermanentError) as err:
        check_unit(unit)
    assert err.value.reason == "bad_arguments"


def test_valid_unit_names() -> None:
    for unit in ("nginx.service", "getty@tty1.service", "docker.socket", "logrotate.timer", "a_b-c.1.service"):
        assert check_unit(unit) == unit


def test_missing_systemctl() -> None:
    ex = SystemdExecutor.from_config({"systemctl": "/nonexistent/systemctl"})
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req("web.service")))
    assert err.value.reason == "no_systemd"
    assert "state unknown" in asyncio.run(ex.describe(req("web.service")))


@pytest.mark.integration
@pytest.mark.skipif(not os.path.isdir("/run/systemd/system"), reason="systemd is not running on this machine")
def test_real_systemctl_reads_state_and_reports_unknown_units() -> None:
    ex = SystemdExecutor()
    state = asyncio.run(ex.read_state(req("systemd-journald.service")))
    assert state.healthy is True
    with pytest.raises(PermanentError) as err:
        asyncio.run(ex.execute(req("paramedic-test-no-such-unit.service")))
    assert err.value.reason == "not_found"
