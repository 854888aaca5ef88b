"""Deployment artefacts: the Helm chart, the plain manifests rendered from it, the Dockerfile.

- ``deploy/kubernetes/`` is what ``deploy/render.py`` renders now (no stale copy), and every
  object validates, strictly, against the Kubernetes schemas of the oldest and newest supported
  versions (``kubernetes-validate``, offline).
- The RBAC rules grant exactly what ``actions/kubernetes.py`` calls: every action (and its read of
  the target's state) runs against the fake API server and each request must be allowed, and each
  granted permission must be used by some request.
- ``paramedic.yaml`` and the runbooks in the ConfigMap load as paramedic would load them.
- The chart's templates use only values that ``values.yaml`` defines; with a ``helm`` binary on
  PATH, ``helm template`` renders the same objects as ``deploy/render.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as k8s

from paramedic.actions.kubernetes import KubernetesExecutor
from paramedic.actions.registry import build_registry
from paramedic.engine.settings import load_config
from paramedic.runbooks import loading as rb_loader
from tests.fake_kube import FakeKube
from tests.test_kubernetes_executor import NOW, _pod, req, seed

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "paramedic"
SCHEMA_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]


def load_render() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_render", DEPLOY / "render.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_render()


def objects() -> list[dict[str, Any]]:
    out = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        out += [o for o in yaml.safe_load_all(path.read_text()) if o]
    return out


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in objects() if o["kind"] == kind]


def test_plain_manifests_are_rendered_from_the_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render.main(["--check"]) == 0, capsys.readouterr().err
    assert render.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (DEPLOY / "kubernetes").iterdir())
    kinds = sorted(o["kind"] for o in objects())
    assert kinds == sorted(
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ServiceMonitor",
        ]
    )  # fmt: skip  (a Role each in the release's and the executor's namespace)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    checked = 0
    for obj in objects():
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema in kubernetes-validate; checked below
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked == len(objects()) - 1


def test_the_deployment_runs_replicas_as_non_root_with_probes_and_secret_refs() -> None:
    [dep] = by_kind("Deployment")
    spec = dep["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    [c] = pod["containers"]
    assert c["args"][0] == "serve"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in c["env"]}
    assert env["PARAMEDIC_DATABASE"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
    assert all("value" not in e for name, e in env.items() if name != "MPLCONFIGDIR")  # secrets by reference only
    [pdb] = by_kind("PodDisruptionBudget")
    [svc] = by_kind("Service")
    [sm] = by_kind("ServiceMonitor")
    selector = spec["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector == svc["spec"]["selector"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    [endpoint] = sm["spec"]["endpoints"]
    assert endpoint["port"] == svc["spec"]["ports"][0]["name"] == c["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"]["key"] == "metrics-token"
    [sa] = by_kind("ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]


def test_the_configmap_holds_a_config_and_runbooks_paramedic_loads(tmp_path: Path) -> None:
    [cm] = by_kind("ConfigMap")
    rb_dir = tmp_path / "runbooks"
    rb_dir.mkdir()
    for key, body in cm["data"].items():
        if key.startswith("runbook-"):
            (rb_dir / key.removeprefix("runbook-")).write_text(body)
    config_file = tmp_path / "paramedic.yaml"
    config_file.write_text(cm["data"]["paramedic.yaml"])
    env = {"PARAMEDIC_DATABASE": "postgresql+psycopg://paramedic:secret@postgres:5432/paramedic"}
    cfg = load_config(config_file, env=env, overrides={"runbooks": [str(rb_dir)]})
    assert cfg.database == env["PARAMEDIC_DATABASE"]
    assert cfg.auth is not None  # required: a pod listens beyond loopback
    assert cfg.executors["kubernetes"]["in_cluster"] is True
    loaded = rb_loader.load(cfg.runbooks, build_registry(cfg.executors), lint=False)
    assert loaded.errors == []
    assert len(loaded.runbooks) >= 1


# ---- RBAC: exactly what the Kubernetes executor calls -----------------------------------------------------

_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def permission(method: str, path: str) -> tuple[str, str, str, str | None]:
    """(apiGroup, resource[/subresource], verb, namespace or None for cluster scope) of one request."""
    m = _PATH.match(path)
    assert m, path
    resource = m["res"] + (f"/{m['sub']}" if m["sub"] else "")
    verb = {"GET": "get" if m["name"] else "list", "PATCH": "patch", "POST": "create"}[method]
    return m["group"] or "", resource, verb, m["ns"]


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        seed(fake)
        fake.add(_pod("batch-1", "node-1", ns="other"))  # a drain evicts pods of every namespace
        fake.add(_pod("web-crash-1", "node-2", containers=[{"name": "app"}]))  # kubernetes evidence reads it
        fake.logs[("shop", "web-crash-1", "app", True)] = "ERROR boom\n"
        yield fake
    assert fake.violations == []


def test_rbac_grants_exactly_what_the_kubernetes_executor_calls(kube: FakeKube) -> None:
    ex = KubernetesExecutor(
        client_factory=lambda: k8s.ApiClient(k8s.Configuration(host=kube.url)), namespace="shop", timeout=5,
        clock=lambda: NOW,
    )  # fmt: skip
    calls = [
        req("kubernetes.restart", deployment="web"),
        req("kubernetes.restart", statefulset="db"),
        req("kubernetes.restart", daemonset="agent"),
        req("kubernetes.scale", deployment="web", desired=4),
        req("kubernetes.scale", statefulset="db", desired=3),
        req("kubernetes.scale", deployment="api", desired=5),  # moves its HPA's bounds
        req("kubernetes.rollback", deployment="web"),
        req("kubernetes.evict", pod="web-ccc-3"),
        req("kubernetes.cordon", node="node-2"),
        req("kubernetes.drain", node="node-1"),
    ]

    async def exercise() -> None:
        try:
            assert await ex.known_targets({"deployment": "web", "namespace": "shop"})  # before the drain
            # the reads of the kubernetes evidence collector: kubectl describe pod, kubectl logs -p
            assert (await ex.read_pod(None, "web-crash-1"))["metadata"]["name"] == "web-crash-1"
            assert await ex.pod_log(None, "web-crash-1", container="app", previous=True, tail=10) == "ERROR boom\n"
            assert await ex.pod_events(None, "web-crash-1") == []
            for r in calls:
                await ex.describe(r)
                await ex.read_state(r)
                await ex.execute(r)
        finally:
            await ex.aclose()

    asyncio.run(exercise())

    values = render.load_values({"rbac": {"create": True, "namespaces": ["shop"], "nodeActions": True}})
    objs = [o for o in render.render(namespace="paramedic", values=values)["rbac.yaml"]]
    roles = {o["metadata"]["namespace"]: granted(o["rules"]) for o in objs if o["kind"] == "Role"}
    [cluster] = [granted(o["rules"]) for o in objs if o["kind"] == "ClusterRole"]
    used_in_role: set[tuple[str, str, str]] = set()
    used_in_cluster: set[tuple[str, str, str]] = set()
    for method, path in kube.calls():
        group, resource, verb, ns = permission(method, path)
        key = (group, resource, verb)
        if ns is not None and key in roles.get(ns, set()):
            used_in_role.add(key)
        else:
            assert key in cluster, f"{method} {path} needs {key}, which no rule grants in {ns or 'the cluster'}"
            used_in_cluster.add(key)
    assert used_in_role == roles["shop"], f"granted but never used: {roles['shop'] - used_in_role}"
    assert used_in_cluster == cluster, f"granted but never used: {cluster - used_in_cluster}"
    for o in objs:  # bound to paramedic's service account only
        if o["kind"].endswith("Binding"):
            assert [s["name"] for s in o["subjects"]] == ["paramedic"]


# ---- the chart itself ----------------------------------------------------------------------------------------


def value_paths(node: Any, prefix: str = "") -> set[str]:
    out = {prefix} if prefix else set()
    if isinstance(node, dict):
        for k, v in node.items():
            out |= value_paths(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def test_chart_templates_use_only_defined_values() -> None:
    defined = value_paths(yaml.safe_load((CHART / "values.yaml").read_text()))
    used = set()
    for template in (CHART / "templates").iterdir():
        used |= set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template.read_text()))
    assert used, "no template reads a value"
    assert used <= defined, used - defined
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "paramedic"
    for name in ("namespaced", "cluster"):
        rules = yaml.safe_load((CHART / "files" / f"rbac-{name}.yaml").read_text())
        assert all(set(r) == {"apiGroups", "resources", "verbs"} for r in rules)


def test_helm_template_renders_what_render_py_renders(tmp_path: Path) -> None:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("no helm binary on PATH (not packaged for Debian; deploy/render.py renders the chart instead)")
    done = subprocess.run(
        [helm, "template", "paramedic", str(CHART), "--namespace", "paramedic"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    helm_objs = {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(done.stdout) if o}
    ours = {(o["kind"], o["metadata"]["name"]) for o in objects()}
    assert helm_objs == ours


def test_dockerfile_builds_a_non_root_image_that_serves() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "the image must not run as root"
    assert users[-1] not in ("root", "0", "0:0")
    assert re.search(r'^ENTRYPOINT \["paramedic"\]', text, re.M)
    assert re.search(r'^CMD \["serve"', text, re.M)
    [dep] = by_kind("Deployment")
    uid = dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert users[-1].split(":")[0] == str(uid)  # the image's user is the pod's user
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git"} <= {line.strip("/") for line in ignored}
