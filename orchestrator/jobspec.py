"""Job specs (pure): the batch/v1 Job ``infra job submit`` builds, and a user's Job made to fit
a team's queue. The API calls live in ``kube/jobs.py``; the placement proof
(``render/kubernetes/placement.py``) checks these same Jobs against the nodes.

A Job carries ``kueue.x-k8s.io/queue-name: <team>`` and ``spec.suspend: true`` (Kueue
unsuspends it on admission), requests on every container (``nvidia.com/gpu`` request = limit),
the GPU tolerations when it asks for GPUs, and, when it asks for none, a required node affinity
that keeps it off GPU nodes; priority class ``infra-batch`` by default.
"""

from __future__ import annotations

import copy
import re
import secrets
import shlex
from dataclasses import dataclass, field
from typing import Any

from .blueprint.labels import GPU_PRESENT_LABEL
from .conventions import GPU_RESOURCE, GPU_TOLERATION, PRIORITY_BY_TIER, QUEUE_LABEL, TEAM_LABEL
from .errors import UsageError

POD_SET = "main"  # the job's container, and the pod set Kueue names in its messages
CREATED_BY_LABEL = "app.kubernetes.io/created-by"
DEFAULT_CPU, DEFAULT_MEMORY = "2", "8Gi"
_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
# Pods evicted by preemption (Kueue's or the scheduler's) or a node drain do not count as
# failures: the Job is retried, not failed, however low its backoffLimit.
POD_FAILURE_POLICY = {"rules": [
    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}


@dataclass
class JobRequest:
    team: str
    namespace: str
    image: str
    command: str
    gpus: int = 0
    cpu: str = DEFAULT_CPU
    memory: str = DEFAULT_MEMORY
    name: str | None = None
    priority: str = "batch"
    tolerations: list[dict[str, Any]] = field(default_factory=lambda: [dict(GPU_TOLERATION)])


# The priority tiers a Job may take: infra-inference is for model servers only (an admission
# policy refuses it on Jobs and their pods, render/kubernetes/admission.py).
JOB_TIERS = ("batch", "interactive")


def _slug(text: str) -> str:
    base = text.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    return re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:20] or "job"


def job_name(team: str, image: str) -> str:
    return f"{team}-{_slug(image)}-{secrets.token_hex(3)}"[:63]


def _resources(cpu: str, memory: str, gpus: int) -> dict[str, Any]:
    requests = {"cpu": cpu, "memory": memory}
    if gpus:
        requests[GPU_RESOURCE] = str(gpus)
    return {"requests": dict(requests), "limits": dict(requests)}


# A Job that requests no GPU keeps off GPU nodes: Kueue gives it no flavor whose node labels say
# GPUs (a flavor's labels must satisfy the Job's required node affinity), and the scheduler
# places it on no GPU node (docs/kubernetes.md, "Where pods land").
NO_GPU_NODES = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": GPU_PRESENT_LABEL, "operator": "DoesNotExist"}]}]}}


def keep_off_gpu_nodes(pod_spec: dict[str, Any]) -> None:
    """Add the "no GPU nodes" requirement to every term of the pod's required node affinity."""
    affinity = pod_spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    required = affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    expr = NO_GPU_NODES["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
    for term in terms:
        exprs = term.setdefault("matchExpressions", [])
        exprs += [dict(e) for e in expr if e not in exprs]
    required["nodeSelectorTerms"] = terms


def _queue_labels(team: str) -> dict[str, str]:
    return {QUEUE_LABEL: team, TEAM_LABEL: team, CREATED_BY_LABEL: "infra"}


def build_job(req: JobRequest) -> dict[str, Any]:
    if req.priority not in JOB_TIERS:
        hint = " (inference is for model servers: the admission policy refuses it on Jobs)" \
            if req.priority in PRIORITY_BY_TIER else ""
        raise UsageError(f"--priority must be one of {', '.join(JOB_TIERS)}, not {req.priority!r}{hint}")
    try:
        command = shlex.split(req.command)
    except ValueError as exc:
        raise UsageError(f"--command cannot be parsed: {exc}") from None
    if not command:
        raise UsageError("--command is empty")
    container = {"name": POD_SET, "image": req.image, "command": command,
                 "resources": _resources(req.cpu, req.memory, req.gpus)}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "priorityClassName": PRIORITY_BY_TIER[req.priority],
        "containers": [container],
    }
    if req.gpus:
        pod_spec["tolerations"] = [dict(t) for t in req.tolerations]
    else:
        keep_off_gpu_nodes(pod_spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": req.name or job_name(req.team, req.image), "namespace": req.namespace,
                     "labels": _queue_labels(req.team)},
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "podFailurePolicy": copy.deepcopy(POD_FAILURE_POLICY),
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {"metadata": {"labels": {TEAM_LABEL: req.team}}, "spec": pod_spec},
        },
    }


