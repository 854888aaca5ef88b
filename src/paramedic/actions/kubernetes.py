"""``kubernetes.restart|scale|rollback|evict|cordon|drain``, with kubectl's semantics.

The official client runs in ``asyncio.to_thread``; objects are read as raw JSON so nothing is lost on
a round trip (a rollback copies a ReplicaSet's pod template back verbatim). Every action reads first
and builds a ``Plan``: ``describe`` shows it, ``execute`` applies it. What goes out on the wire:

- restart: strategic merge patch of the pod template annotation ``kubectl.kubernetes.io/restartedAt``
  (``kubectl rollout restart``); refused, as kubectl does, when paused or on an ``OnDelete`` strategy.
- scale: merge patch of the ``/scale`` subresource (``kubectl scale``) to the size ``plan_scale`` picks;
  when an autoscaling/v2 HPA targets the workload it would undo that, so its min/maxReplicas move instead.
- rollback: ``kubectl rollout undo`` to the last known-good revision: the deployment's ReplicaSets
  (selector, then controller owner reference), the newest ``deployment.kubernetes.io/revision`` below
  the current one that is neither marked bad by an earlier rollback nor unproven (live for less than
  ``soak``, 10m by default, before the next revision replaced it), and a JSON patch replacing
  ``spec.template`` (minus ``pod-template-hash``) and ``metadata.annotations``; the ReplicaSet left
  behind gets the annotation ``paramedic.io/known-bad`` (merge patch), so it is never rolled back to.
- evict: POST a policy/v1 ``Eviction``; HTTP 429 means a PodDisruptionBudget refused it.
- cordon: strategic merge patch ``spec.unschedulable: true`` (``kubectl cordon``).
- every write (patch, eviction) carries ``fieldManager=paramedic``, as kubectl sends its own name.
- drain: ``kubectl drain --ignore-daemonsets`` without waiting for termination: refuses unmanaged or
  emptyDir pods before touching anything, then cordons and evicts all but DaemonSet and mirror pods.
  An eviction a PodDisruptionBudget refuses (429) is retried every ``pdb_retry`` (5s, as kubectl does)
  until the step's timeout is nearly spent; only then is the drain a ``pdb`` failure naming the pods.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from paramedic.actions.base import ActionRequest, ActionResult, ActionSpec, Inverse, ParamSpec, TargetState
from paramedic.core.durations import parse_duration
from paramedic.core.errors import ActionError, PermanentError, RetryableError
from paramedic.core.scaling import ScaleRequest, plan_scale

Obj = dict[str, Any]  # a Kubernetes object as the API serves it (JSON)

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
MIRROR = "kubernetes.io/config.mirror"
# kubectl's annotationsToSkip: kept from the deployment on rollback, never copied from the ReplicaSet.
SKIP_ANNOTATIONS = frozenset(
    f"kubectl.kubernetes.io/last-applied-configuration {REVISION} deployment.kubernetes.io/revision-history "
    "deployment.kubernetes.io/desired-replicas deployment.kubernetes.io/max-replicas "
    "deprecated.deployment.rollback.to".split()
)
FIELD_MANAGER = "paramedic"  # metadata.managedFields[].manager of every object paramedic writes
BAD = "paramedic.io/known-bad"  # on a ReplicaSet a rollback left: never the target of another
DEFAULT_SOAK = 600.0  # seconds a revision must have been live to count as known-good
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
# param name -> (kind, AppsV1Api method infix)
_KINDS = {"deployment": ("Deployment", "deployment"), "statefulset": ("StatefulSet", "stateful_set"),
          "daemonset": ("DaemonSet", "daemon_set")}  # fmt: skip

_NS = ParamSpec("namespace", required=False, help="default: executors.kubernetes.namespace")
_DEP, _STS = ParamSpec("deployment", required=False), ParamSpec("statefulset", required=False)
_NODE = ParamSpec("node", help="node name")
RESTART = ActionSpec(
    "kubernetes.restart", "Rolling restart like `kubectl rollout restart` (deployment, statefulset or daemonset).",
    (_DEP, _STS, ParamSpec("daemonset", required=False), _NS),
)  # fmt: skip
SCALE = ActionSpec(
    "kubernetes.scale", "Scale a deployment or statefulset within [min, max]; moves its HPA's bounds if it has one.",
    (_DEP, _STS, _NS, ParamSpec("desired", "int", required=False, help="absolute size"),
     ParamSpec("step", "int", required=False, help="relative change, e.g. 2 or -1"),
     ParamSpec("min", "int", required=False, default=1, help="never below"),
     ParamSpec("max", "int", required=False, default=10, help="never above, HPA bounds included")),
)  # fmt: skip
ROLLBACK = ActionSpec(
    "kubernetes.rollback", "Roll a deployment back to its previous revision, like `kubectl rollout undo`.",
    (ParamSpec("deployment"), _NS),
)  # fmt: skip
EVICT = ActionSpec(
    "kubernetes.evict", "Evict a pod through the Eviction API (PodDisruptionBudgets apply).",
    (ParamSpec("pod"), _NS), idempotent=True,
)  # fmt: skip
CORDON = ActionSpec("kubernetes.cordon", "Mark a node unschedulable, like `kubectl cordon`.", (_NODE,), idempotent=True)
UNCORDON = ActionSpec(
    "kubernetes.uncordon", "Mark a node schedulable again, like `kubectl uncordon` (the undo of cordon and drain).",
    (_NODE,), idempotent=True,
)  # fmt: skip
DRAIN = ActionSpec(
    "kubernetes.drain", "Cordon a node and evict its pods but DaemonSet and mirror pods (`kubectl drain`).",
    (_NODE, ParamSpec("force", "bool", required=False, default=False, help="also evict pods with no controller"),
     ParamSpec("delete_emptydir_data", "bool", required=False, default=False, help="also evict emptyDir pods")),
    idempotent=True, default_timeout=120.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Workload:
    key: str  # deployment | statefulset | daemonset
    namespace: str
    name: str

    @property
    def kind(self) -> str:
        return _KINDS[self.key][0]

    def __str__(self) -> str:
        return f"{self.key} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What an action would do, from what was just read; ``apply`` is None when nothing would change."""

    text: str
    apply: Callable[[], Awaitable[ActionResult]] | None = None


