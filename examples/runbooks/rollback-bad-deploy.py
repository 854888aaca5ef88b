"""Roll back a deploy that made the error rate spike.

A Python runbook, because the decision needs recent changes: roll back only when a deploy of the
service landed shortly before the errors began. Otherwise it escalates to a human with the
reason (a rollback would not help). Test cases: cases/rollback-bad-deploy*.case.yaml
"""

from __future__ import annotations

from datetime import timedelta

from paramedic import Context, runbook

SUSPECT = timedelta(minutes=30)  # a deploy this long before the errors began is the suspect


@runbook(
    match={"alertname": "HighErrorRate", "labels": {"severity": ["critical", "page"]}},
    owner="team-web",
    mode="approve",
    promote={"after": 10, "min_success_rate": 0.95},
    target="{{ labels.namespace }}/{{ labels.deployment }}",
    require={"firing_for": "2m"},
    guardrails={
        "rate_limit": {"max": 1, "per": "1h", "scope": "target"},
        "circuit_breaker": {"failures": 2, "window": "1h", "cooldown": "2h"},
    },
    params={
        "service": {"pattern": "^[a-z0-9-]{1,64}$"},
        "namespace": {"pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
        "deployment": {"pattern": "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
    },
    enrich=[{"changes": {"window": "6h"}}],
)
async def rollback_bad_deploy(ctx: Context) -> None:
    """The error rate spiked right after a deploy: roll the deployment back one revision."""
    service = ctx.labels["service"]
    deploy = await ctx.changes.latest(service=service, kind="deploy", within=SUSPECT, before=ctx.alert.starts_at)
    if deploy is None:
        minutes = SUSPECT.total_seconds() / 60
        ctx.escalate(f"no deploy of {service} in the {minutes:.0f} minutes before the errors began; not a bad release")
    ctx.log.info(f"deploy {deploy.version or '?'} of {service} at {deploy.at:%H:%M} UTC preceded the errors")
    await ctx.act("kubernetes.rollback", deployment=ctx.labels["deployment"], namespace=ctx.labels["namespace"])
    await ctx.verify.prometheus(
        f'sum(rate(http_requests_total{{service="{service}",code=~"5.."}}[2m]))'
        f' / sum(rate(http_requests_total{{service="{service}"}}[2m])) < 0.01',
        within="5m",
    )
