"""``infra job``: batch/v1 Jobs queued by Kueue in a team's LocalQueue.

A submitted Job carries ``kueue.x-k8s.io/queue-name: <team>`` and ``spec.suspend: true``
(Kueue unsuspends it on admission), requests on every container (``nvidia.com/gpu``
request = limit), the GPU tolerations, and priority class ``infra-batch`` by default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..conventions import GPU_RESOURCE, KUEUE_API, QUEUE_LABEL, TEAM_LABEL
from ..errors import KubernetesError
from ..jobspec import (  # noqa: F401 (the job API: kube.jobs is where callers find them)
    CREATED_BY_LABEL,
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    NO_GPU_NODES,
    POD_FAILURE_POLICY,
    POD_SET,
    JobRequest,
    build_job,
    job_name,
    keep_off_gpu_nodes,
    prepare_job,
    quantity,
)
from . import rest
from .client import Client
from .explain import Quota, explain, quota_from

JOB = rest.resource("batch/v1", "Job")
POD = rest.resource("v1", "Pod")
WORKLOAD = rest.resource(KUEUE_API, "Workload")
LOCAL_QUEUE = rest.resource(KUEUE_API, "LocalQueue")
CLUSTER_QUEUE = rest.resource(KUEUE_API, "ClusterQueue")
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"  # set by Kueue on a job's Workload
_RESERVATION = re.compile(r'reservation on "([^"]+)"')  # MultiKueue's admission check message
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
    result["cluster"] = dispatched_to(workload)
    if result["cluster"]:
        result["explanation"] = (f"dispatched by MultiKueue to worker cluster {result['cluster']}: "
                                 + result["explanation"])
    return result


def dispatched_to(workload: dict[str, Any] | None) -> str | None:
    """The worker cluster a manager's Workload was sent to (docs/hybrid.md; None: not dispatched):
    Kueue v0.19's ``status.clusterName`` (the MultiKueueCluster's name, which infra makes the worker
    environment's name), else the MultiKueue check's message ('The workload got reservation on "X"')."""
    status = (workload or {}).get("status") or {}
    if status.get("clusterName"):
        return str(status["clusterName"])
    for check in status.get("admissionChecks") or []:
        found = _RESERVATION.search(check.get("message") or "")
        if found and check.get("state") in ("Ready", "Pending"):
            return found.group(1)
    return None


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
