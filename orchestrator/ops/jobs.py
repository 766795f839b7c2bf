"""``infra job``: one function per command, from the shared options to the result to print.

The Job itself is made by ``kube.jobs`` (queue label, suspend, requests, priority); the GPU
tolerations come from the blueprint's pools when ``--blueprint`` names the team
(``render.kubernetes.inference.placement``), else the plain ``nvidia.com/gpu`` toleration.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import KubernetesError, UsageError
from .target import TargetOptions, target


@dataclass(frozen=True)
class JobSpec:
    """``--image``/``--command`` and the rest: a job made from flags (no Job file)."""

    image: str | None = None
    command: str | None = None
    gpus: int = 0
    cpu: str = "2"
    memory: str = "8Gi"
    name: str | None = None
    priority: str = "batch"
    burst: bool = False  # local first, then the team's burst queue (docs/hybrid.md)
    burst_after: float | None = None  # seconds pending before moving; None: the blueprint's after_seconds


def submit(opts: TargetOptions, file: Path | None, spec: JobSpec) -> dict[str, Any]:
    """Queue a Job (from ``file``, or made from ``spec``) in the team's LocalQueue; its summary."""
    from ..kube import jobs
    from ..render.kubernetes.inference import Placement, placement

    if not opts.team:
        raise UsageError("--team is required: it names the queue the job waits in")
    where = target(opts)
    ns = where.namespace
    assert ns is not None  # required=True
    tolerations = (placement(where.bp, opts.team) if where.team() else Placement(ns)).gpu_tolerations
    if file is not None:
        if spec.image or spec.command:
            raise UsageError("give either a Job file or --image/--command, not both")
        docs = read_job_file(file)
        if len(docs) != 1:
            raise UsageError(f"{file} must hold exactly one Job (found {len(docs)} documents)")
        job = jobs.prepare_job(docs[0], opts.team, ns, tolerations)
    else:
        if not spec.image or not spec.command:
            raise UsageError("--image and --command are required without a Job file")
        job = jobs.build_job(jobs.JobRequest(
            team=opts.team, namespace=ns, image=spec.image, command=spec.command, gpus=spec.gpus, cpu=spec.cpu,
            memory=spec.memory, name=spec.name, priority=spec.priority, tolerations=tolerations,
        ))
    team = where.team()
    if spec.burst or (team is not None and team.burst is not None and team.burst.default):
        from . import burst

        team = burst.burst_team(where.bp, team)
        done = burst.submit(where.client(), where.bp, team, job, spec.burst_after)  # type: ignore[arg-type]
        return {**jobs.summary(done["job"]), "burst": done["burst"]}
    return jobs.summary(jobs.submit(where.client(), job))


def read_job_file(file: Path) -> list[Any]:
    """The YAML documents of a Job file, read like a blueprint: a regular file (never a named pipe
    or a device), at most 1 MiB, UTF-8; a problem is bad input naming the file, line and column."""
    import yaml

    from ..blueprint.files import FileProblem, read_text
    from ..blueprint.yamlpos import printable

    shown = printable(str(file))
    try:
        text = read_text(file)
    except FileProblem as exc:
        where = f"{shown}:{exc.line}:{exc.column}" if exc.line else shown
        raise UsageError(f"cannot read job file {where}: {exc.reason}") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return [doc for doc in yaml.load_all(text, Loader=loader) if doc]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise UsageError(f"{where}: job file is not valid YAML: {printable(str(problem))}") from None


def list_jobs(opts: TargetOptions) -> list[dict[str, Any]]:
    """Jobs of the team or namespace (all teams' when neither is given)."""
    from ..kube import jobs

    where = target(opts, required=False)
    return jobs.list_jobs(where.client(), where.namespace, opts.team)


def status(opts: TargetOptions, name: str) -> dict[str, Any]:
    """A job's state and why it waits (the blueprint's quota stands in for unreadable queues)."""
    from ..kube import jobs

    where = target(opts)
    assert where.namespace is not None
    team = where.team()
    fallback = (team.gpu_quota, team.borrowing_limit) if team else None
    return jobs.status(where.client(), where.namespace, name, fallback)


def logs(opts: TargetOptions, name: str, follow: bool = False, tail: int | None = None) -> Iterator[str]:
    """The lines of the job's latest pod's log (``follow``: until the pod ends)."""
    from ..kube import jobs

    where = target(opts)
    assert where.namespace is not None
    client = where.client()
    from .burst import worker_client  # a burst Job's pods are on the worker it was dispatched to

    return jobs.logs(worker_client(client, where.namespace, name) or client, where.namespace, name, follow=follow,
                     tail=tail)


def cancel(opts: TargetOptions, name: str) -> str:
    """Delete the job (its pods and Workload go with it); the namespace it was in."""
    from ..kube import jobs

    where = target(opts)
    assert where.namespace is not None
    if not jobs.cancel(where.client(), where.namespace, name):
        raise KubernetesError(f"job {name} not found in namespace {where.namespace}")
    return where.namespace
