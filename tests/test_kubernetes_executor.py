"""Kubernetes executor: the real ``kubernetes`` client against ``tests/fake_kube.py``.

No API server can run here, so every test works at paramedic's boundary against a fake: a real HTTP
server that checks each request's path, verb, Content-Type and body as the Kubernetes API reference
documents them. Tests assert the exact requests kubectl would have sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from paramedic.actions.base import ActionRequest
from paramedic.actions.kubernetes import HASH_LABEL, RESTARTED_AT, REVISION, KubernetesExecutor, selector_string
from paramedic.actions.registry import ExecutorRegistry
from paramedic.core.errors import PermanentError, RetryableError
from tests.fake_kube import JSON_PATCH, MERGE_PATCH, STRATEGIC, FakeKube

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
APPS = "/apis/apps/v1/namespaces/shop"


def _template(image: str, rs_hash: str | None = None) -> dict[str, Any]:
    labels = {"app": "web"} | ({HASH_LABEL: rs_hash} if rs_hash else {})
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}}


def _rs(name: str, revision: int, image: str, owner_uid: str = "uid-web", **annotations: str) -> dict[str, Any]:
    return {
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app": "web", HASH_LABEL: name[-3:]},
            "annotations": {REVISION: str(revision), **annotations},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": owner_uid, "controller": True}
            ],
        },
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": _template(image, name[-3:])},
    }


def _pod(name: str, node: str, owner: str | None = "ReplicaSet", ns: str = "shop", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner, "name": "x", "uid": "u", "controller": True}
        ]
    meta.update(extra.pop("metadata", {}))
    return {"kind": "Pod", "metadata": meta, "spec": {"nodeName": node, **extra}, "status": {"phase": "Running"}}


def seed(kube: FakeKube) -> None:
    status = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
    kube.add({
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {
            REVISION: "3", "kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "payments"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": _template("shop/web:3")},
        "status": status,
    })  # fmt: skip
    kube.add(_rs("web-aaa", 1, "shop/web:1"))
    kube.add(
        _rs("web-bbb", 2, "shop/web:2", **{"team": "payments-old", "deployment.kubernetes.io/desired-replicas": "3"})
    )
    kube.add(_rs("web-ccc", 3, "shop/web:3"))
    kube.add(_rs("web-zzz", 9, "shop/web:evil", owner_uid="uid-someone-else"))  # same labels, other owner
    kube.add({
        "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "api"}}, "template": _template("shop/api:1")},
    })  # fmt: skip
    kube.add({
        "kind": "HorizontalPodAutoscaler", "metadata": {"name": "api-hpa", "namespace": "shop"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                 "minReplicas": 2, "maxReplicas": 6},
    })  # fmt: skip
    kube.add({
        "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"replicas": 2, "updateStrategy": {"type": "RollingUpdate"}, "template": _template("pg:16")},
    })  # fmt: skip
    for name, strategy in (("agent", "RollingUpdate"), ("legacy", "OnDelete")):
        kube.add({"kind": "DaemonSet", "metadata": {"name": name, "namespace": "shop"},
                  "spec": {"updateStrategy": {"type": strategy}, "template": _template("agent:1")}})  # fmt: skip
    kube.add(_pod("web-ccc-1", "node-1"))
    kube.add(_pod("web-ccc-2", "node-1"))
    kube.add(_pod("web-ccc-3", "node-2"))
    kube.add(_pod("agent-x1", "node-1", owner="DaemonSet", metadata={"labels": {"app": "agent"}}))
    kube.add(_pod("kube-proxy-node-1", "node-1", owner=None, ns="kube-system",
                  metadata={"annotations": {"kubernetes.io/config.mirror": "abc"}}))  # fmt: skip
    for node in ("node-1", "node-2"):
        kube.add({"kind": "Node", "metadata": {"name": node}, "spec": {},
                  "status": {"conditions": [{"type": "Ready", "status": "True"}]}})  # fmt: skip


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        seed(fake)
        yield fake
    assert fake.violations == [], "requests the real API server would reject"


@pytest.fixture
def ex(kube: FakeKube) -> Iterator[KubernetesExecutor]:
    executor = KubernetesExecutor(
        client_factory=lambda: k8s.ApiClient(k8s.Configuration(host=kube.url)),
        namespace="shop",
        timeout=5,
        clock=lambda: NOW,
    )
    yield executor
    asyncio.run(executor.aclose())


def req(action: str, **args: object) -> ActionRequest:
    return ExecutorRegistry([KubernetesExecutor(client_factory=None)]).request(action, args, timeout=20)


def run(ex: KubernetesExecutor, action: str, **args: object) -> Any:
    return asyncio.run(ex.execute(req(action, **args)))


# -- restart ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "name", "resource"),
    [
        pytest.param("deployment", "web", "deployments", id="deployment"),
        pytest.param("statefulset", "db", "statefulsets", id="statefulset"),
        pytest.param("daemonset", "agent", "daemonsets", id="daemonset"),
    ],
)
def test_restart_patches_restarted_at_like_kubectl(
    kube: FakeKube, ex: KubernetesExecutor, param: str, name: str, resource: str
) -> None:
    """At paramedic's boundary against a fake API server (none can run here): `kubectl rollout restart`."""
    result = run(ex, "kubernetes.restart", **{param: name})
    assert result.summary == f"restarted {param} shop/{name} ({RESTARTED_AT}=2024-05-01T12:00:00Z)"
    path = f"{APPS}/{resource}/{name}"
    assert kube.calls() == [("GET", path), ("PATCH", path)]
    (patch,) = kube.writes()
    assert patch.content_type == STRATEGIC
    assert patch.body == {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2024-05-01T12:00:00Z"}}}}}
    stored = kube.get(resource, "shop", name)
    assert stored is not None
    assert stored["spec"]["template"]["metadata"]["annotations"] == {RESTARTED_AT: "2024-05-01T12:00:00Z"}
    assert stored["spec"]["template"]["metadata"]["labels"] == {"app": "web"}  # merged, not replaced


def test_restart_refusals(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): kubectl's refusals."""
    kube.objects[("deployments", "shop", "web")]["spec"]["paused"] = True
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.restart", deployment="web")
    assert err.value.reason == "paused"
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.restart", daemonset="legacy")
    assert err.value.reason == "on_delete"
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.restart", deployment="gone")
    assert err.value.reason == "not_found"
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.restart", deployment="web", statefulset="db")
    assert err.value.reason == "bad_arguments"
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.restart", deployment="../../nodes/x")
    assert err.value.reason == "bad_arguments"
    assert kube.writes() == []


# -- scale --------------------------------------------------------------------------------------------------------


def test_scale_patches_the_scale_subresource(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): `kubectl scale`."""
    result = run(ex, "kubernetes.scale", deployment="web", step=2, max=10)
    assert result.summary == "scaled deployment shop/web: 3 → 5"
    assert kube.calls() == [
        ("GET", f"{APPS}/deployments/web/scale"),
        ("GET", "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers"),
        ("PATCH", f"{APPS}/deployments/web/scale"),
    ]
    (patch,) = kube.writes()
    assert (patch.content_type, patch.body) == (MERGE_PATCH, {"spec": {"replicas": 5}})
    assert kube.objects[("deployments", "shop", "web")]["spec"]["replicas"] == 5

    clamped = run(ex, "kubernetes.scale", deployment="web", desired=50, max=8)
    assert clamped.summary == "scaled deployment shop/web: asked for 50, held at max 8"
    assert kube.writes()[-1].body == {"spec": {"replicas": 8}}

    same = run(ex, "kubernetes.scale", deployment="web", desired=8, max=8)
    assert not same.changed
    assert len(kube.writes()) == 2

    run(ex, "kubernetes.scale", statefulset="db", desired=3, max=5)
    assert kube.writes()[-1].path == f"{APPS}/statefulsets/db/scale"
    assert kube.objects[("statefulsets", "shop", "db")]["spec"]["replicas"] == 3


def test_scale_with_an_hpa_moves_its_bounds(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): HPA-managed scaling."""
    hpa_path = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/api-hpa"
    text = asyncio.run(ex.describe(req("kubernetes.scale", deployment="api", desired=50, max=10)))
    assert text == (
        "would set HPA shop/api-hpa minReplicas 2 → 10, maxReplicas 6 → 10 for deployment shop/api "
        "(asked for 50, held at max 10)"
    )
    run(ex, "kubernetes.scale", deployment="api", desired=50, max=10)
    (patch,) = kube.writes()
    assert (patch.method, patch.path, patch.content_type) == ("PATCH", hpa_path, MERGE_PATCH)
    assert patch.body == {"spec": {"minReplicas": 10, "maxReplicas": 10}}  # never above the configured max
    assert ("PATCH", f"{APPS}/deployments/api/scale") not in kube.calls()

    kube.objects[("deployments", "shop", "api")]["spec"]["replicas"] = 10
    run(ex, "kubernetes.scale", deployment="api", step=-7, max=10)
    assert kube.writes()[-1].body == {"spec": {"minReplicas": 3, "maxReplicas": 3}}

    kube.objects[("horizontalpodautoscalers", "shop", "api-hpa")]["spec"].update(minReplicas=2, maxReplicas=20)
    kube.objects[("deployments", "shop", "api")]["spec"]["replicas"] = 4
    run(ex, "kubernetes.scale", deployment="api", desired=6, max=10)
    assert kube.writes()[-1].body == {"spec": {"minReplicas": 6}}  # its own max of 20 is left alone

    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.scale", deployment="api", desired=0, min=0, max=10)
    assert err.value.reason == "bad_arguments"


def test_scale_bad_bounds(ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): plan_scale's refusals."""
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.scale", deployment="web", desired=3, step=1, max=10)
    assert err.value.reason == "bad_arguments"


# -- rollback -----------------------------------------------------------------------------------------------------


def test_rollback_like_kubectl_rollout_undo(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): `kubectl rollout undo`."""
    text = asyncio.run(ex.describe(req("kubernetes.rollback", deployment="web")))
    assert text == "would roll back deployment shop/web: revision 3 → 2 (app=shop/web:3 → app=shop/web:2)"

    run(ex, "kubernetes.rollback", deployment="web")
    lists = [r for r in kube.requests if r.path == f"{APPS}/replicasets"]
    assert lists[-1].query == {"labelSelector": "app=web"}
    patch, mark = kube.writes()
    assert (mark.method, mark.path, mark.content_type) == ("PATCH", f"{APPS}/replicasets/web-ccc", MERGE_PATCH)
    assert mark.body == {"metadata": {"annotations": {"paramedic.io/known-bad": NOW.isoformat()}}}
    assert (patch.method, patch.path, patch.content_type) == ("PATCH", f"{APPS}/deployments/web", JSON_PATCH)
    assert patch.body == [
        {"op": "replace", "path": "/spec/template", "value": _template("shop/web:2")},  # no pod-template-hash
        {
            "op": "replace",
            "path": "/metadata/annotations",
            "value": {
                REVISION: "3",  # kept from the deployment; the controller bumps it
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "team": "payments-old",  # copied from the ReplicaSet
            },
        },
    ]
    dep = kube.objects[("deployments", "shop", "web")]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/web:2"
    assert dep["metadata"]["generation"] == 2


def _stamp(kube: FakeKube, name: str, at: datetime) -> None:
    kube.objects[("replicasets", "shop", name)]["metadata"]["creationTimestamp"] = at.isoformat().replace("+00:00", "Z")


def test_two_bad_rollouts_in_a_row_roll_back_to_the_last_revision_that_soaked(
    kube: FakeKube, ex: KubernetesExecutor
) -> None:
    """At paramedic's boundary against a fake API server (none can run here): revision 1 ran for
    days; revisions 2 and 3 rolled out 1.7 s apart. `kubectl rollout undo` would pick 2, the other
    new one; paramedic skips it as unproven and goes to 1."""
    _stamp(kube, "web-aaa", NOW - timedelta(days=3))
    _stamp(kube, "web-bbb", NOW - timedelta(minutes=5))
    _stamp(kube, "web-ccc", NOW - timedelta(minutes=5) + timedelta(seconds=1.7))
    text = asyncio.run(ex.describe(req("kubernetes.rollback", deployment="web")))
    assert text == "would roll back deployment shop/web: revision 3 → 1 (app=shop/web:3 → app=shop/web:1)"
    run(ex, "kubernetes.rollback", deployment="web")
    dep = kube.objects[("deployments", "shop", "web")]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/web:1"
    assert kube.objects[("replicasets", "shop", "web-ccc")]["metadata"]["annotations"]["paramedic.io/known-bad"]


def test_a_revision_a_rollback_left_is_never_rolled_back_to(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here)."""
    kube.objects[("replicasets", "shop", "web-bbb")]["metadata"]["annotations"]["paramedic.io/known-bad"] = "x"
    run(ex, "kubernetes.rollback", deployment="web")
    dep = kube.objects[("deployments", "shop", "web")]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/web:1"
    kube.objects[("replicasets", "shop", "web-aaa")]["metadata"]["annotations"]["paramedic.io/known-bad"] = "x"
    with pytest.raises(PermanentError, match="no known-good revision of deployment shop/web") as err:
        run(ex, "kubernetes.rollback", deployment="web")
    assert err.value.reason == "no_previous_revision"


def test_rollback_refusals(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): paused, no history, no-op."""
    dep = kube.objects[("deployments", "shop", "web")]
    dep["spec"]["template"] = _template("shop/web:2")
    result = run(ex, "kubernetes.rollback", deployment="web")
    assert not result.changed
    assert result.summary == "skipped rollback of deployment shop/web (current template already matches revision 2)"

    dep["spec"]["paused"] = True
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.rollback", deployment="web")
    assert err.value.reason == "paused"

    dep["spec"]["paused"] = False
    for name in ("web-aaa", "web-bbb"):
        del kube.objects[("replicasets", "shop", name)]
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.rollback", deployment="web")
    assert err.value.reason == "no_previous_revision"
    assert kube.writes() == []


def test_selector_string_matches_label_selector_syntax() -> None:
    selector = {
        "matchLabels": {"tier": "web", "app": "shop"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "canary"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert selector_string(selector) == "app=shop,tier=web,env in (canary,prod),!legacy"


# -- evict, cordon, drain -----------------------------------------------------------------------------------------


def test_evict_posts_a_policy_v1_eviction(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): the Eviction API."""
    run(ex, "kubernetes.evict", pod="web-ccc-1")
    (post,) = kube.writes()
    assert (post.method, post.path, post.content_type) == (
        "POST",
        "/api/v1/namespaces/shop/pods/web-ccc-1/eviction",
        "application/json",
    )
    assert post.body == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "web-ccc-1", "namespace": "shop"},
    }
    state = asyncio.run(ex.read_state(req("kubernetes.evict", pod="web-ccc-1")))
    assert (state.detail, state.fields["exists"]) == ("gone", "false")

    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.evict", pod="web-ccc-1")
    assert err.value.reason == "not_found"

    kube.pdb_blocked.add(("shop", "web-ccc-2"))
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.evict", pod="web-ccc-2")
    assert err.value.reason == "pdb"
    assert "disruption budget" in str(err.value)


