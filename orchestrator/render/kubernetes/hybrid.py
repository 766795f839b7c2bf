"""Bursting through Kueue MultiKueue (pure): the manager's and the workers' objects (docs/hybrid.md).

A blueprint whose teams have ``burst:`` is a MultiKueue *manager*: ``manager_objects`` gives a
MultiKueueCluster per environment its teams burst to, and per bursting team a MultiKueueConfig,
the MultiKueue AdmissionCheck, a ``<team>-burst`` ClusterQueue (the team's burst budget:
``max_gpus`` GPUs, CPU and memory at ``CPU_PER_GPU``/``MEMORY_GIB_PER_GPU`` per GPU, in the
quota-only flavor ``infra-burst``) whose every Workload the check sends to a worker, and the
``<team>-burst`` LocalQueue. Not one ClusterQueue with the local flavors and a burst flavor:
Kueue refuses a MultiKueue check on some flavors only (kubernetes-sigs/kueue#8987, #6118).

A blueprint with ``burst_from:`` is a *worker*: ``worker_objects`` gives each manager a
ServiceAccount with exactly MultiKueue's rights and a token Secret, and each team namespace a
``<team>-burst`` LocalQueue feeding the team's own ClusterQueue (MultiKueue creates the Job and
its Workload here under the manager's queue name).

Each side is a function of its own blueprint only, so rendering one environment alone gives the
same bytes as rendering the rollout; ``blueprint/hybrid.py`` checks that the two sides agree.
The manager's kubeconfig Secrets hold a token: they are never rendered (``ops/hybrid.py``
writes them at ``infra up``).
"""

from __future__ import annotations

from typing import Any

from ...blueprint.models import Blueprint, Team
from ...conventions import GPU_RESOURCE, KUEUE_API, KUEUE_NAMESPACE, TEAM_LABEL
from . import manifests

BURST_SUFFIX = "-burst"
BURST_FLAVOR = "infra-burst"
CPU_PER_GPU = 16  # the burst queue's CPU and memory per GPU of max_gpus (the worker's own queue caps them too)
MEMORY_GIB_PER_GPU = 128
COVERED_RESOURCES = ["cpu", "memory", GPU_RESOURCE]
WATCH_ROLE = "infra-multikueue-watch"
WRITE_ROLE = "infra-multikueue-write"
KUBECONFIG_KEY = "kubeconfig"  # the key MultiKueue reads from a MultiKueueCluster's Secret

# What MultiKueue does on a worker (kubernetes-sigs/kueue, site/static/examples/multikueue/
# create-multikueue-kubeconfig.sh, batch/Job only): watched cluster-wide ...
WATCH_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads"], "verbs": ["get", "list", "watch"]},
]
# ... and written in the team namespaces only.
WRITE_RULES = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete"]},
    {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get"]},
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads"], "verbs": ["create", "delete"]},
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads/status"], "verbs": ["get", "patch", "update"]},
]


def burst_queue(team: str) -> str:
    """The LocalQueue (and ClusterQueue, AdmissionCheck, MultiKueueConfig) of a team's burst work."""
    return f"{team}{BURST_SUFFIX}"


def kubeconfig_secret(worker: str) -> str:
    """The manager's Secret (in Kueue's namespace) holding the kubeconfig for ``worker``."""
    return f"multikueue-{worker}"


def service_account(manager: str) -> str:
    """The worker's ServiceAccount (in Kueue's namespace) that ``manager``'s MultiKueue acts as."""
    return f"multikueue-{manager}"


def token_secret(manager: str) -> str:
    return f"multikueue-{manager}-token"


def bursting_teams(bp: Blueprint) -> list[Team]:
    return [t for t in bp.teams if t.burst is not None]


def is_bursting(bp: Blueprint) -> bool:
    """Whether the blueprint takes part in bursting (as manager, worker or both)."""
    return bool(bursting_teams(bp) or bp.burst_from)


def workers(bp: Blueprint) -> list[str]:
    """The environments the blueprint's teams burst to, in first-named order."""
    return list(dict.fromkeys(w for t in bursting_teams(bp) for w in t.burst.to))  # type: ignore[union-attr]


def burst_resources(max_gpus: int) -> list[dict[str, Any]]:
    return [{"name": "cpu", "nominalQuota": max_gpus * CPU_PER_GPU},
            {"name": "memory", "nominalQuota": f"{max_gpus * MEMORY_GIB_PER_GPU}Gi"},
            {"name": GPU_RESOURCE, "nominalQuota": max_gpus}]