def _name(value: object, what: str) -> str:
    if not _DNS.match(text := str(value)):
        raise PermanentError(f"invalid {what} name {text!r}", reason="bad_arguments")
    return text


def _translate(exc: ApiException, what: str, *, eviction: bool) -> ActionError:
    """HTTP status → retry meaning: 404 gone, 401/403 forbidden, 429 on eviction a PDB, 5xx transient."""
    try:
        detail = str(json.loads(exc.body or "").get("message") or exc.reason)
    except (ValueError, AttributeError):
        detail = str(exc.reason)
    code, message = int(exc.status or 0), f"{what}: {detail}"
    if code == 404:
        return PermanentError(message, reason="not_found")
    if code in (401, 403):
        return PermanentError(message, reason="forbidden")
    if code == 429:
        return PermanentError(message, reason="pdb") if eviction else RetryableError(message, reason="throttled")
    if code == 409:
        return RetryableError(message, reason="conflict")
    if code == 0 or code >= 500:
        return RetryableError(message, reason="server_error")
    return PermanentError(f"{message} (HTTP {code})", reason="rejected")


def selector_string(selector: Mapping[str, Any]) -> str:
    """A LabelSelector as a ``labelSelector`` query (metav1.LabelSelectorAsSelector)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(sorted(expr.get("values") or []))
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}.get(op, f"!{key}")
        )
    return ",".join(parts)


def _controller(obj: Obj) -> Obj | None:
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def _revision(rs: Obj) -> int | None:
    try:
        return int(rs["metadata"]["annotations"][REVISION])
    except (KeyError, TypeError, ValueError):
        return None


def _created(rs: Obj) -> datetime | None:
    try:
        return datetime.fromisoformat(str(rs["metadata"]["creationTimestamp"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        return None


def ranked_revisions(replicasets: Sequence[Obj]) -> list[tuple[int, Obj]]:
    return sorted(((rev, rs) for rs in replicasets if (rev := _revision(rs)) is not None), key=lambda p: p[0])


def rollback_revision(replicasets: Sequence[Obj], *, soak: float = DEFAULT_SOAK) -> Obj | None:
    """The newest revision below the current one that is known-good: not marked bad by an earlier
    rollback, and live for at least ``soak`` seconds before the next revision's ReplicaSet was
    created. A window that cannot be told (no timestamps; a ReplicaSet revived by a rollback keeps
    its old ``creationTimestamp``) does not disqualify. With ``soak`` 0 this is kubectl's choice."""
    ranked = ranked_revisions(replicasets)
    for i in range(len(ranked) - 2, -1, -1):
        rs = ranked[i][1]
        if (rs["metadata"].get("annotations") or {}).get(BAD):
            continue
        start, until = _created(rs), _created(ranked[i + 1][1])
        if start is not None and until is not None and until >= start and (until - start).total_seconds() < soak:
            continue  # replaced before it proved itself
        return rs
    return None


