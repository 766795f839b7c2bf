"""Google Cloud: a private regional GKE cluster with one node pool per pool
(terraform/modules/gcp_gpu_cluster).

Everything that knows Google Cloud sits in this package and its data: the root module's
templates in templates/terraform/gcp/, the machine types in data/catalog/gcp.yaml and the
kubeconfig builder (kubeconfig.py). Identities: teams' ``groups`` that are Google Groups (email
addresses) are what the RoleBindings name; Google Groups for RBAC is turned on with
``gke-security-groups@<their domain>`` (docs/providers.md). ``access.admins`` get
roles/container.admin and ``teams[].members`` roles/container.clusterViewer (to fetch
credentials; what they may do comes from their team's Google Groups), both on the project.
A pool's MIG profile ``all-<size>`` becomes its ``gpu_partition_size`` (GKE partitions the GPUs;
``blueprint/labels.py`` gives its Kueue flavor GKE's partition-size node label).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, ClassVar

from ...blueprint import storage
from ...blueprint.labels import mig_partition, pool_labels, pool_taints
from ...blueprint.models import Blueprint, NodePool
from ...blueprint.network import api_access_networks
from ...errors import UsageError
from ..base import Provider
from ..credentials import Credentials
from .credentials import CREDENTIALS

_TAINT_EFFECT = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}
_EMAIL = re.compile(r"^[^@\s]+@([a-z0-9.-]+\.[a-z]{2,})$")
_GPU_DISK_GB = 200
_CPU_DISK_GB = 100
# Accelerator type by machine family (the A2/A3/G2 families come with their GPUs), then by GPU.
_ACCELERATOR_BY_FAMILY = {
    "a2-highgpu": "nvidia-tesla-a100", "a2-megagpu": "nvidia-tesla-a100", "a2-ultragpu": "nvidia-a100-80gb",
    "a3-highgpu": "nvidia-h100-80gb", "a3-edgegpu": "nvidia-h100-80gb", "a3-megagpu": "nvidia-h100-mega-80gb",
    "a3-ultragpu": "nvidia-h200-141gb", "g2-standard": "nvidia-l4",
}
_ACCELERATOR_BY_GPU = {"t4": "nvidia-tesla-t4", "l4": "nvidia-l4", "a100": "nvidia-tesla-a100",
                       "h100": "nvidia-h100-80gb", "h200": "nvidia-h200-141gb"}
# Pod, Service and control-plane ranges: the first set that does not overlap the network.
_RANGES = (("10.244.0.0/14", "10.248.0.0/20", "172.16.0.16/28"),
           ("172.20.0.0/14", "172.24.0.0/20", "192.168.255.240/28"))


def accelerator(machine_type: str, gpu_type: str) -> str:
    family = "-".join(machine_type.split("-")[:2])
    found = _ACCELERATOR_BY_FAMILY.get(family) or _ACCELERATOR_BY_GPU.get(gpu_type)
    if found is None:
        raise UsageError(f"no Google Cloud accelerator type known for {gpu_type} on {machine_type}",
                         hint="use an a2, a3 or g2 machine type, or a t4/l4 GPU on n1")
    return found


def secondary_ranges(cidr: str) -> tuple[str, str, str]:
    net = ipaddress.IPv4Network(cidr)
    for ranges in _RANGES:
        if not any(net.overlaps(ipaddress.IPv4Network(r)) for r in ranges):
            return ranges
    raise AssertionError("unreachable: the candidate ranges cannot all overlap one /16-/24 network")


def security_group(bp: Blueprint) -> str:
    domains = sorted({m.group(1) for t in bp.teams for g in t.groups if (m := _EMAIL.fullmatch(g))})
    return f"gke-security-groups@{domains[0]}" if domains else ""


def iam_member(principal: str) -> str:
    """An IAM member from ``access.admins``/``teams[].members``: as given when it names its kind
    (``user:``, ``group:``, ``serviceAccount:``), else a service account when the email is one's,
    else a user."""
    if ":" in principal:
        return principal
    return f"serviceAccount:{principal}" if principal.endswith(".gserviceaccount.com") else f"user:{principal}"


def _labels(tags: dict[str, str]) -> dict[str, str]:
    """GCP resource labels: lowercase letters, digits, '-' and '_', at most 63 characters."""
    def clean(s: str) -> str:
        return re.sub(r"[^a-z0-9_-]", "-", s.lower())[:63]
    return {clean(k): clean(v) for k, v in tags.items()}


# GKE replicates a regional cluster's node pool in three zones of the region unless node_locations
# names others: https://cloud.google.com/kubernetes-engine/docs/concepts/regional-clusters#node_pools
DEFAULT_ZONES = 3


def zones_per_pool(bp: Blueprint) -> int:
    """How many zones each node pool spans: the pinned zone names, else GKE's default."""
    return len(bp.network.zone_names) or DEFAULT_ZONES


