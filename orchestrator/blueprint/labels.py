"""Node labels every provider puts on a pool's nodes: one convention, used by Terraform node
groups, the Ansible inventory (bare-metal kubelets), Kueue ResourceFlavors and the device plugin.
"""

from __future__ import annotations

from .models import NodePool

POOL_LABEL = "infra.dev/pool"
GPU_TYPE_LABEL = "infra.dev/gpu-type"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"


def pool_labels(pool: NodePool) -> dict[str, str]:
    """The pool's own labels plus ours, sorted: what Kueue flavors must select on."""
    labels = {POOL_LABEL: pool.name, **pool.labels}
    if pool.gpu:
        labels[GPU_TYPE_LABEL] = pool.gpu.type
        labels[GPU_PRESENT_LABEL] = "true"
    return dict(sorted(labels.items()))
