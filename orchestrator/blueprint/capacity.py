"""The capacity model (pure): what each pool holds, what each team is guaranteed where.

Written down in docs/kubernetes.md ("Capacity"). In short:

* A pool's **purpose** is ``training`` (Kueue flavors: queued Jobs), ``inference`` (model
  servers) or ``system``; by default a GPU pool trains and a pool without GPUs is ``system``.
* A pool **holds** the nodes the autoscaler can reach (cloud: ``max``; bare metal: the hosts
  that name it) times GPUs per node (the pool's ``gpu.count``, which the catalog checks against
  the instance type). A guarantee is in whole GPUs; on a MIG pool Kueue and the namespace quota
  count ``nvidia.com/gpu`` as the device plugin advertises it (each MIG instance is one), so a
  GPU there is ``units_per_gpu`` of them (data/nodes/mig.yaml).
* A team's ``gpu_quota`` is its whole guaranteed budget. Its model servers' GPUs
  (replicas x gpu) come out of it first; the rest is its Kueue nominal quota, split over the
  training pools it may use (``teams[].pools``, default all) in proportion to their GPUs.
  ``borrowing_limit`` is on top. CPU and memory follow the team's share of each pool's GPUs.
* ``lending_limit`` (at most the nominal quota) is how much of it idle teams may borrow; the
  rest stays the team's own. It is split over the pools in proportion to the nominal split.
* Per training pool, the teams' nominal quotas must fit what the pool holds; the model
  servers must fit the inference pools. Otherwise ``infra validate`` fails, unless the
  blueprint says ``overcommit: true`` (then it warns).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import catalog
from .models import Blueprint, NodePool, Team
from .nodes import DEFAULT_NODE_MEMORY_GIB, DEFAULT_NODE_VCPUS, mig_units, smallest_machine

TRAINING, INFERENCE, SYSTEM = "training", "inference", "system"

Issue = tuple[tuple[Any, ...], str]


@dataclass(frozen=True)
class PoolCapacity:
    name: str
    nodes: int
    gpus_per_node: int
    vcpus_per_node: int
    memory_gib_per_node: int
    # nvidia.com/gpu per GPU as the device plugin advertises it: MIG instances per GPU, else 1.
    # Guarantees are in whole GPUs; Kueue and quotas count in this unit (``units``).
    units_per_gpu: int = 1

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def units(self, gpus: int) -> int:
        """``gpus`` whole GPUs of this pool in the scheduler's unit (``nvidia.com/gpu``)."""
        return gpus * self.units_per_gpu

    @property
    def vcpus(self) -> int:
        return self.nodes * self.vcpus_per_node

    @property
    def memory_gib(self) -> int:
        return self.nodes * self.memory_gib_per_node

    def describe(self) -> str:
        return f"{self.gpus} GPUs ({self.nodes} node(s) x {self.gpus_per_node})"


def purpose(pool: NodePool) -> str:
    if pool.purpose:
        return pool.purpose
    return TRAINING if pool.gpu else SYSTEM


def system_pool_index(bp: Blueprint) -> int | None:
    """Where the cloud needs one pool for its own system pods (AKS's default node pool): the pool
    with purpose system, else the first without GPUs and without a purpose; None if there is none."""
    for i, pool in enumerate(bp.node_pools):
        if pool.purpose == SYSTEM:
            return i
    return next((i for i, p in enumerate(bp.node_pools) if p.gpu is None and p.purpose is None), None)


def pool_capacity(bp: Blueprint, pool: NodePool) -> PoolCapacity:
    nodes = (pool.max or 0) if bp.is_cloud else sum(1 for h in bp.hosts if h.pool == pool.name)
    gpus = pool.gpu.count if pool.gpu else 0
    if not bp.is_cloud:
        host_gpus = [h.gpu.count for h in bp.hosts if h.pool == pool.name and h.gpu]
        gpus = max(host_gpus + [gpus])
    known = smallest_machine(bp.provider, pool)  # any type of instance_types may come up
    vcpus = known.vcpus if known else DEFAULT_NODE_VCPUS
    memory = int(known.memory_gib) if known else DEFAULT_NODE_MEMORY_GIB
    return PoolCapacity(pool.name, nodes, gpus, vcpus, memory, mig_units(pool))


def capacities(bp: Blueprint) -> dict[str, PoolCapacity]:
    return {p.name: pool_capacity(bp, p) for p in bp.node_pools}


