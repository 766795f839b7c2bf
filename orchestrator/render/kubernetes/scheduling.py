"""GPU scheduling (pure): pool capacity, Kueue flavors and queues, GPU tolerations.

**Capacity.** Quotas derive from what each pool can hold at most, so no ClusterQueue promises
more than exists (``nominalQuota`` <= real capacity). Cloud pools hold ``max`` nodes; a
bare-metal pool holds the hosts that name it. vCPUs and memory come from the provider's
instance-type catalog, or conservative defaults where it does not know the machine.

**Kueue.** A ResourceFlavor per GPU pool (the pool's node labels, exactly; tolerations for its
taints), a ClusterQueue per team in one cohort, a LocalQueue per team namespace. A team's
``gpu_quota`` is its guaranteed (nominal) quota in each GPU flavor, capped at that pool's
capacity; ``borrowing_limit`` is how many more GPUs it may borrow from idle teams (none given =
no borrowing: Kueue would read a missing limit as "unlimited"). The namespace's ResourceQuota
caps the team's total at ``gpu_quota + borrowing_limit`` across flavors. CPU and memory are
covered too (every workload requests them, and an uncovered resource makes a workload
inadmissible), each up to the pool's capacity: GPUs are the resource being shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...blueprint import catalog
from ...blueprint.labels import pool_labels
from ...blueprint.models import Blueprint, NodePool, Taint, Team
from ...conventions import GPU_RESOURCE, GPU_TOLERATION, KUEUE_API, TEAM_LABEL
from .templates import objects_from_template

COHORT = "infra-gpu"  # every team's ClusterQueue: idle quota is lent within it
# Used where the catalog does not know a machine (bare metal, unlisted instance types).
DEFAULT_NODE_VCPUS = 64
DEFAULT_NODE_MEMORY_GIB = 256


@dataclass(frozen=True)
class PoolCapacity:
    name: str
    nodes: int
    gpus_per_node: int
    vcpus_per_node: int
    memory_gib_per_node: int

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def vcpus(self) -> int:
        return self.nodes * self.vcpus_per_node

    @property
    def memory_gib(self) -> int:
        return self.nodes * self.memory_gib_per_node


def pool_capacity(bp: Blueprint, pool: NodePool) -> PoolCapacity:
    nodes = (pool.max or 0) if bp.is_cloud else sum(1 for h in bp.hosts if h.pool == pool.name)
    gpus = pool.gpu.count if pool.gpu else 0
    if not bp.is_cloud:
        host_gpus = [h.gpu.count for h in bp.hosts if h.pool == pool.name and h.gpu]
        gpus = max(host_gpus + [gpus])
    known = catalog.lookup(bp.provider, pool.instance_type)
    vcpus = known.vcpus if known else DEFAULT_NODE_VCPUS
    memory = int(known.memory_gib) if known else DEFAULT_NODE_MEMORY_GIB
    return PoolCapacity(pool.name, nodes, gpus, vcpus, memory)


def capacities(bp: Blueprint) -> dict[str, PoolCapacity]:
    return {p.name: pool_capacity(bp, p) for p in bp.node_pools}


def cluster_totals(bp: Blueprint) -> PoolCapacity:
    """The whole cluster as one pool (per-node figures are the largest node's)."""
    caps = list(capacities(bp).values())
    return PoolCapacity(
        name="cluster",
        nodes=1,
        gpus_per_node=sum(c.gpus for c in caps),
        vcpus_per_node=sum(c.vcpus for c in caps) or DEFAULT_NODE_VCPUS,
        memory_gib_per_node=sum(c.memory_gib for c in caps) or DEFAULT_NODE_MEMORY_GIB,
    )


def largest_node(bp: Blueprint) -> tuple[int, int, int]:
    """(vCPUs, memory GiB, GPUs) of the largest node: the per-container maximum of a LimitRange."""
    caps = list(capacities(bp).values())
    if not caps:
        return DEFAULT_NODE_VCPUS, DEFAULT_NODE_MEMORY_GIB, 0
    return (
        max(c.vcpus_per_node for c in caps),
        max(c.memory_gib_per_node for c in caps),
        max(c.gpus_per_node for c in caps),
    )


COVERED_RESOURCES = ["cpu", "memory", GPU_RESOURCE]
DEFAULT_FLAVOR = "default"


def toleration(taint: Taint) -> dict[str, str]:
    if taint.value:
        return {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect}
    return {"key": taint.key, "operator": "Exists", "effect": taint.effect}


def pool_tolerations(pool: NodePool) -> list[dict[str, str]]:
    return [toleration(t) for t in pool.effective_taints]


def resource_flavors(bp: Blueprint) -> list[dict[str, Any]]:
    """A flavor per GPU pool, selecting exactly the labels its nodes carry (``pool_labels``)."""
    pools = bp.gpu_pools()
    if not pools:  # nothing to tell apart: one flavor that matches any node
        ctx = {"api_version": KUEUE_API, "name": DEFAULT_FLAVOR, "node_labels": {}, "tolerations": []}
        return objects_from_template("resource-flavor.yaml.j2", ctx)
    objs: list[dict[str, Any]] = []
    for pool in pools:
        ctx = {
            "api_version": KUEUE_API,
            "name": pool.name,
            "node_labels": pool_labels(pool),
            "tolerations": pool_tolerations(pool),
        }
        objs += objects_from_template("resource-flavor.yaml.j2", ctx)
    return objs


def _flavor_quota(name: str, cap: PoolCapacity, team: Team) -> dict[str, Any]:
    gpu = {"name": GPU_RESOURCE, "nominalQuota": min(team.gpu_quota, cap.gpus_per_node * cap.nodes)}
    gpu["borrowingLimit"] = team.borrowing_limit or 0
    return {
        "name": name,
        "resources": [  # same order as COVERED_RESOURCES
            {"name": "cpu", "nominalQuota": cap.vcpus},
            {"name": "memory", "nominalQuota": f"{cap.memory_gib}Gi"},
            gpu,
        ],
    }


def cluster_queue(bp: Blueprint, team: Team) -> list[dict[str, Any]]:
    pools = bp.gpu_pools()
    if pools:
        caps = capacities(bp)
        flavors = [_flavor_quota(p.name, caps[p.name], team) for p in pools]
    else:
        flavors = [_flavor_quota(DEFAULT_FLAVOR, cluster_totals(bp), team)]
    ctx = {
        "api_version": KUEUE_API,
        "name": team.name,
        "cohort": COHORT,
        "namespace_labels": {TEAM_LABEL: team.name},
        "covered": COVERED_RESOURCES,
        "flavors": flavors,
    }
    return objects_from_template("cluster-queue.yaml.j2", ctx)


def local_queue(team: Team) -> list[dict[str, Any]]:
    ctx = {"api_version": KUEUE_API, "name": team.name, "namespace": team.effective_namespace,
           "cluster_queue": team.name}
    return objects_from_template("local-queue.yaml.j2", ctx)


def merge_tolerations(base: list[dict[str, Any]], more: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``base`` plus those of ``more`` that no toleration of ``base`` already covers."""
    result = [dict(t) for t in base]
    for tol in more:
        covered = any(
            t == tol or (t.get("operator") == "Exists" and t.get("key") == tol.get("key")
                         and t.get("effect") in (None, tol.get("effect")))
            for t in result
        )
        if not covered:
            result.append(dict(tol))
    return result


def gpu_tolerations(bp: Blueprint) -> list[dict[str, Any]]:
    """What a pod needs to run on any GPU pool: the nvidia.com/gpu toleration and every pool's taints."""
    result = [dict(GPU_TOLERATION)]
    for pool in bp.gpu_pools():
        result = merge_tolerations(result, pool_tolerations(pool))
    return result
