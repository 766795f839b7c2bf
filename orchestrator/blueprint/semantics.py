"""Rules that relate several fields of a Blueprint (see docs/blueprint.md, "Semantics").

``check(bp)`` returns every violation as ``(path, message)``; the loader turns the path into
``file:line:column``. A path may name a field that is absent (e.g. a missing ``region``): the
loader then points at the enclosing mapping. Messages never quote secret values.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any

from orchestrator import clock
from orchestrator.blueprint import capacity, catalog, eks_versions, forms, hybrid, network, nodes, storage
from orchestrator.blueprint.models import MIG_GPU_TYPES, Blueprint, Gpu, NodePool
from orchestrator.blueprint.yamlpos import format_path

Path_ = tuple[Any, ...]
Issue = tuple[Path_, str]
OPEN_NETWORKS = ("0.0.0.0/0", "::/0")
HOSTS_FORBIDDEN = ("instance_type", "instance_types", "min", "desired", "max", "spot", "capacity_type",
                   "capacity_reservation_id")  # on pools of a hosts provider
STATE_FIELDS = ("bucket", "storage_account", "container")
STATE_REQUIRED = {
    "local": (),
    "s3": ("bucket",),
    "gcs": ("bucket",),
    "azurerm": ("storage_account", "container"),
}


def check(bp: Blueprint, pending: frozenset[tuple[Any, ...]] = frozenset()) -> list[tuple[tuple, str]]:
    """Every semantic violation in ``bp``, in a stable order. ``pending``: the lists an
    ``${output:...}`` reference left out of this load fills at run time (blueprint/outputs.py)."""
    rules = (_placement, _pools, _unique_names, _references, _mig, _mig_partitions, _gpu_catalog, _hosts,
             functools.partial(_endpoint, pending=pending), _capacity, capacity.issues, _state, _purchase,
             _system_pool, _one_machine, _members, _group_forms, _model_uris, _version, hybrid.issues)
    return [issue for rule in rules for issue in rule(bp)]


def _gpu(gpu: Gpu) -> str:
    return f"{gpu.count} x {gpu.type}"


def _placement(bp: Blueprint) -> Iterator[Issue]:
    """region, hosts and node pools per provider kind (cloud or hosts, data/catalog/<provider>.yaml)."""
    if bp.is_cloud:
        if not bp.region:
            yield ("region",), f"required for provider {bp.provider}"
        if bp.hosts:
            where = " or ".join(catalog.of_kind("hosts"))
            yield ("hosts",), f"only allowed on {where} (provider is {bp.provider}): remove hosts"
        if not bp.node_pools:
            yield ("node_pools",), f"at least one node pool is required on {bp.provider}"
        return
    if bp.region is not None:
        yield ("region",), f"not allowed on {bp.provider}: remove region"
    if not bp.hosts:
        yield ("hosts",), f"at least one host is required on {bp.provider}"


def _pools(bp: Blueprint) -> Iterator[Issue]:
    for i, pool in enumerate(bp.node_pools):
        if bp.is_cloud:
            yield from _cloud_pool(pool, ("node_pools", i), bp.provider)
        else:
            for name in HOSTS_FORBIDDEN:
                if getattr(pool, name) is not None:
                    yield ("node_pools", i, name), (
                        f"not allowed on {bp.provider}: a node pool there only gives labels, taints, "
                        "gpu and mig to the hosts that name it"
                    )


def _cloud_pool(pool: NodePool, at: Path_, provider: str) -> Iterator[Issue]:
    """instance_type, min and max required; 0 <= min <= desired <= max."""
    missing = False
    for name in ("instance_type", "min", "max"):
        if name == "instance_type" and pool.instance_types:
            if pool.instance_type is not None:
                missing = True
                yield (*at, "instance_type"), "give instance_type or instance_types, not both"
            continue
        if getattr(pool, name) is None:
            missing = True
            yield (*at, name), f"required field is missing (node pools on {provider} need it)"
    if missing:
        return
    if pool.desired is None:
        if pool.min > pool.max:
            yield (*at, "min"), f"must be <= max ({pool.max})"
    elif pool.desired < pool.min:
        yield (*at, "desired"), f"must be >= min ({pool.min})"
    elif pool.desired > pool.max:
        yield (*at, "desired"), f"must be <= max ({pool.max})"


def _duplicates(items: Iterable[tuple[Path_, str]], what: str) -> Iterator[Issue]:
    seen: dict[str, Path_] = {}
    for path, value in items:
        if value in seen:
            yield path, f"duplicate {what} '{value}' (already used by {format_path(seen[value][:-1])})"
        else:
            seen[value] = path


def _unique_names(bp: Blueprint) -> Iterator[Issue]:
    yield from _duplicates(((("node_pools", i, "name"), p.name) for i, p in enumerate(bp.node_pools)),
                           "node pool name")
    yield from _duplicates(((("hosts", i, "name"), h.name) for i, h in enumerate(bp.hosts)), "host name")
    yield from _duplicates(((("teams", i, "name"), t.name) for i, t in enumerate(bp.teams)), "team name")
    names = [t.name for t in bp.teams]
    namespaces = (  # a repeated team name is reported once, as a name
        (("teams", i, "namespace" if t.namespace else "name"), t.effective_namespace)
        for i, t in enumerate(bp.teams)
        if t.name not in names[:i]
    )
    yield from _duplicates(namespaces, "namespace")
    models = bp.inference.models if bp.inference else []
    yield from _duplicates(((("inference", "models", i, "name"), m.name) for i, m in enumerate(models)),
                           "model name")


def _references(bp: Blueprint) -> Iterator[Issue]:
    """inference.models[].team names a team; hosts[].pool names a node pool."""
    teams = [t.name for t in bp.teams]
    for i, model in enumerate(bp.inference.models if bp.inference else []):
        if model.team not in teams:
            known = ", ".join(teams) if teams else "none are defined"
            yield ("inference", "models", i, "team"), f"no team named '{model.team}' (teams: {known})"
    pools = [p.name for p in bp.node_pools]
    for i, host in enumerate(bp.hosts):
        if host.pool is not None and host.pool not in pools:
            known = ", ".join(pools) if pools else "none are defined"
            yield ("hosts", i, "pool"), f"no node pool named '{host.pool}' (node pools: {known})"


def _mig(bp: Blueprint) -> Iterator[Issue]:
    for i, pool in enumerate(bp.node_pools):
        if pool.mig is None:
            continue
        if pool.gpu is None:
            yield ("node_pools", i, "mig"), "needs a gpu block: MIG partitions a100, h100 or h200 GPUs"
        elif pool.gpu.type not in MIG_GPU_TYPES:
            allowed = ", ".join(MIG_GPU_TYPES)
            message = f"MIG is only available on {allowed} (this pool has {pool.gpu.type})"
            yield ("node_pools", i, "mig"), message
        elif pool.mig.profile == "all-disabled":
            continue
        elif bp.is_cloud and not catalog.setting(bp.provider, "mig"):
            yield ("node_pools", i, "mig"), (
                f"nothing partitions GPUs on {bp.provider} node pools (infra's MIG manager configures bare-metal "
                "hosts; GKE partitions its own): Kueue would promise MIG slices the nodes never offer; remove mig")
        elif not bp.is_cloud:
            yield from _host_mig_profile(i, pool)


def _host_mig_profile(i: int, pool: NodePool) -> Iterator[Issue]:
    """On hosts, one MIG size per pool that the GPU offers: Kueue and quotas count its instances
    as ``nvidia.com/gpu`` (``MIG_STRATEGY=single``); ``all-balanced`` mixes sizes the device plugin
    advertises as ``nvidia.com/mig-<size>``, which no quota infra renders counts."""
    assert pool.mig is not None and pool.gpu is not None
    offered = nodes.mig_profiles(pool.gpu.type)
    size = pool.mig.profile.removeprefix("all-")
    if pool.mig.profile == "all-balanced":
        yield ("node_pools", i, "mig", "profile"), (
            "all-balanced mixes MIG sizes (nvidia.com/mig-<size> resources) that Kueue quotas do not count: "
            f"use one size, e.g. all-{next(iter(offered))}")
    elif size not in offered:
        names = [f"all-{s}" for s in offered]
        yield ("node_pools", i, "mig", "profile"), (
            f"no {pool.gpu.type} GPU offers MIG profile {size}: use one of {', '.join(names)}")


def _mig_partitions(bp: Blueprint) -> Iterator[Issue]:
    """Where the cloud partitions GPUs itself (GKE: ``mig`` in data/catalog/<provider>.yaml), a MIG
    pool splits every GPU into one size the machine type's GPU offers (its ``mig_partitions``)."""
    facts = catalog.setting(bp.provider, "mig")
    for i, pool in enumerate(bp.node_pools if facts and bp.is_cloud else []):
        if pool.mig is None or pool.mig.profile == "all-disabled" or pool.gpu is None \
                or pool.gpu.type not in MIG_GPU_TYPES:
            continue  # nothing to partition, or _mig said why
        profile = pool.mig.profile
        machine = pool.all_instance_types[0] if pool.all_instance_types else None
        known = catalog.lookup(bp.provider, machine)
        sizes = known.mig_partitions if known else ()
        if not sizes:
            other = next((m.name for m in catalog.catalog(bp.provider).values()
                          if m.gpu_type == pool.gpu.type and m.mig_partitions), None)
            yield ("node_pools", i, "mig"), (
                f"{facts['noun']} partitions no GPU of {machine} that infra knows of: remove mig"
                + (f" or use a machine type it partitions (e.g. {other})" if other else ""))
        elif profile.removeprefix("all-") not in sizes:
            offered = [f"all-{s}" for s in sizes]
            yield ("node_pools", i, "mig", "profile"), (
                f"{facts['noun']} partitions the {pool.gpu.type} GPUs of {machine} into one of "
                f"{', '.join(offered[:-1])} or {offered[-1]} (one size per pool), not {profile}")


