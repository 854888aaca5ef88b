"""``systemd.restart``: restart one unit with ``systemctl restart UNIT``, an argv and never a shell.

The unit name is checked against a strict pattern before it reaches ``systemctl``, so a label can
neither add options nor name something other than a service, socket or timer. ``systemctl show``
gives the state before the restart (for the dry run and the read-back) and tells a unit that does
not exist from one that failed to start.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, ParamSpec, TargetState
from paramedic.actions.shell import run_argv
from paramedic.core.errors import ActionError, PermanentError, RetryableError

UNIT_PATTERN = re.compile(r"^[A-Za-z0-9@._-]+\.(service|socket|timer)$")
SHOW_PROPERTIES = ("LoadState", "ActiveState", "SubState", "MainPID", "NRestarts", "ActiveEnterTimestamp")

RESTART = ActionSpec(
    name="systemd.restart",
    summary="Restart a systemd unit (.service, .socket or .timer) with `systemctl restart`.",
    params=(ParamSpec("unit", help="unit name, e.g. nginx.service"),),
    idempotent=True,
    default_timeout=90.0,
)

# What systemctl prints, mapped to a reason; checked in this order.
_FAILURES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("not found", "not loaded", "no such file"), "not_found"),
    (("access denied", "interactive authentication required", "permission denied"), "forbidden"),
    (("failed to connect to bus", "not been booted with systemd", "system has not been booted"), "no_systemd"),
)


def check_unit(value: object) -> str:
    """The unit name, or ``PermanentError(bad_arguments)`` when it is not a plain unit name."""
    unit = str(value)
    if not UNIT_PATTERN.match(unit) or unit.startswith("-"):
        raise PermanentError(
            f"invalid unit name {unit!r}: expected NAME.service, NAME.socket or NAME.timer", reason="bad_arguments"
        )
    return unit


def parse_show(text: str) -> dict[str, str]:
    """``systemctl show`` prints ``Key=Value`` lines."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


class SystemdExecutor:
    """Restarts units through ``systemctl`` (``--user`` for a user manager)."""

    def __init__(self, *, systemctl: str = "systemctl", user: bool = False, allowed_units: Sequence[str] = ()) -> None:
        self._systemctl = systemctl
        self._user = user
        self._allowed = tuple(allowed_units)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SystemdExecutor:
        """``{systemctl: path, user: bool, allowed_units: [..]}``; all optional."""
        return cls(
            systemctl=str(cfg.get("systemctl") or "systemctl"),
            user=bool(cfg.get("user", False)),
            allowed_units=[str(u) for u in cfg.get("allowed_units") or ()],
        )

    def actions(self) -> Sequence[ActionSpec]:
        return [RESTART]

    def _unit(self, args: Mapping[str, Any]) -> str:
        unit = check_unit(args["unit"])
        if self._allowed and unit not in self._allowed:
            raise PermanentError(f"unit {unit!r} is not in executors.systemd.allowed_units", reason="refused")
        return unit

    def _argv(self, *args: str) -> list[str]:
        return [self._systemctl, *(["--user"] if self._user else []), *args]

    async def _systemctl_run(self, *args: str, timeout: float) -> str:
        """Run systemctl; a non-zero exit becomes an error with a reason read from its output."""
        if shutil.which(self._systemctl) is None:
            raise PermanentError(f"{self._systemctl} is not installed", reason="no_systemd")
        done = await run_argv(self._argv(*args), timeout=timeout)
        if done.code == 0:
            return done.output
        text = done.output.strip()
        lowered = text.lower()
        for markers, reason in _FAILURES:
            if any(m in lowered for m in markers):
                raise PermanentError(f"systemctl {' '.join(args)}: {text[-300:]}", reason=reason)
        if "canceled" in lowered or "destructive" in lowered:  # another job replaced ours
            raise RetryableError(f"systemctl {' '.join(args)}: {text[-300:]}", reason="conflict")
        raise PermanentError(f"systemctl {' '.join(args)} exited with {done.code}: {text[-300:]}", reason="failed")

    async def show(self, unit: str, *, timeout: float = 10.0) -> dict[str, str]:
        """The unit's state; a unit systemd does not know raises ``PermanentError(not_found)``."""
        props = parse_show(
            await self._systemctl_run("show", unit, f"--property={','.join(SHOW_PROPERTIES)}", timeout=timeout)
        )
        if props.get("LoadState") == "not-found":
            raise PermanentError(f"unit {unit} does not exist", reason="not_found")
        if props.get("LoadState") == "masked":
            raise PermanentError(f"unit {unit} is masked", reason="masked")
        return props

    async def execute(self, request: ActionRequest) -> ActionResult:
        unit = self._unit(request.args)
        before = await self.show(unit, timeout=min(10.0, request.timeout))
        await self._systemctl_run("restart", unit, timeout=request.timeout)
        after = await self.show(unit, timeout=min(10.0, request.timeout))
        return ActionResult(
            summary=f"restarted {unit}: {_label(before)} → {_label(after)}",
            details={f"before.{k}": v for k, v in before.items()} | {f"after.{k}": v for k, v in after.items()},
        )

    async def describe(self, request: ActionRequest) -> str:
        unit = self._unit(request.args)
        argv = " ".join(self._argv("restart", unit))
        try:
            state = _label(await self.show(unit, timeout=min(10.0, request.timeout)))
        except ActionError as exc:
            state = f"state unknown: {exc}"
        return f"would run `{argv}` (now {state})"

    async def read_state(self, request: ActionRequest) -> TargetState:
        unit = self._unit(request.args)
        props = await self.show(unit, timeout=min(10.0, request.timeout))
        return TargetState(
            target=unit, healthy=props.get("ActiveState") == "active", detail=_label(props), fields=props
        )

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        return None  # a unit is one target; hosts are not listed here


def _label(props: Mapping[str, str]) -> str:
    pid = props.get("MainPID", "0")
    return f"{props.get('ActiveState', '?')}/{props.get('SubState', '?')}" + (
        f", pid {pid}" if pid not in ("", "0") else ""
    )
