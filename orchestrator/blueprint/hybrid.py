"""Bursting across the environments of a rollout (docs/hybrid.md): the rules.

``issues(bp)`` holds one blueprint to what bursting needs on its own (a blueprint rule,
located by the loader): Kubernetes >= 1.32 (Job ``spec.managedBy``, which MultiKueue needs for
batch/Job, is on by default from 1.32), no environment bursting to itself, nothing named twice.

``rollout_problems(envs)`` holds the environments of one rollout to each other, located at the
``burst`` entry that is wrong: every target is in the rollout and runs after the source; it
lists the source in ``burst_from`` (the worker agrees to run the work); the team exists there
with the same namespace and may use a training pool of every GPU type it bursts with; a Job
of the team with one GPU of that type, built as ``infra job submit`` builds it on the source, is
admitted by the worker's queue and lands on the worker's nodes (the placement proof across
clusters); the manager can reach the worker's API endpoint (a declared way in that is not
"inside the worker's network"); ``max_gpus`` GPUs at the worker's price for a month fit
``budget_per_month_usd``. A ``burst_from`` entry names an environment of the rollout whose
teams burst here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from . import capacity
from .models import Blueprint, Team
from .yamlpos import format_path, printable

if TYPE_CHECKING:
    from .rollout import RolloutEnv

Issue = tuple[tuple[Any, ...], str]
Placement = Callable[[Blueprint, Team, Blueprint, str], "str | None"]
MIN_VERSION = (1, 32)
HOURS_PER_MONTH = 730


def _minor(bp: Blueprint) -> tuple[int, int]:
    major, minor = bp.kubernetes.minor.split(".")
    return int(major), int(minor)


def issues(bp: Blueprint) -> Iterator[Issue]:
    bursting = [(i, t) for i, t in enumerate(bp.teams) if t.burst is not None]
    if (bursting or bp.burst_from) and _minor(bp) < MIN_VERSION:
        yield ("kubernetes", "version"), (
            f"{bp.kubernetes.version}: bursting through MultiKueue needs Kubernetes >= 1.32 (Job spec.managedBy), "
            "on the manager and on every worker")
    for i, team in bursting:
        burst = team.burst
        assert burst is not None
        for j, env in enumerate(burst.to):
            if env == bp.name:
                yield ("teams", i, "burst", "to", j), f"{env} is this environment: a team bursts to another one"
            elif env in burst.to[:j]:
                yield ("teams", i, "burst", "to", j), f"{env} is named twice"
        for j, gpu in enumerate(burst.gpu_types):
            if gpu in burst.gpu_types[:j]:
                yield ("teams", i, "burst", "gpu_types", j), f"{gpu} is named twice"
    for k, env in enumerate(bp.burst_from):
        if env == bp.name:
            yield ("burst_from", k), f"{env} is this environment: a cluster does not burst to itself"
        elif env in bp.burst_from[:k]:
            yield ("burst_from", k), f"{env} is named twice"


def gpu_types(bp: Blueprint, team: Team) -> set[str]:
    """The GPU types of the training pools ``team`` may use in ``bp``."""
    return {p.gpu.type for p in capacity.team_pools(bp, team, capacity.TRAINING) if p.gpu}


def gpu_hourly(bp: Blueprint, gpu: str) -> float | None:
    """The cheapest price of one GPU of type ``gpu`` an hour in ``bp``'s pools (None: unknown)."""
    from .. import cost

    pools = {p.name: p for p in bp.node_pools}
    found = []
    for row in cost.estimate(bp).pools:
        pool = pools.get(row.pool)
        hourly = row.configured_hourly
        if pool is not None and pool.gpu is not None and pool.gpu.type == gpu and hourly is not None:
            found.append(hourly / pool.gpu.count)
    return min(found) if found else None


def _reach_problem(worker: Blueprint, source: str) -> str | None:
    """Why the manager ``source`` cannot reach the worker's API endpoint (None: a way in is declared)."""
    if not worker.is_cloud:
        return None  # hosts: the control plane's address, on the site's network
    access = worker.kubernetes.private_access
    if worker.kubernetes.public_endpoint:
        return None if worker.kubernetes.authorized_networks else "its public endpoint admits no network"
    if access is not None and access.via == "networks" and access.networks:
        return None
    return (f"its private API endpoint is reached only from inside its own network, and MultiKueue on {source} "
            "runs outside it: give it kubernetes.private_access {via: networks, networks: [the manager's routed "
            "CIDRs]} or a public endpoint with authorized_networks that admit the manager")


