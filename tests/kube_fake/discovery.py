"""Where objects live on a Kubernetes API server, learned from Kubernetes' own data.

Built-in kinds: the official ``kubernetes`` Python client is generated from the API server's
OpenAPI document, and each of its operations carries the REST path and method it calls
(``method='POST', resource_path='/api/v1/namespaces/{namespace}/resourcequotas'``) and the
model it returns (``V1ResourceQuotaList``). Its source files are read (not imported: that is
slow) once per process into a table of path templates -> methods, and of resources
(group, version, plural, kind, namespaced). Custom kinds: the CustomResourceDefinitions stored
in the fake server (``spec.group``, ``spec.names``, ``spec.scope``, served versions), as the
apiextensions server does. Nothing here knows what ``infra`` asks for: it must never import
``orchestrator`` (``tests/unit/test_kube_fake.py`` checks).

Request paths are split like the API server's ``RequestInfoFactory`` does: ``namespaces/<ns>``
scopes the rest, except for the Namespace's own subresources (``status``, ``finalize``).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_OPERATION = re.compile(r"method='(\w+)',\s*resource_path='([^']+)'")
_RESPONSE = re.compile(r"""'200': "(\w+)",""")
_TEMPLATE = re.compile(r"^/(?:api/(v[^/{}]+)|apis/([^/{}]+)/(v[^/{}]+))/(.+)$")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
CRD_GROUP, CRD_PLURAL = "apiextensions.k8s.io", "customresourcedefinitions"
_COLLECTION, _ITEM, _SUB = frozenset({"GET", "POST", "DELETE"}), frozenset({"GET", "PUT", "PATCH", "DELETE"}), \
    frozenset({"GET", "PUT", "PATCH"})


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


@dataclass
class Table:
    resources: dict[tuple[str, str, str], Resource]  # (group, version, plural)
    templates: dict[str, frozenset[str]]  # "/api/v1/namespaces/{namespace}/pods/{name}/log" -> {"GET"}
    kinds: dict[tuple[str, str], Resource] = field(init=False)  # (apiVersion, kind)

    def __post_init__(self) -> None:
        self.kinds = {(r.api_version, r.kind): r for r in self.resources.values()}


@dataclass(frozen=True)
class Route:
    resource: Resource
    namespace: str  # "" outside a namespace
    name: str | None
    sub: str | None


@dataclass(frozen=True)
class Refusal:
    code: int
    reason: str
    message: str


NOT_FOUND = Refusal(404, "NotFound", "the server could not find the requested resource")
NOT_ALLOWED = Refusal(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def _client_api_dir() -> Path:
    spec = importlib.util.find_spec("kubernetes")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the kubernetes Python client (its generated API modules are the route table)")
    return Path(next(iter(spec.submodule_search_locations))) / "client" / "api"


def _operations(text: str) -> list[tuple[str, str, str | None]]:
    """(method, path template, response model of 200) of each operation in one generated module."""
    paths: dict[str, tuple[str, str]] = {}
    types: dict[str, str | None] = {}
    for chunk in text.split("\n    def ")[1:]:
        name = chunk[: chunk.index("(")]
        if name.startswith("_") and name.endswith("_serialize"):
            m = _OPERATION.search(chunk)
            if m:
                paths[name[1 : -len("_serialize")]] = (m.group(1), m.group(2))
        elif not name.startswith("_") and not name.endswith(("_with_http_info", "_without_preload_content")):
            m = _RESPONSE.search(chunk)
            types[name] = m.group(1) if m else None
    return [(method, path, types.get(op)) for op, (method, path) in paths.items()]


def _split(rest: str) -> tuple[bool, list[str]]:
    """(namespaced path?, the parts after the namespace) like the API server's request parsing."""
    parts = rest.split("/")
    if parts[0] == "namespaces" and len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
        return True, parts[2:]
    return False, parts