def test_cordon_is_undone_by_uncordon_like_kubectl(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): the natural inverse of
    cordon is `kubectl uncordon`, whose two-way merge patch removes spec.unschedulable."""
    cordon = req("kubernetes.cordon", node="node-2")
    inverse = ex.inverse(cordon, asyncio.run(ex.execute(cordon)))
    assert inverse is not None
    assert (inverse.action, dict(inverse.args)) == ("kubernetes.uncordon", {"node": "node-2"})
    done = run(ex, inverse.action, **inverse.args)
    assert done.summary == "uncordoned node node-2"
    patch = kube.writes()[-1]
    assert (patch.path, patch.content_type, patch.body) == (
        "/api/v1/nodes/node-2",
        STRATEGIC,
        {"spec": {"unschedulable": None}},
    )
    assert not kube.objects[("nodes", "", "node-2")]["spec"].get("unschedulable")
    assert run(ex, "kubernetes.uncordon", node="node-2").changed is False


def test_scale_is_undone_by_the_previous_size(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here)."""
    scale = req("kubernetes.scale", deployment="web", step=2, max=10)
    inverse = ex.inverse(scale, asyncio.run(ex.execute(scale)))
    assert inverse is not None
    assert (inverse.action, dict(inverse.args)) == (
        "kubernetes.scale",
        {"deployment": "web", "desired": 3, "min": 1, "max": 10},
    )
    run(ex, inverse.action, **inverse.args)
    assert kube.objects[("deployments", "shop", "web")]["spec"]["replicas"] == 3