def cpu_pools(bp: Blueprint) -> list[NodePool]:
    """Where Jobs that request no GPU run (each gets a Kueue flavor of its own): pools without
    GPUs and with purpose training; if there are none, pools without GPUs, purpose and taints,
    except the cloud's system pool where the cloud keeps it for its own pods (AKS). Empty: CPU-only
    Jobs have nowhere to go and wait (validate warns); they never run on GPU nodes."""
    training = [p for p in bp.node_pools if not p.gpu and p.purpose == TRAINING]
    if training:
        return training
    reserved = system_pool_index(bp) if catalog.setting(bp.provider, "system_pool") else None
    return [p for i, p in enumerate(bp.node_pools)
            if not p.gpu and p.purpose is None and not p.effective_taints and i != reserved
            and (pool_capacity(bp, p).nodes if bp.is_cloud else _workers(bp, p))]


def _workers(bp: Blueprint, pool: NodePool) -> int:
    """Hosts of ``pool`` that run workloads (a control plane that is not also a worker keeps
    kubeadm's taint)."""
    return sum(1 for h in bp.hosts if h.pool == pool.name and "worker" in h.roles)


def gpu_pools(bp: Blueprint, wanted: str) -> list[NodePool]:
    return [p for p in bp.node_pools if p.gpu and purpose(p) == wanted]


def team_pools(bp: Blueprint, team: Team, wanted: str) -> list[NodePool]:
    """The GPU pools of purpose ``wanted`` that ``team`` may use (``teams[].pools``, default all)."""
    pools = gpu_pools(bp, wanted)
    if team.pools is None:
        return pools
    return [p for p in pools if p.name in team.pools]


def serving_gpus(bp: Blueprint, team: Team) -> int:
    models = bp.inference.models if bp.inference else []
    return sum(m.replicas * m.gpu for m in models if m.team == team.name)


def training_quota(bp: Blueprint, team: Team) -> int:
    """The team's Kueue nominal GPUs in total: its budget less what its model servers hold."""
    return max(team.gpu_quota - serving_gpus(bp, team), 0)


def nominal_split(bp: Blueprint, team: Team) -> dict[str, int]:
    """The team's nominal GPUs per training pool it may use (0 included)."""
    return split(bp, team, training_quota(bp, team))


def borrowing_split(bp: Blueprint, team: Team) -> dict[str, int]:
    """``borrowing_limit`` split the same way: a team borrows at most that much in all, so its
    ResourceQuota (nominal + serving + borrowing) never refuses what Kueue admits."""
    return split(bp, team, team.borrowing_limit or 0)


def lending_split(bp: Blueprint, team: Team) -> dict[str, int] | None:
    """``lending_limit`` per training pool, or None when not given (Kueue then lends all of the
    nominal quota). Split in proportion to the team's nominal GPUs per pool (largest remainder,
    ties to the earlier pool), so the parts add up to ``lending_limit`` and none exceeds that
    pool's nominal quota (Kueue's webhook refuses lendingLimit > nominalQuota): a pool whose
    exact share has a fraction gets at most one more, and its exact share is below its nominal."""
    if team.lending_limit is None:
        return None
    nominal = nominal_split(bp, team)
    want = min(team.lending_limit, sum(nominal.values()))  # more is a validation error
    return dict(zip(nominal, _largest_remainder(want, list(nominal.values())), strict=True))


def split(bp: Blueprint, team: Team, want: int) -> dict[str, int]:
    """``want`` GPUs over the training pools ``team`` may use, proportional to the pools' GPUs
    (largest remainder, ties to the earlier pool)."""
    caps = capacities(bp)
    pools = team_pools(bp, team, TRAINING)
    shares = _largest_remainder(want, [caps[p.name].gpus for p in pools])
    return {p.name: n for p, n in zip(pools, shares, strict=True)}


