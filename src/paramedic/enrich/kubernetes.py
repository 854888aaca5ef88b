"""Kubernetes evidence: what an engineer runs first for a failing pod — ``kubectl describe pod``
(container states, restarts, last termination, events) and ``kubectl logs``, with the previous
container's log when it restarted (the crash is in that one, not in the fresh container's).

Spec::

    - kubernetes: {pod: "{{ labels.pod }}", namespace: "{{ labels.namespace }}", lines: 100,
                   container: app, previous: auto}

``previous`` is ``auto`` (the previous container's log when the container restarted), ``true`` or
``false``. The reads come from the Kubernetes executor (``executors.kubernetes``) through callables
the engine passes in; the log lines are redacted like every log tail and shown errors first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from paramedic.core.errors import ActionError
from paramedic.enrich.base import CollectError, EnrichRequest, Evidence, EvidenceStatus, fenced, option_int
from paramedic.enrich.logs import excerpt_blocks, redact_line

Obj = Mapping[str, Any]
EVENTS_SHOWN = 10


class PodReader(Protocol):
    """What the collector needs of the cluster (``actions.kubernetes.KubernetesExecutor`` has it)."""

    def read_pod(self, namespace: str | None, name: str) -> Awaitable[Obj]: ...

    def pod_log(
        self, namespace: str | None, name: str, *, container: str, previous: bool, tail: int
    ) -> Awaitable[str]: ...

    def pod_events(self, namespace: str | None, name: str) -> Awaitable[Sequence[Obj]]: ...


@dataclass(frozen=True, slots=True)
class ContainerState:
    name: str
    ready: bool
    restarts: int
    state: str  # running | waiting: CrashLoopBackOff | terminated: Error
    last: str  # the previous termination: "exit 1 (Error) at …", or ""

    @classmethod
    def of(cls, status: Obj) -> ContainerState:
        return cls(
            name=str(status.get("name", "")),
            ready=bool(status.get("ready")),
            restarts=int(status.get("restartCount") or 0),
            state=_state(status.get("state")),
            last=_terminated(status.get("lastState")),
        )


class KubernetesCollector:
    kind = "kubernetes"

    def __init__(self, reader: Callable[[], PodReader | None]) -> None:
        self._reader = reader

    def title(self, request: EnrichRequest) -> str:
        o = request.options
        return str(o.get("title") or f"Pod {o.get('namespace') or ''}{'/' if o.get('namespace') else ''}{o.get('pod')}")

    async def collect(self, request: EnrichRequest) -> Evidence:
        o = request.options
        reader = self._reader()
        if reader is None:
            raise CollectError("no Kubernetes cluster is configured (executors.kubernetes)")
        if not o.get("pod"):
            raise CollectError("a kubernetes spec needs pod (e.g. pod: '{{ labels.pod }}')")
        lines = option_int(o, "lines", 100, low=1, high=5000)
        previous = str(o.get("previous", "auto")).lower()
        if previous not in ("auto", "true", "false"):
            raise CollectError("previous must be auto, true or false")
        ns = str(o["namespace"]) if o.get("namespace") else None
        pod = await _read(reader.read_pod(ns, str(o["pod"])))
        statuses = [ContainerState.of(c) for c in (pod.get("status") or {}).get("containerStatuses") or []]
        names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        container = str(o.get("container") or (names[0] if names else ""))
        if container not in names:
            raise CollectError(f"pod {o['pod']} has no container {container!r} (it has {', '.join(names) or 'none'})")
        mine = next((c for c in statuses if c.name == container), None)
        want_previous = previous == "true" or (previous == "auto" and mine is not None and mine.restarts > 0)
        log = await _read(reader.pod_log(ns, str(o["pod"]), container=container, previous=False, tail=lines))
        before = ""
        if want_previous:
            before = await _read(reader.pod_log(ns, str(o["pod"]), container=container, previous=True, tail=lines))
        events = sorted(await _read(reader.pod_events(ns, str(o["pod"]))), key=_event_time)
        return _evidence(self.title(request), pod, statuses, container, log, before, events)


async def _read(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except ActionError as exc:  # the executor's error names the call that failed
        raise CollectError(str(exc)) from None


def _evidence(
    title: str,
    pod: Obj,
    statuses: Sequence[ContainerState],
    container: str,
    log: str,
    before: str,
    events: Sequence[Obj],
) -> Evidence:
    phase = str((pod.get("status") or {}).get("phase", "Unknown"))
    restarts = sum(c.restarts for c in statuses)
    warnings = [e for e in events if e.get("type") == "Warning"]
    mine = next((c for c in statuses if c.name == container), None)
    head = f"{phase}, {restarts} restart{'s' if restarts != 1 else ''}"
    if mine is not None and mine.state != "running":
        head += f", {container} {mine.state}"
    if mine is not None and mine.last:
        head += f", last {mine.last}"
    if warnings:
        head += f"; {len(warnings)} warning event{'s' if len(warnings) != 1 else ''}"
        head += (
            f" (last: {_inline(str(warnings[-1].get('reason', '')))}: {_inline(str(warnings[-1].get('message', '')))})"
        )
    parts = [head]
    if statuses:
        rows = [
            f"{c.name}: {'ready' if c.ready else 'not ready'}, {c.state}, {c.restarts} restarts"
            + (f", last {c.last}" if c.last else "")
            for c in statuses
        ]
        parts += ["Containers:", fenced(rows)]
    if events:
        shown = [
            f"{e.get('type', '')} {e.get('reason', '')} x{e.get('count') or 1}: {e.get('message', '')}".strip()
            for e in events[-EVENTS_SHOWN:]
        ]
        parts += [f"Events (last {len(shown)}):", fenced([redact_line(x) for x in shown])]
    old = [redact_line(x) for x in before.splitlines()]
    new = [redact_line(x) for x in log.splitlines()]
    if old:
        parts += [f"Log of the previous {container} container (the one that stopped):", *excerpt_blocks(old)]
    parts += [f"Log of {container} now:", *(excerpt_blocks(new) if new else ["(empty)"])]
    data = {
        "pod": str((pod.get("metadata") or {}).get("name", "")),
        "namespace": str((pod.get("metadata") or {}).get("namespace", "")),
        "phase": phase,
        "containers": [_as_dict(c) for c in statuses],
        "events": [
            {k: str(e.get(k, "")) for k in ("type", "reason", "message", "count", "lastTimestamp")} for e in events
        ],
        "lines": old or new,  # the lines a ticket's excerpt shows: the crash, when there is one
        "previous_lines": len(old),
    }
    return Evidence("kubernetes", title, EvidenceStatus.OK, "\n\n".join(parts), data)


def _as_dict(c: ContainerState) -> dict[str, Any]:
    return {"name": c.name, "ready": c.ready, "restarts": c.restarts, "state": c.state, "last": c.last}


def _state(raw: object) -> str:
    if not isinstance(raw, Mapping) or not raw:
        return "unknown"
    (kind, detail), *_ = raw.items()
    reason = detail.get("reason") if isinstance(detail, Mapping) else None
    return f"{kind}: {reason}" if reason else str(kind)


def _terminated(raw: object) -> str:
    term = raw.get("terminated") if isinstance(raw, Mapping) else None
    if not isinstance(term, Mapping):
        return ""
    out = f"exit {term.get('exitCode', '?')}"
    if term.get("reason"):
        out += f" ({term['reason']})"
    if term.get("finishedAt"):
        out += f" at {term['finishedAt']}"
    return out


def _event_time(e: Obj) -> str:
    return str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or "")


def _inline(text: str, limit: int = 120) -> str:
    text = " ".join(text.split()).replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"
