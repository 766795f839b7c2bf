"""The placement proof (pure): every pod infra renders lands on a node, and only where it should.

No emulator places pods, so the scheduler's own predicates are applied here to the pods infra
renders and to the node shapes of the blueprint (``blueprint/nodes.py``: labels and taints infra
and the platform set, allocatable from the catalog). For each pod, in the scheduler's order:

1. ``NodeAffinity``: every ``nodeSelector`` label, and one term of the required node affinity;
2. ``TaintToleration``: every ``NoSchedule``/``NoExecute`` taint of the node is tolerated;
3. ``NodeResourcesFit``: the pod's requests (containers summed, an init container's if larger)
   fit the node's allocatable CPU, memory and ``nvidia.com/gpu``.

The pods: every Deployment, DaemonSet, StatefulSet and Seldon ``Server`` of the render, Kueue's
controller (the vendored install), and Jobs as Kueue admits them (a flavor's node labels become
the pod's nodeSelector, its tolerations are added): per team, a probe Job for each flavor of its
ClusterQueue, which must land on that flavor's pool and nowhere else, and one CPU-only Job as
``infra job submit`` builds it, which Kueue must admit to a flavor whose nodes have no GPUs.

A pod that fits no node is an error naming the pod, each kind of node and the first predicate
that failed there; a DaemonSet must fit every node it selects (the device plugin: every GPU
node). ``infra validate`` reports them located (``semantics.check``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...blueprint import capacity
from ...blueprint.labels import GPU_PRESENT_LABEL
from ...blueprint.models import Blueprint
from ...blueprint.nodes import NodeShape, node_shapes
from ...conventions import COMPONENT_LABEL, MODEL_LABEL, TEAM_LABEL

Where = tuple[Any, ...]
_WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 10**-3}


@dataclass(frozen=True)
class Pod:
    """A pod as the scheduler sees it, and what it must (not) land on."""

    what: str                             # "Deployment kueue-system/kueue-controller-manager"
    spec: dict[str, Any]                  # the pod spec
    where: Where                          # the blueprint field an error points at
    daemon: bool = False                  # a DaemonSet: must fit every node it selects
    only_pools: frozenset[str] | None = None   # may land on these pools' nodes only
    no_gpu_nodes: bool = False            # must never land on a node with GPUs


@dataclass(frozen=True)
class Finding:
    where: Where
    message: str


def quantity(value: Any, resource: str) -> int:
    """A request in the scheduler's unit: CPU in millicores, memory in MiB (rounded up), others as counts."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a quantity")
    number, suffix = float(match.group(1)), match.group(2)
    amount = number * (_BINARY.get(suffix) or _DECIMAL[suffix])
    if resource == "cpu":
        return round(amount * 1000)
    if resource == "memory":
        return -(-int(amount) // 2**20)
    return round(amount)


def pod_requests(spec: dict[str, Any]) -> dict[str, int]:
    """What the pod requests: containers summed, then the largest init container where larger
    (requests default to limits, as the API server does)."""
    def of(container: dict[str, Any]) -> dict[str, int]:
        res = container.get("resources") or {}
        wanted = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {name: quantity(v, name) for name, v in wanted.items()}

    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        for name, n in of(c).items():
            total[name] = total.get(name, 0) + n
    for c in spec.get("initContainers") or []:
        for name, n in of(c).items():
            total[name] = max(total.get(name, 0), n)
    return {k: v for k, v in total.items() if v}


def tolerated(taint: dict[str, str], tolerations: list[dict[str, Any]]) -> bool:
    """The scheduler's toleration match (operator Exists / Equal, empty key or effect = any)."""
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint["effect"]:
            continue
        if not tol.get("key"):
            if tol.get("operator") == "Exists":
                return True
            continue
        if tol["key"] != taint["key"]:
            continue
        if tol.get("operator") == "Exists" or str(tol.get("value", "")) == taint.get("value", ""):
            return True
    return False


def _expression(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], [str(v) for v in expr.get("values") or []]
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and labels[key].lstrip("-").isdigit():
        return int(labels[key]) > int(values[0]) if op == "Gt" else int(labels[key]) < int(values[0])
    return False


def _terms(spec: dict[str, Any]) -> list[dict[str, Any]] | None:
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    return required.get("nodeSelectorTerms")


def affinity_failure(spec: dict[str, Any], labels: dict[str, str]) -> str | None:
    """Why the node's labels fail the pod's nodeSelector or required node affinity (None: they pass)."""
    for key, value in sorted((spec.get("nodeSelector") or {}).items()):
        if labels.get(key) != str(value):
            have = f"has {key}={labels[key]}" if key in labels else f"has no {key} label"
            return f"nodeSelector {key}={value} (node {have})"
    terms = _terms(spec)
    if terms is not None and not any(all(_expression(e, labels) for e in t.get("matchExpressions") or [])
                                      for t in terms):
        shown = " or ".join(
            "(" + ", ".join(f"{e['key']} {e['operator']} {','.join(map(str, e.get('values') or []))}".rstrip()
                            for e in t.get("matchExpressions") or []) + ")" for t in terms)
        return f"required node affinity {shown} (node labels do not match)"
    return None


def why_not(spec: dict[str, Any], node: NodeShape) -> str | None:
    """The first scheduler predicate the pod fails on ``node``, in words; None when it fits."""
    failed = affinity_failure(spec, node.labels)
    if failed:
        return failed
    tolerations = list(spec.get("tolerations") or [])
    for taint in node.taints:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not tolerated(taint, tolerations):
            value = f"={taint['value']}" if taint.get("value") else ""
            return f"untolerated taint {taint['key']}{value}:{taint['effect']}"
    have = node.allocatable()
    for name, wanted in sorted(pod_requests(spec).items()):
        if wanted > have.get(name, 0):
            unit = {"cpu": "m", "memory": "Mi"}.get(name, "")
            return f"insufficient {name}: requests {wanted}{unit}, node allocatable {have.get(name, 0)}{unit}"
    return None


def _node_pool(node: NodeShape) -> str:
    return f"pool {node.pool}" if node.pool and node.pool == node.name else f"host {node.name}"


def _named(nodes: list[NodeShape]) -> str:
    """``pool a``, ``hosts h1, h2`` ...: nodes named by pool (cloud) or host (bare metal)."""
    pools = [n.name for n in nodes if n.pool and n.pool == n.name]
    hosts = [n.name for n in nodes if not (n.pool and n.pool == n.name)]
    parts = ([f"pool{'s' if len(pools) > 1 else ''} {', '.join(pools)}"] if pools else []) + (
        [f"host{'s' if len(hosts) > 1 else ''} {', '.join(hosts)}"] if hosts else [])
    return " and ".join(parts)


def _no_node(pod: Pod, nodes: list[NodeShape]) -> str:
    """Each kind of node with the first predicate that failed there; nodes failing alike together."""
    by_reason: dict[str, list[NodeShape]] = {}
    for n in nodes:
        by_reason.setdefault(str(why_not(pod.spec, n)), []).append(n)
    reasons = "; ".join(f"{_named(group)}: {reason}" for reason, group in by_reason.items())
    return f"{pod.what} fits no node ({reasons or 'the cluster has no nodes'})"


def check(pod: Pod, nodes: list[NodeShape]) -> Iterator[Finding]:
    """Findings for one pod against every kind of node."""
    fits = [n for n in nodes if n.count and why_not(pod.spec, n) is None]
    if pod.daemon:
        for node in nodes:
            if node.count and affinity_failure(pod.spec, node.labels) is None and node not in fits:
                yield Finding(node.where or pod.where, f"{pod.what} selects {_node_pool(node)} but cannot run "
                                                       f"there: {why_not(pod.spec, node)}")
        return
    if not fits:
        yield Finding(pod.where, _no_node(pod, [n for n in nodes if n.count]))
        return
    if pod.only_pools is not None:
        stray = [n for n in fits if n.pool not in pod.only_pools]
        if stray:
            yield Finding(pod.where, f"{pod.what} may also land on {_named(stray)}, outside "
                                     f"{', '.join(sorted(pod.only_pools))}")
    if pod.no_gpu_nodes:
        gpu = [n for n in fits if n.has_gpus]
        if gpu:
            yield Finding(pod.where, f"{pod.what} requests no GPU but may land on GPU nodes: {_named(gpu)}")


# ----------------------------------------------------------------------------- the pods


def _cluster_where(bp: Blueprint) -> Where:
    return ("node_pools",) if bp.is_cloud else ("hosts",)


def _model_where(bp: Blueprint, obj: dict[str, Any]) -> Where:
    models = bp.inference.models if bp.inference else []
    labels = {**(obj["metadata"].get("labels") or {})}
    name, team = labels.get(MODEL_LABEL), labels.get(TEAM_LABEL)
    for i, m in enumerate(models):
        if (name and m.name == name) or (not name and m.team == team and m.gpu):
            return ("inference", "models", i)
    return ("inference",)


def rendered_pods(bp: Blueprint, objs: list[dict[str, Any]]) -> list[Pod]:
    """The pods of the rendered workloads (and Seldon Servers)."""
    pods = []
    for obj in objs:
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        what = f"{kind} {meta.get('namespace', '')}/{meta.get('name')}".replace(" /", " ")
        if kind in _WORKLOADS:
            spec = obj["spec"]["template"]["spec"]
        elif kind == "Server":
            spec = obj["spec"].get("podSpec") or {}
        else:
            continue
        inference = (meta.get("labels") or {}).get(COMPONENT_LABEL) == "inference" or kind == "Server"
        where = _model_where(bp, obj) if inference else _cluster_where(bp)
        pods.append(Pod(what, spec, where, daemon=kind == "DaemonSet"))
    return pods


def _admitted(job: dict[str, Any], flavor: dict[str, Any]) -> dict[str, Any]:
    """The Job's pod spec as Kueue starts it in ``flavor``: nodeSelector and tolerations added."""
    spec = dict(job["spec"]["template"]["spec"])
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **(flavor["spec"].get("nodeLabels") or {})}
    spec["tolerations"] = list(spec.get("tolerations") or []) + list(flavor["spec"].get("tolerations") or [])
    return spec


