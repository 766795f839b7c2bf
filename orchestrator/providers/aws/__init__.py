"""AWS: an EKS cluster with one managed node group per node pool (terraform/modules/aws_gpu_cluster).

Everything that knows AWS sits in this package and its data: the root module's templates in
templates/terraform/aws/ (sandbox overrides under sandbox/), the instance types in
data/catalog/aws.yaml, and the kubeconfig builder (kubeconfig.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...blueprint.labels import pool_labels
from ...blueprint.models import Blueprint, NodePool
from ...blueprint.network import subnet_plan
from ..base import Provider

# EKS API taint effects differ from Kubernetes' spelling.
_TAINT_EFFECT = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}
_GPU_DISK_GB = 200
_CPU_DISK_GB = 50
# Services the sandbox emulates (templates/terraform/aws/sandbox/); every one the module touches
# must be listed or the provider would call real AWS.
_SANDBOX_SERVICES = ("autoscaling", "ec2", "eks", "iam", "kms", "logs", "s3", "sts")


def _node_pool(pool: NodePool) -> dict[str, Any]:
    return {
        "name": pool.name,
        "instance_types": [pool.instance_type],
        "ami_type": "AL2023_x86_64_NVIDIA" if pool.gpu else "AL2023_x86_64_STANDARD",
        "capacity_type": "SPOT" if pool.spot else "ON_DEMAND",
        "min_size": pool.min,
        "desired_size": pool.effective_desired,
        "max_size": pool.max,
        "disk_size_gb": _GPU_DISK_GB if pool.gpu else _CPU_DISK_GB,
        "labels": pool_labels(pool),
        "taints": [
            {"key": t.key, "value": t.value, "effect": _TAINT_EFFECT[t.effect]} for t in pool.effective_taints
        ],
    }


class AwsProvider(Provider):
    name: ClassVar[str] = "aws"
    terraform_module: ClassVar[str | None] = "aws_gpu_cluster"
    sandbox: ClassVar[bool] = True

    def terraform_variables(self, bp: Blueprint) -> dict[str, Any]:
        subnets = subnet_plan(bp.network.cidr, bp.network.zones)
        return {
            "region": bp.region,
            "name": bp.name,
            "tags": {"infra.dev/environment": bp.name, "managed-by": "infra", **bp.tags},
            "kubernetes_version": bp.kubernetes.version,
            "public_endpoint": bp.kubernetes.public_endpoint,
            "authorized_networks": list(bp.kubernetes.authorized_networks),
            "vpc_cidr": bp.network.cidr,
            "private_subnets": subnets["private"],
            "public_subnets": subnets["public"],
            "node_pools": [_node_pool(p) for p in bp.node_pools],
        }

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
        ]
        return [(k, str(v)) for k, v in rows if v]
