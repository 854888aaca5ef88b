"""``supervisor.restart|start|stop|scale``: processes under supervisord, over its XML-RPC API.

Calls go through the standard library's ``xmlrpc.client`` in a worker thread (``asyncio.to_thread``)
with a socket timeout, to ``http://host:port/RPC2`` or ``unix:///path/to.sock``. Names are checked
against supervisord's own vocabulary before anything is sent, and no shell is ever involved.

``scale`` rewrites ``numprocs=`` in the group's include file (``include_dir/<group>.conf``). The
group's members are its first ``numprocs`` processes (in number order). Within the processes
supervisord already has for the group, a resize happens in place: scaling down stops the extra
processes (parked: supervisord keeps them, stopped), scaling back up starts parked ones again, and
the processes that stay are never touched. Only growing past what supervisord has loaded needs
supervisord's config applied the way ``supervisorctl update <group>`` does — ``reloadConfig``, then
stop, remove and re-add the group, then start it — which restarts its processes; ``describe`` says
which it will be. A relative ``step`` records ``run_id#step`` in the file, so re-running the same
step after a crash does not step twice.

Fault translation: BAD_NAME → ``PermanentError(reason="not_found")``; ALREADY_STARTED / NOT_RUNNING
are success for start / stop; refused connections → ``RetryableError(reason="unreachable")``;
socket timeouts → ``RetryableError(reason="timeout")``.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import re
import socket
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit
from xml.parsers.expat import ExpatError

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, Inverse, ParamSpec, TargetState
from paramedic.core.errors import ActionError, PermanentError, RetryableError
from paramedic.core.scaling import ScaleDecision, ScaleRequest, plan_scale

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:9001/RPC2"
BAD_NAME, SHUTDOWN_STATE, SPAWN_ERROR, ABNORMAL_TERMINATION = 10, 6, 50, 40
NO_FILE, NOT_EXECUTABLE, FAILED, STILL_RUNNING, CANT_REREAD = 20, 21, 30, 91, 92
ALREADY_STARTED, NOT_RUNNING, SUCCESS, ALREADY_ADDED = 60, 70, 80, 90
LIVE_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF"})
PARKED_STATES = frozenset({"STOPPED", "EXITED", "FATAL"})  # a member in one of these is started by a scale up
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}")
_NUMPROCS = re.compile(r"^([ \t]*numprocs[ \t]*[=:][ \t]*)(\d+)(.*)$", re.MULTILINE)
_MARK = re.compile(r"^; paramedic-scale (\S+) numprocs=(\d+)[ \t]*(\n|$)", re.MULTILINE)

_PROGRAM = ParamSpec("program", help="process name, or group:name")


def _one(verb: str, summary: str) -> ActionSpec:
    return ActionSpec(f"supervisor.{verb}", summary, (_PROGRAM,), idempotent=True, default_timeout=60)


RESTART = _one("restart", "Stop one process if it runs, then start it; reports old → new pid.")
START = _one("start", "Start one process (already running: no change).")
STOP = _one("stop", "Stop one process (already stopped: no change).")
SCALE = ActionSpec(
    "supervisor.scale",
    "Set numprocs in a group's include file and apply it like `supervisorctl update`.",
    (
        ParamSpec("group", help="program group, as in [program:<group>]"),
        ParamSpec("desired", "int", required=False, help="absolute size"),
        ParamSpec("step", "int", required=False, help="relative change, e.g. 1 or -1"),
        ParamSpec("min", "int", required=False, default=1, help="never below"),
        ParamSpec("max", "int", required=False, default=10, help="never above"),
    ),
    idempotent=True,
    default_timeout=120.0,
)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Transport(xmlrpc.client.Transport):
    """HTTP or unix-socket transport with a socket timeout and optional basic auth."""

    def __init__(self, *, timeout: float, socket_path: str | None, auth: tuple[str, str] | None):
        headers: list[tuple[str, str]] = []
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        super().__init__(headers=headers)
        self._timeout = timeout
        self._socket_path = socket_path

    def make_connection(self, host: tuple[str, dict[str, str]] | str) -> http.client.HTTPConnection:
        if self._connection[1] is not None and self._connection[0] == host:
            return self._connection[1]
        address = host if isinstance(host, str) else host[0]
        conn = (
            _UnixConnection(self._socket_path, self._timeout)
            if self._socket_path is not None
            else http.client.HTTPConnection(address, timeout=self._timeout)
        )
        self._connection = (host, conn)
        return conn


def make_proxy(url: str, *, timeout: float, auth: tuple[str, str] | None = None) -> xmlrpc.client.ServerProxy:
    """A proxy for ``http://host:port/RPC2`` or ``unix:///path.sock``; use it in a ``with``."""
    parts = urlsplit(url)
    if parts.username and auth is None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "unix":
        transport = _Transport(timeout=timeout, socket_path=parts.path, auth=auth)
        return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=transport)
    if parts.scheme != "http" or not parts.hostname:
        raise PermanentError(f"supervisor url {url!r} must be http://… or unix://…", reason="config")
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    path = parts.path or "/RPC2"
    transport = _Transport(timeout=timeout, socket_path=None, auth=auth)
    return xmlrpc.client.ServerProxy(f"http://{netloc}{path}", transport=transport)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """The fields of supervisord's process info that paramedic uses."""

    group: str
    name: str
    state: str
    pid: int
    start: int
    now: int
    spawnerr: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> ProcessInfo:
        group, name, state, spawnerr = (str(raw.get(k) or "") for k in ("group", "name", "statename", "spawnerr"))
        return cls(group, name, state, int(raw["pid"]), int(raw["start"]), int(raw["now"]), spawnerr)

    @property
    def namespec(self) -> str:
        return f"{self.group}:{self.name}"

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def live_pid(self) -> str:
        return str(self.pid) if self.live and self.pid else "-"

    @property
    def uptime(self) -> int:
        return max(self.now - self.start, 0) if self.state == "RUNNING" else 0

    def brief(self) -> str:
        if self.state != "RUNNING":
            return f"{self.state}{', ' + self.spawnerr if self.spawnerr else ''}"
        return f"RUNNING, pid {self.pid}, up {_age(self.uptime)}"