def initial_per_zone(pool: NodePool, zones: int) -> int:
    """``initial_node_count`` counts nodes *per zone* on a regional pool (the autoscaler's
    ``total_*`` limits count the whole pool): ``desired`` spread over the zones, rounded down so
    the pool never starts above ``desired`` (or ``max``); the autoscaler brings it up to ``min``."""
    return (pool.effective_desired or 0) // zones


def _node_pool(pool: NodePool, zones: int) -> dict[str, Any]:
    machine = pool.all_instance_types[0]
    return {
        "name": pool.name,
        "machine_type": machine,
        "accelerator_type": accelerator(machine, pool.gpu.type) if pool.gpu else "",
        "gpu_count": pool.gpu.count if pool.gpu else 0,
        # MIG: GKE partitions every GPU into this size (validation checks it against the machine's GPU).
        "gpu_partition_size": (mig_partition(pool) or "") if pool.gpu else "",
        "min_count": pool.min or 0,
        "max_count": pool.max or 0,
        "initial_count": initial_per_zone(pool, zones),
        "spot": pool.effective_capacity_type == "spot",
        "disk_size_gb": _GPU_DISK_GB if pool.gpu else _CPU_DISK_GB,
        "labels": pool_labels(pool, "gcp"),
        "taints": [{"key": t.key, "value": t.value, "effect": _TAINT_EFFECT[t.effect]}
                   for t in pool_taints(pool, "gcp")],
    }


class GcpProvider(Provider):
    name: ClassVar[str] = "gcp"
    terraform_module: ClassVar[str | None] = "gcp_gpu_cluster"
    credentials: ClassVar[Credentials | None] = CREDENTIALS
    error_hints: ClassVar[tuple[tuple[str, str], ...]] = (
        (r"deletion_protection", "the cluster is deletion-protected: set kubernetes.deletion_protection: false, "
                                 "run infra up (it lifts the protection), then infra down"),
        (r"SERVICE_DISABLED|has not been used in project", "an API of the project is off: infra up turns on "
                                                           "compute, container and iam; enable any other the "
                                                           "message names (gcloud services enable NAME)"),
    )

    def terraform_variables(self, bp: Blueprint) -> dict[str, Any]:
        pods, services, master = secondary_ranges(bp.network.cidr)
        return {
            "region": bp.region,
            "name": bp.name,
            "labels": _labels({"infra-dev-environment": bp.name, "managed-by": "infra", **bp.tags}),
            "kubernetes_version": bp.kubernetes.minor,
            "public_endpoint": bp.kubernetes.public_endpoint,
            "authorized_networks": list(bp.kubernetes.authorized_networks),
            "api_access_cidrs": api_access_networks(bp),
            "model_readers": [r.as_tfvar() for r in storage.readers(bp)],
            "deletion_protection": bp.deletion_protected,
            "subnet_cidr": bp.network.cidr,
            "pods_cidr": pods,
            "services_cidr": services,
            "master_cidr": master,
            "zones": bp.network.zone_names,
            "security_group": security_group(bp),
            "cluster_admins": sorted({iam_member(a) for a in bp.access.admins}),
            "cluster_viewers": sorted({iam_member(m) for team in bp.teams for m in team.members}),
            "node_pools": [_node_pool(p, zones_per_pool(bp)) for p in bp.node_pools],
        }

    def cluster_networks(self, bp: Blueprint) -> list[str]:
        """The subnet (nodes), its pod and Service secondary ranges and the control plane's range
        (``secondary_ranges``)."""
        return [bp.network.cidr, *secondary_ranges(bp.network.cidr)]

    def kubeconfig(self, bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
        """A kubeconfig whose user runs ``gke-gcloud-auth-plugin`` (exec plugin): no token on disk."""
        from .kubeconfig import gke_kubeconfig

        return gke_kubeconfig(bp, outputs)

    def summarize_outputs(self, outputs: dict[str, Any]) -> list[tuple[str, str]]:
        rows = [
            ("cluster", outputs.get("cluster_name")),
            ("project", outputs.get("project")),
            ("endpoint", outputs.get("cluster_endpoint")),
            ("node pools", ", ".join(sorted(outputs.get("node_pools") or {}))),
        ]
        return [(k, str(v)) for k, v in rows if v]
