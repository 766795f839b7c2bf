"""Inference manifests (pure): ONNX models on Triton over OIP v2, or Seldon Core v2 Models.

``runtime: onnx`` gives each model a Deployment + Service; ``runtime: seldon`` gives it a
``Model`` (``requirements: [onnx]``) and, for teams with GPU models, a Triton ``Server`` that
carries the GPU requests and tolerations; each team namespace that hosts Seldon models gets a
``SeldonRuntime`` (file ``inference/<team>-seldon-runtime.yaml``). Both work without a
blueprint (ad-hoc deploys, which bring no runtime): :class:`Placement` says where pods go.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Any

from ...blueprint import capacity, storage
from ...blueprint.labels import GPU_PRESENT_LABEL, POOL_LABEL
from ...blueprint.models import Blueprint, Model
from ...conventions import (
    COMPONENT_LABEL,
    GPU_RESOURCE,
    GPU_TOLERATION,
    MODEL_LABEL,
    MODEL_URI_ANNOTATION,
    OIP_HTTP_PORT,
    PRIORITY_BY_TIER,
    SELDON_API,
    TEAM_LABEL,
)
from ...errors import UsageError
from . import manifests
from .scheduling import gpu_tolerations, merge_tolerations, pool_tolerations

# Triton serves ONNX models with ONNX Runtime and speaks the KServe v2 protocol = OIP v2.
ONNX_SERVER_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"
# Fetches s3://, gs://, https:// (and Azure blob https) model URIs into a volume.
MODEL_FETCH_IMAGE = "docker.io/kserve/storage-initializer:v0.14.1"
OIP_GRPC_PORT = 8001
METRICS_PORT = 8002
SELDON_SERVER_CONFIG = "triton"
SELDON_GPU_SERVER = "triton-gpu"
SELDON_MODEL_MEMORY = "1Gi"
SELDON_RUNTIME = "seldon"  # the name Seldon's own runtime chart gives it
SELDON_CONFIG = "default"  # the SeldonConfig Seldon Core v2's operator installs

SERVER_REQUESTS = {"cpu": "1", "memory": "2Gi"}
SERVER_LIMITS = {"cpu": "4", "memory": "8Gi"}
INIT_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
_SECURE = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@dataclass(frozen=True)
class Placement:
    """Where a team's inference pods run: its namespace, the inference pools it may use (none
    known: any GPU node) and tolerations for their taints."""

    namespace: str
    gpu_tolerations: list[dict[str, Any]] = field(default_factory=lambda: [dict(GPU_TOLERATION)])
    pools: tuple[str, ...] = ()
    #: the team's model-server service account, bound to a cloud identity (``blueprint.storage``)
    service_account: str | None = None
    #: environment of the fetch container (the region an AWS SDK needs)
    fetch_env: tuple[tuple[str, str], ...] = ()
    #: labels the cloud's identity webhook looks for on the pods (AKS workload identity)
    pod_labels: tuple[tuple[str, str], ...] = ()


def placement(bp: Blueprint, team_name: str) -> Placement:
    """Model servers are pinned to the team's inference pools (never to training nodes)."""
    team = next(t for t in bp.teams if t.name == team_name)
    reader = storage.reader(bp, team_name)
    settings = (storage.identity(bp.provider) or {}) if reader else {}
    env, pod_labels = settings.get("fetch_env") or {}, settings.get("pod_labels") or {}
    identity = {"service_account": reader.service_account if reader else None,
                "fetch_env": tuple((k, v.replace("{region}", bp.region or "")) for k, v in sorted(env.items())),
                "pod_labels": tuple(sorted(pod_labels.items()))}
    pools = capacity.team_pools(bp, team, capacity.INFERENCE)
    if not pools:  # no GPU model is allowed then (validation); CPU models need no placement
        return Placement(team.effective_namespace, gpu_tolerations(bp), **identity)
    tolerations = [dict(GPU_TOLERATION)]
    for pool in pools:
        tolerations = merge_tolerations(tolerations, pool_tolerations(pool, bp.provider))
    return Placement(team.effective_namespace, tolerations, tuple(p.name for p in pools), **identity)


def model_labels(model: Model) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "onnx-model",
        "app.kubernetes.io/instance": model.name,
        COMPONENT_LABEL: "inference",
        MODEL_LABEL: model.name,
        TEAM_LABEL: model.team,
    }


