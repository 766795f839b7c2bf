"""An in-memory Kubernetes API server on 127.0.0.1 for the client tests.

It speaks just enough of the REST API for a client: GET/LIST (label selectors), server-side
apply (``PATCH`` with ``application/apply-patch+yaml``), POST, DELETE, pods/log (with
``follow``), ``/version``. What exists where comes from Kubernetes, never from the code under
test (``discovery``): the built-in routes of the official client's generated API and the CRDs
stored here. A path a real server does not serve is a 404 (unknown group, version or
resource, a cluster-scoped resource under ``namespaces/<ns>``), a method it does not route is
a 405 (create at the all-namespaces path of a namespaced kind), a body whose apiVersion, kind
or namespace does not fit its path is a 400. Faults are injected with :meth:`FakeKube.fail_next` (e.g. a
storm of 429s with ``Retry-After``, 500s, 409 conflicts); every request is recorded in
``requests``. With ``auto_ready`` (default) applied workloads report themselves ready and CRDs
``Established`` (``wire.ready``). Status bodies, selectors and body checks live in ``wire``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from . import discovery, kueue, strict, wire
from .discovery import Refusal, Resource, Route
from .wire import APPLY, Fault, matches, misfit, ready, status

SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


class FakeKube:
    def __init__(self) -> None:
        self.store: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.logs: dict[tuple[str, str], list[str]] = {}
        self.log_delay = 0.01
        self.auto_ready = True
        self.on_create: list = []  # callables(obj) run after a POST or an apply creates an object
        self._rv = 0
        self._server: ThreadingHTTPServer | None = None
        self.ownership = strict.Ownership()
        self.on_create.append(self._endpoints_controller)
        for name in SYSTEM_NAMESPACES:  # what every API server has
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeKube:
        fake = self

        class Handler(_Handler):
            kube = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "fake-token"}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "tester"}}],
        }
        path.write_text(yaml.safe_dump(cfg))
        return path

    # --- test API -------------------------------------------------------------------------------

    def fail_next(self, n: int, status: int, retry_after: float | str | None = None, path_regex: str | None = None,
                  method: str | None = None, reason: str = "", causes: list[dict] | None = None) -> None:
        self.faults.append(Fault(n, status, None if retry_after is None else str(retry_after),
                                 re.compile(path_regex) if path_regex else None, method, reason, causes))

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if it had been created (seeding, or a controller's doing)."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.setdefault("metadata", {})
        with self.lock:
            stored = self._stamp(copy.deepcopy(obj), None)
            self.store[(res.group, res.plural, meta.get("namespace") or "", meta["name"])] = stored
        return stored

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        res = self.resource(api_version, kind)
        return self.store.get((res.group, res.plural, namespace or "", name))

    def resource(self, api_version: str, kind: str) -> Resource:
        """Where a kind lives on this server (built in, or served by a stored CRD)."""
        res = discovery.builtin().kinds.get((api_version, kind)) or self._custom().kinds.get((api_version, kind))
        if res is None:
            raise LookupError(f"this server does not serve {kind} ({api_version}): a typo, or its CRD is not installed")
        return res

    def crds(self) -> list[dict[str, Any]]:
        with self.lock:
            return [o for (g, plural, _, _), o in self.store.items()
                    if (g, plural) == (discovery.CRD_GROUP, discovery.CRD_PLURAL)]

    def _custom(self) -> discovery.Table:
        return discovery.custom(self.crds())

    def objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [o for o in self.store.values() if kind is None or o.get("kind") == kind]

    def paths(self, method: str | None = None) -> list[str]:
        return [r["path"] for r in self.requests if method is None or r["method"] == method]

    # --- internals ------------------------------------------------------------------------------

    def _endpoints_controller(self, obj: dict[str, Any]) -> None:
        """With ``auto_ready``, a new Service gets a ready EndpointSlice (its pods came up)."""
        if self.auto_ready and obj.get("kind") == "Service" and obj.get("apiVersion") == "v1":
            self.put(wire.endpoint_slice(obj))

    def _stamp(self, obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        if old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            meta["generation"] = 1
        else:
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            changed = obj.get("spec") != old.get("spec")
            meta["generation"] = old["metadata"].get("generation", 1) + (1 if changed else 0)
            if "status" in old:
                obj.setdefault("status", old["status"])
        if self.auto_ready and (old is not None or not obj.get("status")):
            ready(obj)
        return obj

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                path_ok = f.path_regex is None or f.path_regex.search(path)
                if f.remaining > 0 and f.method in (None, method) and path_ok:
                    f.remaining -= 1
                    return f
        return None


def _restore(ownership: strict.Ownership, key: Any, old: Any, before: Any) -> strict.Ownership:
    """Ownership as it was before a refused apply."""
    if before is None:
        ownership.owners.pop(key, None)
    else:
        ownership.owners[key] = before
    return ownership


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        kube = self.kube
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        raw = self._body()
        record = {"method": method, "path": url.path, "query": query,
                  "content_type": self.headers.get("Content-Type"), "auth": self.headers.get("Authorization")}
        kube.requests.append(record)
        fault = kube.fault_for(method, url.path)
        if fault:
            record["status"] = fault.status
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            default = {429: "TooManyRequests", 409: "Conflict", 500: "InternalError"}.get(fault.status, "")
            reason = fault.reason or default
            return self._send(fault.status, status(fault.status, reason, f"injected {fault.status}", fault.causes),
                              headers)
        if url.path == "/version":
            return self._send(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake"})
        route = discovery.resolve(method, url.path, kube.crds())
        if isinstance(route, Refusal):
            record["status"] = route.code
            return self._send(route.code, status(route.code, route.reason, route.message))
        if (route.resource.group, route.resource.plural, route.sub) == ("", "pods", "log"):
            code, body = self._log(route.namespace, route.name, query)  # outside the lock: it may stream
        elif route.sub:
            code, body = 501, status(501, "NotImplemented", f"the test double does not implement {route.sub}")
        else:
            with kube.lock:
                code, body = self._route(method, route, query, raw)
        if code == -1:  # streamed already
            return
        record["status"] = code
        self._send(code, body)

    def _refuse(self, res: Resource, ns: str, old: dict[str, Any] | None, obj: dict[str, Any]):
        """A real server's refusal of this write, in the order a server meets it: a missing
        namespace (404), a body that does not decode (400), a schema, CEL, ObjectMeta, kind,
        immutability or admission violation (422), a denial by an installed Kueue webhook
        (403); None if it would be accepted."""
        kube = self.kube
        if res.namespaced and ns and ("", "namespaces", "", ns) not in kube.store:
            return 404, status(404, "NotFound", f'namespaces "{ns}" not found')
        if not res.custom:
            undecodable = strict.decode_errors(obj)
            if undecodable:
                return 400, status(400, "BadRequest", f'{res.kind} in version "{res.version}" cannot be handled as a '
                                                      f"{res.kind}: {undecodable[0]}")
        limit_ranges = [o for (g, pl, n, _), o in kube.store.items() if (g, pl, n) == ("", "limitranges", ns)]
        errors = (strict.schema_errors(obj, kube.crds(), old) + strict.kind_errors(obj, builtin=not res.custom)
                  + strict.immutable_errors(old, obj) + strict.admission_errors(obj, limit_ranges))
        name = (obj.get("metadata") or {}).get("name")
        if errors:
            causes = [{"reason": "FieldValueInvalid", "message": e} for e in errors]
            group = f".{res.group}" if res.group else ""
            return 422, status(422, "Invalid", f'{res.kind}{group} "{name}" is invalid: ' + "; ".join(errors), causes)
        configs = [o for (g, pl, _, _), o in kube.store.items()
                   if (g, pl) == ("admissionregistration.k8s.io", "validatingwebhookconfigurations")]
        denied = kueue.denial(obj, old, res.plural, configs)
        if denied:
            return 403, status(403, "Forbidden", kueue.message(*denied))
        return None

    def _route(self, method: str, route: Route, query: dict[str, str], raw: bytes):  # noqa: C901 - a router
        res, ns, name = route.resource, route.namespace, route.name
        kube, key, plural = self.kube, (res.group, res.plural, ns, name), res.plural
        if method == "GET" and name is None:
            items = [copy.deepcopy(o) for (g, pl, n, _), o in sorted(kube.store.items())
                     if g == res.group and pl == plural and (not ns or n == ns)
                     and matches(o["metadata"].get("labels") or {}, query.get("labelSelector"))]
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
            return 200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": str(kube._rv)}, "items": items}
        if method == "GET":
            obj = kube.store.get(key)
            if obj is None:
                return 404, status(404, "NotFound", f'{plural} "{name}" not found')
            return 200, {**obj, "apiVersion": res.api_version}
        if method == "POST" or (method == "PATCH" and self.headers.get("Content-Type") == APPLY):
            problem = misfit(raw, self.headers.get("Content-Type"), res, ns)
            if problem:
                return 400, status(400, "BadRequest", problem)
        if method == "PATCH":
            if self.headers.get("Content-Type") != "application/apply-patch+yaml":
                return 415, status(415, "UnsupportedMediaType", "only server-side apply is supported here")
            if not query.get("fieldManager"):
                return 400, status(400, "BadRequest", "fieldManager is required for apply patch")
            obj = wire.load_yaml(raw) or {}
            if not obj.get("kind") or (obj.get("metadata") or {}).get("name") != name:
                return 400, status(400, "BadRequest", "apply body must name the object of the path")
            if ns:
                obj["metadata"]["namespace"] = ns
            else:
                obj["metadata"].pop("namespace", None)
            old = kube.store.get(key)
            manager = query["fieldManager"]
            conflicts = kube.ownership.conflicts(key, old, obj, manager)
            if conflicts and query.get("force") != "true":
                return 409, status(409, "Conflict", f"Apply failed with {len(conflicts)} conflict(s): "
                                    + "; ".join(conflicts),
                                    [{"type": "FieldManagerConflict", "message": c, "field": c.split(": ", 1)[1]}
                                     for c in conflicts])
            self._owners_before = copy.deepcopy(kube.ownership.owners.get(key))
            merged = kube.ownership.apply(key, None if old is None else copy.deepcopy(old), obj, manager)
            refusal = self._refuse(res, ns, old, merged)
            if refusal:
                kube.ownership = _restore(kube.ownership, key, old, self._owners_before)
                return refusal
            merged["metadata"]["managedFields"] = kube.ownership.managed_fields(key)
            kube.store[key] = kube._stamp(merged, old)
            if old is None:
                for hook in kube.on_create:
                    hook(kube.store[key])
            return (200 if old else 201), kube.store[key]
        if method == "POST":
            obj = json.loads(raw or b"{}")
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                meta["name"] = meta.get("generateName", "obj-") + uuid.uuid4().hex[:5]
            if ns:
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            key = (res.group, plural, ns, meta["name"])
            if key in kube.store:
                return 409, status(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists')
            refusal = self._refuse(res, ns, None, obj)
            if refusal:
                return refusal
            kube.ownership.record_update(key, obj, query.get("fieldManager") or "unknown")
            kube.store[key] = kube._stamp(obj, None)
            for hook in kube.on_create:
                hook(kube.store[key])
            return 201, kube.store[key]
        if method == "DELETE" and name is not None:
            if kube.store.pop(key, None) is None:
                return 404, status(404, "NotFound", f'{plural} "{name}" not found')
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        # a real server routes it (discovery said so), but this double does not do it (PUT, deletecollection)
        return 501, status(501, "NotImplemented", f"the test double does not implement {method} {plural}")

    def _log(self, ns: str, pod: str, query: dict[str, str]):
        lines = self.kube.logs.get((ns, pod))
        if lines is None:
            return 404, status(404, "NotFound", f'pods "{pod}" not found')
        if query.get("follow") != "true":
            return 200, "".join(f"{line}\n" for line in lines).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        for line in lines:
            self.wfile.write(f"{line}\n".encode())
            self.wfile.flush()
            time.sleep(self.kube.log_delay)
        return -1, None

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")
