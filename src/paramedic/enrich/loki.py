"""Log evidence from Grafana Loki: a LogQL query over the incident's window.

Spec::

    - loki: {query: '{app="web", instance="{{ labels.instance }}"} |= "error"', range: 30m, lines: 200,
             url: "http://loki:3100"}

One call: ``GET /loki/api/v1/query_range`` with ``direction=backward`` and ``limit=lines`` over
the range (reaching back to the alert's start, as the metrics chart does), nanosecond ``start`` and
``end``. The streams of the answer are merged by time and shown like every log tail (redacted, the
lines that look like errors first). ``url`` defaults to ``settings.loki_url`` of ``enrich_defaults``.
Label values rendered into the query pass the runbook's ``params`` patterns like every template; the
query goes out as a URL parameter, never into a path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx

from paramedic.core.durations import format_duration
from paramedic.enrich.base import CollectError, EnrichRequest, Evidence, option_int, option_range
from paramedic.enrich.logs import log_evidence, redact_line

DEFAULT_RANGE = timedelta(minutes=30)
MAX_RANGE = timedelta(days=7)


class LokiCollector:
    """``query_range`` against one Loki (or a compatible API)."""

    kind = "loki"

    def __init__(self, client: httpx.AsyncClient, *, default_url: str | None = None, timeout: float = 10.0) -> None:
        self._client = client
        self._default_url = default_url
        self._timeout = timeout

    def title(self, request: EnrichRequest) -> str:
        o = request.options
        return str(o.get("title") or f"Loki: {o.get('query', '(no query)')} over {format_duration(_range(o))}")

    async def collect(self, request: EnrichRequest) -> Evidence:
        o = request.options
        query = o.get("query")
        if not isinstance(query, str) or not query.strip():
            raise CollectError("a loki spec needs a LogQL query")
        base = str(o.get("url") or self._default_url or "")
        if not base.startswith(("http://", "https://")):
            raise CollectError("no Loki URL: give url in the spec or settings.loki_url in enrich_defaults")
        count = option_int(o, "lines", 100, low=1, high=5000)
        rng = _range(o)
        end = request.now
        start = max(min(end - rng, request.starts_at - rng / 6), end - MAX_RANGE)
        params = {
            "query": query,
            "start": str(int(start.timestamp() * 1e9)),
            "end": str(int(end.timestamp() * 1e9)),
            "limit": str(count),
            "direction": "backward",
        }
        url = f"{base.rstrip('/')}/loki/api/v1/query_range"
        try:
            resp = await self._client.get(url, params=params, timeout=self._timeout + 1)
        except httpx.TimeoutException:
            raise CollectError(f"Loki at {base} did not answer within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise CollectError(f"cannot reach Loki at {base}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 400:
            raise CollectError(f"Loki refused the query ({resp.status_code}): {resp.text[:300]}")
        try:
            body = resp.json()
        except ValueError:
            raise CollectError(f"Loki at {base} answered {resp.status_code} with a non-JSON body") from None
        lines = [redact_line(line) for line in stream_lines(body)[-count:]]
        return log_evidence(self.title(request), f"Loki {query}", lines, kind="logs")


def stream_lines(body: object) -> list[str]:
    """The lines of a ``streams`` answer, oldest first, from every stream merged by timestamp."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping) or data.get("resultType") != "streams":
        raise CollectError("Loki answered no log streams (is the query a log query, not a metric query?)")
    entries: list[tuple[int, str]] = []
    for stream in data.get("result") or []:
        if not isinstance(stream, Mapping):
            continue
        for value in stream.get("values") or []:
            if isinstance(value, list) and len(value) >= 2:
                entries.append((_ns(value[0]), str(value[1]).rstrip("\n")))
    entries.sort(key=lambda e: e[0])
    return [line for _, line in entries]


def _ns(raw: Any) -> int:
    try:
        return int(str(raw))
    except ValueError:
        return 0


def _range(options: Mapping[str, Any]) -> timedelta:
    return option_range(options, default=DEFAULT_RANGE, maximum=MAX_RANGE, label="7d")