def _gpu_scheduling(gpu: int, where: Placement) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Node affinity and tolerations of a model server: the team's inference pools (a model
    without GPUs too: they are the team's serving nodes, and GPU nodes are tainted, so a CPU-only
    server with no pool of its own would find no node on a cluster of GPU hosts); without
    inference pools, a GPU model goes to any GPU node and a CPU-only one wherever it fits."""
    if where.pools:
        term = {"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": list(where.pools)}]}
    elif gpu > 0:
        term = {"matchExpressions": [{"key": GPU_PRESENT_LABEL, "operator": "In", "values": ["true"]}]}
    else:
        return {}, []
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    return affinity, list(where.gpu_tolerations)


# A container that requests no GPU sees none, even on a GPU node whose default runtime is
# NVIDIA's and whose image sets NVIDIA_VISIBLE_DEVICES=all (Triton's does): "void" tells the
# NVIDIA container runtime to expose no GPU (docs/kubernetes.md, "Where pods land").
NO_GPU_ENV = [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]


def _server_env(gpu: int, where: Placement) -> list[dict[str, str]]:
    return [dict(e) for e in NO_GPU_ENV] if gpu <= 0 and where.pools else []


def _resources(gpu: int) -> dict[str, Any]:
    requests, limits = dict(SERVER_REQUESTS), dict(SERVER_LIMITS)
    if gpu > 0:  # extended resources: request = limit
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpu)
    return {"requests": requests, "limits": limits}


def _fetch(model: Model, where: Placement) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Init container(s) that put the model file under /staging, the staging volume, its file name."""
    uri = model.uri
    file_name = "model.onnx" if uri.endswith("/") else posixpath.basename(uri)
    if uri.startswith("file://"):  # a path on the node: mount its folder, nothing to fetch
        folder = posixpath.dirname(uri[len("file://") :]) or "/"
        return [], {"name": "staging", "hostPath": {"path": folder, "type": "Directory"}}, file_name
    fetch = {
        "name": "fetch-model",
        "image": MODEL_FETCH_IMAGE,
        "args": [uri, "/staging"],
        "resources": INIT_RESOURCES,
        "securityContext": _SECURE,
        "volumeMounts": [{"name": "staging", "mountPath": "/staging"}],
    }
    if where.fetch_env:
        fetch["env"] = [{"name": k, "value": v} for k, v in where.fetch_env]
    return [fetch], {"name": "staging", "emptyDir": {}}, file_name


def onnx_objects(model: Model, where: Placement, labels: dict[str, str]) -> list[dict[str, Any]]:
    fetch, staging, file_name = _fetch(model, where)
    target = f"/models/{model.name}/1"
    layout = {
        "name": "layout-model",
        "image": ONNX_SERVER_IMAGE,
        "command": ["/bin/sh", "-c"],
        "args": [f"mkdir -p {target} && cp {shlex.quote('/staging/' + file_name)} {target}/model.onnx"],
        "resources": INIT_RESOURCES,
        "securityContext": _SECURE,
        "volumeMounts": [
            {"name": "staging", "mountPath": "/staging", "readOnly": True},
            {"name": "models", "mountPath": "/models"},
        ],
    }
    affinity, tolerations = _gpu_scheduling(model.gpu, where)
    selector = {"app.kubernetes.io/name": "onnx-model", "app.kubernetes.io/instance": model.name}
    ctx = {
        "name": model.name,
        "namespace": where.namespace,
        "labels": {**model_labels(model), **labels},
        "pod_labels": {**model_labels(model), **labels, **dict(where.pod_labels)},
        "annotations": {MODEL_URI_ANNOTATION: model.uri},
        "replicas": model.replicas,
        "selector": selector,
        "priority_class": PRIORITY_BY_TIER["inference"],
        "affinity": affinity,
        "tolerations": tolerations,
        "init_containers": fetch + [layout],
        "image": ONNX_SERVER_IMAGE,
        "server_args": [
            "--model-repository=/models",
            "--model-control-mode=none",
            "--strict-readiness=true",
            "--exit-on-error=true",
            f"--http-port={OIP_HTTP_PORT}",
            f"--grpc-port={OIP_GRPC_PORT}",
            f"--metrics-port={METRICS_PORT}",
        ],
        "http_port": OIP_HTTP_PORT,
        "grpc_port": OIP_GRPC_PORT,
        "metrics_port": METRICS_PORT,
        "ready_path": f"/v2/models/{model.name}/ready",
        "resources": _resources(model.gpu),
        "env": _server_env(model.gpu, where),
        "volumes": [staging, {"name": "models", "emptyDir": {}}],
        "service_account": where.service_account,
    }
    return manifests.onnx_model(ctx)