@functools.cache
def builtin() -> Table:
    """The built-in API of the Kubernetes release the installed client was generated from."""
    templates: dict[str, set[str]] = {}
    kinds: dict[tuple[str, str, str], str] = {}
    created: dict[tuple[str, str, str], str] = {}  # kinds that can only be created (reviews, bindings)
    namespaced: set[tuple[str, str, str]] = set()
    for module in sorted(_client_api_dir().glob("*_api.py")):
        for method, path, response in _operations(module.read_text()):
            m = _TEMPLATE.match(path)
            if not m or "{group}" in path or "{plural}" in path:
                continue
            version = m.group(1) or m.group(3)
            group = m.group(2) or ""
            templates.setdefault(path, set()).add(method)
            in_ns, parts = _split(m.group(4))
            gvr = (group, version, parts[0])
            if in_ns:
                namespaced.add(gvr)
            model = re.match(rf"^(?:[A-Z][a-z]+)*V{version[1:]}(?=[A-Z])", response or "")
            if len(parts) != 1 or not model:
                continue
            if method == "GET" and response.endswith("List"):  # CoreV1EventList, V1ResourceQuotaList
                kinds[gvr] = response[model.end() : -len("List")]
            elif method == "POST":
                created[gvr] = response[model.end() :]
    resources = {gvr: Resource(*gvr, kind, gvr in namespaced) for gvr, kind in {**created, **kinds}.items()}
    return Table(resources, {path: frozenset(methods) for path, methods in templates.items()})


def _condition(obj: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def custom(crds: list[dict[str, Any]]) -> Table:
    """What the apiextensions server serves for these CRDs: served versions of those whose names
    were accepted (or that are Established); both ``spec.subresources`` forms are read."""
    resources: dict[tuple[str, str, str], Resource] = {}
    templates: dict[str, frozenset[str]] = {}
    for crd in crds:
        if not (_condition(crd, "Established") or _condition(crd, "NamesAccepted")):
            continue
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        ns = spec.get("scope", "Namespaced") == "Namespaced"
        for version in spec.get("versions") or []:
            if not version.get("served"):
                continue
            res = Resource(spec["group"], version["name"], names["plural"], names["kind"], ns, custom=True)
            resources[(res.group, res.version, res.plural)] = res
            scoped = f"{res.prefix}/namespaces/{{namespace}}/{res.plural}" if ns else f"{res.prefix}/{res.plural}"
            templates[scoped] = _COLLECTION
            templates[f"{scoped}/{{name}}"] = _ITEM
            if ns:
                templates[f"{res.prefix}/{res.plural}"] = frozenset({"GET"})
            for sub in (version.get("subresources") or spec.get("subresources") or {}):
                templates[f"{scoped}/{{name}}/{sub}"] = _SUB
    return Table(resources, templates)


def resolve(method: str, path: str, crds: list[dict[str, Any]]) -> Route | Refusal:
    """The resource a request addresses, or how a real server refuses it (404 or 405)."""
    m = _TEMPLATE.match(path)
    if not m or "" in m.group(4).split("/"):
        return NOT_FOUND
    version, group = m.group(1) or m.group(3), m.group(2) or ""
    in_ns, parts = _split(m.group(4))
    namespace = m.group(4).split("/")[1] if in_ns else ""
    gvr = (group, version, parts[0])
    table = builtin()
    res = table.resources.get(gvr)
    if res is None:
        table = custom(crds)
        res = table.resources.get(gvr)
    if res is None:
        return NOT_FOUND
    name = parts[1] if len(parts) > 1 else None
    sub = "/".join(parts[2:]) or None
    template = res.prefix + ("/namespaces/{namespace}" if in_ns else "") + f"/{res.plural}" \
        + ("/{name}" if name else "") + (f"/{sub}" if sub else "")
    methods = table.templates.get(template)
    if methods is None:
        return NOT_FOUND
    if method not in methods:
        # the apiextensions server hands a request whose scope does not fit the CRD's to the next
        # handler (a 404); built-in routes answer 405 for a method they do not register
        return NOT_FOUND if res.custom and not in_ns and res.namespaced else NOT_ALLOWED
    return Route(res, namespace, name, sub)
