"""Templating: sandboxed, strict, and every label that reaches an action is validated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paramedic.core.alerts import Alert, AlertStatus
from paramedic.core.errors import TemplateError
from paramedic.core.plan import build_plan
from paramedic.core.runbooks import Param, Runbook
from paramedic.core.templating import Renderer

T0 = datetime(2026, 1, 1, tzinfo=UTC)

HOSTILE = [
    pytest.param("; rm -rf /", id="semicolon-rm"),
    pytest.param("$(id)", id="command-substitution"),
    pytest.param("`id`", id="backticks"),
    pytest.param("web\nrm -rf /", id="newline"),
    pytest.param("a" * 1_000_000, id="one-megabyte"),
    pytest.param("wеb", id="cyrillic-homoglyph"),
    pytest.param("web\u202e", id="bidi-override"),
    pytest.param("web\x00", id="nul"),
    pytest.param("../../etc/passwd x", id="path-with-space"),
    pytest.param("{{ 7*7 }}", id="template-injection"),
]


def alert(**labels: str) -> Alert:
    return Alert(
        source="generic",
        fingerprint="f",
        name="WorkerHung",
        status=AlertStatus.FIRING,
        starts_at=T0,
        labels={"alertname": "WorkerHung", **labels},
    )


def runbook(params: dict[str, object] | None = None) -> Runbook:
    return Runbook.model_validate(
        {
            "name": "restart",
            "owner": "team",
            "match": {"alertname": "WorkerHung"},
            "target": "{{ labels.instance }}",
            "steps": [{"action": "shell.run", "with": {"argv": ["supervisorctl", "restart", "{{ labels.program }}"]}}],
            "params": params if params is not None else {"program": {"pattern": "^[a-z0-9_-]{1,64}$"}},
        }
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_label_fails_its_params_pattern(value: str) -> None:
    with pytest.raises(TemplateError) as info:
        build_plan(runbook(), alert(instance="10.0.0.1:80", program=value))
    assert info.value.param == "program"
    assert "program" in str(info.value)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_label_fails_the_default_pattern_without_params(value: str) -> None:
    with pytest.raises(TemplateError):
        build_plan(runbook(params={}), alert(instance="10.0.0.1:80", program=value))


def test_valid_labels_render_as_single_arguments() -> None:
    plan = build_plan(runbook(), alert(instance="10.0.0.1:80", program="payments-worker"))
    assert plan.target == "10.0.0.1:80"
    assert plan.steps[0].args == {"argv": ["supervisorctl", "restart", "payments-worker"]}


def test_missing_label_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="no label 'program'"):
        build_plan(runbook(), alert(instance="10.0.0.1:80"))


def test_sandbox_blocks_attribute_escape() -> None:
    r = Renderer(alert(instance="x"), {})
    with pytest.raises(TemplateError):
        r.render_str("{{ alert.__class__.__mro__ }}")


def test_length_limit_of_param() -> None:
    r = Renderer(alert(program="abcdef"), {"program": Param(pattern="^[a-z]+$", max_length=3)})
    with pytest.raises(TemplateError, match="over the limit"):
        r.render_str("{{ labels.program }}")
