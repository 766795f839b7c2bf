"""Local first, then burst (docs/hybrid.md): where ``infra job submit --burst`` puts a Job.

A Job the team's local flavors can never run (no flavor's quota, with borrowing, covers it, or
no node of the flavor's pool holds its pod: the placement proof's predicates) is created in the
team's burst LocalQueue at once. Any other Job is created in the local queue; if it is still
suspended (not admitted) after ``after`` seconds it is moved to the burst queue.

"Moved" means deleted and created again, suspended, under the same name: MultiKueue runs a
batch/Job on a worker only when its ``spec.managedBy`` is ``kueue.x-k8s.io/multikueue``, and a
Job's ``managedBy`` is immutable, so relabelling the local Job would leave it stuck. A suspended
Job has no pods, so nothing is lost. The burst Job carries ``infra.dev/burst`` saying why.

``infra job status`` names the worker a burst Job was dispatched to (``kube.jobs.dispatched_to``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from ..blueprint.models import Blueprint, Team
from ..conventions import QUEUE_LABEL
from ..errors import UsageError

MANAGED_BY_MULTIKUEUE = "kueue.x-k8s.io/multikueue"
BURST_ANNOTATION = "infra.dev/burst"
POLL_SECONDS = 2.0
RECREATE_WITHIN = 30.0  # seconds to wait for the deleted local Job's name to come free


def burst_team(bp: Blueprint | None, team: Team | None) -> Team:
    """The team, which must have ``burst:`` in the blueprint (``--burst`` needs ``--blueprint``)."""
    if bp is None or team is None:
        raise UsageError("--burst needs --blueprint and --team: the team's burst: entry names its burst queue")
    if team.burst is None:
        raise UsageError(f"team {team.name} of blueprint {bp.name} has no burst: entry (docs/hybrid.md)")
    return team


def local_misfit(bp: Blueprint, team: Team, job: dict[str, Any]) -> str | None:
    """Why the team's local flavors can never run ``job`` (None: some flavor can): Kueue's flavor
    assignment (quota with borrowing) and the scheduler's predicates on the flavor's nodes."""
    from ..blueprint.nodes import node_shapes
    from ..render.kubernetes import render_objects
    from ..render.kubernetes.placement import (
        Pod,
        _admitted,
        _flavor_pools,
        _quota,
        check,
        flavor_accepts,
        pod_requests,
    )

    objs = render_objects(bp)
    flavors = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ResourceFlavor"}
    queue = next((o for o in objs if o["kind"] == "ClusterQueue" and o["metadata"]["name"] == team.name), None)
    if queue is None:
        return f"team {team.name} has no local ClusterQueue"
    group = queue["spec"]["resourceGroups"][0]
    keys = {k for f in group["flavors"] for k in (flavors[f["name"]]["spec"].get("nodeLabels") or {})}
    wants = pod_requests(job["spec"]["template"]["spec"])
    nodes = node_shapes(bp)
    reasons = []
    for fq in group["flavors"]:  # as Kueue tries them: labels, then quota with borrowing; then the nodes
        flavor = flavors[fq["name"]]
        short = [n for n, v in wants.items() if n in group["coveredResources"] and _quota(fq, n) < v]
        if not flavor_accepts(job, flavor, keys) or short:
            reasons.append(f"flavor {fq['name']}: " + (f"quota for {', '.join(short)}" if short else "node labels"))
            continue
        pod = Pod(f"job {job['metadata'].get('name')}", _admitted(job, flavor), (),
                  only_pools=_flavor_pools(flavor, nodes))
        findings = list(check(pod, nodes))
        if not findings:
            return None
        reasons.append(f"flavor {fq['name']}: {findings[0].message}")
    return "no local flavor can run it (" + "; ".join(reasons) + ")" if reasons else "the team has no local flavor"


def to_burst(job: dict[str, Any], team: Team, why: str) -> dict[str, Any]:
    """The Job as it goes to the team's burst queue: a fresh object (no server fields), queue
    label ``<team>-burst``, ``spec.managedBy`` MultiKueue's, still suspended."""
    from ..render.kubernetes.hybrid import burst_queue

    moved = copy.deepcopy(job)
    moved.pop("status", None)
    meta = moved["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink"):
        meta.pop(key, None)
    meta.setdefault("labels", {})[QUEUE_LABEL] = burst_queue(team.name)
    meta.setdefault("annotations", {})[BURST_ANNOTATION] = why
    spec = moved["spec"]
    spec["suspend"] = True
    spec["managedBy"] = MANAGED_BY_MULTIKUEUE
    # The server fills these from the template when the Job is created; created again, it fills them again.
    spec.pop("selector", None)
    labels = (spec.get("template", {}).get("metadata") or {}).get("labels") or {}
    for key in ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"):
        labels.pop(key, None)
    return moved