def quantity(value: Any) -> float:
    """A Kubernetes quantity (``2``, ``500m``, ``8Gi``, ``1e3``) as a number."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)", str(value).strip())
    if not match or match.group(2) not in _UNITS:
        raise UsageError(f"{value!r} is not a Kubernetes quantity (e.g. 2, 500m, 8Gi)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _request_within_limit(container: Any, name: str, requests: dict, limits: dict, default: str) -> None:
    """Both set, request <= limit, as the API server demands (a LimitRange default limit below
    a request we added would make every pod of the Job fail): a missing one takes the other."""
    if name not in requests and name not in limits:
        requests[name] = limits[name] = default
    elif name not in requests:
        requests[name] = limits[name]
    elif name not in limits:
        limits[name] = requests[name]
    elif quantity(requests[name]) > quantity(limits[name]):
        raise UsageError(f"container {container}: {name} request ({requests[name]}) is above its limit "
                         f"({limits[name]})")


def prepare_job(job: dict[str, Any], team: str, namespace: str, tolerations: list[dict[str, Any]]) -> dict[str, Any]:
    """Make a user's Job YAML fit the queue: labels, suspend, requests, GPU tolerations."""
    if job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
        raise UsageError(f"the file must hold a batch/v1 Job, not {job.get('apiVersion')} {job.get('kind')}")
    meta = job.setdefault("metadata", {})
    if meta.get("namespace") not in (None, namespace):
        raise UsageError(f"the Job names namespace {meta['namespace']!r}, but team {team}'s is {namespace!r}")
    meta["namespace"] = namespace
    if not meta.get("name") and not meta.get("generateName"):
        meta["generateName"] = f"{team}-job-"
    meta["labels"] = {**(meta.get("labels") or {}), **_queue_labels(team)}
    spec = job.setdefault("spec", {})
    spec["suspend"] = True
    pod = spec.setdefault("template", {}).setdefault("spec", {})
    pod.setdefault("restartPolicy", "Never")
    pod.setdefault("priorityClassName", PRIORITY_BY_TIER["batch"])
    wants_gpu = False
    for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        res = c.setdefault("resources", {})
        requests, limits = res.setdefault("requests", {}), res.setdefault("limits", {})
        for name, default in (("cpu", DEFAULT_CPU), ("memory", DEFAULT_MEMORY)):
            _request_within_limit(c.get("name"), name, requests, limits, default)
        gpu_req, gpu_lim = requests.get(GPU_RESOURCE), limits.get(GPU_RESOURCE)
        if gpu_req is not None and gpu_lim is not None and str(gpu_req) != str(gpu_lim):
            raise UsageError(
                f"container {c.get('name')}: {GPU_RESOURCE} request ({gpu_req}) must equal its limit ({gpu_lim})"
            )
        if gpu_req is not None or gpu_lim is not None:
            requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpu_lim if gpu_lim is not None else gpu_req)
            wants_gpu = wants_gpu or str(requests[GPU_RESOURCE]) != "0"
    if pod.get("restartPolicy") == "Never":
        spec.setdefault("podFailurePolicy", copy.deepcopy(POD_FAILURE_POLICY))
    if not pod.get("containers"):
        raise UsageError("the Job has no containers")
    if wants_gpu:
        existing = pod.setdefault("tolerations", [])
        existing += [dict(t) for t in tolerations if t not in existing]
    else:
        keep_off_gpu_nodes(pod)
    return job
