"""The worker's MultiKueue token, handed to the manager (docs/hybrid.md, "Identity").

A worker's render holds a ServiceAccount per manager and its ``kubernetes.io/service-account-token``
Secret, which the worker's token controller fills. ``hand_token`` runs in the worker's handoff
(``infra up``/``infra handoff`` of an environment with ``burst_from``; the rollout runs it after
the manager, whose kubeconfig is then at ``.infra/env/<manager>/kubeconfig``):

1. rotates the token (deletes the token Secret and applies it again: the controller issues a new
   token and the old one stops working), and waits for the new one;
2. checks that the worker's API endpoint answers (``kube.reach``) before handing it over;
3. writes a kubeconfig with the worker's endpoint, CA and the token (a static token: exec plugins
   cannot run inside Kueue's controller) into the manager's Secret ``multikueue-<worker>`` in
   Kueue's namespace, the one its MultiKueueCluster names, and a copy (0600) into the worker's
   private run files. Nothing of it is logged, printed or rendered.

The manager's Secret carries ``app.kubernetes.io/managed-by: infra`` but no environment label:
the manager's own handoff does not render it, and so must not prune it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..conventions import COMPONENT_LABEL, KUEUE_NAMESPACE, MANAGED_BY, MANAGED_BY_LABEL
from ..errors import KubernetesError
from ..render.kubernetes import hybrid

TOKEN_WITHIN = 60.0  # seconds for the token controller to fill a new token Secret


def _secret_resource():
    from ..kube import rest

    return rest.resource("v1", "Secret")


def worker_token(worker: Any, manager_env: str, rotate: bool = True, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, within: float = TOKEN_WITHIN) -> tuple[str, str | None]:
    """The token (and base64 CA) of the worker's ServiceAccount for ``manager_env``; ``rotate``: a new one."""
    res = _secret_resource()
    name = hybrid.token_secret(manager_env)
    current = worker.get(res, name, KUEUE_NAMESPACE)
    if current is None:
        raise KubernetesError(f"no Secret {KUEUE_NAMESPACE}/{name} on this cluster: its render was not applied")
    if rotate:
        fresh = {k: current[k] for k in ("apiVersion", "kind", "type") if k in current}
        meta = current["metadata"]
        fresh["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
        worker.delete(res, name, KUEUE_NAMESPACE)
        worker.create(fresh)
    deadline = clock() + within
    while True:
        secret = worker.get(res, name, KUEUE_NAMESPACE) or {}
        data = secret.get("data") or {}
        if data.get("token"):
            return base64.b64decode(data["token"]).decode(), data.get("ca.crt")
        if clock() >= deadline:
            raise KubernetesError(f"the token controller did not fill {KUEUE_NAMESPACE}/{name} within {within:g} s",
                                  hint="is the cluster's kube-controller-manager running?")
        sleep(1.0)


def manager_secret(worker_env: str, worker_env_label: str, config: str) -> dict[str, Any]:
    """The manager's Secret for ``worker_env`` (the kubeconfig MultiKueue reads)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": hybrid.kubeconfig_secret(worker_env), "namespace": KUEUE_NAMESPACE,
                         "labels": {MANAGED_BY_LABEL: MANAGED_BY, COMPONENT_LABEL: "multikueue",
                                    "infra.dev/worker": worker_env_label}},
            "data": {hybrid.KUBECONFIG_KEY: base64.b64encode(config.encode()).decode()}}


def hand_token(worker: Any, manager: Any, worker_env: str, manager_env: str, server: str, private: Path,
               rotate: bool = True, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic, within: float = TOKEN_WITHIN) -> Path:
    """Steps 1-3 above; the path of the private copy."""
    from ..kube import reach
    from ..workspace import write_private

    reason = reach.probe(server)
    if reason:
        raise KubernetesError(f"the worker's API at {server} does not answer ({reason}): MultiKueue on {manager_env} "
                              "could not reach it either", hint="docs/hybrid.md, \"Reachability\"")
    token, ca = worker_token(worker, manager_env, rotate, sleep, clock, within)
    config = hybrid.kubeconfig(worker_env, server, ca, token)
    manager.apply(manager_secret(worker_env, worker_env, config))
    return write_private(private / f"multikueue-{manager_env}.kubeconfig", config)


def hand_tokens(ctx: Any, worker: Any, server: str | None) -> list[str]:
    """In the worker's handoff: ``hand_token`` to every manager of ``burst_from``, each reached
    with the kubeconfig its own run saved (``.infra/env/<manager>/kubeconfig``); what was done, in words."""
    from ..kube.client import Client
    from ..kube.rest import RetryPolicy
    from ..workspace import Workspace

    if not server:
        raise KubernetesError("the worker's kubeconfig names no API server: MultiKueue needs its address")
    done = []
    for manager_env in ctx.bp.burst_from:
        # a bare-metal manager of a --sandbox rollout runs for real: its kubeconfig is outside the sandbox
        found = [Workspace(root=ctx.ws.root, name=manager_env, sandbox=sandbox).env_dir / "kubeconfig"
                 for sandbox in dict.fromkeys((ctx.ws.sandbox, False))]
        path = next((p for p in found if p.is_file()), found[0])
        if not path.is_file():
            raise KubernetesError(f"no kubeconfig for {manager_env} at {path}: the worker hands its MultiKueue token "
                                  f"to {manager_env}, which must be up first",
                                  hint=f"run `infra up` for {manager_env} first (the rollout orders it before)")
        manager = Client.from_kubeconfig(path, None, retry=RetryPolicy())
        try:
            hand_token(worker, manager, ctx.bp.name, manager_env, server, ctx.ws.env_dir)
        finally:
            manager.close()
        done.append(f"MultiKueue token handed to {manager_env}")
    return done