def _gpu_catalog(bp: Blueprint) -> Iterator[Issue]:
    """The pool's gpu block must match what the catalog says each instance type carries."""
    for i, pool in enumerate(bp.node_pools):
        for j, name in enumerate(pool.all_instance_types if bp.is_cloud else []):
            known = catalog.lookup(bp.provider, name)
            if known is None:
                continue
            at = ("node_pools", i)
            type_at = (*at, "instance_type") if pool.instance_type else (*at, "instance_types", j)
            if pool.gpu is None:
                if known.gpu_type:
                    yield type_at, (
                        f"{known.name} has {known.describe()} GPUs: add gpu: "
                        f"{{type: {known.gpu_type}, count: {known.gpu_count}}}"
                    )
            elif not known.gpu_type:
                where = (*at, "gpu") if pool.instance_type else type_at
                yield where, f"{known.name} has no GPUs: remove gpu or choose a GPU instance type"
            elif (pool.gpu.type, pool.gpu.count) != (known.gpu_type, known.gpu_count):
                field = "type" if pool.gpu.type != known.gpu_type else "count"
                where = (*at, "gpu", field) if pool.instance_type else type_at
                yield where, f"{known.name} has {known.describe()}, not {_gpu(pool.gpu)}"


def _hosts(bp: Blueprint) -> Iterator[Issue]:
    """Host GPUs agree with their pool; workers have a control plane; a site without one (every host
    inference-only: no Kubernetes) serves its models with onnx."""
    for i, host in enumerate(bp.hosts):
        pool = bp.pool(host.pool) if host.pool else None
        if pool and pool.gpu and host.gpu and _gpu(pool.gpu) != _gpu(host.gpu):
            yield ("hosts", i, "gpu"), (
                f"{_gpu(host.gpu)} disagrees with node pool '{pool.name}' ({_gpu(pool.gpu)})"
            )
    if bp.is_cloud or not bp.hosts or any("control_plane" in h.roles for h in bp.hosts):
        return
    # No control plane: a site of inference-only hosts (no Kubernetes), unless a worker would need one.
    worker = next((i for i, h in enumerate(bp.hosts) if "worker" in h.roles), None)
    if worker is not None:
        yield ("hosts", worker, "roles"), (
            "a worker joins a Kubernetes control plane: at least one host needs the role control_plane "
            "(or give every host only the role inference: a site without Kubernetes)")
    elif bp.inference is not None and bp.inference.runtime != "onnx":
        yield ("inference", "runtime"), (
            f"{bp.inference.runtime} runs on Kubernetes, and no host has the role control_plane: "
            "inference-only hosts serve models with runtime onnx (docs/ansible.md, \"Host mixes\")")


