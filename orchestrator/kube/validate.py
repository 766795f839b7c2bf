"""Schema validation of rendered manifests, offline.

Core kinds are checked with ``kubernetes-validate`` (strict: unknown fields are errors)
against the bundled OpenAPI schemas closest to the blueprint's Kubernetes version. Custom
resources (Kueue, Seldon) are checked with ``jsonschema`` against their CRDs'
``openAPIV3Schema``, made strict the same way (``additionalProperties: false`` wherever the
schema lists properties and does not preserve unknown fields), as ``kubectl apply
--validate=strict`` would. The CRD schemas shipped in ``templates/kubernetes/schemas/`` are
extracted from the official CRDs (see the README there); tests check them against the CRDs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import KubernetesError

Schemas = dict[tuple[str, str], dict[str, Any]]


@dataclass
class Report:
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')}/{ns}{meta.get('name')}"


def schema_version(k8s_version: str) -> str | None:
    """The bundled kubernetes-validate schema version to use for ``k8s_version`` (None: not installed).

    The newest bundled version not newer than the blueprint's; the oldest bundled one if the
    blueprint's is older than all; the newest if it is newer than all.
    """
    try:
        from kubernetes_validate import utils
    except ImportError:
        return None
    from packaging.version import Version

    bundled = sorted(utils.all_versions(), key=Version)
    wanted = Version(k8s_version)
    older = [v for v in bundled if Version(".".join(v.split(".")[:2])) <= wanted]
    return older[-1] if older else bundled[0]


_GO_FLAGS = re.compile(r"\(\?([ims]+)\)")


def go_pattern(pattern: str) -> str:
    """A CRD ``pattern`` (Go RE2 syntax, as the API server reads it) for Python's ``re``: RE2 lets a
    flag group stand anywhere and applies it from there on (Kueue's AdmissionCheck
    ``parameters.kind``: ``^(?i)[a-z]...``), Python only at the start; a top-level one becomes a
    group scoped to the end of the pattern."""
    found = _GO_FLAGS.search(pattern)
    if found is None or found.start() == 0:
        return pattern
    before = pattern[:found.start()]
    if before.count("(") - before.count("\\(") != before.count(")") - before.count("\\)"):
        return pattern
    return f"{before}(?{found.group(1)}:{pattern[found.end():]})"


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema that rejects unknown fields (patterns read as Go reads them)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if isinstance(out.get("pattern"), str):
        out["pattern"] = go_pattern(out["pattern"])
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def schemas_from_crds(crd_dir: Path) -> Schemas:
    """``(apiVersion, kind) -> openAPIV3Schema`` for every version of every CRD file in ``crd_dir``."""
    import yaml

    result: Schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                result[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return result


@cache
def shipped_schemas() -> Schemas:
    folder = paths.templates() / "kubernetes" / "schemas"
    result: Schemas = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        result[(data["apiVersion"], data["kind"])] = data["schema"]
    return result


def _check_custom(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(strict(schema))
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    return [f"{describe(obj)}: {'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


@cache
def _core_validator(version: str, api_version: str, kind: str) -> Any:
    """kubernetes-validate's strict schema for one kind, compiled once (its ``validate()``
    re-reads the multi-megabyte definitions file on every call)."""
    import re

    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _check_core(obj: dict[str, Any], version: str) -> list[str]:
    validator = _core_validator(version, obj["apiVersion"], obj["kind"])
    if validator is None:
        return [f"{describe(obj)}: no schema for {obj['kind']} {obj['apiVersion']} in Kubernetes {version}"]
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{describe(obj)}: {'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


def _check_shape(obj: dict[str, Any]) -> list[str]:
    missing = [k for k in ("apiVersion", "kind") if not obj.get(k)]
    if not (obj.get("metadata") or {}).get("name"):
        missing.append("metadata.name")
    return [f"{describe(obj)}: missing {', '.join(missing)}"] if missing else []


def validate_objects(objs: list[dict[str, Any]], k8s_version: str, crd_schemas: Schemas | None = None) -> Report:
    """Check every object; a problem names the object, the field path and what is wrong."""
    schemas = shipped_schemas() if crd_schemas is None else crd_schemas
    version = schema_version(k8s_version)
    report = Report()
    custom_ok = True
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        custom_ok = False
    if version is None:
        report.notes.append("core kinds checked for shape only (install kubernetes-validate for schema checks)")
    elif _major_minor(version) != k8s_version:
        report.notes.append(f"core kinds checked against Kubernetes {_major_minor(version)} schemas")
    for obj in objs:
        report.checked += 1
        shape = _check_shape(obj)
        if shape:
            report.problems += shape
            continue
        key = (obj["apiVersion"], obj["kind"])
        if key in schemas:
            if custom_ok:
                report.problems += _check_custom(obj, schemas[key])
        elif version is not None:
            report.problems += _check_core(obj, version)
    if not custom_ok:
        report.notes.append("custom resources checked for shape only (install jsonschema)")
    return report


def require_valid(objs: list[dict[str, Any]], k8s_version: str, progress: Any = None) -> list[dict[str, Any]]:
    """``objs`` unchanged if every one passes its schema; else a KubernetesError naming the problems."""
    report = validate_objects(objs, k8s_version)
    if progress is not None:
        for note in report.notes:
            progress.info(f"    validation: {note}")
    if not report.ok:
        more = f"; and {len(report.problems) - 10} more" if len(report.problems) > 10 else ""
        raise KubernetesError(
            f"{len(report.problems)} problems in the rendered manifests: " + "; ".join(report.problems[:10]) + more,
            hint="this is a bug in infra's templates: please report it with the blueprint",
        )
    return objs


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def without_descriptions(schema: Any) -> Any:
    """An OpenAPI schema minus its ``description`` texts (how the shipped schemas are stored)."""
    if isinstance(schema, list):
        return [without_descriptions(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: without_descriptions(v) for k, v in schema.items() if not (k == "description" and isinstance(v, str))}
