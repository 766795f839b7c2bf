"""Instance-type catalog: which GPUs each cloud machine type carries.

The facts live in ``orchestrator/data/catalog/<provider>.yaml`` (data, not code). An instance
type missing from the catalog is allowed and simply not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from orchestrator.blueprint.models import CLOUD_PROVIDERS

FIELDS = ("gpu_type", "gpu_count", "vcpus", "memory_gib")


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu_type: str | None
    gpu_count: int
    vcpus: int
    memory_gib: float

    def describe(self) -> str:
        """``8 x a100`` or ``no GPUs``."""
        return f"{self.gpu_count} x {self.gpu_type}" if self.gpu_type else "no GPUs"


@cache
def catalog(provider: str) -> dict[str, InstanceType]:
    """All known instance types of ``provider`` (empty for providers without a catalog)."""
    if provider not in CLOUD_PROVIDERS:
        return {}
    text = resources.files("orchestrator").joinpath("data", "catalog", f"{provider}.yaml").read_text("utf-8")
    raw = yaml.safe_load(text) or {}
    return {name: InstanceType(name, **{f: entry[f] for f in FIELDS}) for name, entry in raw.items()}


def lookup(provider: str, instance_type: str | None) -> InstanceType | None:
    """The catalog entry for ``instance_type`` on ``provider``, or None when unknown."""
    if not instance_type:
        return None
    return catalog(provider).get(instance_type)
