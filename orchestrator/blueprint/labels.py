"""Node labels: the one convention for what a pool's nodes carry, whatever the provider.

Terraform node groups (``providers/aws``), the Ansible inventory (bare-metal kubelets,
``inventory.py``), Kueue ResourceFlavors (``render/kubernetes/scheduling.py``), and the device
plugin and inference placement (``GPU_PRESENT_LABEL``) all take their labels from here, so a
flavor selects exactly the nodes its pool made.
"""

from __future__ import annotations

from .models import NodePool

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


def pool_labels(pool: NodePool) -> dict[str, str]:
    """The labels of every node of ``pool``: what its Kueue flavor selects on."""
    return node_labels(pool, pool.gpu.type if pool.gpu else None)
