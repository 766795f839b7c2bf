"""``infra job``: batch/v1 Jobs queued by Kueue in a team's LocalQueue.

A submitted Job carries ``kueue.x-k8s.io/queue-name: <team>`` and ``spec.suspend: true``
(Kueue unsuspends it on admission), requests on every container (``nvidia.com/gpu``
request = limit), the GPU tolerations, and priority class ``infra-batch`` by default.
"""

from __future__ import annotations

import copy
import re
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..conventions import GPU_RESOURCE, GPU_TOLERATION, KUEUE_API, PRIORITY_BY_TIER, QUEUE_LABEL, TEAM_LABEL
from ..errors import KubernetesError, UsageError
from . import rest
from .client import Client
from .explain import Quota, explain, quota_from

JOB = rest.resource("batch/v1", "Job")
POD = rest.resource("v1", "Pod")
WORKLOAD = rest.resource(KUEUE_API, "Workload")
LOCAL_QUEUE = rest.resource(KUEUE_API, "LocalQueue")
CLUSTER_QUEUE = rest.resource(KUEUE_API, "ClusterQueue")
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"  # set by Kueue on a job's Workload
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


def _queue_labels(team: str) -> dict[str, str]:
    return {QUEUE_LABEL: team, TEAM_LABEL: team, CREATED_BY_LABEL: "infra"}


def build_job(req: JobRequest) -> dict[str, Any]:
    if req.priority not in PRIORITY_BY_TIER:
        raise UsageError(f"--priority must be one of {', '.join(PRIORITY_BY_TIER)}, not {req.priority!r}")
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
    return job


def submit(client: Client, job: dict[str, Any]) -> dict[str, Any]:
    return client.create(job)


def gpus_of(job: dict[str, Any]) -> int:
    spec = job.get("spec") or {}
    pods = (spec.get("template") or {}).get("spec") or {}
    per_pod = sum(int(str(((c.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE, 0) or 0))
                  for c in pods.get("containers") or [])
    return per_pod * int(spec.get("parallelism") or 1)


def state(job: dict[str, Any]) -> str:
    status = job.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
            return "Succeeded" if c["type"] == "Complete" else "Failed"
    if (job.get("spec") or {}).get("suspend"):
        return "Queued"
    if status.get("active"):
        return "Running"
    return "Starting"


def summary(job: dict[str, Any]) -> dict[str, Any]:
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = job.get("status") or {}
    return {
        "name": meta.get("name"), "namespace": meta.get("namespace"), "team": labels.get(TEAM_LABEL),
        "queue": labels.get(QUEUE_LABEL), "state": state(job), "gpus": gpus_of(job),
        "created": meta.get("creationTimestamp"), "started": status.get("startTime"),
        "completed": status.get("completionTime"),
    }


def list_jobs(client: Client, namespace: str | None, team: str | None = None) -> list[dict[str, Any]]:
    selector = f"{TEAM_LABEL}={team}" if team else QUEUE_LABEL
    return [summary(j) for j in client.list(JOB, namespace, selector)]


def get_job(client: Client, namespace: str, name: str) -> dict[str, Any]:
    job = client.get(JOB, name, namespace)
    if job is None:
        raise KubernetesError(f"job {name} not found in namespace {namespace}",
                              hint="`infra job list` shows the team's jobs")
    return job


def workload_for(client: Client, job: dict[str, Any]) -> dict[str, Any] | None:
    uid, ns = job["metadata"].get("uid"), job["metadata"]["namespace"]
    found = client.list(WORKLOAD, ns, f"{JOB_UID_LABEL}={uid}") if uid else []
    if not found:
        found = [w for w in client.list(WORKLOAD, ns)
                 if any(o.get("uid") == uid for o in (w.get("metadata") or {}).get("ownerReferences") or [])]
    return found[0] if found else None


def _readable(client: Client, res: rest.Resource, name: str, ns: str | None = None) -> dict[str, Any] | None:
    from .client import ApiError

    try:
        return client.get(res, name, ns)
    except ApiError as exc:
        if exc.status in (401, 403):
            return None  # team members may not read ClusterQueues: explain with what is readable
        raise


def status(client: Client, namespace: str, name: str, fallback_quota: tuple[int, int | None] | None = None) -> dict:
    job = get_job(client, namespace, name)
    workload = workload_for(client, job)
    queue = (job["metadata"].get("labels") or {}).get(QUEUE_LABEL)
    quota: Quota | None = None
    cq = None
    if queue:
        lq = _readable(client, LOCAL_QUEUE, queue, namespace)
        cq_name = ((lq or {}).get("spec") or {}).get("clusterQueue")
        cq = _readable(client, CLUSTER_QUEUE, cq_name) if cq_name else None
        quota = quota_from(lq, cq, fallback_quota)
    result = summary(job)
    result["workload"] = (workload or {}).get("metadata", {}).get("name")
    result["conditions"] = [
        {k: c.get(k) for k in ("type", "status", "reason", "message")}
        for c in ((workload or {}).get("status") or {}).get("conditions") or []
    ]
    result["explanation"] = explain(job, workload, queue, quota, cq)
    return result


def pods_of(client: Client, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = client.list(POD, namespace, f"batch.kubernetes.io/job-name={name}")
    pods = pods or client.list(POD, namespace, f"job-name={name}")
    return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")


def logs(client: Client, namespace: str, name: str, follow: bool = False, tail: int | None = None) -> Iterator[str]:
    pods = pods_of(client, namespace, name)
    if not pods:
        why = status(client, namespace, name)["explanation"]
        raise KubernetesError(f"job {name} has no pods yet: {why}")
    pod = pods[-1]
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = POD_SET if POD_SET in containers or not containers else containers[0]
    path = POD.path(namespace, pod["metadata"]["name"], "log")
    query = {"container": container, "follow": follow, "tailLines": tail}
    if follow:
        yield from client.lines(path, query)
        return
    text = client.request("GET", path, query=query).data.decode("utf-8", "replace")
    yield from text.splitlines()


def cancel(client: Client, namespace: str, name: str) -> bool:
    """Delete the job (its pods and its Workload go with it)."""
    return client.delete(JOB, name, namespace)