def _endpoint(bp: Blueprint, pending: frozenset[tuple[Any, ...]] = frozenset()) -> Iterator[Issue]:
    k8s = bp.kubernetes
    filled_later = ("kubernetes", "authorized_networks") in pending  # by a reference left out here
    if k8s.public_endpoint and not k8s.authorized_networks and not filled_later:
        yield ("kubernetes", "public_endpoint"), (
            "true requires kubernetes.authorized_networks (the CIDRs allowed to reach the API)"
        )
    for i, cidr in enumerate(k8s.authorized_networks):
        if cidr in OPEN_NETWORKS:
            yield ("kubernetes", "authorized_networks", i), (
                f"{cidr} opens the API endpoint to the whole internet: list your office or VPN CIDRs instead"
            )
    yield from _way_in(bp)
    yield from _provider_only(bp)
    yield from _tags(bp)


WAY_IN = ("kubernetes.private_access: {via: inside_network} (infra and kubectl run in the cluster's network: "
          "a CI runner or bastion there) or {via: networks, networks: [VPN or peered CIDRs]}, or "
          "public_endpoint: true with authorized_networks (docs/security.md)")


def _tags(bp: Blueprint) -> Iterator[Issue]:
    """The cloud's own limits on tags (catalog ``tags``), counting the ones infra writes itself;
    on GCP also two keys that become the same label."""
    limits = catalog.setting(bp.provider, "tags")
    if not limits or not bp.tags:
        return
    room = limits["max"] - limits["own"]
    if len(bp.tags) > room:
        yield ("tags",), (f"{len(bp.tags)} tags: {bp.provider} allows {limits['max']} per resource and infra writes "
                          f"{limits['own']} itself, so at most {room}")
    labels: dict[str, str] = {}
    for key, value in bp.tags.items():
        if len(key) > limits["key_max"]:
            yield ("tags", key), f"key of {len(key)} characters: {bp.provider} allows {limits['key_max']}"
        if len(value) > limits["value_max"]:
            yield ("tags", key), f"value of {len(value)} characters: {bp.provider} allows {limits['value_max']}"
        bad = next((c for c in key if c in limits.get("key_forbidden", "")), None)
        if bad:
            yield ("tags", key), f"{bp.provider} tag names cannot contain {bad!r}"
        if limits.get("lowercased"):
            label = re.sub(r"[^a-z0-9_-]", "-", key.lower())
            if label in labels:
                yield ("tags", key), f"becomes the label {label!r}, as {labels[label]!r} does: one would be lost"
            labels.setdefault(label, key)


