"""``haproxy.drain|ready|maint|set_weight``: shift traffic through HAProxy's runtime API.

One command per connection over the stats socket (``unix:///path`` or ``tcp://host:port``,
``level admin``). Before taking a server out of rotation the executor reads
``show servers state <backend>`` and refuses to remove the last server that still takes traffic,
so a drain can never empty a backend. A zone is a named list of ``backend/server`` entries from
``executors.haproxy.zones``; a zone action checks every affected backend before touching any.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, Inverse, ParamSpec, TargetState
from paramedic.core.durations import parse_duration
from paramedic.core.errors import ConfigError, PermanentError, RetryableError

_TARGET = (
    ParamSpec("backend", "str", required=False, help="backend name (with server)"),
    ParamSpec("server", "str", required=False, help="server name inside the backend"),
    ParamSpec("zone", "str", required=False, help="zone from executors.haproxy.zones instead"),
)
DRAIN = ActionSpec(
    name="haproxy.drain",
    summary="Stop new connections to a server (or a zone); refuses to drain the last healthy one.",
    params=_TARGET,
    idempotent=True,
    default_timeout=10.0,
)
MAINT = ActionSpec(
    name="haproxy.maint",
    summary="Put a server (or a zone) in maintenance; refuses for the last healthy one.",
    params=_TARGET,
    idempotent=True,
    default_timeout=10.0,
)
READY = ActionSpec(
    name="haproxy.ready",
    summary="Return a server (or a zone) to normal service (clears drain and maintenance).",
    params=_TARGET,
    idempotent=True,
    default_timeout=10.0,
)
SET_WEIGHT = ActionSpec(
    name="haproxy.set_weight",
    summary="Set a server's weight (0-256); weight 0 is refused for the last healthy server.",
    params=(
        ParamSpec("backend", "str", help="backend name"),
        ParamSpec("server", "str", help="server name inside the backend"),
        ParamSpec("weight", "int", help="new weight, 0 to 256"),
    ),
    idempotent=True,
    default_timeout=10.0,
)

# Server operational states and administrative flags, from HAProxy's include/haproxy/server-t.h.
OP_RUNNING = 2
_OP_NAMES = {0: "DOWN", 1: "STARTING", 2: "UP", 3: "STOPPING"}
ADMF_FMAINT = 0x01
_ADMF_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40  # forced, inherited, config, resolver, hostname
_ADMF_DRAIN = 0x08 | 0x10  # forced, inherited
ADMF_FDRAIN = 0x08

_NOT_FOUND = ("no such backend", "no such server", "can't find backend", "can't find server")
_REFUSED = ("permission denied", "unknown command", "require 'backend/server'")

State = Literal["drain", "maint", "ready"]
_STATE_OF: dict[str, State] = {
    DRAIN.name: "drain",
    MAINT.name: "maint",
    READY.name: "ready",
}


@dataclass(frozen=True, slots=True)
class ServerState:
    """One row of ``show servers state``, reduced to what decisions need."""

    backend: str
    name: str
    address: str
    port: str
    op_state: int
    admin_state: int
    weight: int

    @property
    def up(self) -> bool:
        return self.op_state == OP_RUNNING

    @property
    def maint(self) -> bool:
        return bool(self.admin_state & _ADMF_MAINT)

    @property
    def drain(self) -> bool:
        return bool(self.admin_state & _ADMF_DRAIN)

    @property
    def serving(self) -> bool:
        """UP, neither drained nor in maintenance, and with a weight: it takes new traffic."""
        return self.up and not self.maint and not self.drain and self.weight > 0

    @property
    def ref(self) -> str:
        return f"{self.backend}/{self.name}"

    def label(self) -> str:
        flags = [_OP_NAMES.get(self.op_state, str(self.op_state))]
        if self.maint:
            flags.append("MAINT")
        if self.drain:
            flags.append("DRAIN")
        return f"{' '.join(flags)}, weight {self.weight}"

    def fields(self) -> dict[str, str]:
        return {
            "srv_op_state": str(self.op_state),
            "srv_admin_state": str(self.admin_state),
            "weight": str(self.weight),
            "state": self.label(),
        }


def parse_servers_state(text: str) -> list[ServerState]:
    """Parse ``show servers state``: a format version line, a ``#`` header naming the columns,
    then one space-separated row per server. Columns are looked up by the header's names."""
    header: list[str] | None = None
    out: list[ServerState] = []
    for line in text.splitlines():
        if line.startswith("#"):
            header = line[1:].split()
            continue
        if header is None or not line.strip():
            continue
        row = dict(zip(header, line.split(), strict=False))
        try:
            out.append(
                ServerState(
                    backend=row["be_name"],
                    name=row["srv_name"],
                    address=row.get("srv_addr", ""),
                    port=row.get("srv_port", ""),
                    op_state=int(row["srv_op_state"]),
                    admin_state=int(row["srv_admin_state"]),
                    weight=int(row["srv_uweight"]),
                )
            )
        except (KeyError, ValueError) as exc:
            raise PermanentError(
                f"cannot parse HAProxy 'show servers state' row {line!r}: {exc}", reason="protocol"
            ) from exc
    if header is None:
        raise PermanentError(f"unexpected HAProxy answer: {text.strip()[:200]!r}", reason="protocol")
    return out


