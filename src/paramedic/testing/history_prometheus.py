"""Alert history from Prometheus: the ``ALERTS`` series, read with ``/api/v1/query_range``.

Prometheus writes ``ALERTS{alertname, alertstate="firing", <alert labels>} 1`` at every rule
evaluation while an alert fires. Each maximal run of consecutive steps where a firing series has
the value 1 becomes one ``Episode``: it starts at the first such step and ends at the first step
without it (a NaN or a missing sample, which is how a resolved alert's stale marker reads), or is
still firing at the end of the period. Episodes are therefore exact to one ``step``; pick the
rule evaluation interval for exact starts and ends.

The period is read in chunks of at most ``MAX_POINTS`` steps (Prometheus refuses more than
11,000 points per series in one query). ``seen_at`` is ``starts_at`` plus ``delay``: how long
Alertmanager takes to deliver a new alert (``group_wait``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from paramedic.testing.history import Episode, HistoryError, Period

MAX_POINTS = 10_000
QUERY = 'ALERTS{alertstate="firing"}'
_DROP = ("__name__", "alertstate")


def _get(client: httpx.Client, url: str, params: Mapping[str, str]) -> Any:
    try:
        r = client.get(f"{url.rstrip('/')}/api/v1/query_range", params=params)
    except httpx.HTTPError as exc:
        raise HistoryError(f"cannot reach Prometheus at {url}: {exc}; check --from prometheus:URL") from exc
    try:
        body = r.json()
    except ValueError:
        raise HistoryError(f"Prometheus at {url} answered {r.status_code} with a body that is not JSON") from None
    if r.status_code != 200 or body.get("status") != "success":
        raise HistoryError(f"Prometheus at {url} refused the query {params['query']!r}: {body.get('error', r.text)}")
    data = body.get("data") or {}
    if data.get("resultType") != "matrix":
        raise HistoryError(f"Prometheus at {url} returned {data.get('resultType')!r}, not a range (matrix)")
    return data.get("result") or []


def _firing(value: object) -> bool:
    try:
        number = float(str(value))
    except ValueError:
        return False
    return not math.isnan(number) and number > 0


def _chunks(period: Period, step: timedelta) -> list[tuple[float, float]]:
    span = step * (MAX_POINTS - 1)
    out, at = [], period.start
    while at < period.end:
        end = min(at + span, period.end)
        out.append((at.timestamp(), end.timestamp()))
        at = end + step
    return out


def query_series(
    url: str, query: str, period: Period, *, step: timedelta, client: httpx.Client | None = None
) -> dict[tuple[tuple[str, str], ...], dict[float, str]]:
    """Every series of ``query`` over the period: labels → {timestamp: value}."""
    if step <= timedelta(0):
        raise HistoryError("--step must be longer than zero")
    own = client is None
    http = client or httpx.Client(timeout=60)
    series: dict[tuple[tuple[str, str], ...], dict[float, str]] = {}
    try:
        for start, end in _chunks(period, step):
            params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step.total_seconds():g}"}
            for item in _get(http, url, params):
                labels = tuple(sorted((str(k), str(v)) for k, v in (item.get("metric") or {}).items()))
                points = series.setdefault(labels, {})
                for ts, value in item.get("values") or []:
                    points[float(ts)] = str(value)
    finally:
        if own:
            http.close()
    return series


def read(
    url: str,
    period: Period,
    *,
    step: timedelta = timedelta(seconds=15),
    delay: timedelta = timedelta(0),
    source: str = "alertmanager",
    client: httpx.Client | None = None,
) -> list[Episode]:
    """The firing episodes of every alert over the period, from the ``ALERTS`` series."""
    episodes: list[Episode] = []
    last = period.start.timestamp() + math.floor((period.end - period.start) / step) * step.total_seconds()
    for key, points in query_series(url, QUERY, period, step=step, client=client).items():
        labels = {k: v for k, v in key if k not in _DROP}
        name = labels.get("alertname", "")
        if not name:
            continue
        episodes.extend(
            _intervals(name, labels, points, step=step.total_seconds(), last=last, delay=delay, source=source)
        )
    return sorted(episodes, key=lambda e: (e.seen_at, e.key))


def _intervals(
    name: str,
    labels: dict[str, str],
    points: Mapping[float, str],
    *,
    step: float,
    last: float,
    delay: timedelta,
    source: str,
) -> list[Episode]:
    """Maximal runs of firing steps. A run ends at the first step that is NaN, zero or missing."""
    out: list[Episode] = []
    started: float | None = None
    prev = 0.0
    for ts in sorted(points):
        firing = _firing(points[ts])
        if started is not None and (not firing or ts - prev > step * 1.5):
            end = ts if not firing and ts - prev <= step * 1.5 else prev + step
            out.append(_episode(name, labels, started, end, delay=delay, source=source))
            started = None
        if firing:
            if started is None:
                started = ts
            prev = ts
    if started is not None:  # still firing at the end of the period, or its samples stopped
        out.append(
            _episode(
                name, labels, started, None if prev >= last - step / 2 else prev + step, delay=delay, source=source
            )
        )
    return out


def _episode(
    name: str, labels: dict[str, str], start: float, end: float | None, *, delay: timedelta, source: str
) -> Episode:
    starts_at = datetime.fromtimestamp(start, UTC)
    ep = Episode(
        key="",
        source=source,
        name=name,
        labels=labels,
        starts_at=starts_at,
        seen_at=starts_at + delay,
        ends_at=None if end is None else datetime.fromtimestamp(end, UTC),
    )
    object.__setattr__(ep, "key", f"{ep.fingerprint}@{int(start)}")
    return ep


def present(url: str, query: str, period: Period, *, step: timedelta, client: httpx.Client | None = None) -> bool:
    """Whether ``query`` returned any sample at all over the period (for data-quality checks)."""
    return any(points for points in query_series(url, query, period, step=step, client=client).values())