def seldon_storage_uri(model: Model, field_path: str = "uri") -> str:
    """Seldon loads a model repository folder holding ``model.onnx``."""
    uri = model.uri
    if uri.endswith("/"):
        return uri
    if posixpath.basename(uri) == "model.onnx":
        return posixpath.dirname(uri) + "/"
    raise UsageError(
        f"{field_path}: {uri!r} is a file; Seldon Core loads a folder that holds model.onnx",
        hint="upload the model as <folder>/model.onnx and give the folder's URI (ending in /)",
    )


def seldon_model(model: Model, where: Placement, labels: dict[str, str], field_path: str = "uri") -> list[dict]:
    spec: dict[str, Any] = {
        "storageUri": seldon_storage_uri(model, field_path),
        "requirements": ["onnx"],
        "replicas": model.replicas,
        "memory": SELDON_MODEL_MEMORY,
    }
    if model.gpu > 0:
        spec["server"] = SELDON_GPU_SERVER
    ctx = {
        "api_version": SELDON_API,
        "name": model.name,
        "namespace": where.namespace,
        "labels": {**model_labels(model), "app.kubernetes.io/name": "seldon-model", **labels},
        "annotations": {MODEL_URI_ANNOTATION: model.uri},
        "spec": spec,
    }
    return manifests.seldon_model(ctx)


def seldon_gpu_server(models: list[Model], where: Placement, labels: dict[str, str]) -> list[dict[str, Any]]:
    """One Triton Server per namespace for its GPU models (sized for the largest of them)."""
    gpu_models = [m for m in models if m.gpu > 0]
    if not gpu_models:
        return []
    gpu = max(m.gpu for m in gpu_models)
    affinity, tolerations = _gpu_scheduling(gpu, where)
    ctx = {
        "api_version": SELDON_API,
        "name": SELDON_GPU_SERVER,
        "namespace": where.namespace,
        "labels": {COMPONENT_LABEL: "inference", TEAM_LABEL: gpu_models[0].team, **labels},
        "server_config": SELDON_SERVER_CONFIG,
        "replicas": max(m.replicas for m in gpu_models),
        "priority_class": PRIORITY_BY_TIER["inference"],
        "affinity": affinity,
        "tolerations": tolerations,
        "resources": _resources(gpu),
    }
    return manifests.seldon_server(ctx)


def seldon_runtime(team: str, where: Placement, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The namespace's SeldonRuntime: Seldon Core v2's scheduler, envoy and gateways for its Models."""
    ctx = {
        "api_version": SELDON_API,
        "name": SELDON_RUNTIME,
        "namespace": where.namespace,
        "labels": {COMPONENT_LABEL: "inference", TEAM_LABEL: team, **labels},
        "seldon_config": SELDON_CONFIG,
    }
    return manifests.seldon_runtime(ctx)


def model_objects(runtime: str, models: list[Model], where: Placement, labels: dict[str, str]) -> list[dict]:
    """All objects serving ``models`` (one team's, in ``where.namespace``) with ``runtime``."""
    objs: list[dict[str, Any]] = []
    if runtime == "seldon":
        objs += seldon_gpu_server(models, where, labels)
        for m in models:
            objs += seldon_model(m, where, labels)
        return objs
    for m in models:
        objs += onnx_objects(m, where, labels)
    return objs


def blueprint_models(bp: Blueprint) -> dict[str, list[dict[str, Any]]]:
    """Inference objects of the blueprint, by model name (empty without ``inference``)."""
    if bp.inference is None:
        return {}
    runtime = bp.inference.runtime
    result: dict[str, list[dict[str, Any]]] = {}
    by_team: dict[str, list[Model]] = {}
    for i, m in enumerate(bp.inference.models):
        by_team.setdefault(m.team, []).append(m)
        where = placement(bp, m.team)
        if runtime == "seldon":
            result[m.name] = seldon_model(m, where, {}, f"inference.models[{i}].uri")
        else:
            result[m.name] = onnx_objects(m, where, {})
    if runtime == "seldon":
        for team, models in sorted(by_team.items()):
            where = placement(bp, team)
            result[f"{team}-seldon-runtime"] = seldon_runtime(team, where, {})
            server = seldon_gpu_server(models, where, {})
            if server:
                result[f"{team}-{SELDON_GPU_SERVER}"] = server
    return result
