"""``infra model``: deploy, list and delete inference models.

Blueprint models are rendered exactly as ``infra handoff`` renders them (same labels, so a
later handoff keeps them). Ad-hoc models (``--uri``) carry ``app.kubernetes.io/managed-by:
infra`` and ``infra.dev/ad-hoc: "true"`` but no environment label, so prune never touches
them; ``infra model delete`` removes them.
"""

from __future__ import annotations

from typing import Any

from ..blueprint.models import Blueprint, Model
from ..errors import KubernetesError, UsageError
from ..progress import Progress
from . import rest
from .apply import ApplyResult, Options, apply_all, readiness
from .base import (
    ADHOC_LABEL,
    COMPONENT_LABEL,
    ENV_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_LABEL,
    MODEL_URI_ANNOTATION,
    OIP_HTTP_PORT,
    TEAM_LABEL,
    common_labels,
    label,
)
from .client import ApiError, Client
from .inference import Placement, blueprint_models, model_objects, placement
from .validate import validate_objects

DEPLOYMENT = rest.resource("apps/v1", "Deployment")
SERVICE = rest.resource("v1", "Service")
SELDON_MODEL = rest.resource("mlops.seldon.io/v1alpha1", "Model")
DEFAULT_K8S_VERSION = "1.30"


def blueprint_objects(bp: Blueprint, names: list[str] | None = None) -> list[dict[str, Any]]:
    rendered = blueprint_models(bp)
    known = [m.name for m in (bp.inference.models if bp.inference else [])]
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise UsageError(f"no model named {', '.join(unknown)} in the blueprint (models: {', '.join(known) or 'none'})")
    wanted = set(names or known)
    objs = [o for key, group in sorted(rendered.items()) for o in group
            if key in wanted or (o.get("kind") == "Server" and _team_has(bp, o, wanted))]
    return label(objs, common_labels(bp.name))


def _team_has(bp: Blueprint, server: dict[str, Any], wanted: set[str]) -> bool:
    team = server["metadata"]["labels"].get(TEAM_LABEL)
    return any(m.team == team and m.name in wanted and m.gpu > 0 for m in bp.inference.models)  # type: ignore[union-attr]


def adhoc_objects(name: str, uri: str, team: str, namespace: str | None, gpu: int, replicas: int, runtime: str,
                  bp: Blueprint | None = None) -> list[dict[str, Any]]:
    from pydantic import ValidationError

    try:
        model = Model(name=name, uri=uri, team=team, gpu=gpu, replicas=replicas)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid model: {problems}") from None
    if bp is not None and any(t.name == team for t in bp.teams):
        where = placement(bp, team)
        if namespace:
            where = Placement(namespace, where.gpu_tolerations)
    else:
        where = Placement(namespace or team)
    objs = model_objects(runtime, [model], where, {})
    return label(objs, {MANAGED_BY_LABEL: MANAGED_BY, ADHOC_LABEL: "true"})


def deploy(client: Client, objs: list[dict[str, Any]], k8s_version: str = DEFAULT_K8S_VERSION,
           opts: Options | None = None, progress: Progress | None = None) -> ApplyResult:
    report = validate_objects(objs, k8s_version)
    if not report.ok:
        raise KubernetesError("invalid model manifests: " + "; ".join(report.problems[:5]))
    opts = opts or Options()
    opts.prune = False
    env = (objs[0]["metadata"]["labels"].get(ENV_LABEL) if objs else None) or ""
    return apply_all(client, objs, env, opts, progress)


def _ready_text(obj: dict[str, Any]) -> str:
    ok, detail = readiness(obj)
    return "ready" if ok and obj.get("kind") != "Deployment" else detail


def list_models(client: Client, namespace: str | None = None) -> list[dict[str, Any]]:
    selector = f"{COMPONENT_LABEL}=inference,{MANAGED_BY_LABEL}={MANAGED_BY}"
    rows = []
    for res, runtime in ((DEPLOYMENT, "onnx"), (SELDON_MODEL, "seldon")):
        try:
            found = client.list(res, namespace, selector)
        except ApiError as exc:
            if exc.status == 404:
                continue  # Seldon not installed
            raise
        for obj in found:
            meta = obj["metadata"]
            labels = meta.get("labels") or {}
            ns, name = meta.get("namespace"), meta["name"]
            rows.append({
                "name": labels.get(MODEL_LABEL, name), "namespace": ns, "team": labels.get(TEAM_LABEL),
                "runtime": runtime, "status": _ready_text(obj),
                "uri": (meta.get("annotations") or {}).get(MODEL_URI_ANNOTATION),
                "source": "ad-hoc" if labels.get(ADHOC_LABEL) == "true" else f"blueprint {labels.get(ENV_LABEL)}",
                "endpoint": (f"http://{name}.{ns}.svc:{OIP_HTTP_PORT}/v2/models/{name}/infer" if runtime == "onnx"
                             else f"seldon-mesh.{ns} (header Seldon-Model: {name})"),
            })
    return sorted(rows, key=lambda r: (r["namespace"] or "", r["name"]))


def delete_model(client: Client, name: str, namespace: str) -> tuple[list[str], str | None]:
    """Delete a model's objects; also a warning when the blueprint will bring it back."""
    deleted, env = [], None
    for res in (DEPLOYMENT, SERVICE, SELDON_MODEL):
        try:
            obj = client.get(res, name, namespace)
        except ApiError as exc:
            if exc.status == 404:
                continue
            raise
        if obj is None:
            continue
        labels = obj["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or labels.get(COMPONENT_LABEL) != "inference":
            raise KubernetesError(f"{res.kind} {namespace}/{name} is not an inference model managed by infra")
        env = env or labels.get(ENV_LABEL)
        client.delete(res, name, namespace)
        deleted.append(f"{res.kind}/{namespace}/{name}")
    if not deleted:
        raise KubernetesError(f"no model {name} in namespace {namespace}", hint="`infra model list` shows them")
    warning = None
    if env:
        warning = (f"{name} is part of blueprint '{env}': the next `infra handoff` or `infra up` deploys it again "
                   "unless you remove it from the blueprint")
    return deleted, warning