def _provider_only(bp: Blueprint) -> Iterator[Issue]:
    """Fields that mean something on one cloud only."""
    if bp.kubernetes.encryption_at_host is not None and catalog.setting(bp.provider, "encryption_at_host") is None:
        yield ("kubernetes", "encryption_at_host"), (
            "is an AKS setting (VM host encryption); on this provider the nodes' disks are encrypted by default")
    if bp.kubernetes.deletion_protection is not None and not bp.is_cloud:
        yield ("kubernetes", "deletion_protection"), "is for a cloud cluster; infra down never touches hosts"
    if bp.kubernetes.max_unavailable is not None and bp.is_cloud:
        yield ("kubernetes", "max_unavailable"), (
            "is for hosts (bare metal): how many workers a rolling change drains at once; a cloud's node pools "
            "roll with the cloud's own upgrade settings")
    if bp.is_cloud:
        for field, what in (("package_repository", "kubelet, kubeadm and kubectl"), ("cni", "the CNI manifest")):
            if getattr(bp.kubernetes, field) is not None:
                yield ("kubernetes", field), (
                    f"is for hosts (bare metal): where kubeadm's hosts get {what}; {bp.provider}'s managed "
                    "Kubernetes brings its own")


def _way_in(bp: Blueprint) -> Iterator[Issue]:
    """A private API endpoint needs a declared way in for operators, CI and team members: without
    one ``infra up`` applies Terraform and then cannot reach the API it made."""
    k8s, access = bp.kubernetes, bp.kubernetes.private_access
    if not bp.is_cloud:
        if access is not None:
            yield ("kubernetes", "private_access"), (
                "is for a cloud API endpoint; on hosts infra reaches the control plane over SSH")
        return
    if access is None:
        if not k8s.public_endpoint:
            yield ("kubernetes", "public_endpoint"), (
                f"a private API endpoint (false, the default) needs a declared way in: {WAY_IN}")
        return
    if k8s.public_endpoint:
        yield ("kubernetes", "private_access"), (
            "is for a private endpoint; a public one is reached from kubernetes.authorized_networks")
    elif access.via == "networks" and not access.networks:
        yield ("kubernetes", "private_access", "networks"), (
            "via: networks needs the CIDRs of the routed networks (VPN, peering) to admit")
    elif access.via == "inside_network" and access.networks:
        yield ("kubernetes", "private_access", "networks"), (
            "is for via: networks; with inside_network the cluster's own network is admitted")
    for i, cidr in enumerate(access.networks):
        if cidr in OPEN_NETWORKS or ipaddress.ip_network(cidr).is_global:
            yield ("kubernetes", "private_access", "networks", i), (
                f"{cidr} is not a private range: a private endpoint is reached over private addresses "
                "(RFC 1918); for internet addresses use public_endpoint with authorized_networks")