def _check_answer(command: str, answer: str) -> None:
    lowered = answer.strip().lower()
    if any(marker in lowered for marker in _NOT_FOUND):
        raise PermanentError(f"HAProxy: {answer.strip()} ({command})", reason="not_found")
    if any(marker in lowered for marker in _REFUSED):
        raise PermanentError(f"HAProxy refused {command!r}: {answer.strip()}", reason="forbidden")


class HaproxyExecutor:
    """Talks to one HAProxy runtime API endpoint."""

    def __init__(
        self,
        *,
        socket: str | None,
        timeout: float = 5.0,
        zones: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._socket = socket
        self._timeout = timeout
        self._zones = {str(k): [str(v) for v in vs] for k, vs in (zones or {}).items()}
        for zone, refs in self._zones.items():
            for ref in refs:
                if ref.count("/") != 1:
                    raise ConfigError(f"executors.haproxy.zones.{zone}: {ref!r} is not 'backend/server'")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> HaproxyExecutor:
        timeout = parse_duration(cfg.get("timeout", 5.0)).total_seconds()
        return cls(socket=cfg.get("socket"), timeout=timeout, zones=cfg.get("zones") or {})

    def actions(self) -> Sequence[ActionSpec]:
        return [DRAIN, READY, MAINT, SET_WEIGHT]

    # -- the wire ----------------------------------------------------------------------------

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address = self._socket
        if not address:
            raise PermanentError("executors.haproxy.socket is not set", reason="not_configured")
        if address.startswith("unix://"):
            return await asyncio.open_unix_connection(address.removeprefix("unix://"))
        if address.startswith("/"):
            return await asyncio.open_unix_connection(address)
        if address.startswith("tcp://"):
            host, _, port = address.removeprefix("tcp://").rpartition(":")
            if not host or not port.isdigit():
                raise PermanentError(f"bad HAProxy address {address!r}", reason="not_configured")
            return await asyncio.open_connection(host.strip("[]"), int(port))
        raise PermanentError(
            f"HAProxy socket {address!r} must be unix:///path or tcp://host:port",
            reason="not_configured",
        )

    async def command(self, command: str) -> str:
        """Send one command on a fresh connection and return HAProxy's whole answer."""
        if "\n" in command or ";" in command:
            raise PermanentError("HAProxy command must be a single command", reason="bad_arguments")
        limit = self._timeout
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(limit):
                reader, writer = await self._open()
                writer.write(command.encode() + b"\n")
                await writer.drain()
                data = await reader.read()
        except TimeoutError:
            raise RetryableError(f"HAProxy did not answer {command!r} within {limit:g}s", reason="timeout") from None
        except PermissionError as exc:
            raise PermanentError(f"cannot open HAProxy socket: {exc}", reason="forbidden") from exc
        except OSError as exc:
            raise RetryableError(f"cannot reach HAProxy at {self._socket}: {exc}", reason="unreachable") from exc
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        return data.decode(errors="replace")

    async def servers(self, backend: str) -> list[ServerState]:
        """The servers of ``backend`` as ``show servers state`` reports them."""
        _check_name(backend, "backend")
        command = f"show servers state {backend}"
        answer = await self.command(command)
        _check_answer(command, answer)
        return parse_servers_state(answer)

    async def _set(self, command: str) -> None:
        answer = await self.command(command)
        _check_answer(command, answer)
        if answer.strip():
            raise PermanentError(f"HAProxy rejected {command!r}: {answer.strip()}", reason="rejected")

    # -- targets -----------------------------------------------------------------------------

    def _targets(self, args: Mapping[str, Any]) -> list[tuple[str, str]]:
        zone = args.get("zone")
        backend, server = args.get("backend"), args.get("server")
        if zone is not None:
            if backend is not None or server is not None:
                raise PermanentError("give either zone or backend+server", reason="bad_arguments")
            refs = self._zones.get(str(zone))
            if not refs:
                known = ", ".join(sorted(self._zones)) or "none configured"
                raise PermanentError(f"zone {zone!r} is not in executors.haproxy.zones ({known})", reason="not_found")
            return [(b, s) for b, s in (ref.split("/", 1) for ref in refs)]
        if backend is None or server is None:
            raise PermanentError("give backend and server, or zone", reason="bad_arguments")
        _check_name(str(backend), "backend")
        _check_name(str(server), "server")
        return [(str(backend), str(server))]

    async def _snapshot(self, targets: Sequence[tuple[str, str]]) -> dict[str, list[ServerState]]:
        """Current state of every backend the targets belong to; every target must exist."""
        states: dict[str, list[ServerState]] = {}
        for backend, _ in targets:
            if backend not in states:
                states[backend] = await self.servers(backend)
        for backend, server in targets:
            if not any(s.name == server for s in states[backend]):
                raise PermanentError(f"HAProxy backend {backend!r} has no server {server!r}", reason="not_found")
        return states

    @staticmethod
    def _guard_last_healthy(
        states: Mapping[str, Sequence[ServerState]], targets: Sequence[tuple[str, str]], verb: str
    ) -> None:
        """Refuse when taking ``targets`` out would leave a backend with no serving server."""
        for backend, servers in states.items():
            leaving = {s for b, s in targets if b == backend}
            serving = {s.name for s in servers if s.serving}
            if serving & leaving and not serving - leaving:
                raise PermanentError(
                    f"refusing to {verb} {', '.join(sorted(serving & leaving))}: it is the last "
                    f"healthy server of backend {backend!r}",
                    reason="last_healthy",
                )

    @staticmethod
    def _find(states: Mapping[str, Sequence[ServerState]], backend: str, server: str) -> ServerState:
        return next(s for s in states[backend] if s.name == server)

    # -- Executor ----------------------------------------------------------------------------

    async def _plan(self, request: ActionRequest) -> tuple[list[tuple[ServerState, str]], list[ServerState]]:
        """Read state, apply the guardrail, and return (server, command) pairs still to run
        plus the servers already in the wanted state."""
        args = request.args
        if request.action == SET_WEIGHT.name:
            targets = self._targets({"backend": args["backend"], "server": args["server"]})
            weight = int(args["weight"])
            if not 0 <= weight <= 256:
                raise PermanentError(f"weight {weight} is outside 0-256", reason="bad_arguments")
            states = await self._snapshot(targets)
            if weight == 0:
                self._guard_last_healthy(states, targets, "set weight 0 on")
            srv = self._find(states, *targets[0])
            if srv.weight == weight:
                return [], [srv]
            return [(srv, f"set server {srv.ref} weight {weight}")], []
        state = _STATE_OF[request.action]
        targets = self._targets(args)
        states = await self._snapshot(targets)
        if state != "ready":
            self._guard_last_healthy(states, targets, state)
        todo: list[tuple[ServerState, str]] = []
        done: list[ServerState] = []
        for backend, server in targets:
            srv = self._find(states, backend, server)
            if _already(srv, state):
                done.append(srv)
            else:
                todo.append((srv, f"set server {srv.ref} state {state}"))
        return todo, done

    async def execute(self, request: ActionRequest) -> ActionResult:
        async with _bounded(request):
            return await self._execute(request)

    async def _execute(self, request: ActionRequest) -> ActionResult:
        todo, done = await self._plan(request)
        applied: list[str] = []
        for _, command in todo:
            try:
                await self._set(command)
            except (PermanentError, RetryableError) as exc:
                if not applied:
                    raise
                message = f"{exc} (already applied: {'; '.join(applied)})"
                raise type(exc)(message, reason=exc.reason) from exc
            applied.append(command)
        unchanged = [s.ref for s in done]
        summary = "; ".join(applied) if applied else "no change"
        if unchanged:
            summary += f" (already as asked: {', '.join(unchanged)})"
        before = {f"{_BEFORE}{s.ref}": _admin(s) for s, _ in todo} | {
            f"{_WEIGHT}{s.ref}": str(s.weight) for s, _ in todo
        }
        return ActionResult(
            summary=summary,
            changed=bool(applied),
            output="\n".join(applied),
            details={s.ref: f"was {s.label()}" for s, _ in todo} | {s.ref: f"was {s.label()}" for s in done} | before,
        )

    def inverse(self, request: ActionRequest, result: ActionResult) -> Inverse | None:
        """Put each changed server back as it was: its administrative state (ready, drain or
        maint) or its weight, read just before the action changed it."""
        args = request.args
        if request.action == SET_WEIGHT.name:
            ref = f"{args['backend']}/{args['server']}"
            weight = result.details.get(f"{_WEIGHT}{ref}")
            if weight is None:
                return None
            return Inverse(
                SET_WEIGHT.name, {"backend": args["backend"], "server": args["server"], "weight": int(weight)}
            )
        if request.action not in (DRAIN.name, MAINT.name):
            return None
        states = {v for k, v in result.details.items() if k.startswith(_BEFORE)}
        if len(states) != 1:
            return None  # a zone whose servers were in different states: named, not guessed
        where = {k: v for k, v in args.items() if k in ("backend", "server", "zone") and v is not None}
        return Inverse(f"haproxy.{states.pop()}", where)

    async def describe(self, request: ActionRequest) -> str:
        async with _bounded(request):
            todo, done = await self._plan(request)
        lines = [f"would run `{cmd}` (now {srv.label()})" for srv, cmd in todo]
        lines += [f"{srv.ref} is already as asked ({srv.label()}); nothing to do" for srv in done]
        return "; ".join(lines)

    async def read_state(self, request: ActionRequest) -> TargetState:
        args = dict(request.args)
        if request.action == SET_WEIGHT.name:
            args = {"backend": args.get("backend"), "server": args.get("server")}
        targets = self._targets(args)
        async with _bounded(request):
            states = await self._snapshot(targets)
        servers = [self._find(states, b, s) for b, s in targets]
        if len(servers) == 1 and args.get("zone") is None:
            srv = servers[0]
            return TargetState(target=srv.ref, healthy=srv.serving, detail=srv.label(), fields=srv.fields())
        serving = [s.ref for s in servers if s.serving]
        return TargetState(
            target=f"zone:{args['zone']}",
            healthy=len(serving) == len(servers),
            detail=f"{len(serving)} of {len(servers)} servers serving",
            fields={s.ref: s.label() for s in servers},
        )

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        """``backend/server`` names of ``scope['backend']``, or of ``scope['zone']``."""
        if "backend" in scope:
            try:
                return [s.ref for s in await self.servers(scope["backend"])]
            except (PermanentError, RetryableError):
                return None
        if "zone" in scope and scope["zone"] in self._zones:
            return list(self._zones[scope["zone"]])
        return None


_BEFORE = "before:"
_WEIGHT = "weight_before:"


def _admin(srv: ServerState) -> State:
    """The administrative state as the action that sets it is named."""
    if srv.admin_state & ADMF_FMAINT:
        return "maint"
    if srv.admin_state & ADMF_FDRAIN:
        return "drain"
    return "ready"


@contextlib.asynccontextmanager
async def _bounded(request: ActionRequest) -> AsyncIterator[None]:
    """The whole action, however many commands it takes, ends within ``request.timeout``."""
    try:
        async with asyncio.timeout(request.timeout):
            yield
    except TimeoutError:
        raise RetryableError(f"{request.action} did not finish within {request.timeout:g}s", reason="timeout") from None


def _already(srv: ServerState, state: State) -> bool:
    if state == "drain":
        return bool(srv.admin_state & ADMF_FDRAIN) and not srv.admin_state & ADMF_FMAINT
    if state == "maint":
        return bool(srv.admin_state & ADMF_FMAINT)
    return not srv.admin_state & (ADMF_FMAINT | ADMF_FDRAIN)


def _check_name(name: str, what: str) -> None:
    """Backend and server names go into a command line: no spaces, separators or control chars."""
    if not name or any(c.isspace() or c in "/;#" for c in name) or not name.isprintable():
        raise PermanentError(f"invalid HAProxy {what} name {name!r}", reason="bad_arguments")
