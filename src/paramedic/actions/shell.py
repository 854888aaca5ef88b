"""``shell.run``: run a program with an argv list, never through a shell.

Each rendered value is one argv element, so a label such as ``; rm -rf /`` would be a single odd
argument, not a command (and it never gets that far: templating validates labels first).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paramedic.actions.base import (
    ActionRequest,
    ActionResult,
    ActionSpec,
    ParamSpec,
    TargetState,
    truncate,
)
from paramedic.core.errors import PermanentError, RetryableError

RUN = ActionSpec(
    name="shell.run",
    summary="Run a program with an argument list (no shell); fails on a non-zero exit.",
    params=(
        ParamSpec("argv", "list[str]", help="program and arguments, one value each"),
        ParamSpec("timeout", "float", required=False, default=30.0, help="seconds before kill"),
        ParamSpec("cwd", "str", required=False, help="working directory"),
    ),
    idempotent=False,
    default_timeout=60.0,
)


@dataclass(frozen=True, slots=True)
class Completed:
    code: int
    output: str


async def _end_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group the program leads (``start_new_session``), so children and
    grandchildren it started end with it, then reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await asyncio.shield(proc.wait())


async def run_argv(argv: Sequence[str], *, timeout: float, cwd: str | None = None) -> Completed:
    """Run ``argv`` with stdout and stderr merged in a session of its own; on timeout or
    cancellation its whole process group is killed, so a timed-out attempt does not keep running."""
    if not argv:
        raise PermanentError("argv is empty", reason="bad_arguments")
    if shutil.which(argv[0]) is None and not os.path.isfile(argv[0]):
        raise PermanentError(f"program {argv[0]!r} not found on PATH", reason="not_found")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise PermanentError(f"cannot start {argv[0]!r}: {exc}", reason="not_found") from exc
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        await _end_group(proc)
        raise RetryableError(
            f"{argv[0]} timed out after {timeout:g}s; its process group was killed", reason="timeout"
        ) from None
    except BaseException:  # cancelled (the runner's own timeout, a shutdown): nothing it started outlives it
        await _end_group(proc)
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return Completed(code, truncate(out.decode(errors="replace")))


class ShellExecutor:
    """Runs programs; the only executor that can do anything, so runbooks should prefer others."""

    def __init__(self, *, allowed: Sequence[str] = ()) -> None:
        self._allowed = tuple(allowed)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ShellExecutor:
        return cls(allowed=tuple(cfg.get("allowed_programs", ())))

    def actions(self) -> Sequence[ActionSpec]:
        return [RUN]

    def _check(self, argv: Sequence[str]) -> None:
        if self._allowed and argv and argv[0] not in self._allowed:
            raise PermanentError(f"program {argv[0]!r} is not in executors.shell.allowed_programs", reason="refused")

    async def execute(self, request: ActionRequest) -> ActionResult:
        argv = list(request.args["argv"])
        self._check(argv)
        timeout = float(request.args.get("timeout", request.timeout))
        done = await run_argv(argv, timeout=timeout, cwd=request.args.get("cwd"))
        if done.code != 0:
            raise PermanentError(
                f"{argv[0]} exited with {done.code}: {done.output.strip()[-300:]}",
                reason="exit_status",
            )
        return ActionResult(summary=f"ran {argv[0]} (exit 0)", output=done.output)

    async def describe(self, request: ActionRequest) -> str:
        return f"would run {list(request.args['argv'])!r} without a shell"

    async def read_state(self, request: ActionRequest) -> TargetState:
        argv = list(request.args.get("argv", []))
        return TargetState(target=argv[0] if argv else "", healthy=None, detail="no state to read")

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        return None
