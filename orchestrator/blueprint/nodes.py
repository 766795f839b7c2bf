"""Node shapes (pure): the node a real cluster gives each pool or host.

What a scheduler sees of a node: its labels, its taints and what it can allocate. Three sources:

* what infra sets and what the cloud adds for it (``labels.py``: pool labels and taints, the
  cloud's spot label and taint, GKE's MIG partition-size label);
* what the platform adds by itself (``data/nodes/<provider>.yaml``, each entry with its public
  source: well-known labels, AKS's system-pool taint, GKE's GPU taint, kubeadm's control-plane
  taint);
* what a node holds (``data/catalog/<provider>.yaml``): for a pool of several ``instance_types``
  the smallest one (a node of any of them may come up), and GPUs in the unit the device plugin
  advertises (``MIG_STRATEGY=single``: every MIG instance is one ``nvidia.com/gpu``;
  ``data/nodes/mig.yaml``).

Allocatable is the catalog's capacity: the kubelet's own reservations are not subtracted (a pod
asking for a whole node's CPU would fit here and not on the node). Bare-metal hosts have no
catalog: ``DEFAULT_NODE_VCPUS`` / ``DEFAULT_NODE_MEMORY_GIB``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from .. import paths
from . import catalog
from .labels import GPU_PRESENT_LABEL, flavor_labels, mig_partition, pool_taints
from .models import Blueprint, NodePool, Taint

DEFAULT_NODE_VCPUS = 64
DEFAULT_NODE_MEMORY_GIB = 256
CONTROL_PLANE, SYSTEM, GPU, CPU = "control_plane", "system", "gpu", "cpu"


@dataclass(frozen=True)
class NodeShape:
    """One kind of node: ``count`` nodes alike (a pool's ``max``, or one host)."""

    name: str                       # the pool's name, or the host's on bare metal
    pool: str | None                # the node pool (None: a bare-metal host of no pool)
    role: str                       # gpu | cpu | system (the cloud's system pool) | control_plane
    labels: dict[str, str]
    taints: tuple[dict[str, str], ...]
    cpu_millis: int
    memory_mib: int
    gpus: int                       # allocatable nvidia.com/gpu (MIG instances under MIG)
    count: int
    instance_type: str | None = None
    where: tuple[Any, ...] = ()     # the blueprint field that made it: ("node_pools", i) or ("hosts", i)

    @property
    def has_gpus(self) -> bool:
        return self.gpus > 0 or self.labels.get(GPU_PRESENT_LABEL) == "true"

    def allocatable(self) -> dict[str, int]:
        """Resource name -> amount in the scheduler's unit (cpu in millicores, memory in MiB)."""
        found = {"cpu": self.cpu_millis, "memory": self.memory_mib}
        if self.gpus:
            found["nvidia.com/gpu"] = self.gpus
        return found


@cache
def platform(provider: str) -> dict[str, Any]:
    path = paths.package_data() / "nodes" / f"{provider}.yaml"
    if not path.is_file():
        return {"labels": [], "taints": {}}
    from .. import datafiles

    data = datafiles.load(path) or {}
    return {"labels": data.get("labels") or [], "taints": data.get("taints") or {}}


@cache
def _mig() -> dict[str, Any]:
    from .. import datafiles

    return datafiles.load(paths.package_data() / "nodes" / "mig.yaml")


def mig_profiles(gpu_type: str) -> dict[str, int]:
    """Every MIG profile some model of ``gpu_type`` offers, with instances per GPU."""
    table = _mig()
    found: dict[str, int] = {}
    for model in table["by_type"].get(gpu_type, []):
        found.update(table["models"][model])
    return found


def mig_units(pool: NodePool) -> int:
    """``nvidia.com/gpu`` a GPU of ``pool`` advertises: the instances of its MIG profile (one
    size for the whole pool), else 1."""
    size = mig_partition(pool)
    if size is None or pool.gpu is None:
        return 1
    return mig_profiles(pool.gpu.type).get(size, 1)


def smallest_machine(provider: str, pool: NodePool) -> catalog.InstanceType | None:
    """The smallest known type of the pool's ``instance_types`` (fewest vCPUs, then memory): any
    of them may come up, so a pod or a guarantee must fit that one. None: none is known."""
    known = [m for m in (catalog.lookup(provider, t) for t in pool.all_instance_types) if m is not None]
    return min(known, key=lambda m: (m.vcpus, m.memory_gib, m.name)) if known else None


def _fill(value: str, values: dict[str, str]) -> str:
    for key, text in values.items():
        value = value.replace("{" + key + "}", text)
    return value


def _taint(t: dict[str, Any] | Taint) -> dict[str, str]:
    if isinstance(t, Taint):
        return {"key": t.key, "value": t.value, "effect": t.effect}
    return {"key": t["key"], "value": str(t.get("value", "")), "effect": t["effect"]}


def _merge_taints(*groups: list[dict[str, str]]) -> tuple[dict[str, str], ...]:
    found: list[dict[str, str]] = []
    for group in groups:
        for t in group:
            if not any(o["key"] == t["key"] and o["effect"] == t["effect"] for o in found):
                found.append(t)
    return tuple(found)


def _platform_labels(provider: str, values: dict[str, str]) -> dict[str, str]:
    """The platform's labels with ``values`` filled in; one naming a value not known here (an
    instance type the catalog lacks) is left out."""
    filled = {e["key"]: _fill(str(e["value"]), values) for e in platform(provider)["labels"]}
    return {k: v for k, v in filled.items() if "{" not in v}


def _platform_taints(provider: str, which: str) -> list[dict[str, str]]:
    return [_taint(t) for t in platform(provider)["taints"].get(which) or []]


def pool_shape(bp: Blueprint, pool: NodePool, system_pool: bool = False, where: tuple[Any, ...] = ()) -> NodeShape:
    """The node a cloud node pool gives (``count`` = its ``max``)."""
    machine = smallest_machine(bp.provider, pool)
    capacity = "SPOT" if pool.effective_capacity_type == "spot" else "ON_DEMAND"
    values = {"pool": pool.name, "capacity": capacity}
    if machine is not None:
        values["instance_type"] = machine.name
    labels = {**_platform_labels(bp.provider, values), **flavor_labels(pool, bp.provider)}
    taints = _merge_taints([_taint(t) for t in pool_taints(pool, bp.provider)],
                           _platform_taints(bp.provider, GPU) if pool.gpu else [],
                           _platform_taints(bp.provider, "system_pool") if system_pool else [])
    gpus = (pool.gpu.count if pool.gpu else 0) * mig_units(pool)
    role = GPU if pool.gpu else (SYSTEM if system_pool else CPU)
    return NodeShape(
        name=pool.name, pool=pool.name, role=role, labels=dict(sorted(labels.items())), taints=taints,
        cpu_millis=1000 * (machine.vcpus if machine else DEFAULT_NODE_VCPUS),
        memory_mib=int(1024 * (machine.memory_gib if machine else DEFAULT_NODE_MEMORY_GIB)),
        gpus=gpus, count=pool.max or 0, instance_type=machine.name if machine else None, where=where,
    )


def host_shapes(bp: Blueprint) -> list[NodeShape]:
    """One shape per bare-metal host that is a Kubernetes node (an inference-only host is none):
    its pool's labels and taints (``inventory.from_blueprint``, what the Ansible roles register),
    kubeadm's control-plane taint where it stays (a control plane that is not also a worker, in a
    cluster with workers: a cluster of control planes alone runs its pods on them, untainted)."""
    from ..inventory import from_blueprint

    shapes = []
    has_workers = any("worker" in h.roles for h in bp.hosts)
    for i, host in enumerate(from_blueprint(bp)):
        if not {"control_plane", "worker"} & set(host.roles):
            continue
        pool = bp.pool(host.pool) if host.pool else None
        values = {"host": host.name}
        labels = {**_platform_labels(bp.provider, values), **host.labels}
        control_only = "control_plane" in host.roles and "worker" not in host.roles and has_workers
        taints = _merge_taints([_taint(t) for t in host.taints],
                               _platform_taints(bp.provider, CONTROL_PLANE) if control_only else [])
        units = mig_units(pool) if pool is not None else 1
        role = CONTROL_PLANE if control_only else (GPU if host.gpu_count else CPU)
        shapes.append(NodeShape(
            name=host.name, pool=host.pool, role=role, labels=dict(sorted(labels.items())), taints=taints,
            cpu_millis=1000 * DEFAULT_NODE_VCPUS, memory_mib=1024 * DEFAULT_NODE_MEMORY_GIB,
            gpus=host.gpu_count * units, count=1, where=("hosts", i),
        ))
    return shapes


def node_shapes(bp: Blueprint) -> list[NodeShape]:
    """Every kind of node the blueprint's cluster has, in blueprint order."""
    if not bp.is_cloud:
        return host_shapes(bp)
    from .capacity import system_pool_index

    system = system_pool_index(bp) if catalog.setting(bp.provider, "system_pool") else None
    return [pool_shape(bp, p, system_pool=(i == system), where=("node_pools", i)) for i, p in enumerate(bp.node_pools)]
