"""Metrics evidence: a PromQL query over Prometheus's HTTP API, as numbers and as a chart.

Spec (in a runbook's ``enrich`` list or in ``enrich_defaults``)::

    - prometheus: {query: 'rate(http_errors_total{instance="{{ labels.instance }}"}[1m])',
                   range: 30m, step: 15s, title: "Error rate", url: "http://prometheus:9090"}

``query`` is required; ``range`` defaults to 30m and ``step`` to about 250 points over the range.
``url`` defaults to ``settings.prometheus_url`` of ``enrich_defaults`` (see docs/notifications.md).
Two calls per spec: ``/api/v1/query_range`` for the chart and ``/api/v1/query`` (an instant query
at the same ``now``) for the current value. The chart covers the range and, if the alert started
earlier than that, reaches back to the alert's start, so the moment it fired is always drawn.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from paramedic.core.durations import format_duration, parse_duration
from paramedic.enrich import chart
from paramedic.enrich.base import CollectError, EnrichRequest, Evidence, EvidenceStatus, number, option_range

DEFAULT_RANGE = timedelta(minutes=30)
MAX_RANGE = timedelta(days=7)
MAX_SERIES = 20  # kept in the evidence data; the chart draws fewer
POINTS = 250


class PrometheusCollector:
    """Instant and range queries against one Prometheus (or a compatible API: Thanos, Mimir)."""

    kind = "prometheus"

    def __init__(self, client: httpx.AsyncClient, *, default_url: str | None = None, timeout: float = 10.0) -> None:
        self._client = client
        self._default_url = default_url
        self._timeout = timeout

    def title(self, request: EnrichRequest) -> str:
        o = request.options
        if o.get("title"):
            return str(o["title"])
        return f"{o.get('query', '(no query)')} over {format_duration(_range(o))}"

    async def collect(self, request: EnrichRequest) -> Evidence:
        o = request.options
        query = o.get("query")
        if not isinstance(query, str) or not query.strip():
            raise CollectError("a prometheus spec needs a query")
        base = str(o.get("url") or self._default_url or "")
        if not base.startswith(("http://", "https://")):
            raise CollectError("no Prometheus URL: give url in the spec or settings.prometheus_url in enrich_defaults")
        rng = _range(o)
        end = request.now
        start = min(end - rng, request.starts_at - rng / 6)
        start = max(start, end - MAX_RANGE)
        step = _step(o, end - start)
        matrix = await self._api(
            base,
            "query_range",
            {"query": query, "start": _ts(start), "end": _ts(end), "step": f"{step:g}s"},
        )
        vector = await self._api(base, "query", {"query": query, "time": _ts(end)})
        keyed = _series(matrix)
        series = [s for _, s in keyed]
        legend = {k: s.label for k, s in keyed}
        current = {legend.get(k) or _legend([dict(k)])[0]: v for k, v in _vector(vector)}
        title = self.title(request)
        data: dict[str, Any] = {
            "query": query,
            "url": base,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "step_s": step,
            "series": [{"label": s.label, "points": [list(p) for p in s.points]} for s in series[:MAX_SERIES]],
            "now": [{"label": label, "value": _json_float(v)} for label, v in list(current.items())[:MAX_SERIES]],
        }
        if not series and not current:
            return Evidence("metrics", title, EvidenceStatus.OK, f"`{query}` returned no data in this range.", data)
        image = None
        if series:
            subtitle = f"step {step:g}s  ·  {' '.join(query.split())}"
            image = await asyncio.to_thread(
                chart.render,
                title=title,
                subtitle=subtitle,
                series=series,
                marks=request.marks,
                start=start,
                end=end,
            )
        return Evidence("metrics", title, EvidenceStatus.OK, _body(series, current, request), data, image)

    async def _api(self, base: str, endpoint: str, params: Mapping[str, str]) -> Any:
        url = f"{base.rstrip('/')}/api/v1/{endpoint}"
        form = {**params, "timeout": f"{self._timeout:g}s"}
        try:
            resp = await self._client.post(url, data=form, timeout=self._timeout + 1)
        except httpx.TimeoutException:
            raise CollectError(f"Prometheus at {base} did not answer within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise CollectError(f"cannot reach Prometheus at {base}: {type(exc).__name__}: {exc}") from None
        try:
            body = resp.json()
        except ValueError:
            raise CollectError(f"Prometheus at {base} answered {resp.status_code} with a non-JSON body") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error", "") if isinstance(body, dict) else ""
            kind = body.get("errorType", "") if isinstance(body, dict) else ""
            raise CollectError(f"Prometheus refused the query ({resp.status_code} {kind}): {err}".strip())
        return body.get("data", {})


def _range(options: Mapping[str, Any]) -> timedelta:
    return option_range(options, default=DEFAULT_RANGE, maximum=MAX_RANGE, label="7d")


def _step(options: Mapping[str, Any], span: timedelta) -> float:
    if "step" in options:
        try:
            step = parse_duration(options["step"]).total_seconds()
        except ValueError as exc:
            raise CollectError(f"step: {exc}") from None
        if step <= 0 or span.total_seconds() / step > 11_000:  # Prometheus's own limit
            raise CollectError("step is too small for the range (more than 11000 points)")
        return step
    return float(max(1, math.ceil(span.total_seconds() / POINTS)))


def _ts(at: datetime) -> str:
    return f"{at.timestamp():.3f}"


def _float(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return float("nan")


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _labels(metric: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in metric.items()}


def _legend(all_labels: Sequence[Mapping[str, str]]) -> list[str]:
    """Each series named by the labels that tell it apart from the others."""
    if len(all_labels) <= 1:
        only = dict(all_labels[0]) if all_labels else {}
        name = only.pop("__name__", "")
        inner = ", ".join(f"{k}={v}" for k, v in sorted(only.items()))
        return [f"{name}{{{inner}}}" if inner else (name or "value")]
    keys = sorted({k for labels in all_labels for k in labels})
    varying = [k for k in keys if len({labels.get(k) for labels in all_labels}) > 1]
    return [", ".join(f"{k}={labels.get(k, '')}" for k in varying) or "value" for labels in all_labels]


Key = tuple[tuple[str, str], ...]


def _key(metric: Any) -> Key:
    return tuple(sorted(_labels(metric if isinstance(metric, dict) else {}).items()))


def _series(data: Any) -> list[tuple[Key, chart.Series]]:
    result = data.get("result", []) if isinstance(data, dict) else []
    if not isinstance(result, list):
        raise CollectError("Prometheus answered a query_range without a result list")
    if data.get("resultType") not in ("matrix", None):
        raise CollectError(f"expected a range vector, got {data.get('resultType')!r}")
    keys = [_key(r.get("metric")) for r in result]
    names = _legend([dict(k) for k in keys])
    return [
        (key, chart.Series(name, tuple((float(t), _float(v)) for t, v in r.get("values", []))))
        for key, name, r in zip(keys, names, result, strict=True)
    ]


def _vector(data: Any) -> list[tuple[Key, float]]:
    if not isinstance(data, dict):
        return []
    kind, result = data.get("resultType"), data.get("result", [])
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return [((), _float(result[1]))]
    if kind != "vector" or not isinstance(result, list):
        return []
    return [(_key(r.get("metric")), _float((r.get("value") or [0, "NaN"])[1])) for r in result]


def _at(s: chart.Series, when: datetime) -> float | None:
    t = when.timestamp()
    before = [v for ts, v in s.points if ts <= t and v == v]
    return before[-1] if before else None


def _when(ts: float) -> str:
    return f"{datetime.fromtimestamp(ts, UTC):%H:%M:%S} UTC"


def _describe(s: chart.Series, now: float | None, request: EnrichRequest) -> str:
    parts = []
    if now is not None:
        parts.append(f"now **{number(now)}**")
    finite = [(t, v) for t, v in s.points if math.isfinite(v)]
    if finite:
        t_peak, peak = max(finite, key=lambda p: p[1])
        parts.append(f"peak {number(peak)} at {_when(t_peak)}")
        at_start = _at(s, request.starts_at)
        if at_start is not None:
            parts.append(f"{number(at_start)} when the alert fired")
    return ", ".join(parts) or "no values"


def _body(series: Sequence[chart.Series], now_of: Mapping[str, float], request: EnrichRequest) -> str:
    if len(series) == 1:
        only = series[0]
        now = now_of.get(only.label, next(iter(now_of.values()), None))
        return _describe(only, now, request) + "."

    def rank(s: chart.Series) -> float:
        v = now_of.get(s.label)
        v = v if v is not None and math.isfinite(v) else s.peak
        return -v if math.isfinite(v) else math.inf

    ranked = sorted(series, key=rank)
    top = ranked[0]
    head = f"{len(series)} series; highest now `{top.label}`: {_describe(top, now_of.get(top.label), request)}."
    lines = [f"- `{s.label}`: {_describe(s, now_of.get(s.label), request)}" for s in ranked[:8]]
    if len(ranked) > 8:
        lines.append(f"- … and {len(ranked) - 8} more")
    return "\n".join([head, "", *lines])