def _age(seconds: int) -> str:
    seconds = max(seconds, 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600}h"


def check_name(value: object, what: str = "program") -> str:
    """Accept ``name`` or ``group:name`` made of supervisord's name characters; refuse the rest."""
    text = str(value)
    parts = text.split(":")
    if len(parts) > 2 or not all(_NAME.fullmatch(p) for p in parts):
        raise PermanentError(f"{what} {text!r} is not a supervisord process name", reason="bad_arguments")
    return text


def _fault(fault: xmlrpc.client.Fault, name: str, url: str) -> ActionError:
    code, text = fault.faultCode, fault.faultString
    if code == BAD_NAME:
        return PermanentError(f"supervisord at {url} has no process or group {name!r}", reason="not_found")
    if code in (SPAWN_ERROR, ABNORMAL_TERMINATION, NO_FILE, NOT_EXECUTABLE):
        return PermanentError(f"{name} failed to start: {text}", reason="spawn_failed")
    if code == CANT_REREAD:
        return PermanentError(f"supervisord cannot read its config: {text}", reason="config")
    if code in (SHUTDOWN_STATE, FAILED, STILL_RUNNING):
        return RetryableError(f"supervisord refused {name} for now: {text}", reason="busy")
    return PermanentError(f"supervisord refused {name}: {text}", reason="refused")


def _ignore(fault: xmlrpc.client.Fault, code: int) -> None:
    if fault.faultCode != code:
        raise fault