def _capacity(bp: Blueprint) -> Iterator[Issue]:
    """Every cloud node's addresses must fit the private subnets."""
    if not bp.is_cloud:
        return
    fit = network.node_capacity(bp.network.cidr, bp.network.zone_count)
    total = 0
    for i, pool in enumerate(bp.node_pools):
        total += pool.max or 0
        if total > fit:
            yield ("node_pools", i, "max"), (
                f"node pools ask for up to {total} nodes but the private subnets of {bp.network.cidr} "
                f"across {bp.network.zone_count} zone(s) fit {fit} ({network.ADDRESSES_PER_NODE} addresses "
                "per node): lower max or use a larger network.cidr"
            )
            return


def _state(bp: Blueprint) -> Iterator[Issue]:
    state = bp.state
    required = STATE_REQUIRED[state.backend]
    for name in STATE_FIELDS:
        value = getattr(state, name)
        if name in required and not value:
            yield ("state", name), f"required for backend {state.backend}"
        elif name not in required and value is not None:
            uses = f" (it uses {' and '.join(required)})" if required else ""
            yield ("state", name), f"not allowed with backend {state.backend}{uses}"


def _purchase(bp: Blueprint) -> Iterator[Issue]:
    """How pools buy capacity (docs/blueprint.md, "capacity_type"): spot needs two instance
    types, inference pools are never spot, a capacity block names its reservation."""
    for i, pool in enumerate(bp.node_pools if bp.is_cloud else []):
        at = ("node_pools", i)
        kind = pool.effective_capacity_type
        if pool.spot is not None and pool.capacity_type is not None and pool.spot != (kind == "spot"):
            yield (*at, "spot"), f"disagrees with capacity_type {kind}: remove spot"
        if kind == "spot" and pool.purpose == "inference":
            yield (*at, "capacity_type" if pool.capacity_type else "spot"), (
                "inference pools serve traffic and must not be reclaimed: use on_demand or capacity_block")
        elif kind == "spot" and len(pool.all_instance_types) < (least := catalog.setting(
                bp.provider, "spot_min_instance_types", 1)):
            yield (*at, "instance_type" if pool.instance_type else "instance_types"), (
                f"a spot pool needs at least {least} instance_types (one capacity shortage would starve it)")
        if kind == "capacity_block" and not pool.capacity_reservation_id:
            yield (*at, "capacity_type"), "capacity_block requires capacity_reservation_id (cr-...)"
        if kind != "capacity_block" and pool.capacity_reservation_id:
            yield (*at, "capacity_reservation_id"), "only allowed with capacity_type: capacity_block"


