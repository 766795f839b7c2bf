"""Node labels: the one convention for what a pool's nodes carry, whatever the provider.

Terraform node groups (``providers/<cloud>``), the Ansible inventory (bare-metal kubelets,
``inventory.py``), Kueue ResourceFlavors (``render/kubernetes/scheduling.py``), and the device
plugin and inference placement (``GPU_PRESENT_LABEL``) all take their labels from here, so a
flavor selects exactly the nodes its pool made. Taints too (``pool_taints``): what the cloud adds
to a pool's nodes by itself (AKS's spot taint and label) is data in data/catalog/<provider>.yaml,
read here, so Terraform and the tolerations never disagree. Labels the cloud adds that the node
pool must not list (GKE's MIG partition size) are in ``flavor_labels`` only.
"""

from __future__ import annotations

from . import catalog
from .models import NodePool, Taint

POOL_LABEL = "infra.dev/pool"
GPU_TYPE_LABEL = "infra.dev/gpu-type"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"


def node_labels(pool: NodePool | None, gpu_type: str | None) -> dict[str, str]:
    """Labels of a node in ``pool`` (if any) with GPUs of ``gpu_type`` (if any), sorted: the
    pool's name, the pool's own labels, then the GPU type and ``nvidia.com/gpu.present``."""
    labels: dict[str, str] = {}
    if pool is not None:
        labels[POOL_LABEL] = pool.name
        labels.update(pool.labels)
    if gpu_type:
        labels[GPU_TYPE_LABEL] = gpu_type
        labels[GPU_PRESENT_LABEL] = "true"
    return dict(sorted(labels.items()))


def pool_labels(pool: NodePool, provider: str) -> dict[str, str]:
    """The labels of every node of ``pool`` on ``provider``: what its Kueue flavor selects on and
    what the cloud's node pool lists (with the labels the cloud adds itself, ``cloud_labels``)."""
    return dict(sorted({**node_labels(pool, pool.gpu.type if pool.gpu else None),
                        **cloud_labels(pool, provider)}.items()))


def mig_partition(pool: NodePool) -> str | None:
    """The one partition size of every GPU of ``pool`` (profile ``all-1g.10gb``: ``1g.10gb``);
    None without MIG, with ``all-disabled`` and with ``all-balanced`` (several sizes)."""
    if pool.mig is None or pool.mig.profile in ("all-disabled", "all-balanced"):
        return None
    return pool.mig.profile.removeprefix("all-")


def flavor_labels(pool: NodePool, provider: str) -> dict[str, str]:
    """What a Kueue flavor for ``pool`` selects: ``pool_labels`` and the label the cloud puts on the
    nodes of a MIG pool where it partitions GPUs itself (``mig.node_label`` in
    data/catalog/<provider>.yaml; GKE: ``cloud.google.com/gke-gpu-partition-size``), which the
    node pool must not list."""
    labels = pool_labels(pool, provider)
    label = (catalog.setting(provider, "mig") or {}).get("node_label")
    if label and (size := mig_partition(pool)):
        labels[label] = size
    return dict(sorted(labels.items()))


def pool_taints(pool: NodePool, provider: str) -> list[Taint]:
    """The taints of every node of ``pool`` on ``provider``: the blueprint's (``effective_taints``)
    and those the cloud adds itself (AKS: every spot node). Terraform lists them all (a node pool
    that omits them drifts) and Kueue flavors, the device plugin and model servers tolerate them."""
    taints = pool.effective_taints
    return taints + [t for t in _cloud_taints(pool, provider) if t not in taints]


def cloud_labels(pool: NodePool, provider: str) -> dict[str, str]:
    """Labels the pool's nodes carry for the cloud's sake (data/catalog/<provider>.yaml): what the
    cloud puts on spot nodes (``spot_node_labels``), and what its autoscaler needs on GPU nodes
    (``gpu_node_labels``, e.g. EKS's ``k8s.amazonaws.com/accelerator``)."""
    labels: dict[str, str] = {}
    if pool.gpu:
        labels.update({k: str(v).replace("{gpu}", pool.gpu.type)
                       for k, v in catalog.setting(provider, "gpu_node_labels", {}).items()})
    if pool.effective_capacity_type == "spot":
        labels.update(catalog.setting(provider, "spot_node_labels", {}))
    return labels


def _cloud_taints(pool: NodePool, provider: str) -> list[Taint]:
    if pool.effective_capacity_type != "spot":
        return []
    return [Taint(**t) for t in catalog.setting(provider, "spot_node_taints", [])]