class SupervisorExecutor:
    """One supervisord; each call opens and closes its own XML-RPC connection in a thread."""

    def __init__(
        self,
        *,
        url: str = DEFAULT_URL,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        include_dir: str | Path | None = None,
    ) -> None:
        self.url = url
        self._auth = (username, password or "") if username else None
        self._timeout = timeout
        self._include_dir = Path(include_dir) if include_dir else None
        self._scale_lock = threading.Lock()
        with make_proxy(url, timeout=timeout):  # a wrong URL fails when the config loads
            pass

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SupervisorExecutor:
        return cls(
            url=str(cfg.get("url", DEFAULT_URL)),
            username=cfg.get("username"),
            password=cfg.get("password"),
            timeout=float(cfg.get("timeout", 10.0)),
            include_dir=cfg.get("include_dir"),
        )

    def actions(self) -> Sequence[ActionSpec]:
        return [RESTART, START, STOP, SCALE]

    # -- transport ---------------------------------------------------------------------------
    async def _rpc(self, fn: Callable[[Any], T], *, name: str, io_timeout: float = 0.0) -> T:
        """Run ``fn(proxy.supervisor)`` in a thread; every foreign error is translated."""
        return await asyncio.to_thread(self._rpc_sync, fn, name, io_timeout or self._timeout)

    def _rpc_sync(self, fn: Callable[[Any], T], name: str, timeout: float) -> T:
        at = f"supervisord at {self.url}"
        try:
            with make_proxy(self.url, timeout=timeout, auth=self._auth) as proxy:
                return fn(proxy.supervisor)
        except xmlrpc.client.Fault as exc:
            raise _fault(exc, name, self.url) from exc
        except TimeoutError as exc:
            raise RetryableError(f"{at} timed out after {timeout:g}s", reason="timeout") from exc
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode in (401, 403):
                raise PermanentError(f"{at} refused the credentials", reason="unauthorized") from exc
            raise RetryableError(f"{at} answered HTTP {exc.errcode}", reason="unreachable") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise RetryableError(f"{at} is unreachable: {exc}", reason="unreachable") from exc
        except (ExpatError, xmlrpc.client.ResponseError) as exc:
            raise PermanentError(f"{at} does not speak XML-RPC: {exc}", reason="protocol") from exc

    async def _info(self, name: str) -> ProcessInfo:
        return await self._rpc(lambda sv: ProcessInfo.parse(sv.getProcessInfo(name)), name=name)

    async def _group(self, group: str) -> list[ProcessInfo]:
        raw = await self._rpc(lambda sv: list(sv.getAllProcessInfo()), name=group)
        return [p for p in map(ProcessInfo.parse, raw) if group in ("", p.group)]

    # -- the protocol ------------------------------------------------------------------------
    async def execute(self, request: ActionRequest) -> ActionResult:
        if request.action == SCALE.name:
            return await self._scale(request)
        name = check_name(request.args["program"])
        verb = request.action.removeprefix("supervisor.")
        if verb not in ("restart", "start", "stop"):
            raise PermanentError(f"unknown action {request.action!r}", reason="unknown_action")

        def act(sv: Any) -> tuple[ProcessInfo, ProcessInfo]:
            before = ProcessInfo.parse(sv.getProcessInfo(name))
            deadline = time.monotonic() + request.timeout
            while before.state == "STOPPING" and time.monotonic() < deadline:
                time.sleep(0.1)  # a stop in flight: let it finish before acting
                before = ProcessInfo.parse(sv.getProcessInfo(name))
            if verb in ("restart", "stop") and before.live:
                try:
                    sv.stopProcess(name, True)
                except xmlrpc.client.Fault as exc:
                    _ignore(exc, NOT_RUNNING)
            if verb in ("restart", "start"):
                try:
                    sv.startProcess(name, True)
                except xmlrpc.client.Fault as exc:
                    _ignore(exc, ALREADY_STARTED)
            return before, ProcessInfo.parse(sv.getProcessInfo(name))

        before, after = await self._rpc(act, name=name, io_timeout=max(request.timeout, self._timeout))
        old, new, spec = before.live_pid, after.live_pid, after.namespec
        details = {"old_pid": old, "new_pid": new, "old_state": before.state, "state": after.state}

        def result(summary: str, *, changed: bool = True) -> ActionResult:
            return ActionResult(summary, changed=changed, details=details)

        if verb == "restart":
            return result(f"restarted {spec}: pid {old} → {new} ({after.state})")
        if before.live == (verb == "start"):
            return result(f"{spec} was already {before.state}; nothing to do", changed=False)
        done, pid = ("started", new) if verb == "start" else ("stopped", old)
        return result(f"{done} {spec} (pid {pid}, now {after.state})")

    def inverse(self, request: ActionRequest, result: ActionResult) -> Inverse | None:
        """stop → start, start → stop, scale → the size the group had before. A restart has none."""
        if request.action == SCALE.name and "from" in result.details:
            before = int(result.details["from"])
            lo, hi = int(request.args.get("min", 1)), int(request.args.get("max", 10))
            size = {"group": request.args["group"], "desired": before, "min": min(lo, before), "max": max(hi, before)}
            return Inverse(SCALE.name, size)
        if request.action == STOP.name:
            return Inverse(START.name, {"program": request.args["program"]})
        if request.action == START.name:
            return Inverse(STOP.name, {"program": request.args["program"]})
        return None

    async def describe(self, request: ActionRequest) -> str:
        if request.action == SCALE.name:
            plan = await self._plan(request)
            return plan.describe()
        name = check_name(request.args["program"])
        info = await self._info(name)
        verb = request.action.removeprefix("supervisor.")
        if (verb == "start" and info.live) or (verb == "stop" and not info.live):
            return f"{info.namespec} is already {info.state}; {verb} would change nothing"
        if verb == "restart" and not info.live:
            return f"would start {info.namespec} ({info.brief()}, not running)"
        return f"would {verb} {info.namespec} ({info.brief()})"

    async def read_state(self, request: ActionRequest) -> TargetState:
        if "group" in request.args and "program" not in request.args:
            group = check_name(request.args["group"], "group")
            procs = await self._members(group)
            running = sum(p.state == "RUNNING" for p in procs)
            return TargetState(
                group,
                healthy=bool(procs) and running == len(procs),
                detail=f"{running}/{len(procs)} RUNNING",
                fields={"running": str(running), "total": str(len(procs))},
            )
        info = await self._info(check_name(request.args["program"]))
        fields = {"state": info.state, "pid": info.live_pid, "uptime_seconds": str(info.uptime)}
        return TargetState(info.namespec, info.state == "RUNNING", info.brief(), fields)

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        group = scope.get("group") or scope.get("service")
        if group is None and scope:
            return None  # a scope this executor cannot interpret: unknown, never "all"
        if not group:
            return [p.namespec for p in await self._group("")]
        return [p.namespec for p in await self._members(check_name(group, "group"))]

    async def _members(self, group: str) -> list[ProcessInfo]:
        """The group's processes that its include file says should exist (parked ones are not)."""
        procs = sorted(await self._group(group), key=lambda p: _natural(p.name))
        try:
            _, text = self._include(group)
        except PermanentError:
            return procs  # no include file: every loaded process is a member
        found = _NUMPROCS.search(_split(text, group)[1])
        return procs[: int(found.group(2)) if found else 1]

    # -- scale -------------------------------------------------------------------------------
    def _include(self, group: str) -> tuple[Path, str]:
        if self._include_dir is None:
            raise PermanentError("executors.supervisor.include_dir is not set", reason="config")
        for path in [self._include_dir / f"{group}.conf", *sorted(self._include_dir.glob("*.conf"))]:
            if path.is_file() and _header(group).search(text := path.read_text()):
                return path, text
        raise PermanentError(f"no [program:{group}] in {self._include_dir}/*.conf", reason="not_found")

    async def _plan(self, request: ActionRequest) -> _ScalePlan:
        args = request.args
        group = check_name(args["group"], "group")
        if ":" in group:
            raise PermanentError(f"group {group!r} must not contain ':'", reason="bad_arguments")
        path, text = self._include(group)
        body = _split(text, group)[1]
        found = _NUMPROCS.search(body)
        in_file = int(found.group(2)) if found else 1
        loaded = sorted(await self._group(group), key=lambda p: _natural(p.name))
        live = min(len(loaded), in_file)
        key = f"{request.run_id}#{request.step}" if request.run_id else ""
        desired, step = args.get("desired"), args.get("step")
        mark = _MARK.search(body)
        if step is not None and key and mark and mark.group(1) == key:
            desired, step = int(mark.group(2)), None  # this very step already ran: no second step
        lo, hi = int(args.get("min", 1)), int(args.get("max", 10))
        decision = plan_scale(ScaleRequest(current=live or in_file, minimum=lo, maximum=hi, desired=desired, step=step))
        return _ScalePlan(group, path, text, in_file, live, decision, key, tuple(loaded))

    async def _scale(self, request: ActionRequest) -> ActionResult:
        plan = await self._plan(request)
        target, reason = plan.decision.target, plan.decision.reason
        details = {"group": plan.group, "from": str(plan.live), "to": str(target), "reason": reason}
        details["file"] = str(plan.path)
        if not plan.changes:
            summary = f"group {plan.group} already at {target}; nothing to do"
            return ActionResult(summary, changed=False, details=details)
        statuses = await asyncio.to_thread(self._apply, plan, max(request.timeout, self._timeout))
        ok = (SUCCESS, ALREADY_STARTED)
        failed = [f"{s['group']}:{s['name']} ({s['description']})" for s in statuses if s.get("status") not in ok]
        if failed:
            raise PermanentError(
                f"numprocs of {plan.group} is now {target}, but {', '.join(failed)} did not start",
                reason="spawn_failed",
            )
        clamp = f" ({reason})" if plan.decision.clamped else ""
        return ActionResult(f"scaled {plan.group} {plan.live} → {target}{clamp}", details=details)

    def _apply(self, plan: _ScalePlan, timeout: float) -> list[dict[str, Any]]:
        """Rewrite the include file; then resize in place, or do what ``supervisorctl update`` does."""
        if plan.in_place:
            return self._apply_in_place(plan, timeout)
        group = plan.group
        with self._scale_lock:
            tmp = plan.path.with_name(f".{plan.path.name}.{os.getpid()}.tmp")
            tmp.write_text(_rewrite(plan.text, group, plan.decision.target, plan.key))
            os.replace(tmp, plan.path)

            def reload(sv: Any) -> list[list[str]]:
                try:
                    return list(sv.reloadConfig()[0])
                except BaseException:
                    plan.path.write_text(plan.text)  # refused or unreachable: put the file back
                    raise

            added, changed, _ = self._rpc_sync(reload, group, timeout)

            def update(sv: Any) -> list[dict[str, Any]]:
                if group in changed:
                    sv.stopProcessGroup(group, True)
                    sv.removeProcessGroup(group)
                if group in changed or group in added or plan.live == 0:
                    try:
                        sv.addProcessGroup(group)
                    except xmlrpc.client.Fault as exc:
                        _ignore(exc, ALREADY_ADDED)
                return list(sv.startProcessGroup(group, True))

            return self._rpc_sync(update, group, timeout)

    def _apply_in_place(self, plan: _ScalePlan, timeout: float) -> list[dict[str, Any]]:
        """Stop the processes beyond the target, start parked ones up to it; touch no other."""
        target = plan.decision.target
        with self._scale_lock:
            tmp = plan.path.with_name(f".{plan.path.name}.{os.getpid()}.tmp")
            tmp.write_text(_rewrite(plan.text, plan.group, target, plan.key))
            os.replace(tmp, plan.path)

            def resize(sv: Any) -> list[dict[str, Any]]:
                for p in plan.loaded[target:]:
                    if p.state not in PARKED_STATES:
                        try:
                            sv.stopProcess(p.namespec, True)
                        except xmlrpc.client.Fault as exc:
                            _ignore(exc, NOT_RUNNING)
                out = []
                for p in plan.loaded[:target]:
                    if p.state in PARKED_STATES:
                        status, text = SUCCESS, "started"
                        try:
                            sv.startProcess(p.namespec, True)
                        except xmlrpc.client.Fault as exc:
                            status, text = (SUCCESS, "already started") if exc.faultCode == ALREADY_STARTED else (
                                exc.faultCode, exc.faultString)  # fmt: skip
                        out.append({"group": p.group, "name": p.name, "status": status, "description": text})
                return out

            return self._rpc_sync(resize, plan.group, timeout)


