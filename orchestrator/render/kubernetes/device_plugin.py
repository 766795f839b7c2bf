"""The NVIDIA device plugin (pure): a pinned DaemonSet on GPU nodes only, tolerating every GPU
pool's taints, with the MIG strategy the pools' profiles call for.

None where the cloud runs its own (``device_plugin: cloud`` in data/catalog/<provider>.yaml: GKE
installs the driver and its own plugin on GPU nodes): two plugins on one node would both
register ``nvidia.com/gpu`` with the kubelet. docs/providers.md says, per provider, how the
driver and the plugin get there.
"""

from __future__ import annotations

from typing import Any

from ...blueprint import catalog
from ...blueprint.labels import GPU_PRESENT_LABEL
from ...blueprint.models import Blueprint
from . import manifests
from .scheduling import gpu_tolerations

# Pinned image (docs/kubernetes.md says why).
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"


def mig_strategy(bp: Blueprint) -> str:
    """``none`` without MIG; ``single`` when every MIG pool splits GPUs uniformly; else ``mixed``."""
    profiles = [p.mig.profile for p in bp.gpu_pools() if p.mig and p.mig.profile != "all-disabled"]
    if not profiles:
        return "none"
    return "mixed" if any(p == "all-balanced" for p in profiles) else "single"


def device_plugin(bp: Blueprint) -> list[dict[str, Any]]:
    """The DaemonSet (empty when the cluster has no GPU pool and no GPU host, or when the cloud
    runs its own plugin)."""
    if not bp.gpu_pools() and not any(h.gpu for h in bp.hosts):
        return []
    if catalog.setting(bp.provider, "device_plugin", "infra") != "infra":
        return []
    env = [
        {"name": "FAIL_ON_INIT_ERROR", "value": "false"},
        {"name": "MIG_STRATEGY", "value": mig_strategy(bp)},
    ]
    ctx = {
        "gpu_label": GPU_PRESENT_LABEL,
        "tolerations": gpu_tolerations(bp),
        "image": DEVICE_PLUGIN_IMAGE,
        "env": env,
    }
    return manifests.device_plugin(ctx)
