"""Per-team tenancy (Namespace, ResourceQuota, LimitRange, RBAC, NetworkPolicies) and the
cluster's PriorityClasses (pure: blueprint -> objects).
"""

from __future__ import annotations

import json
from typing import Any

from ...blueprint import capacity, storage
from ...blueprint.models import Blueprint, Team
from ...conventions import BIND_ANNOTATIONS, COMPONENT_LABEL, GPU_RESOURCE, OIP_HTTP_PORT, PRIORITY_CLASSES, TEAM_LABEL
from ...providers import registry
from . import manifests, scheduling
from .inference import OIP_GRPC_PORT

TEAM_ROLE = "infra-team-member"
TEAM_ROLE_BINDING = "infra-team-members"
POD_SECURITY_LEVEL = "baseline"
# Namespaces allowed to reach inference Services (an ingress controller or API gateway).
GATEWAY_NAMESPACE_LABEL = "infra.dev/ingress-gateway"
# Where Seldon Core v2's operator runs (its install's default): it calls each namespace's
# SeldonRuntime scheduler, so a team serving Seldon models admits ingress from there.
SELDON_OPERATOR_NAMESPACE = "seldon-system"

# Defaults a LimitRange gives containers that state no resources (quota'd namespaces reject
# pods without requests). A GPU default must equal its request: extended resources do not
# overcommit.
DEFAULT_CPU_REQUEST, DEFAULT_CPU_LIMIT = "250m", "1"
DEFAULT_MEMORY_REQUEST, DEFAULT_MEMORY_LIMIT = "512Mi", "2Gi"
MAX_PODS_PER_TEAM = 1000

READ = ["get", "list", "watch"]
# What a team member may do in the team's namespace: run and inspect batch jobs, read their
# pods, logs, events, Kueue workloads and queues, and the team's inference endpoints. No
# wildcards, no secrets, no pods/exec, no writes to RBAC or quota objects.
TEAM_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods", "pods/log", "events", "services"], "verbs": READ},
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads", "localqueues"], "verbs": READ},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": READ},
    {"apiGroups": ["mlops.seldon.io"], "resources": ["models"], "verbs": READ},
]


def team_gpu_limit(bp: Blueprint, team: Team) -> int:
    """``nvidia.com/gpu`` the namespace may request at once: guaranteed plus borrowable, with a
    MIG pool's share counted in MIG instances (what Kueue admits there)."""
    caps = capacity.capacities(bp)
    nominal, borrow = capacity.nominal_split(bp, team), capacity.borrowing_split(bp, team)
    extra = sum((nominal[p] + borrow[p]) * (caps[p].units_per_gpu - 1) for p in nominal)
    return team.gpu_quota + (team.borrowing_limit or 0) + extra


def cluster_networks(bp: Blueprint) -> list[str]:
    """What "inside the cluster" means for the egress policy: every network the provider gives the
    cluster (nodes, pods, Services; ``Provider.cluster_networks``, the same ranges its Terraform
    variables set), which HTTPS egress "to the outside" excepts."""
    return registry.get(bp.provider).cluster_networks(bp)


def namespace(bp: Blueprint, team: Team) -> list[dict[str, Any]]:
    version = f"v{bp.kubernetes.minor}"
    models = bp.inference.models if bp.inference else []
    # A file:// model is read from the node (hostPath), which the baseline profile forbids.
    host_path = any(m.team == team.name and m.uri.startswith("file://") for m in models)
    labels = {
        TEAM_LABEL: team.name,
        "pod-security.kubernetes.io/enforce": "privileged" if host_path else POD_SECURITY_LEVEL,
        "pod-security.kubernetes.io/enforce-version": version,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": version,
    }
    return manifests.namespace({"namespace": team.effective_namespace, "labels": labels})


def team_objects(bp: Blueprint, team: Team) -> list[dict[str, Any]]:
    totals = scheduling.cluster_totals(bp)
    max_cpu, max_mem, max_gpu = scheduling.largest_node(bp)
    quota = {
        "pods": str(MAX_PODS_PER_TEAM),
        "requests.cpu": str(totals.vcpus),
        "limits.cpu": str(totals.vcpus),
        "requests.memory": f"{totals.memory_gib}Gi",
        "limits.memory": f"{totals.memory_gib}Gi",
        # Extended resources take only the requests. prefix (limits.nvidia.com/gpu is invalid).
        f"requests.{GPU_RESOURCE}": str(team_gpu_limit(bp, team)),
    }
    context = {
        "namespace": team.effective_namespace,
        "quota": quota,
        "limit_default": {"cpu": DEFAULT_CPU_LIMIT, "memory": DEFAULT_MEMORY_LIMIT, GPU_RESOURCE: "0"},
        "limit_default_request": {"cpu": DEFAULT_CPU_REQUEST, "memory": DEFAULT_MEMORY_REQUEST, GPU_RESOURCE: "0"},
        "limit_max": {"cpu": str(max_cpu), "memory": f"{max_mem}Gi", GPU_RESOURCE: str(max_gpu)},
        "role": TEAM_ROLE,
        "role_binding": TEAM_ROLE_BINDING,
        "rules": TEAM_RULES,
        "groups": list(team.groups),
        "cluster_cidrs": cluster_networks(bp),
        "inference_selector": {COMPONENT_LABEL: "inference"},
        "gateway_selector": {GATEWAY_NAMESPACE_LABEL: "true"},
        "http_port": OIP_HTTP_PORT,
        "grpc_port": OIP_GRPC_PORT,
        "seldon_operator_namespace": SELDON_OPERATOR_NAMESPACE if _serves_seldon(bp, team) else "",
        "model_identity": _model_identity(bp, team),
    }
    return manifests.team(context)


def _model_identity(bp: Blueprint, team: Team) -> dict[str, Any] | None:
    """The team's model-server service account and the identity endpoints its pods must reach,
    when its models live in the cloud's object store (``blueprint.storage``)."""
    reader = storage.reader(bp, team.name)
    if reader is None:
        return None
    settings = storage.identity(bp.provider)
    annotations = {}
    if settings.get("client_id_annotation"):  # a value Terraform makes: the handoff fills it (kube/bind.py)
        ref = f"{settings['client_id_output']}.{team.name}"
        annotations[BIND_ANNOTATIONS] = json.dumps({settings["client_id_annotation"]: ref}, sort_keys=True)
    return {"service_account": reader.service_account, "endpoints": settings["endpoints"], "annotations": annotations}


def _serves_seldon(bp: Blueprint, team: Team) -> bool:
    return bool(bp.inference and bp.inference.runtime == "seldon"
                and any(m.team == team.name for m in bp.inference.models))


def priority_classes() -> list[dict[str, Any]]:
    classes = [
        {"name": name, "value": value, "preemption": preemption, "description": desc}
        for name, (value, preemption, desc) in PRIORITY_CLASSES.items()
    ]
    return manifests.priority_classes({"classes": classes})