def _natural(name: str) -> list[Any]:
    """``web-2`` before ``web-10``: numbers compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _header(group: str) -> re.Pattern[str]:
    return re.compile(rf"^\[program:{re.escape(group)}\][ \t]*(\n|$)", re.MULTILINE)


def _split(text: str, group: str) -> tuple[str, str, str]:
    """The text up to and including ``[program:<group>]``, that section's body, and the rest."""
    head = _header(group).search(text)
    if head is None:
        raise PermanentError(f"[program:{group}] vanished from its include file", reason="config")
    end = re.compile(r"^[ \t]*\[", re.MULTILINE).search(text, head.end())
    stop = end.start() if end else len(text)
    return text[: head.end()], text[head.end() : stop], text[stop:]


def _rewrite(text: str, group: str, target: int, key: str) -> str:
    """``text`` with ``numprocs=target`` (and the step marker) in the group's section."""
    head, body, rest = _split(text, group)
    body = _MARK.sub("", body)
    body, found = _NUMPROCS.subn(lambda m: f"{m.group(1)}{target}{m.group(3)}", body, count=1)
    if not found:
        body = f"numprocs={target}\n{body}"
    if key:
        body = f"; paramedic-scale {key} numprocs={target}\n{body}"
    return (head if head.endswith("\n") else head + "\n") + body + rest


