"""What makes the double refuse what a real API server (and its admission) refuses.

Never imports ``orchestrator``: schemas come from ``kubernetes-validate`` (core kinds, the strict
variant that rejects unknown fields) and from the CRDs stored on the server (custom kinds).

* ``decode_errors``: a quantity (resources, ResourceQuota ``hard``, LimitRange) that does not
  parse, as the server's decoding refuses it -> 400.
* ``schema_errors``: the write's object against its kind's OpenAPI schema and, for a custom
  kind, its CRD's CEL rules (``cel``) -> 422.
* ``kind_errors``: ObjectMeta (name for the kind, labels, annotations: ``syntax``) and the
  built-in kinds' own validation that no schema carries: a Job's (CronJob's) restartPolicy
  Never or OnFailure, a workload's Always; a Job name usable as a label value, a CronJob's at
  most 52 characters; pod template labels and annotations; label selectors; ResourceQuota
  ``hard`` names and values (not negative, integers where counted); a CRD named
  ``<plural>.<group>`` -> 422.
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

from . import syntax
from .cel import cel_errors

K8S_VERSION = "1.30"
EXTENDED = re.compile(r"^[a-z0-9.-]+\.[a-z]+/")  # e.g. nvidia.com/gpu (not kubernetes.io/*)
SERVER_FIELDS = ("status",)
META_SERVER = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")


_GO_FLAGS = re.compile(r"\(\?([ims]+)\)")


def go_pattern(pattern: str) -> str:
    """A CRD ``pattern`` (Go RE2 syntax) as Python's ``re`` reads it: RE2 lets a flag group stand
    anywhere (``^(?i)[a-z]...``, AdmissionCheck ``parameters.kind``) and applies it from there on,
    Python only at the start: a top-level one becomes a scoped group to the end."""
    found = _GO_FLAGS.search(pattern)
    if found is None or found.start() == 0:
        return pattern
    before = pattern[:found.start()]
    if before.count("(") - before.count("\\(") != before.count(")") - before.count("\\)"):
        return pattern  # inside a group: left as written (no CRD infra meets has one)
    return f"{before}(?{found.group(1)}:{pattern[found.end():]})"


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if isinstance(out.get("pattern"), str):
        out["pattern"] = go_pattern(out["pattern"])
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


def schema_errors(obj: dict[str, Any], crds: list[dict[str, Any]], old: dict[str, Any] | None = None) -> list[str]:
    body = _written(obj)
    group, _, version = obj["apiVersion"].rpartition("/")
    crd = next((c for c in crds if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == obj["kind"]), None)
    if crd is None:  # a built-in kind: the answer depends on the body only (a CRD takes seconds to check)
        return list(_core_errors(json.dumps(body, sort_keys=True)))
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    validator = _crd_validator(crd["metadata"]["name"], version, crd["metadata"].get("resourceVersion"), served)
    errors = _errors(validator, {k: v for k, v in body.items() if k != "metadata"})
    return errors or cel_errors(obj, old, served["schema"]["openAPIV3Schema"])


_VALIDATORS: dict[tuple[Any, ...], Any] = {}


def _crd_validator(name: str, version: str, resource_version: Any, served: dict[str, Any]) -> Any:
    """The compiled schema of one served version of a stored CRD (a CRD's schema can be half a
    megabyte: compiled once per stored revision)."""
    key = (name, version, resource_version)
    if key not in _VALIDATORS:
        import jsonschema

        schema = _strict(served["schema"]["openAPIV3Schema"])
        schema.get("properties", {}).pop("metadata", None)
        _VALIDATORS[key] = jsonschema.Draft7Validator(schema)
    return _VALIDATORS[key]


@lru_cache(maxsize=512)
def _core_errors(body_json: str) -> tuple[str, ...]:
    body = json.loads(body_json)
    validator = _core(body["apiVersion"], body["kind"])
    return () if validator is None else tuple(_errors(validator, body))


def _errors(validator: Any, body: dict[str, Any]) -> list[str]:
    errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


quantity = syntax.parse_quantity


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


# --- decoding and the built-in kinds' own validation ------------------------------------------

WORKLOADS = {("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"),
             ("apps/v1", "ReplicaSet"), ("v1", "ReplicationController")}
JOBS = {("batch/v1", "Job"): "spec.template", ("batch/v1", "CronJob"): "spec.jobTemplate.spec.template"}
# ValidateResourceQuotaResourceName: a name without "/" must be one of these (helper.IsStandardQuotaResourceName)
STANDARD_QUOTA = {"cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
                  "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods",
                  "quotas", "services", "replicationcontrollers", "secrets", "persistentvolumeclaims", "configmaps",
                  "services.nodeports", "services.loadbalancers", "resourcequotas"}
INTEGER_QUOTA = {"pods", "quotas", "services", "replicationcontrollers", "secrets", "persistentvolumeclaims",
                 "configmaps", "services.nodeports", "services.loadbalancers", "resourcequotas"}


def _at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _templates(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, pod template) of a workload, Job or CronJob."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    path = JOBS.get(key) or ("spec.template" if key in WORKLOADS or key == ("v1", "PodTemplate") else None)
    if key == ("v1", "PodTemplate"):
        path = "template"
    template = _at(obj, path) if path else None
    return [(path, template)] if isinstance(template, dict) else []


def _quantity_fields(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    """(path, value) of every quantity of a built-in kind that the server decodes as one."""
    found: list[tuple[str, Any]] = []

    def add(path: str, mapping: Any) -> None:
        if isinstance(mapping, dict):
            found.extend((f"{path}[{k}]", v) for k, v in mapping.items())

    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "ResourceQuota" and obj.get("apiVersion") == "v1":
        add("spec.hard", spec.get("hard"))
    if kind == "LimitRange" and obj.get("apiVersion") == "v1":
        for i, item in enumerate(spec.get("limits") or []):
            for field in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                add(f"spec.limits[{i}].{field}", item.get(field))
    pods = [("spec", spec)] if (obj.get("apiVersion"), kind) == ("v1", "Pod") else []
    pods += [(f"{path}.spec", t.get("spec")) for path, t in _templates(obj)]
    for where, pod in pods:
        for group in ("initContainers", "containers"):
            for i, c in enumerate((pod or {}).get(group) or []):
                for field in ("requests", "limits"):
                    add(f"{where}.{group}[{i}].resources.{field}", (c.get("resources") or {}).get(field))
    return found


def decode_errors(obj: dict[str, Any]) -> list[str]:
    """Why decoding the body fails (the server answers 400 before any validation)."""
    errors = []
    for _, value in _quantity_fields(obj):
        try:
            syntax.parse_quantity(value)
        except ValueError as exc:
            errors.append(str(exc))
    return errors


def _selectors(value: Any, path: str) -> list[str]:
    """The labels of every label selector (``matchLabels``) and the keys of its expressions."""
    errors = []
    if isinstance(value, dict):
        for k, v in value.items():
            at = f"{path}.{k}" if path else k
            if k == "matchLabels" and isinstance(v, dict) and all(isinstance(x, str) for x in v.values()):
                errors += syntax.label_errors(v, at)
            elif k == "matchExpressions" and isinstance(v, list):
                for i, req in enumerate(v):
                    key = str((req or {}).get("key", "")) if isinstance(req, dict) else ""
                    errors += [syntax.invalid(f"{at}[{i}].key", key, m) for m in syntax.is_qualified_name(key)]
            else:
                errors += _selectors(v, at)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            errors += _selectors(v, f"{path}[{i}]")
    return errors


def _restart_policy(obj: dict[str, Any]) -> list[str]:
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in JOBS:
        allowed = ("OnFailure", "Never")
    elif key in WORKLOADS:
        allowed = ("Always",)
    elif key == ("v1", "Pod"):
        allowed = ("Always", "OnFailure", "Never")
    else:
        return []
    pods = [("spec", obj.get("spec") or {})] if key == ("v1", "Pod") else \
        [(f"{path}.spec", t.get("spec") or {}) for path, t in _templates(obj)]
    errors = []
    for where, pod in pods:
        policy = pod.get("restartPolicy") or "Always"  # SetDefaults_PodSpec
        if policy not in allowed:
            supported = ", ".join(f'"{a}"' for a in allowed)
            errors.append(f'{where}.restartPolicy: Unsupported value: "{policy}": supported values: {supported}')
    return errors


def _resource_quota(obj: dict[str, Any]) -> list[str]:
    errors = []
    for path, value in _quantity_fields(obj):
        name = path[len("spec.hard["):-1]
        errors += [syntax.invalid(path, name, m) for m in syntax.is_qualified_name(name)]
        if "/" not in name and name not in STANDARD_QUOTA and not name.startswith("hugepages-"):
            errors.append(syntax.invalid(path, name, "must be a standard resource for quota"))
        q = syntax.parse_quantity(value)
        if q < 0:
            errors.append(syntax.invalid(path, value, "must be greater than or equal to 0"))
        if (name in INTEGER_QUOTA or name.startswith("count/")) and q != q.to_integral_value():
            errors.append(syntax.invalid(path, value, "must be an integer"))
    return errors


def kind_errors(obj: dict[str, Any], builtin: bool) -> list[str]:
    """ObjectMeta, and for a built-in kind the validation its strategy adds to the schema."""
    errors = syntax.meta_errors(obj)
    if not builtin:
        return errors
    key = (obj.get("apiVersion"), obj.get("kind"))
    name = (obj.get("metadata") or {}).get("name") or ""
    for path, template in _templates(obj):
        meta = template.get("metadata") or {}
        errors += syntax.label_errors(meta.get("labels"), f"{path}.labels")
        errors += syntax.annotation_errors(meta.get("annotations"), f"{path}.annotations")
    if key == ("batch/v1", "Job") and not (obj.get("spec") or {}).get("manualSelector"):
        # the server labels the Job's pods with batch.kubernetes.io/job-name: <name>
        errors += [syntax.invalid("spec.template.labels", name, m) for m in syntax.is_label_value(name)]
    if key == ("batch/v1", "CronJob") and len(name) > 52:
        errors.append(syntax.invalid("metadata.name", name, "must be no more than 52 characters"))
    errors += _restart_policy(obj)
    if key[1] != "CustomResourceDefinition":  # its schemas name fields "matchLabels" too
        errors += _selectors({k: v for k, v in obj.items() if k not in ("metadata", "status")}, "")
    if key == ("v1", "ResourceQuota"):
        errors += _resource_quota(obj)
    if key == ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        spec = obj.get("spec") or {}
        expected = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        if name != expected:
            errors.append(syntax.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    return errors


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