def _system_pool(bp: Blueprint) -> Iterator[Issue]:
    """The pool the cloud runs its system pods on (AKS's default pool: ``system_pool`` in the
    provider's catalog; ``capacity.system_pool_index``) cannot be spot where the cloud says so."""
    facts = catalog.setting(bp.provider, "system_pool")
    at = capacity.system_pool_index(bp) if facts and bp.is_cloud else None
    if at is None or facts.get("spot", True) or bp.node_pools[at].effective_capacity_type != "spot":
        return
    pool = bp.node_pools[at]
    yield ("node_pools", at, "capacity_type" if pool.capacity_type else "spot"), (
        f"this pool becomes {facts['noun']}, which cannot be spot: make it on_demand and put spot "
        "capacity in another pool (or give an on-demand pool purpose: system)")


def _one_machine(bp: Blueprint) -> Iterator[Issue]:
    """A node pool that takes one machine type (AKS, GKE: ``node_pool.max_instance_types`` in the
    provider's catalog) gets one: the render would otherwise use the first and drop the rest."""
    facts = catalog.setting(bp.provider, "node_pool") or {}
    most = facts.get("max_instance_types")
    for i, pool in enumerate(bp.node_pools if bp.is_cloud and most else []):
        if len(pool.instance_types or []) > most:
            yield ("node_pools", i, "instance_types"), (
                f"{facts['noun']} have one {facts['machine']}: give one" if most == 1
                else f"{facts['noun']} take at most {most} of them")


def _members(bp: Blueprint) -> Iterator[Issue]:
    """A team's members are mapped to its Kubernetes groups: members without groups reach nothing."""
    for i, team in enumerate(bp.teams):
        if team.members and not team.groups:
            yield ("teams", i, "members"), "needs groups: members are mapped to the team's Kubernetes groups"


def _group_forms(bp: Blueprint) -> Iterator[Issue]:
    """A group the provider's RBAC can see (``group`` in data/catalog/<provider>.yaml): AKS binds
    Entra group object IDs, GKE Google Group emails, all under one gke-security-groups domain."""
    facts = catalog.setting(bp.provider, "group") or {}
    form = forms.GROUP_FORMS.get(facts.get("form", ""))
    if form is None:
        return
    domains: dict[str, tuple[Any, ...]] = {}
    for i, team in enumerate(bp.teams):
        for j, group in enumerate(team.groups):
            match = form.fullmatch(group)
            if match is None:
                yield ("teams", i, "groups", j), f"must be {facts['says']}"
            elif facts["form"] == "google_group":
                domains.setdefault(match.group(1).lower(), ("teams", i, "groups", j))
    if len(domains) > 1:
        first, *others = sorted(domains)
        for domain in others:
            yield domains[domain], (f"GKE binds the groups of one domain (gke-security-groups@{first}): "
                                    f"a group of {domain} reaches nobody; use groups of {first}")


def _model_uris(bp: Blueprint) -> Iterator[Issue]:
    """On a cloud, a model URI its model servers can fetch (``model_uri_schemes``); the storage
    initializer reads Azure blobs only as https URLs. (Bare-metal hosts fetch every scheme with
    the cloud's CLI: docs/ansible.md.)"""
    schemes = catalog.setting(bp.provider, "model_uri_schemes")
    models = bp.inference.models if bp.inference and schemes else []  # hosts fetch with the cloud's CLI
    for i, model in enumerate(models):
        scheme = model.uri.split("://", 1)[0] + "://"
        if scheme == "az://":
            yield ("inference", "models", i, "uri"), (
                "az:// is not a form the model fetcher reads: write the blob's URL, "
                "https://<account>.blob.core.windows.net/<container>/<path>")
        elif schemes and scheme not in schemes:
            yield ("inference", "models", i, "uri"), (
                f"a model server on {bp.provider} cannot read {scheme} (no credentials for it there): "
                f"use {', '.join(schemes)}")


