"""Traces evidence: the requests behind an alert, found through Prometheus exemplars, fetched from
Tempo or Jaeger, and summarised as their slowest and failing spans.

Spec (in a runbook's ``enrich`` list or in ``enrich_defaults``)::

    - traces: {exemplars: 'http_request_duration_seconds_bucket{instance="{{ labels.instance }}"}',
               service: "{{ labels.service }}", backend: tempo, url: "http://tempo:3200",
               range: 30m, limit: 5, link: "http://grafana:3000/explore?trace={trace_id}"}

1. ``exemplars`` (PromQL) is sent to Prometheus's ``/api/v1/query_exemplars`` over the window; the
   exemplars with the highest values (the slowest requests of a latency histogram) name the
   trace IDs (label ``trace_id``, ``traceID`` or ``traceId``).
2. Without exemplars (none configured, or none in the window), the backend is searched for traces
   of ``service`` in the window: Tempo ``/api/search`` with a TraceQL query, Jaeger ``/api/traces``.
3. Each trace is fetched (Tempo ``/api/traces/{id}`` in OTLP JSON, Jaeger ``/api/traces/{id}``) and
   summarised: root span, duration, span count, failing spans, the slowest spans.

``url`` and ``backend`` default to ``settings.traces_url`` / ``settings.traces_backend`` of
``enrich_defaults``; Prometheus is ``settings.prometheus_url`` unless the spec gives ``prometheus``.
Trace IDs come from other systems and are checked as hex before they enter a URL; the service name
is escaped as a TraceQL string literal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import httpx

from paramedic.core.durations import format_duration
from paramedic.enrich.base import CollectError, EnrichRequest, Evidence, EvidenceStatus, option_int, option_range

DEFAULT_RANGE = timedelta(minutes=30)
MAX_RANGE = timedelta(days=2)
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{16,32}$")
_ID_LABELS = ("trace_id", "traceID", "traceId")
SLOWEST = 3


class Backend(StrEnum):
    TEMPO = "tempo"
    JAEGER = "jaeger"


@dataclass(frozen=True, slots=True)
class Span:
    service: str
    name: str
    start_ns: int
    duration_ns: int
    error: bool
    root: bool


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace as an engineer first reads it."""

    trace_id: str
    root: str
    services: tuple[str, ...]
    duration_ms: float
    spans: int
    errors: tuple[Span, ...]
    slowest: tuple[Span, ...]
    link: str | None

    def to_json(self) -> dict[str, Any]:
        def span(s: Span) -> dict[str, Any]:
            return {"service": s.service, "name": s.name, "duration_ms": round(s.duration_ns / 1e6, 3)}

        return {
            "trace_id": self.trace_id,
            "root": self.root,
            "services": list(self.services),
            "duration_ms": round(self.duration_ms, 3),
            "spans": self.spans,
            "errors": [span(s) for s in self.errors],
            "slowest": [span(s) for s in self.slowest],
            "link": self.link,
        }