def flavor_accepts(job: dict[str, Any], flavor: dict[str, Any], keys: set[str]) -> bool:
    """Kueue's flavor check: the Job's nodeSelector and required node affinity, restricted to the
    label keys the queue's flavors use, must match the flavor's nodeLabels."""
    spec = job["spec"]["template"]["spec"]
    restricted = {"nodeSelector": {k: v for k, v in (spec.get("nodeSelector") or {}).items() if k in keys}}
    terms = _terms(spec)
    if terms is not None:
        kept = [{"matchExpressions": [e for e in t.get("matchExpressions") or [] if e["key"] in keys]} for t in terms]
        restricted["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": kept}}}
    return affinity_failure(restricted, flavor["spec"].get("nodeLabels") or {}) is None


def _quota(flavor_quota: dict[str, Any], name: str) -> int:
    for r in flavor_quota["resources"]:
        if r["name"] == name:
            borrow = r.get("borrowingLimit")
            return quantity(r["nominalQuota"], name) + (quantity(borrow, name) if borrow is not None else 10**12)
    return 0


def admit(job: dict[str, Any], queue: dict[str, Any], flavors: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The flavor Kueue gives ``job`` in ``queue`` (flavors in order: the first whose labels the
    Job accepts and whose quota, with borrowing, covers its requests), or None."""
    group = queue["spec"]["resourceGroups"][0]
    keys = {k for f in group["flavors"] for k in (flavors[f["name"]]["spec"].get("nodeLabels") or {})}
    wants = pod_requests(job["spec"]["template"]["spec"])
    for fq in group["flavors"]:
        flavor = flavors[fq["name"]]
        if flavor_accepts(job, flavor, keys) and all(_quota(fq, n) >= v for n, v in wants.items()
                                                     if n in group["coveredResources"]):
            return flavor
    return None


def _flavor_pools(flavor: dict[str, Any], nodes: list[NodeShape]) -> frozenset[str] | None:
    """The pools whose nodes carry the flavor's labels; None for a flavor without labels (the
    one ``default`` flavor of a cluster without training pools: any node)."""
    labels = flavor["spec"].get("nodeLabels") or {}
    if not labels:
        return None
    return frozenset(n.pool for n in nodes if n.pool and all(n.labels.get(k) == v for k, v in labels.items()))


def job_pods(bp: Blueprint, objs: list[dict[str, Any]], nodes: list[NodeShape]) -> list[Pod]:
    """Per team: a probe Job per flavor of its ClusterQueue, and one CPU-only Job, as admitted."""
    from ...jobspec import JobRequest, build_job
    from .scheduling import gpu_tolerations

    flavors = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ResourceFlavor"}
    queues = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ClusterQueue"}
    cpu_pools = capacity.cpu_pools(bp)
    pods = []
    for i, team in enumerate(bp.teams):
        queue = queues.get(team.name)
        if queue is None:
            continue
        where = ("teams", i)
        for fq in queue["spec"]["resourceGroups"][0]["flavors"]:
            flavor = flavors[fq["name"]]
            gpu = bool((flavor["spec"].get("nodeLabels") or {}).get(GPU_PRESENT_LABEL))
            if not gpu and not cpu_pools:  # the default flavor with no pool for CPU work: validate warns
                continue
            job = build_job(JobRequest(team=team.name, namespace=team.effective_namespace, image="probe",
                                       command="true", gpus=1 if gpu else 0, name="probe",
                                       tolerations=gpu_tolerations(bp)))
            pods.append(Pod(f"a {'1-GPU' if gpu else 'CPU'} Job of team {team.name} admitted to flavor "
                            f"{fq['name']}", _admitted(job, flavor), where, only_pools=_flavor_pools(flavor, nodes)))
        cpu_job = build_job(JobRequest(team=team.name, namespace=team.effective_namespace, image="cpu-only",
                                       command="true", gpus=0, name="cpu-only"))
        flavor = admit(cpu_job, queue, flavors) if cpu_pools else None
        if flavor is not None:  # none: it waits (validate warns that CPU-only work has no pool)
            pods.append(Pod(f"a CPU-only Job of team {team.name} (admitted to flavor {flavor['metadata']['name']})",
                            _admitted(cpu_job, flavor), where, no_gpu_nodes=True))
    return pods


def kueue_pods(bp: Blueprint) -> list[Pod]:
    from .kueue import install_documents

    return rendered_pods(bp, install_documents(*_WORKLOADS))


def prove(bp: Blueprint, objs: list[dict[str, Any]] | None = None) -> list[Finding]:
    """Every finding for the blueprint's render (``objs``: ``render_objects(bp)`` if not given).
    A site without Kubernetes (inference-only hosts) has no pods to place."""
    if not bp.has_kubernetes:
        return []
    if objs is None:
        from . import render_objects

        objs = render_objects(bp)
    nodes = node_shapes(bp)
    pods = kueue_pods(bp) + rendered_pods(bp, objs) + job_pods(bp, objs, nodes)
    return [f for pod in pods for f in check(pod, nodes)]

def issues(bp: Blueprint) -> Iterator[tuple[Where, str]]:
    """The proof as a blueprint rule (``loader.load(checks=CHECKS)``): located by the loader.
    A blueprint the render itself refuses is left to the render stage, which says why."""
    from ...errors import InfraError

    try:
        findings = prove(bp)
    except InfraError:
        return
    for finding in findings:
        yield finding.where, finding.message


def _burst_placement(source: Blueprint, team: Any, worker: Blueprint, gpu: str) -> str | None:
    from .hybrid import burst_placement

    return burst_placement(source, team, worker, gpu)


# Across a rollout (``blueprint/rollout.py`` reads it from the checks): a burst Job of a team
# must land on the worker's nodes (docs/hybrid.md).
issues.burst_placement = _burst_placement  # type: ignore[attr-defined]

#: What every command that loads a blueprint checks beyond the model (``infra validate``,
#: render, plan, up, rollouts).
CHECKS = (issues,)
