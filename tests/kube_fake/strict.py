"""What makes the double refuse what a real API server (and its admission) refuses.

Never imports ``orchestrator``: schemas come from ``kubernetes-validate`` (core kinds, the strict
variant that rejects unknown fields) and from the CRDs stored on the server (custom kinds).

* ``schema_errors``: the write's object against its kind's OpenAPI schema -> 422.
* ``admission_errors``: container ``requests`` above ``limits`` (after the namespace's
  LimitRange defaults, as LimitRanger fills them on the Job's pods), an extended resource
  (``nvidia.com/gpu``) whose request differs from its limit -> 422.
* ``immutable_errors``: ``roleRef`` of a (Cluster)RoleBinding, a Job's ``spec.template`` -> 422.
* ``Ownership``: server-side-apply field ownership per manager; a field another manager set to
  a different value is a 409 conflict naming that manager unless ``force=true``; fields a
  manager stops applying are removed only if no other manager owns them.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache, lru_cache
from typing import Any

K8S_VERSION = "1.30"
EXTENDED = re.compile(r"^[a-z0-9.-]+\.[a-z]+/")  # e.g. nvidia.com/gpu (not kubernetes.io/*)
SERVER_FIELDS = ("status",)
META_SERVER = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@cache
def _core(api_version: str, kind: str) -> Any:
    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    version = max((v for v in utils.all_versions() if v.startswith(K8S_VERSION + ".")),
                  key=lambda v: int(v.split(".")[2]))
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _written(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as a client wrote it (server-set fields dropped)."""
    body = {k: v for k, v in obj.items() if k not in SERVER_FIELDS}
    body["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in META_SERVER}
    return body


def schema_errors(obj: dict[str, Any], crds: list[dict[str, Any]]) -> list[str]:
    body = _written(obj)
    group, _, version = obj["apiVersion"].rpartition("/")
    crd = next((c for c in crds if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == obj["kind"]), None)
    if crd is None:  # a built-in kind: the answer depends on the body only (a CRD takes seconds to check)
        return list(_core_errors(json.dumps(body, sort_keys=True)))
    import jsonschema

    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema = _strict(served["schema"]["openAPIV3Schema"])
    schema.get("properties", {}).pop("metadata", None)
    body.pop("metadata")
    return _errors(jsonschema.Draft7Validator(schema), body)


@lru_cache(maxsize=512)
def _core_errors(body_json: str) -> tuple[str, ...]:
    body = json.loads(body_json)
    validator = _core(body["apiVersion"], body["kind"])
    return () if validator is None else tuple(_errors(validator, body))


def _errors(validator: Any, body: dict[str, Any]) -> list[str]:
    errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
          "Ti": 2**40, "m": 0.001}