def _largest_remainder(want: int, weights: list[int]) -> list[int]:
    """``want`` in whole parts proportional to ``weights`` (largest remainder, ties to the
    earlier); all 0 when the weights are."""
    total = sum(weights)
    if total == 0:
        return [0 for _ in weights]
    result = [want * w // total for w in weights]
    remainder = [want * w % total for w in weights]  # in integers: no rounding
    order = sorted(range(len(weights)), key=lambda i: (-remainder[i], i))
    for i in order[: want - sum(result)]:
        result[i] += 1
    return result


def share(amount: int, part: int, whole: int) -> int:
    """``amount`` x part / whole, rounded down (CPU and memory follow the GPU share)."""
    return amount * part // whole if whole else 0


def guarantees(bp: Blueprint) -> dict[str, dict[str, int]]:
    """{training pool: {team: nominal GPUs}}, pools and teams in blueprint order."""
    result: dict[str, dict[str, int]] = {p.name: {} for p in gpu_pools(bp, TRAINING)}
    for team in bp.teams:
        for pool, gpus in nominal_split(bp, team).items():
            result[pool][team.name] = gpus
    return result


def _list(amounts: dict[str, int]) -> str:
    return ", ".join(f"{name} ({n})" for name, n in amounts.items())


def issues(bp: Blueprint) -> Iterator[Issue]:
    """Errors: unknown pools, budgets that do not add up, and (without ``overcommit: true``)
    guarantees a pool cannot hold."""
    yield from _references(bp)
    if not bp.overcommit:
        yield from overcommitted(bp)


def warnings(bp: Blueprint) -> list[Issue]:
    """With ``overcommit: true``, what would otherwise be capacity errors; and training pools
    whose nodes no team may fill (``no_whole_node``)."""
    return (list(overcommitted(bp)) if bp.overcommit else []) + list(no_whole_node(bp))


def no_whole_node(bp: Blueprint) -> Iterator[Issue]:
    """A training pool where no team's nominal plus borrowing quota reaches one node's GPUs: a Job
    that needs a whole node there (multi-GPU training) is never admitted."""
    if not bp.teams:
        return
    caps = capacities(bp)
    reach = {p.name: 0 for p in gpu_pools(bp, TRAINING)}
    for team in bp.teams:
        nominal, borrow = nominal_split(bp, team), borrowing_split(bp, team)
        for pool in nominal:
            reach[pool] = max(reach[pool], nominal[pool] + borrow[pool])
    for i, pool in enumerate(bp.node_pools):
        if pool.name in reach and caps[pool.name].nodes and reach[pool.name] < caps[pool.name].gpus_per_node:
            yield ("node_pools", i, "gpu"), (
                f"no team may hold a whole node of pool '{pool.name}' ({caps[pool.name].gpus_per_node} GPUs): the most "
                f"any team's nominal plus borrowing quota reaches there is {reach[pool.name]}, so a Job that needs "
                "a whole node is never admitted; raise a team's gpu_quota or borrowing_limit")


def _references(bp: Blueprint) -> Iterator[Issue]:
    pools = {p.name: p for p in bp.node_pools}
    for i, team in enumerate(bp.teams):
        for j, name in enumerate(team.pools or []):
            pool = pools.get(name)
            if pool is None or not pool.gpu:
                known = ", ".join(p.name for p in bp.gpu_pools()) or "none are defined"
                yield ("teams", i, "pools", j), f"no GPU node pool named '{name}' (GPU pools: {known})"
    models = bp.inference.models if bp.inference else []
    for i, model in enumerate(models):
        team = next((t for t in bp.teams if t.name == model.team), None)
        if model.gpu and team is not None and not team_pools(bp, team, INFERENCE):
            yield ("inference", "models", i, "gpu"), (
                f"model '{model.name}' needs GPUs but team '{team.name}' has no GPU node pool with "
                "purpose: inference (model servers run only there)"
            )
    for i, team in enumerate(bp.teams):
        if training_quota(bp, team) and not team_pools(bp, team, TRAINING):
            yield ("teams", i, "gpu_quota"), (
                f"team '{team.name}' is guaranteed {training_quota(bp, team)} GPUs for jobs but may use no "
                "GPU node pool with purpose: training"
            )
        if team.lending_limit is not None and team.lending_limit > training_quota(bp, team):
            yield ("teams", i, "lending_limit"), (
                f"team '{team.name}' can lend at most its nominal quota, {training_quota(bp, team)} GPUs "
                f"(gpu_quota {team.gpu_quota} less {serving_gpus(bp, team)} for its model servers), "
                f"not {team.lending_limit}"
            )
        held = serving_gpus(bp, team)
        if held > team.gpu_quota:
            yield ("teams", i, "gpu_quota"), (
                f"team '{team.name}' has model servers holding {held} GPUs but gpu_quota {team.gpu_quota}: "
                "serving GPUs come out of gpu_quota"
            )


def overcommitted(bp: Blueprint) -> Iterator[Issue]:
    """Pools whose teams' guarantees exceed what the pool holds, located at the last such team."""
    index = {t.name: i for i, t in enumerate(bp.teams)}
    caps = capacities(bp)
    for pool, teams in guarantees(bp).items():
        total = sum(teams.values())
        if total > caps[pool].gpus:
            last = max((t for t, n in teams.items() if n), key=lambda t: index[t])
            yield ("teams", index[last], "gpu_quota"), (
                f"node pool '{pool}' holds {caps[pool].describe()} but teams {_list(teams)} are "
                f"guaranteed {total} there: lower gpu_quota, raise the pool's max, or set overcommit: true"
            )
    held = {t.name: serving_gpus(bp, t) for t in bp.teams if serving_gpus(bp, t)}
    room = sum(caps[p.name].gpus for p in gpu_pools(bp, INFERENCE))
    if sum(held.values()) > room and held and gpu_pools(bp, INFERENCE):
        last = max(held, key=lambda t: index[t])
        names = ", ".join(p.name for p in gpu_pools(bp, INFERENCE))
        yield ("teams", index[last], "gpu_quota"), (
            f"inference node pools {names} hold {room} GPUs but the model servers of teams {_list(held)} "
            f"need {sum(held.values())}: lower replicas or gpu, or raise the pools' max"
        )
