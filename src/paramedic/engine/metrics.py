"""Paramedic's own Prometheus metrics (exposed at ``/metrics``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    alerts: Counter
    runs: Counter
    probe_up: Gauge
    ingest_seconds: Histogram
    notifications: Counter
    rejected: Counter
    unreadable: Counter


def _make() -> Metrics:
    reg = CollectorRegistry()
    return Metrics(
        registry=reg,
        alerts=Counter(
            "paramedic_alerts_total",
            "Alert deliveries by source and outcome",
            ["source", "delivery"],
            registry=reg,
        ),
        runs=Counter("paramedic_runs_total", "Finished runbook runs", ["runbook", "status"], registry=reg),
        probe_up=Gauge("paramedic_probe_up", "Last result of each health probe", ["probe"], registry=reg),
        ingest_seconds=Histogram(
            "paramedic_ingest_seconds",
            "Time to store one webhook",
            ["source"],
            registry=reg,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
        ),
        notifications=Counter(
            "paramedic_notifications_total",
            "Notifications by sink and result",
            ["sink", "result"],
            registry=reg,
        ),
        rejected=Counter(
            "paramedic_ingest_rejected_total",
            "Deliveries refused whole (4xx: too large, not JSON, an unreadable envelope), by source and reason",
            ["source", "reason"],
            registry=reg,
        ),
        unreadable=Counter(
            "paramedic_ingest_unreadable_alerts_total",
            "Alerts of accepted deliveries that could not be read, kept as escalated incidents, by source and reason",
            ["source", "reason"],
            registry=reg,
        ),
    )


METRICS = _make()