def manager_objects(bp: Blueprint) -> list[dict[str, Any]]:
    teams = bursting_teams(bp)
    if not teams:
        return []
    ctx = {
        "api_version": KUEUE_API,
        "flavor": BURST_FLAVOR,
        "covered": COVERED_RESOURCES,
        "workers": [{"name": w, "secret": kubeconfig_secret(w)} for w in workers(bp)],
        "teams": [{
            "check": burst_queue(t.name),
            "clusters": list(t.burst.to),  # type: ignore[union-attr]
            "cluster_queue": burst_queue(t.name),
            "local_queue": burst_queue(t.name),
            "namespace": t.effective_namespace,
            "namespace_labels": {TEAM_LABEL: t.name},
            "resources": burst_resources(t.burst.max_gpus),  # type: ignore[union-attr]
        } for t in teams],
    }
    return manifests.multikueue_manager(ctx)


def worker_objects(bp: Blueprint) -> list[dict[str, Any]]:
    if not bp.burst_from:
        return []
    ctx = {
        "api_version": KUEUE_API,
        "namespace": KUEUE_NAMESPACE,
        "watch_role": WATCH_ROLE,
        "write_role": WRITE_ROLE,
        "watch_rules": WATCH_RULES,
        "write_rules": WRITE_RULES,
        "managers": [{"service_account": service_account(m), "token_secret": token_secret(m)}
                     for m in bp.burst_from],
        "team_namespaces": [t.effective_namespace for t in bp.teams],
        "queues": [{"name": burst_queue(t.name), "namespace": t.effective_namespace, "cluster_queue": t.name}
                   for t in bp.teams],
    }
    return manifests.multikueue_worker(ctx)


def burst_placement(source: Blueprint, team: Team, worker: Blueprint, gpu: str) -> str | None:
    """Why a one-GPU Job of ``team`` as ``infra job submit`` builds it on ``source`` does not run on
    ``worker`` (None: the worker's queue admits it to a flavor of GPU type ``gpu`` and it fits a node)."""
    from ...blueprint.nodes import node_shapes
    from ...jobspec import JobRequest, build_job
    from . import render_objects
    from .inference import placement as source_placement
    from .placement import Pod, _admitted, _flavor_pools, admit, check

    objs = render_objects(worker)
    flavors = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ResourceFlavor"}
    queue = next((o for o in objs if o["kind"] == "ClusterQueue" and o["metadata"]["name"] == team.name), None)
    if queue is None:
        return f"team {team.name} has no ClusterQueue there"
    pools = {p.name: p for p in worker.node_pools}
    typed = {name: f for name, f in flavors.items() if (pools.get(name) is not None and pools[name].gpu is not None
                                                        and pools[name].gpu.type == gpu)}  # type: ignore[union-attr]
    job = build_job(JobRequest(team=team.name, namespace=team.effective_namespace, image="probe", command="true",
                               gpus=1, name="burst-probe",
                               tolerations=source_placement(source, team.name).gpu_tolerations))
    queue = {**queue, "spec": {**queue["spec"], "resourceGroups": [{
        **queue["spec"]["resourceGroups"][0],
        "flavors": [f for f in queue["spec"]["resourceGroups"][0]["flavors"] if f["name"] in typed]}]}}
    flavor = admit(job, queue, flavors) if queue["spec"]["resourceGroups"][0]["flavors"] else None
    if flavor is None:
        return f"its queue for team {team.name} admits no one-GPU Job to a {gpu} pool"
    nodes = node_shapes(worker)
    pod = Pod(f"a burst Job of team {team.name}", _admitted(job, flavor), (),
              only_pools=_flavor_pools(flavor, nodes))
    findings = list(check(pod, nodes))
    return findings[0].message if findings else None


def kubeconfig(worker: str, server: str, ca_data: str | None, token: str) -> str:
    """The kubeconfig MultiKueue reads for ``worker``: its API server and the static token of the
    worker's ServiceAccount (exec plugins cannot run inside Kueue's controller)."""
    import yaml

    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": worker,
           "clusters": [{"name": worker, "cluster": cluster}],
           "contexts": [{"name": worker, "context": {"cluster": worker, "user": worker}}],
           "users": [{"name": worker, "user": {"token": token}}]}
    return yaml.safe_dump(doc, sort_keys=True)