def rollout_problems(envs: list[RolloutEnv], placement: Placement | None = None) -> list[Any]:
    """Every cross-environment bursting problem of a rollout, as located ``Problem``s. ``placement``:
    why a one-GPU burst Job of a team does not run on a worker (the render's placement proof,
    ``render.kubernetes.hybrid.burst_placement``, given with the loader's checks)."""
    from ..errors import Problem

    by_name = {e.name: e for e in envs}
    after = {e.name: set(e.after) for e in envs}
    problems: list[Problem] = []

    def before(name: str, seen: set[str]) -> set[str]:
        for dep in after.get(name, set()) - seen:
            seen.add(dep)
            before(dep, seen)
        return seen

    def at(env: RolloutEnv, path: tuple[Any, ...], message: str) -> None:
        file, line, col = env.loaded.locate(path)
        problems.append(Problem(file, line, col, format_path(path), printable(message)))

    sources: dict[str, set[str]] = {}  # worker -> environments bursting to it
    for env in envs:
        bp: Blueprint = env.loaded.model
        for i, team in enumerate(bp.teams):
            if team.burst is None:
                continue
            for j, target in enumerate(team.burst.to):
                here = ("teams", i, "burst", "to", j)
                worker_env = by_name.get(target)
                if worker_env is None or target == env.name:
                    if target != env.name:
                        at(env, here, f"{target} is not an environment of this rollout "
                                      f"(environments: {', '.join(sorted(by_name))})")
                    continue
                sources.setdefault(target, set()).add(env.name)
                worker: Blueprint = worker_env.loaded.model
                if env.name not in before(target, set()):
                    at(env, here, f"{target} must run after {env.name} (its infra up hands its MultiKueue token to "
                                  f"{env.name}, which must be up first): add {env.name} to {target}'s after: in "
                                  "the rollout file")
                if env.name not in worker.burst_from:
                    at(env, here, f"{target} does not list {env.name} in burst_from: the worker agrees to run "
                                  f"{env.name}'s jobs there ({worker_env.path})")
                why = _reach_problem(worker, env.name)
                if why:
                    at(env, here, f"{env.name} cannot reach {target}'s API: {why}")
                other = next((t for t in worker.teams if t.name == team.name), None)
                if other is None:
                    at(env, here, f"{target} has no team {team.name}: MultiKueue runs the team's jobs in the same "
                                  "namespace and queue there")
                    continue
                if other.effective_namespace != team.effective_namespace:
                    at(env, here, f"team {team.name} has namespace {other.effective_namespace} in {target} and "
                                  f"{team.effective_namespace} here: MultiKueue keeps the namespace")
                    continue
                offered = gpu_types(worker, other)
                for k, gpu in enumerate(team.burst.gpu_types):
                    where = ("teams", i, "burst", "gpu_types", k)
                    if gpu not in offered:
                        at(env, where, f"{target} offers team {team.name} no training pool of {gpu} "
                                       f"(it has: {', '.join(sorted(offered)) or 'none'})")
                        continue
                    why = placement(bp, team, worker, gpu) if placement is not None else None
                    if why:
                        at(env, where, f"a {gpu} burst job of team {team.name} cannot run on {target}: {why}")
                    budget = team.burst.budget_per_month_usd
                    hourly = gpu_hourly(worker, gpu)
                    if budget is not None and hourly is not None:
                        month = team.burst.max_gpus * hourly * HOURS_PER_MONTH
                        if month > budget:
                            at(env, ("teams", i, "burst", "max_gpus"),
                               f"{team.burst.max_gpus} {gpu} GPUs on {target} cost up to ${month:,.0f} a month "
                               f"(${hourly:.2f} per GPU-hour x {HOURS_PER_MONTH} h), over budget_per_month_usd "
                               f"{budget}: lower max_gpus")
    for env in envs:
        for k, manager in enumerate(env.loaded.model.burst_from):
            if manager not in by_name:
                at(env, ("burst_from", k), f"{manager} is not an environment of this rollout")
            elif manager not in sources.get(env.name, set()):
                at(env, ("burst_from", k), f"no team of {manager} bursts to {env.name}: "
                                           f"remove it, or give a team of {manager} burst: {{to: [{env.name}]}}")
    return problems


def capacity_rows(bp: Blueprint, workers: dict[str, Blueprint] | None = None) -> list[dict[str, Any]]:
    """Per team of ``bp``: its local GPUs (guarantee and borrowing) and its burst GPUs (the burst
    queue's ``max_gpus``, and what each worker guarantees the team there)."""
    rows = []
    for team in bp.teams:
        row: dict[str, Any] = {"team": team.name, "local_gpus": capacity.training_quota(bp, team),
                               "local_borrowing": team.borrowing_limit or 0, "burst_gpus": 0, "workers": {}}
        if team.burst is not None:
            row["burst_gpus"] = team.burst.max_gpus
            for name in team.burst.to:
                worker = (workers or {}).get(name)
                other = next((t for t in worker.teams if t.name == team.name), None) if worker else None
                row["workers"][name] = capacity.training_quota(worker, other) if worker and other else None
        rows.append(row)
    return rows
