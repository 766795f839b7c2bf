"""Per-provider facts that validation needs, from ``orchestrator/data/catalog/<provider>.yaml``.

Each file gives the provider's ``kind`` and its ``machines``. ``kind: cloud``: a blueprint names a
region and node pools with instance types; ``kind: hosts``: it lists existing machines (no
region, no instance types). ``machines`` says which GPUs each instance type carries; a type
missing from it is allowed and simply not checked. ``outputs`` lists what ``${output:ENV.NAME}`` may
name for an environment of the provider (blueprint/placeholders.py). Facts are data, not code:
adding a provider adds its file, and nothing here changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from orchestrator import datafiles, paths

FIELDS = ("gpu_type", "gpu_count", "vcpus", "memory_gib")
KINDS = ("cloud", "hosts")
Kind = Literal["cloud", "hosts"]


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu_type: str | None
    gpu_count: int
    vcpus: int
    memory_gib: float
    # Where the cloud partitions GPUs itself (GKE): the MIG partition sizes it offers for this
    # machine's GPU, e.g. ("1g.5gb", "2g.10gb"); empty: none known (settings ``mig``).
    mig_partitions: tuple[str, ...] = ()

    def describe(self) -> str:
        """``8 x a100`` or ``no GPUs``."""
        return f"{self.gpu_count} x {self.gpu_type}" if self.gpu_type else "no GPUs"


@cache
def _data(provider: str) -> dict[str, Any]:
    """The provider's catalog file; a provider without one is a cloud whose machines are unknown."""
    path = paths.package_data() / "catalog" / f"{provider}.yaml"
    if provider not in paths.provider_names() or not path.is_file():
        return {"kind": "cloud", "machines": {}}
    raw = datafiles.load(path) or {}
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{path}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return {"kind": kind, "machines": raw.get("machines") or {}, "settings": raw.get("settings") or {},
            "outputs": raw.get("outputs")}


def setting(provider: str, name: str, default: Any = None) -> Any:
    """A provider fact under ``settings:`` (e.g. ``spot_min_instance_types``, ``autoscaler``)."""
    return _data(provider)["settings"].get(name, default)


def outputs(provider: str) -> dict[str, dict[str, Any]] | None:
    """The outputs an environment of ``provider`` has once applied (``outputs:``), as
    ``{name: {"kind": ..., "sensitive": ...}}``; None: not declared (nothing is checked)."""
    found = _data(provider).get("outputs")
    if found is None:
        return None
    return {name: {"kind": (spec or {}).get("kind", "string"), "sensitive": bool((spec or {}).get("sensitive"))}
            for name, spec in found.items()}


def kind(provider: str) -> Kind:
    """``cloud`` or ``hosts``: what a blueprint for ``provider`` describes."""
    return _data(provider)["kind"]


def providers() -> tuple[str, ...]:
    """Every provider name, as errors list them: clouds first, then host-only providers, each sorted."""
    return tuple(sorted(paths.provider_names(), key=lambda name: (KINDS.index(kind(name)), name)))


def of_kind(wanted: Kind) -> tuple[str, ...]:
    return tuple(name for name in providers() if kind(name) == wanted)


@cache
def catalog(provider: str) -> dict[str, InstanceType]:
    """All known instance types of ``provider`` (empty for providers without machines)."""
    machines = _data(provider)["machines"]
    return {name: InstanceType(name, **{f: entry[f] for f in FIELDS},
                               mig_partitions=tuple(entry.get("mig_partitions") or ()))
            for name, entry in machines.items()}


def lookup(provider: str, instance_type: str | None) -> InstanceType | None:
    """The catalog entry for ``instance_type`` on ``provider``, or None when unknown."""
    if not instance_type:
        return None
    return catalog(provider).get(instance_type)
