"""``process.signal``: send a signal to the process named by a pid file (reload, reopen logs, stop).

Pid files go stale: the process may be gone, a zombie, or its pid reused by something else. The
executor reads the pid, checks the process is alive and not a zombie (else ``not_found``), can
check its name against ``process_name``, and refuses pids 0 and 1, negative pids (process groups)
and paramedic's own. ``executors.process.pidfile_dirs`` limits where pid files may be read.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, ParamSpec, TargetState
from paramedic.core.errors import ConfigError, PermanentError

SIGNALS: dict[str, signal.Signals] = {
    "HUP": signal.SIGHUP,
    "TERM": signal.SIGTERM,
    "KILL": signal.SIGKILL,
    "USR1": signal.SIGUSR1,
    "USR2": signal.SIGUSR2,
    "INT": signal.SIGINT,
}

SIGNAL = ActionSpec(
    name="process.signal",
    summary="Send HUP, TERM, KILL, USR1, USR2 or INT to the process whose pid is in a pid file.",
    params=(
        ParamSpec("pidfile", help="path of the pid file"),
        ParamSpec("signal", help="one of " + ", ".join(SIGNALS)),
        ParamSpec("process_name", required=False, help="refuse unless the process is called this (/proc/PID/comm)"),
    ),
    idempotent=False,
    default_timeout=5.0,
)


@dataclass(frozen=True, slots=True)
class Process:
    """A live process as read from ``/proc`` (``name`` and ``state`` empty where /proc is absent)."""

    pid: int
    name: str
    state: str

    def label(self) -> str:
        return f"pid {self.pid}" + (f" ({self.name}, state {self.state})" if self.name else "")


def parse_signal(value: object) -> signal.Signals:
    name = str(value).upper().removeprefix("SIG")
    if name not in SIGNALS:
        raise PermanentError(f"signal {value!r} is not one of {', '.join(SIGNALS)}", reason="bad_arguments")
    return SIGNALS[name]


def read_pid(pidfile: Path) -> int:
    try:
        text = pidfile.read_text().strip()
    except FileNotFoundError:
        raise PermanentError(f"pid file {pidfile} does not exist", reason="not_found") from None
    except OSError as exc:
        raise PermanentError(f"cannot read pid file {pidfile}: {exc}", reason="forbidden") from exc
    first = text.split()[0] if text else ""
    if not first.isdigit():
        raise PermanentError(f"pid file {pidfile} does not hold a pid: {text[:40]!r}", reason="bad_pidfile")
    pid = int(first)
    if pid <= 1 or pid == os.getpid():
        raise PermanentError(f"refusing to signal pid {pid} from {pidfile}", reason="refused")
    return pid


def inspect(pid: int) -> Process:
    """The process if it is alive; gone or a zombie raises ``PermanentError(not_found)``."""
    name = state = ""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state = stat[stat.rindex(")") + 2 :].split()[0]
    except FileNotFoundError:
        if Path("/proc/self").exists():
            raise PermanentError(f"no process with pid {pid}", reason="not_found") from None
    if state in ("Z", "X"):
        raise PermanentError(f"pid {pid} ({name}) has exited (zombie)", reason="not_found")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise PermanentError(f"no process with pid {pid}", reason="not_found") from None
    except PermissionError:
        pass  # it exists; sending the real signal will say whether we may
    return Process(pid=pid, name=name, state=state)


class ProcessExecutor:
    """Signals processes by pid file."""

    def __init__(self, *, pidfile_dirs: Sequence[str] = ()) -> None:
        self._dirs = tuple(Path(d).resolve() for d in pidfile_dirs)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ProcessExecutor:
        dirs = cfg.get("pidfile_dirs") or ()
        if isinstance(dirs, str) or not all(isinstance(d, str) for d in dirs):
            raise ConfigError("executors.process.pidfile_dirs must be a list of directories")
        return cls(pidfile_dirs=list(dirs))

    def actions(self) -> Sequence[ActionSpec]:
        return [SIGNAL]

    def _pidfile(self, args: Mapping[str, Any]) -> Path:
        path = Path(str(args["pidfile"]))
        if not path.is_absolute():
            raise PermanentError(f"pid file {path} must be an absolute path", reason="bad_arguments")
        if self._dirs and not any(path.resolve().is_relative_to(d) for d in self._dirs):
            raise PermanentError(f"pid file {path} is outside executors.process.pidfile_dirs", reason="refused")
        return path

    def _target(self, args: Mapping[str, Any]) -> tuple[Path, Process]:
        pidfile = self._pidfile(args)
        proc = inspect(read_pid(pidfile))
        expected = args.get("process_name")
        if expected and proc.name and proc.name != expected:
            raise PermanentError(
                f"pid {proc.pid} from {pidfile} is {proc.name!r}, not {expected!r} (stale pid file?)",
                reason="pid_mismatch",
            )
        return pidfile, proc

    async def execute(self, request: ActionRequest) -> ActionResult:
        sig = parse_signal(request.args["signal"])
        pidfile, proc = self._target(request.args)
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            raise PermanentError(f"{proc.label()} exited before {sig.name} was sent", reason="not_found") from None
        except PermissionError as exc:
            raise PermanentError(f"not allowed to signal {proc.label()}: {exc}", reason="forbidden") from exc
        return ActionResult(summary=f"sent {sig.name} to {proc.label()} from {pidfile}", details={"pid": str(proc.pid)})

    async def describe(self, request: ActionRequest) -> str:
        sig = parse_signal(request.args["signal"])
        pidfile, proc = self._target(request.args)
        return f"would send {sig.name} to {proc.label()} (from {pidfile})"

    async def read_state(self, request: ActionRequest) -> TargetState:
        pidfile = self._pidfile(request.args)
        try:
            proc = inspect(read_pid(pidfile))
        except PermanentError as exc:
            if exc.reason not in ("not_found",):
                raise
            return TargetState(target=str(pidfile), healthy=False, detail=str(exc), fields={"alive": "false"})
        fields = {"alive": "true", "pid": str(proc.pid), "name": proc.name, "state": proc.state}
        return TargetState(target=str(pidfile), healthy=True, detail=proc.label(), fields=fields)

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        return None  # a pid file names one process
