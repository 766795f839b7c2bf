"""The hosts Ansible configures, and the inventory built from them (pure data, no I/O).

A provider names its hosts with ``inventory_hosts(bp, outputs)``: bare metal from the
blueprint's ``hosts``, a cloud provider from Terraform outputs when it creates machines that
need configuring. Providers whose node pools are all managed node groups have no such hook and
no hosts: the configure stage then has nothing to do.

Groups: by role (``control_plane``, ``worker``, ``inference``), by pool (``pool_<name>``), by GPU
type (``gpu_<type>``) and ``gpu`` for every host with GPUs. Ansible group names cannot hold
``-``, so it becomes ``_``. Host variables carry the pool's labels, taints, GPU and MIG profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .blueprint.labels import node_labels
from .blueprint.models import GPU_TAINT, Blueprint

ROLE_GROUPS = ("control_plane", "worker", "inference")
# The Ansible roles ansible/site.yml includes, in play order, each with the role groups whose hosts
# run it (None: every host). tests/unit/test_site_roles.py holds this to site.yml's `when:` lines.
SITE_ROLES: tuple[tuple[str, frozenset[str] | None], ...] = (
    ("common", None),
    ("nvidia_gpu", None),
    ("container_runtime", frozenset({"control_plane", "worker"})),
    ("kubernetes_node", frozenset({"control_plane", "worker"})),
    ("inference_onnx", frozenset({"inference"})),
)


def site_roles(roles: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The Ansible roles ansible/site.yml runs on a host with these role groups, in play order."""
    return tuple(name for name, groups in SITE_ROLES if groups is None or groups & set(roles))


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    roles: tuple[str, ...] = ("worker",)
    pool: str | None = None
    gpu_type: str | None = None
    gpu_count: int = 0
    mig_profile: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()

    def describe_gpu(self) -> str:
        return f"{self.gpu_count} x {self.gpu_type}" if self.gpu_type else "none"


def group_name(prefix: str, value: str) -> str:
    return f"{prefix}_{value.replace('-', '_').replace('.', '_')}"


def from_blueprint(bp: Blueprint) -> list[InventoryHost]:
    """The blueprint's ``hosts``, with what their pool gives them (bare metal)."""
    result = []
    for host in bp.hosts:
        pool = bp.pool(host.pool) if host.pool else None
        gpu = host.gpu or (pool.gpu if pool else None)
        taints = pool.effective_taints if pool is not None else ([GPU_TAINT] if gpu else [])
        result.append(
            InventoryHost(
                name=host.name,
                address=host.address,
                port=host.port,
                user=host.user,
                roles=tuple(r for r in ROLE_GROUPS if r in host.roles),
                pool=pool.name if pool else None,
                gpu_type=gpu.type if gpu else None,
                gpu_count=gpu.count if gpu else 0,
                mig_profile=pool.mig.profile if pool and pool.mig else None,
                # the same labels as a cloud node group's (Kueue flavors select on them)
                labels=node_labels(pool, gpu.type if gpu else None),
                taints=tuple(t.model_dump() for t in taints),
            )
        )
    return result


def hosts_file(env_dir: Path) -> Path:
    """Where the configure stage keeps the last result per host (``infra status``, ``infra plan``)."""
    return Path(env_dir) / "ansible" / "hosts.json"


def provider_hosts(provider: Any, bp: Blueprint, outputs: dict[str, Any] | None = None) -> list[InventoryHost]:
    """The hosts ``provider`` says need configuring (``Provider.inventory_hosts``)."""
    return list(provider.inventory_hosts(bp, dict(outputs or {})))


def host_vars(host: InventoryHost) -> dict[str, Any]:
    hv: dict[str, Any] = {
        "ansible_host": host.address,
        "ansible_port": host.port,
        "ansible_user": host.user,
        "infra_roles": list(host.roles),
        "infra_labels": dict(host.labels),
        "infra_taints": [dict(t) for t in host.taints],
    }
    if host.user != "root":
        hv["ansible_become"] = True
    if host.pool:
        hv["infra_pool"] = host.pool
    if host.gpu_type:
        hv["infra_gpu"] = {"type": host.gpu_type, "count": host.gpu_count}
    if host.mig_profile:
        hv["infra_mig_profile"] = host.mig_profile
    return hv


def groups(hosts: list[InventoryHost]) -> dict[str, list[str]]:
    """Group name -> host names (in blueprint order); empty role groups are kept so plays can name them."""
    result: dict[str, list[str]] = {role: [] for role in ROLE_GROUPS}
    for host in hosts:
        names = list(host.roles)
        if host.pool:
            names.append(group_name("pool", host.pool))
        if host.gpu_type:
            names += ["gpu", group_name("gpu", host.gpu_type)]
        for name in names:
            result.setdefault(name, []).append(host.name)
    return result


def inventory(hosts: list[InventoryHost]) -> dict[str, Any]:
    """The YAML inventory: every host's variables under ``all.hosts``, membership in ``children``."""
    return {
        "all": {
            "hosts": {h.name: host_vars(h) for h in hosts},
            "children": {name: {"hosts": {m: None for m in members}} for name, members in groups(hosts).items()},
        }
    }


def group_vars(bp: Blueprint, hosts: list[InventoryHost]) -> dict[str, Any]:
    """Variables every host sees: the environment, the Kubernetes version, the models to serve."""
    control = [h.name for h in hosts if "control_plane" in h.roles]
    models = bp.inference.models if bp.inference and bp.inference.runtime == "onnx" else []
    # A pinned patch release (hosts only) reaches the kubernetes_node role as its
    # kubernetes_node_patch_version (role default); a site variable of that name overrides it.
    patch = {"infra_kubernetes_patch_version": bp.kubernetes.patch} if bp.kubernetes.patch else {}
    return patch | sources(bp) | {
        "infra_environment": bp.name,
        "infra_provider": bp.provider,
        "kubernetes_version": bp.kubernetes.minor,
        "kubernetes_init_host": control[0] if control else None,
        "infra_network_cidr": bp.network.cidr,
        "inference_onnx_models": [
            {"name": m.name, "uri": m.uri, "replicas": m.replicas, "gpu": m.gpu}
            | ({"sha256": m.sha256} if m.sha256 else {}) for m in models
        ],
    }


def sources(bp: Blueprint) -> dict[str, str]:
    """The blueprint's package repository and CNI manifest (hosts only), as the group variables
    the kubernetes_node role's defaults read (``infra_kubernetes_repo_*``, ``infra_kubernetes_cni_*``);
    a site variable of the role's own name (kubernetes_node_repo_base, ...) overrides them. Only
    what the blueprint sets: without the fields the render is what it was before them."""
    repo, cni = bp.kubernetes.package_repository, bp.kubernetes.cni
    out: dict[str, str] = {}
    if repo is not None:
        out["infra_kubernetes_repo_base"] = repo.url
        if repo.key_url:
            out["infra_kubernetes_repo_key_url"] = repo.key_url
        if repo.key_sha256:
            out["infra_kubernetes_repo_key_sha256"] = repo.key_sha256
    if cni is not None:
        out["infra_kubernetes_cni_manifest_url"] = cni.manifest_url
        out["infra_kubernetes_cni_manifest_sha256"] = cni.sha256
    return out