def move(client: Any, job: dict[str, Any], team: Team, why: str, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Delete the suspended local Job and create it again in the burst queue."""
    from ..kube import jobs
    from ..kube.client import ApiError

    moved = to_burst(job, team, why)
    meta = job["metadata"]
    jobs.cancel(client, meta["namespace"], meta["name"])
    deadline = clock() + RECREATE_WITHIN
    while True:
        try:
            return client.create(moved)
        except ApiError as exc:
            if exc.reason != "AlreadyExists" or clock() >= deadline:  # still being deleted: wait, then give up
                raise
        sleep(1.0)


def wait_admitted(client: Any, namespace: str, name: str, after: float, sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """The Job once Kueue admits it (no longer suspended), or as it is after ``after`` seconds."""
    from ..kube import jobs

    deadline = clock() + after
    while True:
        job = jobs.get_job(client, namespace, name)
        if not (job.get("spec") or {}).get("suspend") or clock() >= deadline:
            return job
        sleep(max(0.0, min(POLL_SECONDS, deadline - clock())))


def submit(client: Any, bp: Blueprint, team: Team, job: dict[str, Any], after: float | None,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Create ``job`` local first, then burst; returns the Job as it stands and ``burst``: why it
    went to the burst queue (None: it stays local)."""
    from ..kube import jobs

    assert team.burst is not None
    wait = float(team.burst.after_seconds if after is None else after)
    if wait < 0:
        raise UsageError("--burst-after must be 0 or more seconds")
    why = local_misfit(bp, team, job)
    if why is not None:
        return {"job": client.create(to_burst(job, team, f"cannot run locally: {why}")), "burst": why}
    created = jobs.submit(client, job)
    meta = created["metadata"]
    if wait == 0:
        return {"job": created, "burst": None}
    current = wait_admitted(client, meta["namespace"], meta["name"], wait, sleep, clock)
    if not (current.get("spec") or {}).get("suspend"):
        return {"job": current, "burst": None}
    why = f"still pending after {wait:g} s in the local queue"
    return {"job": move(client, current, team, why, sleep, clock), "burst": why}


def worker_client(client: Any, namespace: str, name: str) -> Any | None:
    """A client for the worker cluster the Job was dispatched to (None: it runs here): the worker
    environment's kubeconfig from its own run in this folder (``.infra/env/<worker>/kubeconfig``)."""
    from pathlib import Path

    from ..errors import KubernetesError
    from ..kube import jobs
    from ..kube.client import Client
    from ..workspace import Workspace

    worker = jobs.dispatched_to(jobs.workload_for(client, jobs.get_job(client, namespace, name)))
    if worker is None:
        return None
    path = Workspace(root=Path.cwd(), name=worker).env_dir / "kubeconfig"
    if not path.is_file():
        raise KubernetesError(f"job {name} runs on worker cluster {worker}; no kubeconfig for it at {path}",
                              hint=f"run from the rollout's folder after `infra up` of {worker}, or give "
                                   f"--kubeconfig of {worker}")
    return Client.from_kubeconfig(path)