def test_cordon_is_a_strategic_merge_patch(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): `kubectl cordon`."""
    assert asyncio.run(ex.describe(req("kubernetes.cordon", node="node-2"))) == "would mark node node-2 unschedulable"
    run(ex, "kubernetes.cordon", node="node-2")
    (patch,) = kube.writes()
    assert (patch.path, patch.content_type, patch.body) == (
        "/api/v1/nodes/node-2",
        STRATEGIC,
        {"spec": {"unschedulable": True}},
    )
    again = run(ex, "kubernetes.cordon", node="node-2")
    assert (again.changed, again.summary) == (False, "node node-2 is already cordoned")
    state = asyncio.run(ex.read_state(req("kubernetes.cordon", node="node-2")))
    assert state.fields == {"unschedulable": "true", "ready": "true"}


def test_drain_cordons_then_evicts_all_but_daemonset_and_mirror_pods(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): `kubectl drain --ignore-daemonsets`."""
    text = asyncio.run(ex.describe(req("kubernetes.drain", node="node-1")))
    assert text == (
        "would mark node node-1 unschedulable; would evict 2 pods: shop/web-ccc-1, shop/web-ccc-2; "
        "leave: kube-system/kube-proxy-node-1 (mirror pod); shop/agent-x1 (DaemonSet)"
    )
    result = run(ex, "kubernetes.drain", node="node-1")
    assert result.summary == "drained node node-1: evicted shop/web-ccc-1, shop/web-ccc-2"
    lists = [r for r in kube.requests if r.path == "/api/v1/pods"]
    assert {json.dumps(r.query) for r in lists} == {json.dumps({"fieldSelector": "spec.nodeName=node-1"})}
    assert [(w.method, w.path) for w in kube.writes()] == [
        ("PATCH", "/api/v1/nodes/node-1"),
        ("POST", "/api/v1/namespaces/shop/pods/web-ccc-1/eviction"),
        ("POST", "/api/v1/namespaces/shop/pods/web-ccc-2/eviction"),
    ]
    state = asyncio.run(ex.read_state(req("kubernetes.drain", node="node-1")))
    assert state.fields == {"unschedulable": "true", "ready": "true", "pods_left": "0"}
    again = run(ex, "kubernetes.drain", node="node-1")
    assert not again.changed


