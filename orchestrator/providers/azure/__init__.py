"""Azure: an AKS cluster with a system node pool and one user node pool per other pool
(terraform/modules/azure_gpu_cluster).

Everything that knows Azure sits in this package and its data: the root module's templates in
templates/terraform/azure/, the VM sizes in data/catalog/azure.yaml and the kubeconfig builder
(kubeconfig.py). Identities: teams' ``groups`` that are Entra ID group object IDs are what the
RoleBindings name (AKS puts a user's group object IDs in its token) and get the Cluster User
role; names that are not object IDs reach nobody on AKS (docs/providers.md). ``teams[].members``
(Entra object IDs) get the Cluster User role too; ``access.admins`` (Entra object IDs) the RBAC
Cluster Admin role.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, ClassVar

from ...blueprint import capacity, storage
from ...blueprint.labels import pool_labels, pool_taints
from ...blueprint.models import Blueprint, NodePool
from ...errors import UsageError
from ..base import Provider
from ..credentials import Credentials
from .credentials import CREDENTIALS

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_GPU_DISK_GB = 200
_CPU_DISK_GB = 64
# Overlay pod and Service ranges: the first pair that does not overlap the VNet.
_RANGES = (("10.244.0.0/16", "10.245.0.0/16"), ("172.20.0.0/16", "172.21.0.0/16"))


def aks_pool_name(name: str) -> str:
    """AKS node pool names are 1-12 lowercase letters and digits: the pool name without '-'."""
    return name.replace("-", "")[:12]


def overlay_ranges(vnet_cidr: str) -> tuple[str, str]:
    vnet = ipaddress.IPv4Network(vnet_cidr)
    for pods, services in _RANGES:
        if not any(vnet.overlaps(ipaddress.IPv4Network(r)) for r in (pods, services)):
            return pods, services
    raise AssertionError("unreachable: the candidate ranges cannot both overlap one /16-/24 network")


def system_pool_index(bp: Blueprint) -> int:
    """The pool AKS's default (system) pool comes from: purpose system, else the first without GPUs
    (``capacity.system_pool_index``; validation refuses it spot: ``system_pool`` in the catalog)."""
    found = capacity.system_pool_index(bp)
    if found is not None:
        return found
    raise UsageError(f"node_pools: provider {bp.provider} needs a pool without GPUs for AKS's system pool",
                     hint="add a small pool without gpu (e.g. Standard_D4s_v5, min 1)")


def _names(bp: Blueprint) -> list[str]:
    names = [aks_pool_name(p.name) for p in bp.node_pools]
    for i, name in enumerate(names):
        if names.index(name) != i or not re.fullmatch(r"[a-z][a-z0-9]{0,11}", name):
            raise UsageError(f"node_pools[{i}].name: on Azure a pool's name without '-' must be unique, "
                             f"start with a letter and have at most 12 characters (got {name!r})")
    return names


def _size(pool: NodePool) -> str:
    return pool.all_instance_types[0]


def _system_pool(pool: NodePool, name: str) -> dict[str, Any]:
    return {
        "name": name, "pool": pool.name, "vm_size": _size(pool),
        "min_count": max(pool.min or 1, 1), "max_count": max(pool.max or 1, 1),
        "node_count": max(pool.effective_desired or 1, 1),
        "disk_size_gb": _CPU_DISK_GB, "labels": pool_labels(pool, "azure"),
    }


def _user_pool(pool: NodePool, name: str) -> dict[str, Any]:
    spot = pool.effective_capacity_type == "spot"
    # With AKS's own spot label and taint (blueprint/labels.py): node_labels/node_taints must list them.
    taints = [f"{t.key}={t.value}:{t.effect}" for t in pool_taints(pool, "azure")]
    return {
        "name": name, "pool": pool.name, "vm_size": _size(pool),
        "gpu_count": pool.gpu.count if pool.gpu else 0,
        "min_count": pool.min or 0, "max_count": pool.max or 0,
        "node_count": pool.effective_desired or 0,
        "spot": spot, "spot_max_price": -1,  # -1: pay up to the on-demand price, never evicted for price
        "disk_size_gb": _GPU_DISK_GB if pool.gpu else _CPU_DISK_GB,
        "labels": pool_labels(pool, "azure"), "taints": taints,
    }


class AzureProvider(Provider):
    name: ClassVar[str] = "azure"
    terraform_module: ClassVar[str | None] = "azure_gpu_cluster"
    credentials: ClassVar[Credentials | None] = CREDENTIALS
    error_hints: ClassVar[tuple[tuple[str, str], ...]] = (
        (r"EncryptionAtHost", "register the subscription's feature (az feature register --namespace "
                              "Microsoft.Compute --name EncryptionAtHost, then az provider register -n "
                              "Microsoft.Compute), or opt out with kubernetes.encryption_at_host: false"),
    )

    def terraform_variables(self, bp: Blueprint) -> dict[str, Any]:
        names = _names(bp)
        system = system_pool_index(bp)
        pods, services = overlay_ranges(bp.network.cidr)
        groups = sorted({g for team in bp.teams for g in team.groups if _GUID.fullmatch(g)})
        return {
            "region": bp.region,
            "name": bp.name,
            "tags": {"infra.dev/environment": bp.name, "managed-by": "infra", **bp.tags},
            "kubernetes_version": bp.kubernetes.minor,
            "public_endpoint": bp.kubernetes.public_endpoint,
            "authorized_networks": list(bp.kubernetes.authorized_networks),
            "private_fqdn_in_public_dns": bool(bp.kubernetes.private_access
                                               and bp.kubernetes.private_access.via == "networks"),
            "encryption_at_host": bp.kubernetes.encryption_at_host is not False,
            "model_readers": [r.as_tfvar() for r in storage.readers(bp)],
            "vnet_cidr": bp.network.cidr,
            "node_subnet": next(ipaddress.IPv4Network(bp.network.cidr).subnets(prefixlen_diff=1)).exploded,
            "pod_cidr": pods,
            "service_cidr": services,
            "dns_service_ip": str(ipaddress.IPv4Network(services)[10]),
            # Pinned ("1", "3") or the first N of the region's three.
            "zones": bp.network.zone_names or [str(z) for z in range(1, min(bp.network.zone_count, 3) + 1)],
            "admin_group_object_ids": sorted(set(bp.access.admins)),
            "creator_admin": bp.access.effective_creator_admin,
            "team_group_object_ids": groups,
            "member_object_ids": sorted({m for team in bp.teams for m in team.members}),
            "system_pool": _system_pool(bp.node_pools[system], names[system]),
            "node_pools": [_user_pool(p, names[i]) for i, p in enumerate(bp.node_pools) if i != system],
        }

    def cluster_networks(self, bp: Blueprint) -> list[str]:
        """The VNet (nodes) and the overlay's pod and Service ranges (``overlay_ranges``)."""
        return [bp.network.cidr, *overlay_ranges(bp.network.cidr)]

    def backend(self, bp: Blueprint) -> tuple[str, dict[str, Any]]:
        """azurerm state authenticates with Entra ID (no storage account keys)."""
        kind, settings = super().backend(bp)
        if kind == "azurerm":
            settings["use_azuread_auth"] = True
        return kind, settings

    def kubeconfig(self, bp: Blueprint, outputs: dict[str, Any]) -> dict[str, Any]:
        """A kubeconfig whose user runs ``kubelogin get-token`` (exec plugin): no token on disk."""
        from .kubeconfig import aks_kubeconfig

        return aks_kubeconfig(bp, outputs)

    def summarize_outputs(self, outputs: dict[str, Any]) -> list[tuple[str, str]]:
        rows = [
            ("cluster", outputs.get("cluster_name")),
            ("resource group", outputs.get("resource_group")),
            ("endpoint", outputs.get("cluster_endpoint")),
            ("node pools", ", ".join(sorted(outputs.get("node_pools") or {}))),
        ]
        return [(k, str(v)) for k, v in rows if v]
