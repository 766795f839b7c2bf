"""GPU scheduling (pure): Kueue flavors and queues, GPU tolerations.

**Capacity** is the blueprint's capacity model (``blueprint/capacity.py``, docs/kubernetes.md):
pools hold max (cloud) or their hosts (bare metal) x GPUs per node; a team's ``gpu_quota``
less its model servers' GPUs is its nominal quota, split over its training pools in proportion
to their GPUs, with CPU and memory following the same share; ``infra validate`` refuses
guarantees a pool cannot hold.

**Kueue.** A ResourceFlavor per *training* GPU pool (the pool's node labels, exactly;
tolerations for its taints), a ClusterQueue per team in one cohort listing the flavors of the
pools the team may use, a LocalQueue per team namespace. ``borrowing_limit`` is how many more
GPUs it may borrow from idle teams (none given = no borrowing: Kueue reads a missing limit as
"unlimited"). ``lending_limit``, when given, is the ``lendingLimit`` of its GPU quota: how much of
its nominal quota idle teams may borrow (the rest is never lent). The namespace's ResourceQuota
caps the team at ``gpu_quota + borrowing_limit`` (nominal + serving + borrowing).
"""

from __future__ import annotations

from typing import Any

from ...blueprint import capacity
from ...blueprint.capacity import DEFAULT_NODE_MEMORY_GIB, DEFAULT_NODE_VCPUS, PoolCapacity, capacities
from ...blueprint.labels import flavor_labels, pool_taints
from ...blueprint.models import Blueprint, NodePool, Taint, Team
from ...conventions import GPU_RESOURCE, GPU_TOLERATION, KUEUE_API, TEAM_LABEL
from . import manifests

COHORT = "infra-gpu"  # every team's ClusterQueue: idle quota is lent within it


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
        max(c.units(c.gpus_per_node) for c in caps),
    )


COVERED_RESOURCES = ["cpu", "memory", GPU_RESOURCE]
DEFAULT_FLAVOR = "default"


def toleration(taint: Taint) -> dict[str, str]:
    if taint.value:
        return {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect}
    return {"key": taint.key, "operator": "Exists", "effect": taint.effect}


def pool_tolerations(pool: NodePool, provider: str) -> list[dict[str, str]]:
    """Tolerations for every taint the pool's nodes carry on ``provider`` (``pool_taints``: the
    blueprint's and the cloud's own, e.g. AKS's spot taint)."""
    return [toleration(t) for t in pool_taints(pool, provider)]


def resource_flavors(bp: Blueprint) -> list[dict[str, Any]]:
    """A flavor per CPU pool (``capacity.cpu_pools``: where Jobs without GPUs run) and per training
    GPU pool, each selecting exactly the labels its nodes carry (``flavor_labels``: the pool's
    labels and, on GKE, a MIG pool's partition size) and tolerating their taints."""
    pools = capacity.gpu_pools(bp, capacity.TRAINING)
    if not pools:  # nothing to tell apart: one flavor that matches any node
        ctx = {"api_version": KUEUE_API, "name": DEFAULT_FLAVOR, "node_labels": {}, "tolerations": []}
        return manifests.resource_flavor(ctx)
    objs: list[dict[str, Any]] = []
    for pool in capacity.cpu_pools(bp) + pools:
        ctx = {
            "api_version": KUEUE_API,
            "name": pool.name,
            "node_labels": flavor_labels(pool, bp.provider),
            "tolerations": pool_tolerations(pool, bp.provider),
        }
        objs += manifests.resource_flavor(ctx)
    return objs


def _gpu_quota(gpus: int, borrow: int, lend: int | None) -> dict[str, Any]:
    """The GPU resource of a flavor: ``lendingLimit`` only when the blueprint sets one (absent,
    Kueue lends all of the nominal quota)."""
    quota: dict[str, Any] = {"name": GPU_RESOURCE, "nominalQuota": gpus, "borrowingLimit": borrow}
    if lend is not None:
        quota["lendingLimit"] = lend
    return quota


def _lent(amount: int, lend: int | None, gpus: int) -> int | None:
    """CPU or memory lent with ``lend`` of ``gpus`` GPUs: the same share (None: all, like GPUs)."""
    return None if lend is None else capacity.share(amount, lend, gpus)


