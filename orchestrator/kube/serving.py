"""``infra model``: apply, list and delete inference models on the cluster.

The objects come from ``render/kubernetes/inference`` (``ops.models`` builds them: a blueprint's
models exactly as ``infra handoff`` applies them, or an ad-hoc one). Ad-hoc models carry
``app.kubernetes.io/managed-by: infra`` and ``infra.dev/ad-hoc: "true"`` but no environment
label, so prune never touches them; ``infra model delete`` removes them.
"""

from __future__ import annotations

from typing import Any

from ..conventions import (
    ADHOC_LABEL,
    COMPONENT_LABEL,
    ENV_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MODEL_LABEL,
    MODEL_URI_ANNOTATION,
    OIP_HTTP_PORT,
    SELDON_API,
    TEAM_LABEL,
)
from ..errors import KubernetesError
from ..progress import Progress
from . import rest
from .apply import ApplyResult, Options, apply_all, readiness
from .client import ApiError, Client
from .validate import validate_objects

DEPLOYMENT = rest.resource("apps/v1", "Deployment")
SERVICE = rest.resource("v1", "Service")
SELDON_MODEL = rest.resource(SELDON_API, "Model")
DEFAULT_K8S_VERSION = "1.30"


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
