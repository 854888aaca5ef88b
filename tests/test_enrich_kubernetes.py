"""Kubernetes pod evidence — ``kubectl describe pod`` and ``kubectl logs [-p]`` — through the
official client, at paramedic's boundary: no API server can run here, so the fake API server of
``tests/fake_kube.py`` answers ``GET /api/v1/namespaces/{ns}/pods/{name}``, ``…/pods/{name}/log``
(``container``, ``previous``, ``tailLines``; plain text; 400 when there is no previous container) and
``GET /api/v1/namespaces/{ns}/events`` with an ``involvedObject`` field selector, as the API
reference documents them, and records any other request as a violation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client as k8s

from paramedic.actions.kubernetes import KubernetesExecutor
from paramedic.enrich.base import CollectError, EnrichRequest, EvidenceStatus
from paramedic.enrich.kubernetes import KubernetesCollector
from tests.fake_kube import FakeKube

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def crashlooping_pod() -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": "web-7d4b9-x2x", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "shop/web:3"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": False,
                    "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting"}},
                    "lastState": {
                        "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-12-01T02:59:30Z"}
                    },
                }
            ],
        },
    }


def event(reason: str, message: str, *, kind: str = "Warning", at: timedelta, count: int = 1) -> dict[str, Any]:
    return {
        "kind": "Event",
        "metadata": {"name": f"web-7d4b9-x2x.{reason.lower()}", "namespace": "shop"},
        "involvedObject": {"kind": "Pod", "name": "web-7d4b9-x2x", "namespace": "shop"},
        "type": kind,
        "reason": reason,
        "message": message,
        "count": count,
        "lastTimestamp": (NOW - at).isoformat().replace("+00:00", "Z"),
    }


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        fake.add(crashlooping_pod())
        fake.add(event("Pulled", "Container image already present", kind="Normal", at=timedelta(minutes=9)))
        fake.add(event("BackOff", "Back-off restarting failed container app", at=timedelta(minutes=1), count=12))
        other = event("BackOff", "someone else's pod", at=timedelta(minutes=1))
        other["involvedObject"]["name"] = "db-0"
        other["metadata"]["name"] = "db-0.backoff"
        fake.add(other)
        fake.logs[("shop", "web-7d4b9-x2x", "app", False)] = "starting web 3\nlistening on :8080\n"
        fake.logs[("shop", "web-7d4b9-x2x", "app", True)] = (
            "starting web 3\nERROR cannot connect to postgres password=s3cret\nTraceback (most recent call last):\n"
        )
        yield fake
    assert fake.violations == [], "requests the real API server would reject"


def collect(kube: FakeKube, **options: Any) -> Any:
    ex = KubernetesExecutor(client_factory=lambda: k8s.ApiClient(k8s.Configuration(host=kube.url)), namespace="shop")

    async def go() -> Any:
        try:
            req = EnrichRequest(1, "KubePodCrashLooping", {"pod": "web-7d4b9-x2x"}, NOW, NOW, options)
            return await KubernetesCollector(lambda: ex).collect(req)
        finally:
            await ex.aclose()

    return asyncio.run(go())


def test_a_crash_looping_pod_shows_the_previous_containers_log_its_state_and_its_events(kube: FakeKube) -> None:
    ev = collect(kube, pod="web-7d4b9-x2x", lines=50)
    assert ev.status is EvidenceStatus.OK
    assert ev.headline == (
        "Running, 5 restarts, app waiting: CrashLoopBackOff, last exit 1 (Error) at 2026-12-01T02:59:30Z; "
        "1 warning event (last: BackOff: Back-off restarting failed container app)"
    )
    assert ev.data["lines"][1] == "ERROR cannot connect to postgres password=[redacted]"  # the crash, redacted
    assert [e["reason"] for e in ev.data["events"]] == ["Pulled", "BackOff"]  # only this pod's, oldest first
    assert ev.body.index("previous app container") < ev.body.index("Log of app now")
    logs = [r for r in kube.requests if r.path.endswith("/log")]
    assert [(r.path, r.query) for r in logs] == [
        (
            "/api/v1/namespaces/shop/pods/web-7d4b9-x2x/log",
            {"container": "app", "tailLines": "50", "previous": "false"},
        ),
        ("/api/v1/namespaces/shop/pods/web-7d4b9-x2x/log", {"container": "app", "tailLines": "50", "previous": "true"}),
    ]
    (events,) = [r for r in kube.requests if r.path.endswith("/events")]
    assert events.query == {"fieldSelector": "involvedObject.name=web-7d4b9-x2x,involvedObject.kind=Pod"}


def test_a_pod_that_never_restarted_asks_for_no_previous_log_and_one_that_lost_it_says_nothing(
    kube: FakeKube,
) -> None:
    pod = kube.objects[("pods", "shop", "web-7d4b9-x2x")]
    pod["status"]["containerStatuses"][0].update(restartCount=0, state={"running": {}}, lastState={})
    ev = collect(kube, pod="web-7d4b9-x2x")
    assert ev.headline.startswith("Running, 0 restarts; 1 warning event")
    assert not any(r.query.get("previous") == "true" for r in kube.requests)
    del kube.logs[("shop", "web-7d4b9-x2x", "app", True)]
    ev = collect(kube, pod="web-7d4b9-x2x", previous="true")  # the API answers 400: no previous container
    assert ev.data["previous_lines"] == 0
    assert ev.data["lines"] == ["starting web 3", "listening on :8080"]


def test_refusals_say_what_to_fix(kube: FakeKube) -> None:
    with pytest.raises(CollectError, match="has no container 'sidecar'"):
        collect(kube, pod="web-7d4b9-x2x", container="sidecar")
    with pytest.raises(CollectError, match="needs pod"):
        collect(kube)
    with pytest.raises(CollectError, match='pods "nope" not found'):
        collect(kube, pod="nope")
    with pytest.raises(CollectError, match="invalid pod name"):
        collect(kube, pod="../../etc")

    async def none() -> Any:
        req = EnrichRequest(1, "X", {}, NOW, NOW, {"pod": "p"})
        return await KubernetesCollector(lambda: None).collect(req)

    with pytest.raises(CollectError, match=r"executors\.kubernetes"):
        asyncio.run(none())