def _version(bp: Blueprint) -> Iterator[Issue]:
    """A patch release on a cloud (the managed service picks it); a Kubernetes version the provider
    no longer runs (past the end of extended support on EKS)."""
    if bp.is_cloud and bp.kubernetes.patch:
        yield ("kubernetes", "version"), (
            f"EKS/AKS/GKE choose the patch release; give {bp.kubernetes.minor} "
            "(a patch version such as \"1.30.2\" is only for hosts)")
        return
    for level, message in eks_versions.version_issues(bp.provider, bp.kubernetes.minor, clock.today()):
        if level == "error":
            yield ("kubernetes", "version"), message


def warnings(bp: Blueprint) -> list[Issue]:
    """What validation reports without failing: a version in extended support (it costs more),
    guarantees beyond capacity when the blueprint says ``overcommit: true``, and teams without
    groups (nobody can use them). A site without Kubernetes (inference-only hosts) has no cluster
    for any of them to be about."""
    if not bp.has_kubernetes:
        return []
    found = [(("kubernetes", "version"), message)
             for level, message in eks_versions.version_issues(bp.provider, bp.kubernetes.minor, clock.today())
             if level == "warning"]
    return found + list(capacity.warnings(bp)) + list(_no_groups(bp)) + list(_cpu_only_work(bp)) + list(
        _groups_without_members(bp)) + list(_seldon_without_identity(bp))


def _seldon_without_identity(bp: Blueprint) -> Iterator[Issue]:
    """Seldon Core v2 loads models with rclone from its own storage configuration: infra binds no
    cloud identity to it (``blueprint.storage`` covers the onnx runtime's fetcher only)."""
    settings = catalog.setting(bp.provider, "workload_identity")
    if not settings or bp.inference is None or bp.inference.runtime != "seldon":
        return
    for i, model in enumerate(bp.inference.models):
        if storage.parse(model.uri, settings) is not None:
            yield ("inference", "models", i, "uri"), (
                "Seldon loads models from the cloud's object store with its rclone storage settings; infra binds "
                "it no cloud identity (runtime onnx does): configure Seldon's storage secret, or it does not load")


def _groups_without_members(bp: Blueprint) -> Iterator[Issue]:
    """Where members carry groups (EKS access entries), a team with groups and no members binds
    its RoleBinding to groups nobody is in."""
    if (catalog.setting(bp.provider, "group") or {}).get("carried_by") != "members":
        return
    for i, team in enumerate(bp.teams):
        if team.groups and not team.members:
            yield ("teams", i, "groups"), (
                f"no access entry carries {', '.join(team.groups)}: list the IAM principals of team "
                f"'{team.name}' in members (EKS maps them to these groups), or nobody but admins can use it")


def _cpu_only_work(bp: Blueprint) -> Iterator[Issue]:
    """Jobs that request no GPU run only on CPU pools (``capacity.cpu_pools``), never on GPU
    nodes: without one they wait."""
    if bp.teams and not capacity.cpu_pools(bp):
        yield ("node_pools",), ("no pool for Jobs that request no GPU: they wait (they never run on GPU nodes); "
                                "add a pool without GPUs (purpose: training to reserve it for Jobs)")


def _no_groups(bp: Blueprint) -> Iterator[Issue]:
    """A team without groups gets no RoleBinding: only cluster admins can submit its jobs."""
    for i, team in enumerate(bp.teams):
        if not team.groups:
            yield ("teams", i), (f"no groups: nobody but cluster admins can submit jobs to team '{team.name}' "
                                 "(no RoleBinding is rendered)")
