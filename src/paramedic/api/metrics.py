"""``/metrics`` beyond the process counters of ``engine.metrics``: figures read from the database
at each scrape (``store.health``), as Prometheus metric families.

- ``paramedic_incident_mttr_seconds`` and ``paramedic_incident_time_to_mitigate_seconds``:
  histograms per runbook, service and ``handled_by`` (automated | human).
- ``paramedic_paused``, ``paramedic_approvals_pending``, ``paramedic_breakers_open{runbook}``,
  ``paramedic_outbox_rows{sink,status}`` (pending backlog and dead rows),
  ``paramedic_guardrail_refusals_total{reason}``, ``paramedic_incidents_open``.
Rejected webhook deliveries are a process counter (``paramedic_ingest_rejected_total`` in
``engine.metrics``), counted where they are answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from paramedic.store import health

# seconds: from an automated restart (tens of seconds) to a human at night (hours)
BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)
LABELS = ["runbook", "service", "handled_by"]


def histogram(name: str, doc: str, rows: Iterable[tuple[tuple[str, str, str], float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=LABELS)
    groups: dict[tuple[str, str, str], list[float]] = {}
    for key, value in rows:
        groups.setdefault(key, []).append(value)
    for key, values in sorted(groups.items()):
        counts = [sum(1 for v in values if v <= edge) for edge in BUCKETS]
        buckets = [(f"{edge:g}", float(c)) for edge, c in zip(BUCKETS, counts, strict=True)]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric(list(key), buckets, sum(values))
    return family


def families(h: health.Health) -> Sequence[Any]:
    def key(r: health.Resolved) -> tuple[str, str, str]:
        return (r.runbook, r.service, r.handled_by)

    out: list[Any] = [
        histogram(
            "paramedic_incident_mttr_seconds",
            "Time from detection to resolution of resolved incidents (a human resolution counts)",
            ((key(r), r.mttr_s) for r in h.resolved),
        ),
        histogram(
            "paramedic_incident_time_to_mitigate_seconds",
            "Time from detection to a passed verification, for mitigated incidents",
            ((key(r), r.ttm_s) for r in h.resolved if r.ttm_s is not None),
        ),
    ]
    out.append(GaugeMetricFamily("paramedic_paused", "1 while all automation is paused", value=1 if h.paused else 0))
    out.append(
        GaugeMetricFamily("paramedic_approvals_pending", "Runs waiting for a human approval", value=h.approvals_pending)
    )
    out.append(GaugeMetricFamily("paramedic_incidents_open", "Incidents not resolved yet", value=h.open_incidents))
    out.append(
        GaugeMetricFamily(
            "paramedic_ingest_inbox_alerts",
            "Alerts of large deliveries answered 202 but not recorded as incidents yet",
            value=h.inbox_backlog,
        )
    )
    breakers = GaugeMetricFamily("paramedic_breakers_open", "Open or half-open circuit breakers", labels=["runbook"])
    for runbook, n in sorted(h.breakers_open.items()):
        breakers.add_metric([runbook], n)
    out.append(breakers)
    rows = GaugeMetricFamily(
        "paramedic_outbox_rows", "Notifications not delivered: pending or dead", labels=["sink", "status"]
    )
    for (sink, status), n in sorted(h.outbox.items()):
        rows.add_metric([sink, status], n)
    out.append(rows)
    refusals = CounterMetricFamily(
        "paramedic_guardrail_refusals", "Guardrail verdicts that refused an action, by reason", labels=["reason"]
    )
    for reason, n in sorted(h.refusals.items()):
        refusals.add_metric([reason], n)
    out.append(refusals)
    return out


class StoreCollector(Collector):
    """Collects ``families`` from one database read per scrape."""

    def __init__(self, read: Any) -> None:
        self._read = read  # a callable returning health.Health

    def collect(self) -> Iterator[Any]:
        yield from families(self._read())


def exposition(read: Any) -> bytes:
    """The database figures in the Prometheus text format (call from a thread: it reads the DB)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(read))
    return generate_latest(registry)
