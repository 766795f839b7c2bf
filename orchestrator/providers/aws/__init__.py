"""AWS: an EKS cluster with one managed node group per node pool (terraform/modules/aws_gpu_cluster).

Everything that knows AWS sits in this package and its data: the root module's templates in
templates/terraform/aws/ (sandbox overrides under sandbox/), the instance types in
data/catalog/aws.yaml, and the kubeconfig builder (kubeconfig.py).
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from ...blueprint import storage
from ...blueprint.labels import pool_labels, pool_taints
from ...blueprint.models import Blueprint, NodePool
from ...blueprint.network import api_access_networks, subnet_plan
from ..base import Provider

# EKS API taint effects differ from Kubernetes' spelling.
_TAINT_EFFECT = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}
_CAPACITY_TYPE = {"on_demand": "ON_DEMAND", "spot": "SPOT", "capacity_block": "CAPACITY_BLOCK"}
# Instance families with EFA: their training pools get a cluster placement group.
_EFA_FAMILIES = ("p4d", "p4de", "p5", "p5e", "p5en", "p6")
_GPU_DISK_GB = 200
_CPU_DISK_GB = 50
# Services the sandbox emulates (templates/terraform/aws/sandbox/); every one the module touches
# must be listed or the provider would call real AWS.
_SANDBOX_SERVICES = ("autoscaling", "ec2", "eks", "iam", "kms", "logs", "s3", "sts")


def service_cidr(vpc_cidr: str) -> str:
    """The cluster's Service (ClusterIP) range, set explicitly so that the team egress policy can
    name it: the range EKS picks when none is given (172.20.0.0/16 for a VPC inside 10.0.0.0/8,
    else 10.100.0.0/16), so it never overlaps the VPC and clusters made before keep theirs."""
    inside_ten = ipaddress.IPv4Network(vpc_cidr).subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    return "172.20.0.0/16" if inside_ten else "10.100.0.0/16"


def _node_pool(pool: NodePool) -> dict[str, Any]:
    types = pool.all_instance_types
    efa = all(t.split(".")[0] in _EFA_FAMILIES for t in types)
    return {
        "name": pool.name,
        "instance_types": types,
        "ami_type": "AL2023_x86_64_NVIDIA" if pool.gpu else "AL2023_x86_64_STANDARD",
        "capacity_type": _CAPACITY_TYPE[pool.effective_capacity_type],
        "capacity_reservation_id": pool.capacity_reservation_id,
        "gpu_count": pool.gpu.count if pool.gpu else 0,
        "placement_group": bool(pool.gpu and efa and pool.purpose in (None, "training")),
        "min_size": pool.min,
        "desired_size": pool.effective_desired,
        "max_size": pool.max,
        "disk_size_gb": _GPU_DISK_GB if pool.gpu else _CPU_DISK_GB,
        "labels": pool_labels(pool, "aws"),
        "taints": [
            {"key": t.key, "value": t.value, "effect": _TAINT_EFFECT[t.effect]} for t in pool_taints(pool, "aws")
        ],
    }


def _access_members(bp: Blueprint) -> list[dict[str, Any]]:
    """One access entry per team member: the Kubernetes groups of every team that lists it."""
    groups: dict[str, set[str]] = {}
    for team in bp.teams:
        for arn in team.members:
            groups.setdefault(arn, set()).update(team.groups)
    return [{"principal_arn": arn, "kubernetes_groups": sorted(g)} for arn, g in sorted(groups.items())]


class AwsProvider(Provider):
    name: ClassVar[str] = "aws"
    terraform_module: ClassVar[str | None] = "aws_gpu_cluster"
    sandbox: ClassVar[bool] = True

    def terraform_variables(self, bp: Blueprint) -> dict[str, Any]:
        subnets = subnet_plan(bp.network.cidr, bp.network.zone_count)
        return {
            "region": bp.region,
            "name": bp.name,
            "tags": {"infra.dev/environment": bp.name, "managed-by": "infra", **bp.tags},
            "kubernetes_version": bp.kubernetes.minor,
            "public_endpoint": bp.kubernetes.public_endpoint,
            "authorized_networks": list(bp.kubernetes.authorized_networks),
            "api_access_cidrs": api_access_networks(bp),
            "model_readers": [r.as_tfvar() for r in storage.readers(bp)],
            "vpc_cidr": bp.network.cidr,
            "service_cidr": service_cidr(bp.network.cidr),
            "private_subnets": subnets["private"],
            "public_subnets": subnets["public"],
            "zones": bp.network.zone_names,
            "creator_admin": bp.access.effective_creator_admin,
            "cluster_admins": list(bp.access.admins),
            "access_members": _access_members(bp),
            "node_pools": [_node_pool(p) for p in bp.node_pools],
        }

    def cluster_networks(self, bp: Blueprint) -> list[str]:
        """The VPC (nodes, and pods: the VPC CNI gives them VPC addresses) and the Service range."""
        return [bp.network.cidr, service_cidr(bp.network.cidr)]

    def sandbox_endpoints(self, endpoint: str) -> dict[str, str]:
        return {service: endpoint for service in _SANDBOX_SERVICES}

    def kubeconfig(self, bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
        """A kubeconfig whose user runs ``aws eks get-token`` (exec plugin): no token on disk."""
        from .kubeconfig import eks_kubeconfig

        return eks_kubeconfig(bp, outputs)

    def summarize_outputs(self, outputs: dict[str, Any]) -> list[tuple[str, str]]:
        rows = [
            ("cluster", outputs.get("cluster_name")),
            ("endpoint", outputs.get("cluster_endpoint")),
            ("vpc", outputs.get("vpc_id")),
            ("node pools", ", ".join(sorted(outputs.get("node_pools") or {}))),
            ("left out (sandbox)", ", ".join(outputs.get("left_out") or [])),
        ]
        return [(k, str(v)) for k, v in rows if v]