def test_drain_refuses_unmanaged_pods_before_touching_anything(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): kubectl drain's safety checks."""
    kube.add(_pod("debug", "node-1", owner=None))
    kube.add(_pod("cache", "node-1", volumes=[{"name": "tmp", "emptyDir": {}}]))
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.drain", node="node-1")
    assert err.value.reason == "unmanaged_pods"
    assert "shop/debug has no controller" in str(err.value)
    assert "shop/cache uses emptyDir" in str(err.value)
    assert kube.writes() == []  # not even cordoned

    run(ex, "kubernetes.drain", node="node-1", force=True, delete_emptydir_data=True)
    assert len([w for w in kube.writes() if w.method == "POST"]) == 4


class FakeTime:
    """Loop time for the drain's PDB retries: a sleep advances it at once."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def timed(kube: FakeKube) -> Iterator[tuple[KubernetesExecutor, FakeTime]]:
    t = FakeTime()
    executor = KubernetesExecutor(
        client_factory=lambda: k8s.ApiClient(k8s.Configuration(host=kube.url)), namespace="shop", timeout=5,
        clock=lambda: NOW, sleep=t.sleep, monotonic=t.monotonic,
    )  # fmt: skip
    yield executor, t
    asyncio.run(executor.aclose())


def _evictions(kube: FakeKube, pod: str) -> int:
    return sum(1 for r in kube.requests if r.method == "POST" and r.path.endswith(f"/pods/{pod}/eviction"))


def test_drain_retries_a_pdb_refusal_like_kubectl_until_the_budget_allows_it(
    kube: FakeKube, timed: tuple[KubernetesExecutor, FakeTime]
) -> None:
    """At paramedic's boundary against a fake API server (none can run here): the PDB refuses the
    eviction (429) twice, then a replacement pod is ready and the third attempt succeeds."""
    ex, t = timed
    kube.pdb_refusals[("shop", "web-ccc-2")] = 2
    result = run(ex, "kubernetes.drain", node="node-1")
    assert result.summary == "drained node node-1: evicted shop/web-ccc-1, shop/web-ccc-2"
    assert t.sleeps == [5.0, 5.0]
    assert (_evictions(kube, "web-ccc-1"), _evictions(kube, "web-ccc-2")) == (1, 3)


def test_drain_reports_pdb_refusals_once_the_steps_timeout_is_nearly_spent(
    kube: FakeKube, timed: tuple[KubernetesExecutor, FakeTime]
) -> None:
    """At paramedic's boundary against a fake API server (none can run here): a PDB blocks one pod for good."""
    ex, t = timed
    kube.pdb_blocked.add(("shop", "web-ccc-2"))
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.drain", node="node-1")  # timeout 20s: 90% of it is the retry budget
    assert err.value.reason == "pdb"
    assert str(err.value) == (
        "drained node node-1: evicted shop/web-ccc-1; a PodDisruptionBudget refused shop/web-ccc-2 (retried for 15s)"
    )
    assert t.sleeps == [5.0, 5.0, 5.0]
    assert _evictions(kube, "web-ccc-2") == 4


