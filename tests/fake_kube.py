"""A small fake Kubernetes API server for executor tests (no API server can run here).

It is a real HTTP server (stdlib ``http.server`` in a thread on a free port) that the official
``kubernetes`` client talks to over the wire. It serves only the endpoints paramedic's executor
uses and checks each request the way the Kubernetes API reference documents it: the path, the
verb, the ``Content-Type`` of patches (JSON patch, merge patch, strategic merge patch) and the body
shape. Anything else is answered like the API server would (404, 405, 415, 400, 422) and written to
``violations`` so a test fails on it. Every request is recorded for assertions.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Obj = dict[str, Any]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
PATCH_TYPES = {JSON_PATCH, MERGE_PATCH, STRATEGIC, "application/apply-patch+yaml"}

# resource plural -> (kind, API group path, namespaced)
RESOURCES = {
    "deployments": ("Deployment", "/apis/apps/v1", True),
    "statefulsets": ("StatefulSet", "/apis/apps/v1", True),
    "daemonsets": ("DaemonSet", "/apis/apps/v1", True),
    "replicasets": ("ReplicaSet", "/apis/apps/v1", True),
    "horizontalpodautoscalers": ("HorizontalPodAutoscaler", "/apis/autoscaling/v2", True),
    "pods": ("Pod", "/api/v1", True),
    "events": ("Event", "/api/v1", True),
    "nodes": ("Node", "/api/v1", False),
}
KIND_TO_RESOURCE = {kind: res for res, (kind, _, _) in RESOURCES.items()}
_NS = r"/namespaces/(?P<ns>[a-z0-9-]+)"
_NAME = r"(?P<name>[a-z0-9.-]+)"
ROUTES: list[tuple[re.Pattern[str], set[str], str]] = [
    (re.compile(rf"^/apis/apps/v1{_NS}/(?P<res>deployments|statefulsets)/{_NAME}/scale$"),
     {"GET", "PATCH"}, "scale"),
    (re.compile(rf"^/apis/apps/v1{_NS}/(?P<res>deployments|statefulsets|daemonsets)/{_NAME}$"),
     {"GET", "PATCH"}, "object"),
    (re.compile(rf"^/apis/apps/v1{_NS}/(?P<res>replicasets)$"), {"GET"}, "list"),
    (re.compile(rf"^/apis/apps/v1{_NS}/(?P<res>replicasets)/{_NAME}$"), {"GET", "PATCH"}, "object"),
    (re.compile(rf"^/apis/autoscaling/v2{_NS}/(?P<res>horizontalpodautoscalers)$"), {"GET"}, "list"),
    (re.compile(rf"^/apis/autoscaling/v2{_NS}/(?P<res>horizontalpodautoscalers)/{_NAME}$"),
     {"GET", "PATCH"}, "object"),
    (re.compile(rf"^/api/v1{_NS}/(?P<res>pods)/{_NAME}/eviction$"), {"POST"}, "eviction"),
    (re.compile(rf"^/api/v1{_NS}/(?P<res>pods)/{_NAME}/log$"), {"GET"}, "log"),
    (re.compile(rf"^/api/v1{_NS}/(?P<res>pods)/{_NAME}$"), {"GET"}, "object"),
    (re.compile(rf"^/api/v1{_NS}/(?P<res>events)$"), {"GET"}, "list"),
    (re.compile(rf"^/api/v1{_NS}/(?P<res>pods)$"), {"GET"}, "list"),
    (re.compile(r"^/api/v1/(?P<res>pods)$"), {"GET"}, "list"),
    (re.compile(rf"^/api/v1/(?P<res>nodes)/{_NAME}$"), {"GET", "PATCH"}, "object"),
]  # fmt: skip


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    authorization: str | None = None


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        out: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": self.message, "reason": self.reason, "code": self.code}  # fmt: skip
        if self.details:
            out["details"] = self.details
        return out


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 415: "UnsupportedMediaType", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}  # fmt: skip


@dataclass
class FakeKube:
    """Holds objects by (resource, namespace, name); serves and records requests."""

    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    pdb_blocked: set[tuple[str, str]] = field(default_factory=set)
    logs: dict[tuple[str, str, str, bool], str] = field(default_factory=dict)  # (ns, pod, container, previous)
    pdb_refusals: dict[tuple[str, str], int] = field(default_factory=dict)  # refuse this many times, then allow
    failures: list[tuple[str, re.Pattern[str], int]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rv: int = 100

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> FakeKube:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            do_PATCH = do_POST = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test API ----------------------------------------------------------------------------

    def add(self, obj: Obj) -> Obj:
        res = KIND_TO_RESOURCE[obj["kind"]]
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        meta["resourceVersion"] = self._next_rv()
        obj.setdefault("apiVersion", RESOURCES[res][1].removeprefix("/apis/").removeprefix("/api/"))
        self.objects[(res, meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((resource, namespace, name))

    def fail_next(self, method: str, path_regex: str, code: int) -> None:
        """Answer the next matching request with an error ``Status`` of this code."""
        self.failures.append((method, re.compile(path_regex), code))

    def calls(self, method: str | None = None) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests if method in (None, r.method)]

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method != "GET"]

    # -- serving -----------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip() or None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._lock:
            self.requests.append(Recorded(h.command, path, query, ctype, body, h.headers.get("Authorization")))
            try:
                code, payload = self._route(h.command, path, query, ctype, body, h)
            except ApiError as err:
                code, payload = err.code, err.status()
        text = isinstance(payload, str)  # pods/log answers plain text
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        h.send_response(code)
        h.send_header("Content-Type", "text/plain" if text else "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _violation(self, code: int, message: str) -> ApiError:
        self.violations.append(message)
        return ApiError(code, _REASONS[code], message)

    def _route(
        self, method: str, path: str, query: dict[str, str], ctype: str | None, body: Any,
        h: BaseHTTPRequestHandler,
    ) -> tuple[int, Obj | str]:  # fmt: skip
        if "application/json" not in (h.headers.get("Accept") or ""):
            self.violations.append(f"{method} {path}: Accept is {h.headers.get('Accept')!r}")
        if method in ("PATCH", "POST", "PUT"):
            # the API server takes fieldManager (<= 128 printable characters) and dryRun on writes
            unknown = set(query) - {"fieldManager", "dryRun", "pretty"}
            manager = query.get("fieldManager", "")
            if unknown or len(manager) > 128 or not manager.isprintable():
                self.violations.append(f"{method} {path}: bad write query {query}")
        for i, (fmethod, pattern, code) in enumerate(self.failures):
            if fmethod == method and pattern.search(path):
                del self.failures[i]
                raise ApiError(code, _REASONS[code], f"injected {code}")
        for pattern, methods, role in ROUTES:
            m = pattern.match(path)
            if not m:
                continue
            if method not in methods:
                raise self._violation(405, f"{method} {path}: method not allowed")
            groups = m.groupdict()
            res, ns, name = groups["res"], groups.get("ns") or "", groups.get("name") or ""
            if role == "list":
                return 200, self._list(res, ns, query)
            if role == "eviction":
                return self._evict(ns, name, ctype, body)
            if role == "log":
                return self._log(ns, name, query)
            obj = self.objects.get((res, ns, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{res} "{name}" not found',
                               {"name": name, "kind": res})  # fmt: skip
            if role == "scale":
                if method == "PATCH":
                    self._patch_scale(obj, ctype, body, path)
                return 200, _scale_of(obj)
            if method == "PATCH":
                self._patch(obj, ctype, body, path)
            return 200, obj
        raise self._violation(404, f"{method} {path}: no such endpoint in the fake")

    def _list(self, res: str, ns: str, query: dict[str, str]) -> Obj:
        items = [o for (r, n, _), o in self.objects.items() if r == res and (not ns or n == ns)]
        if "labelSelector" in query:
            match = parse_label_selector(query["labelSelector"])
            items = [o for o in items if match(o["metadata"].get("labels") or {})]
        if "fieldSelector" in query:
            allowed = {"pods": {"spec.nodeName"}, "events": {"involvedObject.name", "involvedObject.kind"}}
            for cond in query["fieldSelector"].split(","):
                key, _, value = cond.partition("=")
                if key not in allowed.get(res, set()):
                    raise self._violation(400, f"unsupported fieldSelector {query['fieldSelector']}")
                items = [o for o in items if _field(o, key) == value]
        extra = set(query) - {"labelSelector", "fieldSelector"}
        if extra:
            self.violations.append(f"list {res}: unexpected query {sorted(extra)}")
        kind, api, _ = RESOURCES[res]
        return {"kind": f"{kind}List", "apiVersion": api.split("/", 2)[-1],
                "metadata": {"resourceVersion": self._next_rv()}, "items": items}  # fmt: skip

    def _log(self, ns: str, name: str, query: dict[str, str]) -> tuple[int, str]:
        """``GET pods/{name}/log``: ``container``, ``previous``, ``tailLines``, as the API reference has them."""
        extra = set(query) - {"container", "previous", "tailLines"}
        if extra:
            raise self._violation(400, f"pods/log: unexpected query {sorted(extra)}")
        pod = self.objects.get(("pods", ns, name))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        containers = [c["name"] for c in pod.get("spec", {}).get("containers") or []]
        container = query.get("container") or (containers[0] if len(containers) == 1 else "")
        if container not in containers:
            raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}")
        previous = query.get("previous") == "true"
        text = self.logs.get((ns, name, container, previous))
        if text is None and previous:
            raise ApiError(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found')
        lines = (text or "").splitlines(keepends=True)
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]) :]
        return 200, "".join(lines)

    def _check_patch(self, ctype: str | None, body: Any, path: str) -> None:
        if ctype not in PATCH_TYPES:
            raise self._violation(415, f"PATCH {path}: Content-Type {ctype!r} is not a patch type")
        if ctype == JSON_PATCH:
            ok = isinstance(body, list) and all(
                isinstance(op, dict) and op.get("op") in {"add", "remove", "replace", "test"}
                and isinstance(op.get("path"), str) for op in body
            )  # fmt: skip
            if not ok:
                raise self._violation(400, f"PATCH {path}: not a JSON patch (RFC 6902): {body!r}")
        elif not isinstance(body, dict):
            raise self._violation(400, f"PATCH {path}: {ctype} body must be a JSON object")

    def _patch(self, obj: Obj, ctype: str | None, body: Any, path: str) -> None:
        self._check_patch(ctype, body, path)
        if ctype == "application/apply-patch+yaml":
            raise self._violation(400, f"PATCH {path}: server-side apply is not expected here")
        before = copy.deepcopy(obj.get("spec"))
        new = apply_json_patch(obj, body) if ctype == JSON_PATCH else merge_patch(obj, body)
        if new.get("metadata", {}).get("name") != obj["metadata"]["name"]:
            raise ApiError(422, "Invalid", "metadata.name: field is immutable")
        obj.clear()
        obj.update(new)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        if obj.get("spec") != before and obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}:
            obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1

    def _patch_scale(self, obj: Obj, ctype: str | None, body: Any, path: str) -> None:
        self._check_patch(ctype, body, path)
        new = apply_json_patch(_scale_of(obj), body) if ctype == JSON_PATCH else merge_patch(_scale_of(obj), body)
        replicas = new.get("spec", {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f"spec.replicas: Invalid value: {replicas!r}")
        extra = (set(body) - {"spec"}) | (set(body.get("spec", {})) - {"replicas"}) if isinstance(body, dict) else set()
        if extra:
            self.violations.append(f"PATCH {path}: a Scale patch may only set spec.replicas")
        obj["spec"]["replicas"] = replicas
        obj["metadata"]["resourceVersion"] = self._next_rv()

    def _evict(self, ns: str, name: str, ctype: str | None, body: Any) -> tuple[int, Obj]:
        path = f"/api/v1/namespaces/{ns}/pods/{name}/eviction"
        if ctype not in (None, "application/json"):  # the API server reads a missing one as JSON
            raise self._violation(415, f"POST {path}: Content-Type {ctype!r}")
        if not isinstance(body, dict) or body.get("kind") != "Eviction" or body.get("apiVersion") != "policy/v1":
            raise self._violation(400, f"POST {path}: body is not a policy/v1 Eviction: {body!r}")
        meta = body.get("metadata") or {}
        if meta.get("name") != name:
            raise self._violation(400, "name in URL does not match name in Eviction object")
        if meta.get("namespace") not in (None, ns):
            raise self._violation(400, "namespace in URL does not match namespace in Eviction")
        if ("pods", ns, name) not in self.objects:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        if self.pdb_refusals.get((ns, name), 0) > 0:
            self.pdb_refusals[(ns, name)] -= 1
            self.pdb_blocked.add((ns, name))
        elif (ns, name) in self.pdb_refusals:
            self.pdb_blocked.discard((ns, name))
        if (ns, name) in self.pdb_blocked:
            raise ApiError(
                429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                {"causes": [{"reason": "DisruptionBudget",
                             "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]},
            )  # fmt: skip
        del self.objects[("pods", ns, name)]
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "code": 201}  # fmt: skip


def _scale_of(obj: Obj) -> Obj:
    """The autoscaling/v1 Scale subresource view of a deployment or statefulset."""
    sel = obj["spec"].get("selector", {}).get("matchLabels", {})
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: obj["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion")},
        "spec": {"replicas": obj["spec"].get("replicas", 1)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items())),
        },
    }


def _field(obj: Obj, dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (and strategic merge for the map-only patches used here)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            raise ApiError(400, "BadRequest", f"strategic merge directive {key} not supported")
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def apply_json_patch(target: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 JSON patch: add, remove, replace (replace and remove need an existing path)."""
    doc = copy.deepcopy(target)
    for op in ops:
        keys = [k.replace("~1", "/").replace("~0", "~") for k in op["path"].split("/")[1:]]
        parent: Any = doc
        for key in keys[:-1]:
            if not isinstance(parent, dict) or key not in parent:
                raise ApiError(422, "Invalid", f"{op['op']} operation: missing path {op['path']}")
            parent = parent[key]
        last = keys[-1]
        if op["op"] in {"replace", "remove"} and last not in parent:
            raise ApiError(422, "Invalid", f"{op['op']} operation does not apply: doc is missing key {op['path']}")
        if op["op"] == "remove":
            del parent[last]
        elif op["op"] in {"add", "replace"}:
            if "value" not in op:
                raise ApiError(400, "BadRequest", f"{op['op']} without value")
            parent[last] = copy.deepcopy(op["value"])
    return doc


def parse_label_selector(text: str) -> Any:
    """A matcher for label selector syntax: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
    ``a notin (x)``, ``a``, ``!a``, joined by commas."""
    reqs = []
    for part in _split_selector(text):
        part = part.strip()
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", part):
            values = {v.strip() for v in m.group(3).split(",")}
            reqs.append((m.group(1), m.group(2), values))
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", part):
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", {m.group(3)}))
        elif m := re.fullmatch(r"(!?)([\w./-]+)", part):
            reqs.append((m.group(2), "!" if m.group(1) else "exists", set()))
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {part!r}")

    def match(labels: dict[str, str]) -> bool:
        for key, op, values in reqs:
            has, value = key in labels, labels.get(key)
            ok = {
                "=": has and value in values, "in": has and value in values,
                "!=": value not in values, "notin": value not in values,
                "exists": has, "!": not has,
            }[op]  # fmt: skip
            if not ok:
                return False
        return True

    return match


def _split_selector(text: str) -> Iterator[str]:
    depth, start = 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            yield text[start:i]
            start = i + 1
    if text[start:].strip():
        yield text[start:]
