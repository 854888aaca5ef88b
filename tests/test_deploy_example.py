"""The Helm chart works as shipped: its example runbook fires on the real kubernetes-mixin
``KubePodCrashLooping`` alert, and its RBAC covers the namespaces the executor acts in.

The payload (``tests/fixtures/kubernetes-mixin-KubePodCrashLooping.json``) is an Alertmanager 0.25
webhook carrying that rule as the mixin defines it (``alerts/apps_alerts.libsonnet``: the expr on
``kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}``, severity warning, its
annotations) with the labels kube-state-metrics gives the series under kube-prometheus-stack:
namespace, pod, container, reason, uid, job, instance, endpoint, service. No ``deployment`` label.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from paramedic.cli import main
from tests.test_deploy import CHART, by_kind, load_render

PAYLOAD = Path(__file__).parent / "fixtures" / "kubernetes-mixin-KubePodCrashLooping.json"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for name, body in values["runbooks"].items():
        (folder / name).write_text(body)
    return folder


def test_the_example_runbook_is_valid_without_warnings(example: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "--strict", str(example)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output


def test_the_example_runbook_restarts_the_deployment_of_the_crash_looping_pod(example: Path) -> None:
    result = CliRunner().invoke(main, ["test", str(example), "--alert", str(PAYLOAD), "--json"])
    assert result.exit_code == 0, result.output
    deployment_pod, statefulset_pod = json.loads(result.output)["alerts"]
    (match,) = deployment_pod["matches"]
    assert match["runbook"] == "restart-crashlooping-deployment"
    assert match["target"] == "payments/payments-api"
    assert [(s["action"], s["args"]) for s in match["steps"]] == [
        ("kubernetes.restart", {"deployment": "payments-api", "namespace": "payments"})
    ]
    assert match["outcome"] == "approval"
    assert statefulset_pod["labels"]["pod"] == "ledger-0"
    assert statefulset_pod["matches"] == []  # not a Deployment's pod: a human decides


def test_rbac_covers_the_executors_default_namespace() -> None:
    """With ``rbac.namespaces`` empty, a Role is bound in the release's namespace and in
    ``executors.kubernetes.namespace`` (the chart's default config acts in ``default``)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    executor_ns = values["config"]["executors"]["kubernetes"]["namespace"]
    assert values["rbac"]["namespaces"] == []
    roles = {r["metadata"]["namespace"] for r in by_kind("Role")}
    bindings = {b["metadata"]["namespace"] for b in by_kind("RoleBinding")}
    assert roles == bindings == {"paramedic", executor_ns}


def test_listed_namespaces_replace_the_default() -> None:
    render = load_render()
    values = render.load_values({"rbac": {"create": True, "namespaces": ["payments", "ledger"], "nodeActions": False}})
    objs = [o for objs in render.render(values=values).values() for o in objs]
    assert {o["metadata"]["namespace"] for o in objs if o["kind"] == "Role"} == {"payments", "ledger"}