def _without_hash(template: Obj) -> Obj:
    out = copy.deepcopy(template)
    (out.get("metadata", {}).get("labels") or {}).pop(HASH_LABEL, None)
    return out


def _images(template: Obj) -> str:
    return ", ".join(f"{c.get('name')}={c.get('image')}" for c in template.get("spec", {}).get("containers") or [])


def rollout_state(obj: Obj) -> tuple[bool, dict[str, str]]:
    """Whether a rollout is complete, by the rules of ``kubectl rollout status``."""
    spec, st = obj.get("spec", {}), obj.get("status", {})
    done = st.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
    if obj.get("kind") == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        done = done and st.get("updatedNumberScheduled", 0) >= want and st.get("numberAvailable", 0) >= want
    else:
        want, updated = spec.get("replicas", 1), st.get("updatedReplicas", 0)
        done = done and updated >= want and st.get("readyReplicas", 0) >= want
        if obj.get("kind") == "Deployment":  # no old pods left, all new ones available
            done = done and st.get("replicas", 0) <= updated and st.get("availableReplicas", 0) >= updated
    fields = {k: str(v) for k, v in st.items() if isinstance(v, int | str)}
    return done, fields | {"spec.replicas": str(spec.get("replicas", ""))}


def _drain_skip(pod: Obj) -> str | None:
    """Why ``kubectl drain --ignore-daemonsets`` leaves this pod alone, if it does."""
    if pod["metadata"].get("deletionTimestamp"):
        return "terminating"
    if (_controller(pod) or {}).get("kind") == "DaemonSet":
        return "DaemonSet"
    return "mirror pod" if MIRROR in (pod["metadata"].get("annotations") or {}) else None


def _drain_blocker(pod: Obj, *, force: bool, emptydir: bool) -> str | None:
    """Why kubectl drain would refuse to go on; finished pods never block."""
    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return None
    if not emptydir and any("emptyDir" in v for v in pod.get("spec", {}).get("volumes") or []):
        return "uses emptyDir local storage (set delete_emptydir_data)"
    return "has no controller (set force)" if not force and _controller(pod) is None else None


def _ref(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def _client_factory(cfg: Mapping[str, Any]) -> Callable[[], Any] | None:
    """Builds the ApiClient on first use, from ``in_cluster`` or ``kubeconfig`` (+ ``context``)."""
    if not cfg.get("in_cluster") and not cfg.get("kubeconfig"):
        return None

    def build() -> Any:
        from kubernetes import config

        try:
            if cfg.get("in_cluster"):
                conf = k8s.Configuration()
                config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
                return k8s.ApiClient(conf)
            return config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(cfg["kubeconfig"]), context=cfg.get("context"), persist_config=False
            )
        except (config.ConfigException, OSError, ValueError) as exc:
            raise PermanentError(f"cannot configure the Kubernetes client: {exc}", reason="not_configured") from exc

    return build