def quantity(value: Any) -> float:
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _pod_specs(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return [("spec", spec)]
    template = (spec.get("template") or {}).get("spec")
    return [("spec.template.spec", template)] if isinstance(template, dict) else []


def _limit_defaults(limit_ranges: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    default, default_request = {}, {}
    for lr in limit_ranges:
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type") == "Container":
                default.update(item.get("default") or {})
                default_request.update(item.get("defaultRequest") or {})
    return default, default_request


def admission_errors(obj: dict[str, Any], limit_ranges: list[dict[str, Any]]) -> list[str]:
    """Requests above limits, and extended resources whose request is not their limit, after
    LimitRanger's defaults (a limit missing takes the default; a request missing takes the
    limit given, else the default request)."""
    default, default_request = _limit_defaults(limit_ranges)
    errors = []
    for where, pod in _pod_specs(obj):
        for group in ("initContainers", "containers"):
            for i, c in enumerate(pod.get(group) or []):
                res = c.get("resources") or {}
                limits = {**default, **(res.get("limits") or {})}
                requests = {**default_request, **{k: v for k, v in limits.items()
                                                  if k in (res.get("limits") or {})}, **(res.get("requests") or {})}
                at = f"{where}.{group}[{i}].resources"
                for name, req in requests.items():
                    try:
                        if EXTENDED.match(name) and (name not in limits or quantity(req) != quantity(limits[name])):
                            errors.append(f"{at}.requests[{name}]: Invalid value: must be equal to {name} limit")
                        elif name in limits and quantity(req) > quantity(limits[name]):
                            errors.append(f"{at}.requests: Invalid value: {req!r}: must be less than or equal "
                                          f"to {name} limit of {limits[name]}")
                    except ValueError as exc:
                        errors.append(f"{at}: {exc}")
    return errors


def immutable_errors(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    if old is None:
        return []
    if new.get("kind") in ("RoleBinding", "ClusterRoleBinding") and old.get("roleRef") != new.get("roleRef"):
        return ["roleRef: Invalid value: cannot change roleRef"]
    if new.get("kind") == "Job":
        before, after = (old.get("spec") or {}).get("template"), (new.get("spec") or {}).get("template")
        if before != after:
            return ["spec.template: Invalid value: field is immutable"]
    return []


# --- server-side apply ---------------------------------------------------------------------------

Path_ = tuple[str, ...]


def leaves(obj: Any, prefix: Path_ = ()) -> dict[Path_, Any]:
    """Every leaf (scalars and lists are leaves: lists are atomic here) by path; an empty map is
    a leaf that sets the map if missing but never clears anyone's fields in it (``_set``)."""
    if isinstance(obj, dict) and obj:
        out: dict[Path_, Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, (*prefix, str(k))))
        return out
    return {prefix: obj}


def _applied(body: dict[str, Any]) -> dict[Path_, Any]:
    fields = leaves(_written(body))
    for skip in (("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")):
        fields.pop(skip, None)
    return fields


def _set(obj: dict[str, Any], path: Path_, value: Any) -> None:
    for k in path[:-1]:
        nxt = obj.get(k)
        if not isinstance(nxt, dict):
            nxt = obj[k] = {}
        obj = nxt
    if value == {} and isinstance(obj.get(path[-1]), dict):
        return
    obj[path[-1]] = copy.deepcopy(value)


def _unset(obj: dict[str, Any], path: Path_) -> None:
    trail = []
    for k in path[:-1]:
        trail.append((obj, k))
        obj = obj.get(k)
        if not isinstance(obj, dict):
            return
    obj.pop(path[-1], None)
    for parent, k in reversed(trail):
        if parent[k] == {}:
            parent.pop(k)


class Ownership:
    """Who owns which field of each object: ``{key: {manager: {path}}}``."""

    def __init__(self) -> None:
        self.owners: dict[Any, dict[str, set[Path_]]] = {}

    def conflicts(self, key: Any, old: dict[str, Any] | None, body: dict[str, Any], manager: str) -> list[str]:
        if old is None:
            return []
        current = leaves(old)
        result = []
        for path, value in _applied(body).items():
            for other, paths in self.owners.get(key, {}).items():
                if other != manager and path in paths and value != {} and current.get(path) != value:
                    result.append(f'conflict with "{other}": .{".".join(path)}')
        return sorted(result)

    def apply(self, key: Any, old: dict[str, Any] | None, body: dict[str, Any], manager: str) -> dict[str, Any]:
        """The merged object: ``old``, minus fields only ``manager`` owned and no longer applies,
        plus ``body``; ``manager`` then owns what it applied (taken from others on force)."""
        owners = self.owners.setdefault(key, {})
        applied = _applied(body)
        merged = copy.deepcopy(old) if old is not None else {}
        for path in owners.get(manager, set()) - set(applied):
            if not any(path in p for m, p in owners.items() if m != manager):
                _unset(merged, path)
        for k in ("apiVersion", "kind"):
            merged[k] = body[k]
        merged.setdefault("metadata", {}).update({k: v for k, v in (body.get("metadata") or {}).items()
                                                  if k in ("name", "namespace")})
        for path, value in applied.items():
            _set(merged, path, value)
        for m in owners:
            if m != manager:
                owners[m] -= set(applied)
        owners[manager] = set(applied)
        return merged

    def record_update(self, key: Any, obj: dict[str, Any], manager: str) -> None:
        """A create (POST) owns every field it wrote."""
        self.owners[key] = {manager: set(_applied(obj))}

    def managed_fields(self, key: Any) -> list[dict[str, Any]]:
        return [{"manager": m, "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:" + ".".join(p): {} for p in sorted(paths)}}
                for m, paths in sorted(self.owners.get(key, {}).items()) if paths]