# -- errors, state, targets, configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        pytest.param(500, RetryableError, "server_error", id="500"),
        pytest.param(503, RetryableError, "server_error", id="503"),
        pytest.param(403, PermanentError, "forbidden", id="403"),
        pytest.param(401, PermanentError, "forbidden", id="401"),
        pytest.param(409, RetryableError, "conflict", id="409"),
    ],
)
def test_http_errors_are_classified(
    kube: FakeKube, ex: KubernetesExecutor, code: int, error: type[Exception], reason: str
) -> None:
    """At paramedic's boundary against a fake API server (none can run here): status → retry meaning."""
    kube.fail_next("PATCH", r"/deployments/web$", code)
    with pytest.raises(error) as err:
        run(ex, "kubernetes.restart", deployment="web")
    assert getattr(err.value, "reason", None) == reason


def test_unreachable_api_server_is_retryable(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): the server goes away."""
    url = kube.url
    kube.stop()
    ex._factory = lambda: k8s.ApiClient(_no_retry(url))
    with pytest.raises(RetryableError) as err:
        run(ex, "kubernetes.cordon", node="node-1")
    assert err.value.reason == "unreachable"


def _no_retry(url: str) -> k8s.Configuration:
    conf = k8s.Configuration(host=url)
    conf.retries = False
    return conf


def test_read_state_and_known_targets(kube: FakeKube, ex: KubernetesExecutor) -> None:
    """At paramedic's boundary against a fake API server (none can run here): read-back and targets."""
    state = asyncio.run(ex.read_state(req("kubernetes.restart", deployment="web")))
    assert (state.target, state.healthy, state.detail) == ("deployment shop/web", True, "rollout complete")
    assert state.fields["revision"] == "3"
    run(ex, "kubernetes.restart", deployment="web")  # generation moves ahead of observedGeneration
    state = asyncio.run(ex.read_state(req("kubernetes.restart", deployment="web")))
    assert (state.healthy, state.detail) == (False, "rollout in progress")

    targets = asyncio.run(ex.known_targets({"deployment": "web", "namespace": "shop"}))
    assert targets == ["shop/web-ccc-1", "shop/web-ccc-2", "shop/web-ccc-3"]
    assert [r.query for r in kube.requests if r.path == "/api/v1/namespaces/shop/pods"] == [
        {"labelSelector": "app=web"}
    ]
    assert asyncio.run(ex.known_targets({"deployment": "missing"})) is None
    assert asyncio.run(ex.known_targets({"service": "web"})) is None