@dataclass(frozen=True, slots=True)
class _ScalePlan:
    group: str
    path: Path
    text: str
    in_file: int
    live: int
    decision: ScaleDecision
    key: str
    loaded: tuple[ProcessInfo, ...] = ()  # what supervisord has for the group, in number order

    @property
    def changes(self) -> bool:
        return self.in_file != self.decision.target or self.live != self.decision.target or self._parked_to_start

    @property
    def _parked_to_start(self) -> bool:
        return any(p.state in PARKED_STATES for p in self.loaded[: self.decision.target])

    @property
    def in_place(self) -> bool:
        """Resizable without restarting anyone: supervisord already has enough processes."""
        return 0 < self.decision.target <= len(self.loaded)

    def describe(self) -> str:
        target, note = self.decision.target, f" ({self.decision.reason})"
        note = note if self.decision.clamped else ""
        if not self.changes:
            return f"group {self.group} is already at {target}{note}; scale would change nothing"
        if self.in_place:
            target_ = self.decision.target
            stop = [p.namespec for p in self.loaded[target_:] if p.state not in PARKED_STATES]
            start = [p.namespec for p in self.loaded[:target_] if p.state in PARKED_STATES]
            acts = ([f"stop {', '.join(stop)}"] if stop else []) + ([f"start {', '.join(start)}"] if start else [])
            return (
                f"would scale group {self.group} {self.live} → {target}{note}: set numprocs={target} in {self.path}"
                f"{'; ' + ' and '.join(acts) if acts else ''} (in place: the other processes keep running)"
            )
        restart = f", which restarts its {self.live} processes" if self.live else ""
        return (
            f"would scale group {self.group} {self.live} → {target}{note}: set numprocs={target} "
            f"in {self.path}, reload supervisord's config, then stop, remove and re-add group "
            f"{self.group}{restart}, and start it"
        )
