"""``blast_radius.max_unhealthy``: when more of a scope's targets are unhealthy at once than that
(a count or a share, as Cluster API's MachineHealthCheck ``maxUnhealthy``), nothing is remediated
and the escalation says the failure looks systemic. At 753e177 only ``max_fraction`` and
``min_healthy`` bounded a shared-dependency outage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from paramedic.core.config import DeclaredTargets
from paramedic.core.guardrails import Check, TargetFacts
from paramedic.core.runbooks import BlastRadius, Guardrails
from tests.conftest import Server
from tests.test_engine_runs import exists, incident, runbook, settled, touch
from tests.test_guardrails import NOW, make, verdict

FOUR = frozenset({"h1", "h2", "h3", "h4"})


def rails(max_unhealthy: int | str) -> Guardrails:
    return Guardrails(
        blast_radius=BlastRadius(scope=["service"], max_concurrent=4, max_fraction=1.0, max_unhealthy=max_unhealthy)
    )


@pytest.mark.parametrize(
    ("limit", "unhealthy", "allowed"),
    [
        pytest.param(1, {"h1"}, True, id="one-of-one"),
        pytest.param(1, {"h1", "h2"}, False, id="two-of-one"),
        pytest.param("50%", {"h1", "h2"}, True, id="half-of-four-is-two"),
        pytest.param("50%", {"h1", "h2", "h3"}, False, id="three-above-half"),
        pytest.param("40%", {"h1", "h2"}, False, id="40%-of-four-rounds-down-to-one"),
        pytest.param(0, {"h1"}, False, id="zero-tolerates-none"),
    ],
)
def test_max_unhealthy(limit: int | str, unhealthy: set[str], allowed: bool) -> None:
    inp = make(target="h1", guardrails=rails(limit), targets=TargetFacts(known=FOUR, healthy=FOUR - unhealthy))
    v = verdict(inp, Check.BLAST_RADIUS)
    assert v.allowed is allowed
    if not allowed:
        assert "the failure looks systemic" in v.reason


def test_the_alerting_target_counts_as_unhealthy_even_if_its_probe_still_says_healthy() -> None:
    inp = make(target="h1", guardrails=rails(1), targets=TargetFacts(known=FOUR, healthy=FOUR - {"h2"}))
    assert not verdict(inp, Check.BLAST_RADIUS).allowed


@pytest.mark.parametrize("bad", [-1, "150%", "a lot", "0.4", True])
def test_max_unhealthy_takes_a_count_or_a_percentage(bad: object) -> None:
    with pytest.raises(ValidationError, match="max_unhealthy is a count"):
        BlastRadius(max_unhealthy=bad)  # type: ignore[arg-type]


@given(
    known=st.sets(st.sampled_from(sorted(f"h{n}" for n in range(8))), min_size=1),
    sick=st.sets(st.sampled_from(sorted(f"h{n}" for n in range(8)))),
    limit=st.one_of(st.integers(0, 8), st.integers(0, 100).map(lambda p: f"{p}%")),
)
def test_an_allowed_action_never_has_more_unhealthy_than_the_limit(
    known: set[str], sick: set[str], limit: int | str
) -> None:
    target = sorted(known)[0]
    br = BlastRadius(scope=["service"], max_concurrent=8, max_fraction=1.0, max_unhealthy=limit)
    inp = make(
        now=NOW,
        target=target,
        guardrails=Guardrails(blast_radius=br),
        targets=TargetFacts(known=frozenset(known), healthy=frozenset(known - sick)),
    )
    unhealthy = (known & sick) | {target}
    limit_n = br.unhealthy_limit(len(known))
    assert limit_n is not None
    if verdict(inp, Check.BLAST_RADIUS).allowed:
        assert len(unhealthy) <= limit_n


def test_a_shared_outage_is_escalated_as_systemic_not_restarted(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    marker = tmp_path / "fixed"
    guard = (
        "    guardrails:\n"
        "      blast_radius: {scope: [service], max_concurrent: 4, max_fraction: 1.0, max_unhealthy: 1}"
    )
    book = runbook(tmp_path, steps=touch(marker), verify=exists(marker), extra=guard).replace(
        "match: {alertname: Broken}", "match: {alertname: Broken, labels: {service: web}}"
    )
    srv = make_server(book, targets=[DeclaredTargets(scope={"service": "web"}, members=sorted(FOUR))])
    with srv.client() as c:

        def broken(instance: str) -> int:
            r = c.post("/api/v1/alerts", json={"name": "Broken", "labels": {"instance": instance, "service": "web"}})
            return int(r.json()["alerts"][0]["incident_id"])

        first = broken("h1")
        srv.wait(settled(first, "mitigated", "escalated"))
        second = broken("h2")  # h1 still fires: two of four unhealthy at once
        srv.wait(settled(second, "escalated"))
        data = incident(c, second)
    assert incident_status_of(srv, first) == "mitigated"
    assert data["runs"][0]["status"] == "refused"
    assert "2 of 4 targets of service=web are unhealthy at once" in data["runs"][0]["reason"]
    assert "the failure looks systemic" in data["runs"][0]["reason"]


def incident_status_of(srv: Server, i: int) -> str:
    with srv.client() as c:
        return str(incident(c, i)["status"])