def _resource(name: str, nominal: int, lend: int | None, unit: str = "") -> dict[str, Any]:
    quota: dict[str, Any] = {"name": name, "nominalQuota": f"{nominal}{unit}" if unit else nominal}
    if lend is not None:
        quota["lendingLimit"] = f"{lend}{unit}" if unit else lend
    return quota


def _flavor_quota(name: str, cap: PoolCapacity, gpus: int, borrow: int, lend: int | None) -> dict[str, Any]:
    """The team's share of one pool: ``gpus`` nominal GPUs and the same share of CPU and memory;
    it may borrow ``borrow`` more GPUs there and lend ``lend`` of its own (None: all), CPU and
    memory lent in the same proportion (so ``lending_limit: 0`` keeps them too)."""
    whole = cap.gpus
    cpu, memory = capacity.share(cap.vcpus, gpus, whole), capacity.share(cap.memory_gib, gpus, whole)
    return {
        "name": name,
        "resources": [  # same order as COVERED_RESOURCES; GPUs in the scheduler's unit (MIG instances)
            _resource("cpu", cpu, _lent(cpu, lend, gpus)),
            _resource("memory", memory, _lent(memory, lend, gpus), "Gi"),
            _gpu_quota(cap.units(gpus), cap.units(borrow), None if lend is None else cap.units(lend)),
        ],
    }


def _cpu_flavor_quota(bp: Blueprint, team: Team, cap: PoolCapacity) -> dict[str, Any]:
    """The team's share of a CPU pool: an even share of its CPU and memory, no GPUs (so a Job
    that requests GPUs never gets this flavor); lent like its GPUs (``lending_limit`` of its
    nominal GPUs: the same fraction, none given: all)."""
    teams = max(len(bp.teams), 1)
    cpu, memory = cap.vcpus // teams, cap.memory_gib // teams
    nominal = capacity.training_quota(bp, team)
    lend = None if team.lending_limit is None else min(team.lending_limit, nominal)
    return {
        "name": cap.name,
        "resources": [
            _resource("cpu", cpu, _lent(cpu, lend, nominal) if nominal else (None if lend is None else 0)),
            _resource("memory", memory, (_lent(memory, lend, nominal) if nominal else (None if lend is None else 0)),
                      "Gi"),
            _gpu_quota(0, 0, None if lend is None else 0),
        ],
    }


def cluster_queue(bp: Blueprint, team: Team) -> list[dict[str, Any]]:
    if capacity.gpu_pools(bp, capacity.TRAINING):
        caps = capacities(bp)
        borrow = capacity.borrowing_split(bp, team)
        lend = capacity.lending_split(bp, team)
        flavors = [_flavor_quota(pool, caps[pool], gpus, borrow[pool], None if lend is None else lend[pool])
                   for pool, gpus in capacity.nominal_split(bp, team).items()]
        if not flavors:  # a team that may use no training pool: listed, with nothing to use
            nothing = None if team.lending_limit is None else 0
            flavors = [_flavor_quota(p.name, caps[p.name], 0, 0, nothing)
                       for p in capacity.gpu_pools(bp, capacity.TRAINING)]
        # CPU pools first: Kueue tries flavors in order, and only these fit a Job without GPUs.
        flavors = [_cpu_flavor_quota(bp, team, caps[p.name]) for p in capacity.cpu_pools(bp)] + flavors
    else:  # no training pool: one flavor, no GPUs to guarantee; CPU and memory of the cluster
        totals = cluster_totals(bp)
        flavors = [{"name": DEFAULT_FLAVOR, "resources": [
            {"name": "cpu", "nominalQuota": totals.vcpus},
            {"name": "memory", "nominalQuota": f"{totals.memory_gib}Gi"},
            _gpu_quota(0, 0, None if team.lending_limit is None else 0),
        ]}]
    ctx = {
        "api_version": KUEUE_API,
        "name": team.name,
        "cohort": COHORT,
        "namespace_labels": {TEAM_LABEL: team.name},
        "covered": COVERED_RESOURCES,
        "flavors": flavors,
    }
    return manifests.cluster_queue(ctx)


def local_queue(team: Team) -> list[dict[str, Any]]:
    ctx = {"api_version": KUEUE_API, "name": team.name, "namespace": team.effective_namespace,
           "cluster_queue": team.name}
    return manifests.local_queue(ctx)


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
        result = merge_tolerations(result, pool_tolerations(pool, bp.provider))
    return result