def test_kubeconfig_is_used(kube: FakeKube, tmp_path: Path) -> None:
    """At paramedic's boundary against a fake API server (none can run here): config from a kubeconfig file."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "other",
            "clusters": [{"name": "fake", "cluster": {"server": kube.url}},
                         {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}}],
            "users": [{"name": "bot", "user": {"token": "s3cret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "bot"}},
                         {"name": "other", "context": {"cluster": "nowhere", "user": "bot"}}],
        })
    )  # fmt: skip
    ex = KubernetesExecutor.from_config({"kubeconfig": str(kubeconfig), "context": "fake", "namespace": "shop"})
    try:
        run(ex, "kubernetes.restart", deployment="web")
    finally:
        asyncio.run(ex.aclose())
    assert {r.authorization for r in kube.requests} == {"Bearer s3cret"}


def test_not_configured_still_lists_actions(tmp_path: Path) -> None:
    """No API server involved: an executor without kubeconfig or in_cluster refuses every use."""
    ex = KubernetesExecutor.from_config({})
    assert [s.name for s in ex.actions()] == [
        "kubernetes.restart",
        "kubernetes.scale",
        "kubernetes.rollback",
        "kubernetes.evict",
        "kubernetes.cordon",
        "kubernetes.uncordon",
        "kubernetes.drain",
    ]
    with pytest.raises(PermanentError) as err:
        run(ex, "kubernetes.restart", deployment="web")
    assert err.value.reason == "not_configured"
    assert asyncio.run(ex.known_targets({"deployment": "web"})) is None

    broken = KubernetesExecutor.from_config({"kubeconfig": str(tmp_path / "missing")})
    with pytest.raises(PermanentError) as err:
        run(broken, "kubernetes.cordon", node="node-1")
    assert err.value.reason == "not_configured"


# -- field manager ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "args"),
    [
        pytest.param("kubernetes.restart", {"deployment": "web"}, id="restart"),
        pytest.param("kubernetes.scale", {"deployment": "web", "step": 1}, id="scale"),
        pytest.param("kubernetes.rollback", {"deployment": "web"}, id="rollback"),
        pytest.param("kubernetes.cordon", {"node": "node-2"}, id="cordon"),
        pytest.param("kubernetes.drain", {"node": "node-1"}, id="drain"),
    ],
)
def test_every_write_names_paramedic_as_field_manager(
    kube: FakeKube, ex: KubernetesExecutor, action: str, args: dict[str, object]
) -> None:
    """At paramedic's boundary against the fake API server: each PATCH and POST carries
    ``?fieldManager=paramedic``, so ``metadata.managedFields`` names paramedic like it names kubectl."""
    run(ex, action, **args)
    writes = kube.writes()
    assert writes
    assert [w.query.get("fieldManager") for w in writes] == ["paramedic"] * len(writes)