class KubernetesExecutor:
    """Acts on one cluster. Unconfigured, it still lists its actions and refuses use with ``not_configured``."""

    def __init__(
        self, *, client_factory: Callable[[], Any] | None, namespace: str = "default", timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None, pdb_retry: float = 5.0, soak: float = DEFAULT_SOAK,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._factory, self._client, self._lock = client_factory, None, threading.Lock()
        self._namespace, self._timeout = namespace, timeout
        self._clock = clock or (lambda: datetime.now(UTC))
        self._pdb_retry, self._sleep, self._monotonic = pdb_retry, sleep, monotonic
        self._soak = soak

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> KubernetesExecutor:
        """``{kubeconfig, context, in_cluster, namespace, timeout, pdb_retry}``; nothing is read until first use."""
        timeout = parse_duration(cfg.get("timeout", 10)).total_seconds()
        pdb_retry = parse_duration(cfg.get("pdb_retry", 5)).total_seconds()
        soak = parse_duration(cfg.get("soak", DEFAULT_SOAK)).total_seconds()
        return cls(
            client_factory=_client_factory(cfg), namespace=str(cfg.get("namespace") or "default"), timeout=timeout,
            pdb_retry=max(pdb_retry, 0.1), soak=max(soak, 0.0),
        )  # fmt: skip

    def actions(self) -> Sequence[ActionSpec]:
        return [RESTART, SCALE, ROLLBACK, EVICT, CORDON, UNCORDON, DRAIN]

    async def aclose(self) -> None:
        """Close the client's connection pool."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- the wire ----------------------------------------------------------------------------------------------

    def _api(self, group: str) -> Any:
        with self._lock:
            if self._client is None:
                if self._factory is None:
                    raise PermanentError("executors.kubernetes needs kubeconfig or in_cluster", reason="not_configured")
                self._client = self._factory()
            client = self._client
        return {"apps": k8s.AppsV1Api, "core": k8s.CoreV1Api, "hpa": k8s.AutoscalingV2Api}[group](client)

    async def _call(self, what: str, group: str, method: str, **kwargs: Any) -> Obj:
        """One API call, JSON in and out, failures translated to paramedic's error classes. Every
        write names paramedic as its ``fieldManager``, so managed fields say who changed what."""
        if method.startswith(("patch_", "create_", "replace_")):
            kwargs.setdefault("field_manager", FIELD_MANAGER)

        def run() -> Obj:
            resp = getattr(self._api(group), method)(**kwargs, _preload_content=False, _request_timeout=self._timeout)
            try:
                data = resp.data
            finally:
                resp.release_conn()
            parsed = json.loads(data) if data else {}
            return parsed if isinstance(parsed, dict) else {}

        try:
            return await asyncio.to_thread(run)
        except ApiException as exc:
            raise _translate(exc, what, eviction=method.endswith("_eviction")) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
            if isinstance(cause, urllib3.exceptions.TimeoutError | TimeoutError) and not isinstance(
                cause,
                urllib3.exceptions.NewConnectionError,  # a refused connection, despite its base class
            ):
                raise RetryableError(f"{what}: the API server timed out", reason="timeout") from exc
            raise RetryableError(f"{what}: API server unreachable: {exc}", reason="unreachable") from exc
        except ValueError as exc:
            raise RetryableError(f"{what}: unreadable answer: {exc}", reason="protocol") from exc

    def _workload(self, args: Mapping[str, Any], keys: Sequence[str]) -> Workload:
        given = [k for k in keys if args.get(k) is not None]
        if len(given) != 1:
            raise PermanentError(f"give exactly one of {', '.join(keys)}", reason="bad_arguments")
        return Workload(given[0], self._ns(args), _name(args[given[0]], given[0]))

    def _ns(self, args: Mapping[str, Any]) -> str:
        return _name(args.get("namespace") or self._namespace, "namespace")

    async def _wl(self, verb: str, w: Workload, sub: str = "", **kwargs: Any) -> Obj:
        """``read`` or ``patch`` a workload, or its ``scale`` subresource."""
        method = f"{verb}_namespaced_{_KINDS[w.key][1]}{'_' + sub if sub else ''}"
        return await self._call(
            f"{verb} {w} {sub}".strip(), "apps", method, name=w.name, namespace=w.namespace, **kwargs
        )

    async def _node_pods(self, node: str) -> list[Obj]:
        pods = await self._call(
            f"list pods on {node}", "core", "list_pod_for_all_namespaces", field_selector=f"spec.nodeName={node}"
        )
        return list(pods.get("items", []))

    async def _evict(self, ns: str, name: str) -> None:
        body = k8s.V1Eviction(
            api_version="policy/v1", kind="Eviction", metadata=k8s.V1ObjectMeta(name=name, namespace=ns)
        )
        await self._call(
            f"evict pod {ns}/{name}",
            "core",
            "create_namespaced_pod_eviction",
            name=name,
            namespace=ns,
            body=body,
            _headers={"Content-Type": "application/json"},  # this operation takes no _content_type
        )

    # -- plans -------------------------------------------------------------------------------------------------

    async def _plan(self, request: ActionRequest) -> Plan:
        args, action = request.args, request.action
        if action == RESTART.name:
            return await self._plan_restart(self._workload(args, list(_KINDS)))
        if action == SCALE.name:
            return await self._plan_scale(self._workload(args, ["deployment", "statefulset"]), args)
        if action == ROLLBACK.name:
            return await self._plan_rollback(self._workload(args, ["deployment"]))
        if action == EVICT.name:
            return await self._plan_evict(self._ns(args), _name(args["pod"], "pod"))
        if action == CORDON.name:
            return await self._plan_cordon(_name(args["node"], "node"))
        if action == UNCORDON.name:
            return await self._plan_uncordon(_name(args["node"], "node"))
        if action == DRAIN.name:
            force, emptydir = bool(args.get("force")), bool(args.get("delete_emptydir_data"))
            return await self._plan_drain(
                _name(args["node"], "node"), force=force, emptydir=emptydir, budget=request.timeout * 0.9
            )
        raise PermanentError(f"unknown action {action!r}", reason="unknown_action")

    async def _plan_restart(self, w: Workload) -> Plan:
        spec = (await self._wl("read", w)).get("spec", {})
        if w.key == "deployment" and spec.get("paused"):
            raise PermanentError(f"can't restart paused {w} (run rollout resume first)", reason="paused")
        if spec.get("updateStrategy", {}).get("type") == "OnDelete":
            raise PermanentError(f"can't restart {w}: its update strategy is OnDelete", reason="on_delete")

        async def apply() -> ActionResult:
            stamp = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
            await self._wl("patch", w, body=body, _content_type=STRATEGIC)
            return ActionResult(summary=f"restarted {w} ({RESTARTED_AT}={stamp})")

        return Plan(f"would set {RESTARTED_AT} on {w}'s pod template (strategic merge patch), rolling its pods", apply)

    async def _plan_scale(self, w: Workload, args: Mapping[str, Any]) -> Plan:
        current = int((await self._wl("read", w, "scale")).get("spec", {}).get("replicas") or 0)
        decision = plan_scale(ScaleRequest(current=current, minimum=int(args.get("min", 1)),
                                           maximum=int(args.get("max", 10)), desired=args.get("desired"),
                                           step=args.get("step")))  # fmt: skip
        hpas = await self._call(f"list HPAs in {w.namespace}", "hpa", "list_namespaced_horizontal_pod_autoscaler",
                                namespace=w.namespace)  # fmt: skip
        hpa = next((h for h in hpas.get("items", []) if _targets(h, w)), None)
        if hpa is not None:
            return self._plan_hpa(w, hpa, decision.current, decision.target, decision.reason)
        if not decision.changes:
            return Plan(f"{w} needs no change: {decision.reason}")

        async def apply() -> ActionResult:
            await self._wl("patch", w, "scale", body={"spec": {"replicas": decision.target}}, _content_type=MERGE)
            return ActionResult(summary=f"scaled {w}: {decision.reason}", details={"previous_replicas": str(current)})

        return Plan(f"would scale {w}: {decision.reason} (merge patch of /scale)", apply)

    def _plan_hpa(self, w: Workload, hpa: Obj, current: int, target: int, why: str) -> Plan:
        """Move the HPA's bounds so it settles at ``target``; only values ≤ target are ever written."""
        name, spec = hpa["metadata"]["name"], hpa.get("spec", {})
        lo, hi = int(spec.get("minReplicas") or 1), int(spec["maxReplicas"])
        if target < 1:
            raise PermanentError(f"HPA {name} cannot hold {w} below 1 replica", reason="bad_arguments")
        new_lo, new_hi = (max(lo, target), max(hi, target)) if target > current else (min(lo, target), min(hi, target))
        change = {k: new for k, old, new in (("minReplicas", lo, new_lo), ("maxReplicas", hi, new_hi)) if new != old}
        if target == current or not change:
            return Plan(f"{w} is scaled by HPA {name} ({lo}-{hi}) and needs no change: {why}")
        moved = ", ".join(
            f"{k} {old} → {change[k]}" for k, old in (("minReplicas", lo), ("maxReplicas", hi)) if k in change
        )

        async def apply() -> ActionResult:
            await self._call(f"patch HPA {w.namespace}/{name}", "hpa", "patch_namespaced_horizontal_pod_autoscaler",
                             name=name, namespace=w.namespace, body={"spec": change}, _content_type=MERGE)  # fmt: skip
            return ActionResult(summary=f"HPA {w.namespace}/{name}: {moved} ({why})")

        return Plan(f"would set HPA {w.namespace}/{name} {moved} for {w} ({why})", apply)

    async def _plan_rollback(self, w: Workload) -> Plan:
        dep = await self._wl("read", w)
        if dep["spec"].get("paused"):
            raise PermanentError(f"you cannot rollback a paused {w}; resume it first", reason="paused")
        if not (selector := selector_string(dep["spec"].get("selector") or {})):
            raise PermanentError(f"{w} has an empty selector", reason="rejected")
        listed = await self._call(f"list ReplicaSets of {w}", "apps", "list_namespaced_replica_set",
                                  namespace=w.namespace, label_selector=selector)  # fmt: skip
        owned = [rs for rs in listed.get("items", []) if (_controller(rs) or {}).get("uid") == dep["metadata"]["uid"]]
        if len(ranked_revisions(owned)) < 2:
            raise PermanentError(f"no rollout history found for {w}", reason="no_previous_revision")
        if (rs := rollback_revision(owned, soak=self._soak)) is None:
            raise PermanentError(
                f"no known-good revision of {w} to roll back to: every earlier one was left by a rollback or "
                f"replaced within {self._soak:g}s of its rollout",
                reason="no_previous_revision",
            )
        left = ranked_revisions(owned)[-1][1]
        revision, template = _revision(rs), _without_hash(rs["spec"]["template"])
        if template == _without_hash(dep["spec"]["template"]):
            return Plan(f"skipped rollback of {w} (current template already matches revision {revision})")
        annotations = {k: v for k, v in (dep["metadata"].get("annotations") or {}).items() if k in SKIP_ANNOTATIONS}
        annotations |= {k: v for k, v in (rs["metadata"].get("annotations") or {}).items() if k not in SKIP_ANNOTATIONS}
        ops = [{"op": "replace", "path": "/spec/template", "value": template},
               {"op": "replace", "path": "/metadata/annotations", "value": annotations}]  # fmt: skip
        now = (dep["metadata"].get("annotations") or {}).get(REVISION)
        change = f"revision {now} → {revision} ({_images(dep['spec']['template'])} → {_images(template)})"

        async def apply() -> ActionResult:
            await self._wl("patch", w, body=ops, _content_type=JSON_PATCH)
            name = left["metadata"]["name"]
            mark = {"metadata": {"annotations": {BAD: self._clock().isoformat()}}}
            await self._call(f"mark ReplicaSet {w.namespace}/{name} bad", "apps", "patch_namespaced_replica_set",
                             name=name, namespace=w.namespace, body=mark, _content_type=MERGE)  # fmt: skip
            return ActionResult(summary=f"rolled back {w}: {change}", details={"to_revision": str(revision)})

        return Plan(f"would roll back {w}: {change}", apply)

    async def _plan_evict(self, ns: str, name: str) -> Plan:
        pod = await self._call(f"read pod {ns}/{name}", "core", "read_namespaced_pod", name=name, namespace=ns)

        async def apply() -> ActionResult:
            await self._evict(ns, name)
            return ActionResult(summary=f"evicted pod {ns}/{name}")

        node = pod.get("spec", {}).get("nodeName", "no node")
        return Plan(f"would evict pod {ns}/{name} on {node} (a PodDisruptionBudget may refuse)", apply)

    async def _plan_cordon(self, node: str) -> Plan:
        if (await self._call(f"read node {node}", "core", "read_node", name=node)).get("spec", {}).get("unschedulable"):
            return Plan(f"node {node} is already cordoned")

        async def apply() -> ActionResult:
            await self._call(f"cordon node {node}", "core", "patch_node", name=node,
                             body={"spec": {"unschedulable": True}}, _content_type=STRATEGIC)  # fmt: skip
            return ActionResult(summary=f"cordoned node {node}")

        return Plan(f"would mark node {node} unschedulable", apply)

    async def _plan_uncordon(self, node: str) -> Plan:
        if (
            not (await self._call(f"read node {node}", "core", "read_node", name=node))
            .get("spec", {})
            .get("unschedulable")
        ):
            return Plan(f"node {node} is already schedulable")

        async def apply() -> ActionResult:
            # kubectl's two-way merge patch from true to the zero value: the field is removed
            await self._call(f"uncordon node {node}", "core", "patch_node", name=node,
                             body={"spec": {"unschedulable": None}}, _content_type=STRATEGIC)  # fmt: skip
            return ActionResult(summary=f"uncordoned node {node}")

        return Plan(f"would mark node {node} schedulable", apply)

    async def _plan_drain(self, node: str, *, force: bool, emptydir: bool, budget: float) -> Plan:
        def split(pods: list[Obj]) -> tuple[list[Obj], dict[str, str]]:
            """(pods to evict, pods left alone and why); refuses like kubectl drain does."""
            skipped = {_ref(p): why for p in pods if (why := _drain_skip(p))}
            evict = [p for p in pods if _ref(p) not in skipped]
            if blockers := {_ref(p): why for p in evict if (why := _drain_blocker(p, force=force, emptydir=emptydir))}:
                reason = "local_storage" if all("emptyDir" in v for v in blockers.values()) else "unmanaged_pods"
                listed = "; ".join(f"{k} {v}" for k, v in sorted(blockers.items()))
                raise PermanentError(f"cannot drain node {node}: {listed}", reason=reason)
            return evict, skipped

        cordon = await self._plan_cordon(node)
        evict, skipped = split(await self._node_pods(node))  # checked before the node is touched
        if not evict and cordon.apply is None:
            return Plan(f"node {node} is cordoned and has no pods to evict")
        leave = "; ".join(f"{k} ({v})" for k, v in sorted(skipped.items())) or "none"
        text = f"{cordon.text}; would evict {len(evict)} pods: {', '.join(map(_ref, evict)) or 'none'}; leave: {leave}"

        async def apply() -> ActionResult:
            if cordon.apply is not None:
                await cordon.apply()
            done: list[str] = []
            pending = split(await self._node_pods(node))[0]  # again: nothing new lands on a cordoned node
            deadline, waited = self._monotonic() + budget, 0.0
            while True:
                blocked = []
                for pod in pending:
                    try:
                        await self._evict(pod["metadata"]["namespace"], pod["metadata"]["name"])
                        done.append(_ref(pod))
                    except PermanentError as exc:
                        if exc.reason == "pdb":
                            blocked.append(pod)
                        elif exc.reason != "not_found":  # gone already is what a drain wants
                            raise
                if not blocked or self._monotonic() + self._pdb_retry > deadline:
                    break
                await self._sleep(self._pdb_retry)  # as kubectl drain: the budget frees up as pods come back
                waited += self._pdb_retry
                pending = blocked
            summary = f"drained node {node}: evicted {', '.join(done) or 'nothing'}"
            if blocked:
                refused = ", ".join(map(_ref, blocked))
                retried = f" (retried for {waited:g}s)" if waited else ""
                raise PermanentError(f"{summary}; a PodDisruptionBudget refused {refused}{retried}", reason="pdb")
            return ActionResult(summary=summary, details={"evicted": ", ".join(done)})

        return Plan(text, apply)

    # -- Executor ----------------------------------------------------------------------------------------------

    async def execute(self, request: ActionRequest) -> ActionResult:
        try:
            async with asyncio.timeout(request.timeout):
                plan = await self._plan(request)
                return await plan.apply() if plan.apply else ActionResult(summary=plan.text, changed=False)
        except TimeoutError:
            raise RetryableError(f"{request.action} took over {request.timeout:g}s", reason="timeout") from None

    def inverse(self, request: ActionRequest, result: ActionResult) -> Inverse | None:
        """cordon → uncordon; drain → uncordon (the evicted pods are not brought back: their
        controllers reschedule them); scale → the previous size (not when an HPA was moved)."""
        args = request.args
        if request.action in (CORDON.name, DRAIN.name):
            return Inverse(UNCORDON.name, {"node": args["node"]})
        if request.action == SCALE.name and "previous_replicas" in result.details:
            before = int(result.details["previous_replicas"])
            kept = {k: v for k, v in args.items() if k in ("deployment", "statefulset", "namespace") and v is not None}
            lo, hi = int(args.get("min", 1)), int(args.get("max", 10))
            return Inverse(SCALE.name, {**kept, "desired": before, "min": min(lo, before), "max": max(hi, before)})
        return None

    async def describe(self, request: ActionRequest) -> str:
        return (await self._plan(request)).text

    async def read_state(self, request: ActionRequest) -> TargetState:
        args = request.args
        if request.action == EVICT.name:
            return await self._pod_state(self._ns(args), _name(args["pod"], "pod"))
        if request.action in (CORDON.name, UNCORDON.name, DRAIN.name):
            return await self._node_state(_name(args["node"], "node"), pods=request.action == DRAIN.name)
        keys = ["deployment"] if request.action == ROLLBACK.name else list(_KINDS)
        w = self._workload(args, [k for k in keys if args.get(k) is not None] or keys)
        obj = await self._wl("read", w)
        done, fields = rollout_state(obj)
        fields["revision"] = (obj["metadata"].get("annotations") or {}).get(REVISION, "")
        return TargetState(str(w), done, "rollout complete" if done else "rollout in progress", fields)

    async def _pod_state(self, ns: str, name: str) -> TargetState:
        try:
            pod = await self._call(f"read pod {ns}/{name}", "core", "read_namespaced_pod", name=name, namespace=ns)
        except PermanentError as exc:
            if exc.reason != "not_found":
                raise
            return TargetState(f"{ns}/{name}", None, "gone", {"exists": "false"})
        phase, deleting = pod.get("status", {}).get("phase", ""), bool(pod["metadata"].get("deletionTimestamp"))
        fields = {"exists": "true", "phase": phase, "terminating": str(deleting).lower()}
        return TargetState(f"{ns}/{name}", phase == "Running" and not deleting, phase, fields)

    async def _node_state(self, node: str, *, pods: bool) -> TargetState:
        obj = await self._call(f"read node {node}", "core", "read_node", name=node)
        conds = obj.get("status", {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
        fields = {
            "unschedulable": str(bool(obj.get("spec", {}).get("unschedulable"))).lower(),
            "ready": str(ready).lower(),
        }
        if pods:
            fields["pods_left"] = str(sum(1 for p in await self._node_pods(node) if not _drain_skip(p)))
        return TargetState(f"node/{node}", ready, ", ".join(f"{k}={v}" for k, v in fields.items()), fields)

    # -- evidence reads (``enrich.kubernetes`` gets these from the engine) ----------------------------------

    async def read_pod(self, namespace: str | None, name: str) -> Obj:
        ns = self._ns({"namespace": namespace})
        pod = _name(name, "pod")
        return await self._call(f"read pod {ns}/{pod}", "core", "read_namespaced_pod", name=pod, namespace=ns)

    async def pod_log(self, namespace: str | None, name: str, *, container: str, previous: bool, tail: int) -> str:
        """``kubectl logs [-p] --tail``: the container's log, or ``""`` when there is no previous one."""
        ns, pod = self._ns({"namespace": namespace}), _name(name, "pod")
        what = f"{'previous ' if previous else ''}log of {ns}/{pod} {container}"

        def run() -> str:
            resp = self._api("core").read_namespaced_pod_log(
                name=pod, namespace=ns, container=_name(container, "container"), previous=previous,
                tail_lines=tail, _preload_content=False, _request_timeout=self._timeout,
            )  # fmt: skip
            try:
                return bytes(resp.data).decode("utf-8", errors="replace")
            finally:
                resp.release_conn()

        try:
            return await asyncio.to_thread(run)
        except ApiException as exc:
            if previous and exc.status == 400:  # "previous terminated container … not found"
                return ""
            raise _translate(exc, what, eviction=False) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryableError(f"{what}: API server unreachable: {exc}", reason="unreachable") from exc

    async def pod_events(self, namespace: str | None, name: str) -> list[Obj]:
        """``kubectl describe pod``'s events: those whose involvedObject is this pod."""
        ns, pod = self._ns({"namespace": namespace}), _name(name, "pod")
        found = await self._call(f"list events of {ns}/{pod}", "core", "list_namespaced_event", namespace=ns,
                                 field_selector=f"involvedObject.name={pod},involvedObject.kind=Pod")  # fmt: skip
        return list(found.get("items", []))

    async def known_targets(self, scope: Mapping[str, str]) -> Sequence[str] | None:
        """Pods of ``scope['deployment']`` (in ``scope['namespace']``), from two reads; otherwise None."""
        if "deployment" not in scope or self._factory is None:
            return None
        try:
            w = self._workload(scope, ["deployment"])
            selector = selector_string((await self._wl("read", w)).get("spec", {}).get("selector") or {})
            pods = await self._call(f"list pods of {w}", "core", "list_namespaced_pod",
                                    namespace=w.namespace, label_selector=selector)  # fmt: skip
        except ActionError:
            return None
        return sorted(_ref(p) for p in pods.get("items", []))


def _targets(hpa: Obj, w: Workload) -> bool:
    ref = hpa.get("spec", {}).get("scaleTargetRef") or {}
    return (
        ref.get("kind") == w.kind
        and ref.get("name") == w.name
        and str(ref.get("apiVersion", "apps/v1")).startswith("apps/")
    )