class TracesCollector:
    """Exemplars from Prometheus, traces from Tempo or Jaeger."""

    kind = "traces"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        prometheus_url: str | None = None,
        default_url: str | None = None,
        default_backend: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._prometheus = prometheus_url
        self._default_url = default_url
        self._default_backend = default_backend
        self._timeout = timeout

    def title(self, request: EnrichRequest) -> str:
        o = request.options
        if o.get("title"):
            return str(o["title"])
        what = "exemplar traces" if o.get("exemplars") else f"traces of {o.get('service') or request.service or '?'}"
        return f"{what} over {format_duration(_range(o))}"

    async def collect(self, request: EnrichRequest) -> Evidence:
        o = request.options
        backend = _backend(o.get("backend") or self._default_backend or "tempo")
        base = str(o.get("url") or self._default_url or "")
        if not base.startswith(("http://", "https://")):
            raise CollectError("no traces URL: give url in the spec or settings.traces_url in enrich_defaults")
        limit = option_int(o, "limit", 5, low=1, high=20)
        end = request.now
        start = max(min(end - _range(o), request.starts_at - _range(o) / 6), end - MAX_RANGE)
        found = "exemplars"
        ids: list[str] = []
        if o.get("exemplars"):
            ids = await self._exemplar_ids(o, str(o["exemplars"]), start, end, limit)
        traces: list[TraceSummary] = []
        if ids:
            for trace_id in ids:
                traces.append(await self._fetch(backend, base, trace_id, o))
        else:
            service = str(o.get("service") or request.service or "")
            if not service:
                if o.get("exemplars"):
                    body = f"No exemplars for `{o['exemplars']}` in this window, and no service to search."
                    return Evidence("traces", self.title(request), EvidenceStatus.OK, body, {"traces": []})
                raise CollectError("a traces spec needs exemplars (PromQL) or a service to search")
            found = f"a search for service {service}"
            traces = await self._search(backend, base, service, start, end, limit, o)
        traces.sort(key=lambda t: (-len(t.errors), -t.duration_ms))
        data = {
            "backend": backend.value,
            "url": base,
            "source": found,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "traces": [t.to_json() for t in traces],
        }
        return Evidence("traces", self.title(request), EvidenceStatus.OK, _body(traces, found), data)

    # ---- exemplars ------------------------------------------------------------------------------
    async def _exemplar_ids(
        self, options: Mapping[str, Any], query: str, start: datetime, end: datetime, limit: int
    ) -> list[str]:
        prom = str(options.get("prometheus") or self._prometheus or "")
        if not prom.startswith(("http://", "https://")):
            raise CollectError("exemplars need Prometheus: give prometheus in the spec or settings.prometheus_url")
        url = f"{prom.rstrip('/')}/api/v1/query_exemplars"
        form = {"query": query, "start": f"{start.timestamp():.3f}", "end": f"{end.timestamp():.3f}"}
        body = await self._json("Prometheus", prom, "POST", url, data=form)
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error", "") if isinstance(body, dict) else ""
            raise CollectError(f"Prometheus refused the exemplar query: {err}".strip())
        return exemplar_trace_ids(body.get("data") or [], limit=limit)

    # ---- backends -------------------------------------------------------------------------------
    async def _fetch(self, backend: Backend, base: str, trace_id: str, options: Mapping[str, Any]) -> TraceSummary:
        url = f"{base.rstrip('/')}/api/traces/{trace_id}"
        body = await self._json(backend.value, base, "GET", url)
        spans = tempo_spans(body) if backend is Backend.TEMPO else jaeger_spans(_first_jaeger(body))
        return summarise(trace_id, spans, link=_link(options, backend, base, trace_id))

    async def _search(
        self,
        backend: Backend,
        base: str,
        service: str,
        start: datetime,
        end: datetime,
        limit: int,
        options: Mapping[str, Any],
    ) -> list[TraceSummary]:
        root = base.rstrip("/")
        if backend is Backend.TEMPO:
            params = {
                "q": f"{{ resource.service.name = {traceql_string(service)} }}",
                "start": str(int(start.timestamp())),
                "end": str(int(end.timestamp())),
                "limit": str(limit),
            }
            body = await self._json("tempo", base, "GET", f"{root}/api/search", params=params)
            listed = body.get("traces") if isinstance(body, dict) else None
            ids = [str(t.get("traceID", "")) for t in listed or [] if isinstance(t, Mapping)]
            return [await self._fetch(backend, base, i, options) for i in ids if _TRACE_ID.match(i)][:limit]
        params = {
            "service": service,
            "start": str(int(start.timestamp() * 1e6)),
            "end": str(int(end.timestamp() * 1e6)),
            "limit": str(limit),
        }
        body = await self._json("jaeger", base, "GET", f"{root}/api/traces", params=params)
        found = body.get("data") if isinstance(body, dict) else None
        out = []
        for trace in (found or [])[:limit]:
            if isinstance(trace, Mapping) and _TRACE_ID.match(str(trace.get("traceID", ""))):
                tid = str(trace["traceID"])
                out.append(summarise(tid, jaeger_spans(trace), link=_link(options, backend, base, tid)))
        return out

    async def _json(self, who: str, base: str, method: str, url: str, **kwargs: Any) -> Any:
        try:
            resp = await self._client.request(method, url, timeout=self._timeout + 1, **kwargs)
        except httpx.TimeoutException:
            raise CollectError(f"{who} at {base} did not answer within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise CollectError(f"cannot reach {who} at {base}: {type(exc).__name__}: {exc}") from None
        if resp.status_code == 404:
            raise CollectError(f"{who} at {base} has no such trace ({url.rsplit('/', 1)[-1]})")
        if resp.status_code >= 400 and who != "Prometheus":
            raise CollectError(f"{who} at {base} answered {resp.status_code}")
        try:
            return resp.json()
        except ValueError:
            raise CollectError(f"{who} at {base} answered {resp.status_code} with a non-JSON body") from None


# ---- pure parsing -------------------------------------------------------------------------------
def exemplar_trace_ids(data: object, *, limit: int) -> list[str]:
    """Trace IDs of ``query_exemplars`` data, highest exemplar value first, each once."""
    scored: list[tuple[float, str]] = []
    for series in data if isinstance(data, list) else []:
        if not isinstance(series, Mapping):
            continue
        for ex in series.get("exemplars") or []:
            if not isinstance(ex, Mapping) or not isinstance(ex.get("labels"), Mapping):
                continue
            tid = next((str(ex["labels"][k]) for k in _ID_LABELS if k in ex["labels"]), "")
            if not _TRACE_ID.match(tid):
                continue
            try:
                value = float(ex.get("value", 0))
            except (TypeError, ValueError):
                value = 0.0
            scored.append((value, tid.lower()))
    out: list[str] = []
    for _, tid in sorted(scored, key=lambda p: -p[0]):
        if tid not in out:
            out.append(tid)
    return out[:limit]


def tempo_spans(body: object) -> list[Span]:
    """Spans of a Tempo trace in OTLP JSON (``batches`` of v1, ``trace.resourceSpans`` of v2)."""
    if not isinstance(body, Mapping):
        raise CollectError("tempo answered something that is not a trace")
    inner = body.get("trace") if isinstance(body.get("trace"), Mapping) else body
    assert isinstance(inner, Mapping)
    batches = inner.get("batches") or inner.get("resourceSpans") or []
    out: list[Span] = []
    for batch in batches if isinstance(batches, list) else []:
        if not isinstance(batch, Mapping):
            continue
        service = _otlp_service(batch.get("resource"))
        scopes = batch.get("scopeSpans") or batch.get("instrumentationLibrarySpans") or []
        for scope in scopes if isinstance(scopes, list) else []:
            for span in (scope.get("spans") or []) if isinstance(scope, Mapping) else []:
                if not isinstance(span, Mapping):
                    continue
                start, end = _int(span.get("startTimeUnixNano")), _int(span.get("endTimeUnixNano"))
                status = span.get("status") if isinstance(span.get("status"), Mapping) else {}
                assert isinstance(status, Mapping)
                code = status.get("code")
                out.append(
                    Span(
                        service=service,
                        name=str(span.get("name", "")),
                        start_ns=start,
                        duration_ns=max(0, end - start),
                        error=code in (2, "2", "STATUS_CODE_ERROR"),
                        root=not span.get("parentSpanId"),
                    )
                )
    return out


def jaeger_spans(trace: Mapping[str, Any]) -> list[Span]:
    """Spans of one Jaeger trace (``/api/traces`` data item); times are microseconds."""
    procs = trace.get("processes") if isinstance(trace.get("processes"), Mapping) else {}
    assert isinstance(procs, Mapping)
    out: list[Span] = []
    for span in trace.get("spans") or []:
        if not isinstance(span, Mapping):
            continue
        proc = procs.get(span.get("processID"), {})
        tags = span.get("tags") or []
        error = any(
            isinstance(t, Mapping) and t.get("key") == "error" and t.get("value") in (True, "true") for t in tags
        ) or any(
            isinstance(t, Mapping) and t.get("key") == "otel.status_code" and t.get("value") == "ERROR" for t in tags
        )
        refs = [r for r in span.get("references") or [] if isinstance(r, Mapping) and r.get("refType") == "CHILD_OF"]
        out.append(
            Span(
                service=str(proc.get("serviceName", "")) if isinstance(proc, Mapping) else "",
                name=str(span.get("operationName", "")),
                start_ns=_int(span.get("startTime")) * 1000,
                duration_ns=_int(span.get("duration")) * 1000,
                error=error,
                root=not refs,
            )
        )
    return out


def summarise(trace_id: str, spans: Sequence[Span], *, link: str | None) -> TraceSummary:
    if not spans:
        return TraceSummary(trace_id, "(no spans)", (), 0.0, 0, (), (), link)
    roots = [s for s in spans if s.root] or list(spans)
    root = min(roots, key=lambda s: s.start_ns)
    begin = min(s.start_ns for s in spans)
    finish = max(s.start_ns + s.duration_ns for s in spans)
    services = tuple(dict.fromkeys(s.service for s in spans if s.service))
    slowest = tuple(sorted(spans, key=lambda s: -s.duration_ns)[:SLOWEST])
    errors = tuple(s for s in spans if s.error)
    label = f"{root.service}: {root.name}" if root.service else root.name
    return TraceSummary(trace_id, label, services, (finish - begin) / 1e6, len(spans), errors, slowest, link)


def traceql_string(value: str) -> str:
    """``value`` as a TraceQL double-quoted string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _body(traces: Sequence[TraceSummary], found: str) -> str:
    if not traces:
        return f"No traces found through {found} in this window."
    failing = sum(1 for t in traces if t.errors)
    slowest = max(t.duration_ms for t in traces)
    head = f"{len(traces)} trace(s) through {found}; slowest {slowest:.0f} ms"
    head += f", {failing} with failing spans" if failing else ""
    lines = [head, ""]
    for t in traces:
        ident = f"[`{t.trace_id}`]({t.link})" if t.link else f"`{t.trace_id}`"
        lines.append(f"- {ident} {_md(t.root)}: {t.duration_ms:.0f} ms, {t.spans} spans")
        for s in t.errors[:SLOWEST]:
            lines.append(f"  - failing: {_md(s.service)} {_md(s.name)} ({s.duration_ns / 1e6:.0f} ms)")
        for s in t.slowest:
            lines.append(f"  - slow: {_md(s.service)} {_md(s.name)} ({s.duration_ns / 1e6:.0f} ms)")
    return "\n".join(lines)


def _md(text: str) -> str:
    """Span names come from the traced services: keep them from forming markdown or links."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text)[:200]


def _link(options: Mapping[str, Any], backend: Backend, base: str, trace_id: str) -> str | None:
    template = options.get("link")
    if isinstance(template, str) and template.startswith(("http://", "https://")):
        return template.replace("{trace_id}", trace_id)
    if backend is Backend.JAEGER:
        return f"{base.rstrip('/')}/trace/{trace_id}"
    return None


def _first_jaeger(body: object) -> Mapping[str, Any]:
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], Mapping):
        raise CollectError("jaeger answered no trace")
    first: Mapping[str, Any] = data[0]
    return first


def _otlp_service(resource: object) -> str:
    attrs = resource.get("attributes") if isinstance(resource, Mapping) else None
    for attr in _mappings(attrs):
        if attr.get("key") == "service.name":
            value = attr.get("value")
            if isinstance(value, Mapping):
                return str(value.get("stringValue", ""))
    return ""


def _mappings(items: object) -> Iterable[Mapping[str, Any]]:
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _int(raw: object) -> int:
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return 0


def _backend(raw: object) -> Backend:
    try:
        return Backend(str(raw))
    except ValueError:
        raise CollectError(f"backend must be tempo or jaeger, not {raw!r}") from None


def _range(options: Mapping[str, Any]) -> timedelta:
    return option_range(options, default=DEFAULT_RANGE, maximum=MAX_RANGE, label="2d")
