"""Apply rendered objects to a cluster: check CRDs, server-side apply in order, prune, wait.

* **Install**: the vendored components (``install/``, Kueue) first, CRDs ``Established`` and
  Kueue's webhook serving before anything else (``kube.install``).
* **Order**: Namespaces and PriorityClasses first, then namespaced tenancy objects, then Kueue
  objects (after their CRDs are ``Established``), then workloads (``conventions.KIND_ORDER``).
* **Apply**: server-side apply, field manager ``infra``, ``force=True`` by default: these
  objects are owned by the blueprint, so a field someone changed by hand is taken back (the
  GitOps reading). With ``force=False`` a conflict fails and names the other manager.
* **Prune**: objects of the kinds infra renders that carry *both* ``app.kubernetes.io/managed-by=infra``
  and ``infra.dev/environment=<env>`` but are no longer rendered are deleted. Namespaces are
  never pruned (that would delete every job in them); they are reported instead.
* **Wait**: Deployments and DaemonSets rolled out, queues ``Active``, Seldon objects ``Ready``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..conventions import ENV_LABEL, KIND_ORDER, MANAGED_BY, MANAGED_BY_LABEL, sort_for_apply
from ..errors import KubernetesError
from ..progress import NullProgress, Progress
from . import rest
from .client import ApiError, Client
from .install import POLL_SECONDS, apply_install
from .validate import describe


@dataclass
class ApplyResult:
    server_version: str = ""
    applied: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    stale_namespaces: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    waited_s: float = 0.0

    def summary(self) -> str:
        text = f"applied {len(self.applied)} objects ({len(self.created)} created), pruned {len(self.pruned)}"
        if self.waited_s:
            text += f", ready after {self.waited_s:.0f}s"
        return text


@dataclass
class Options:
    force: bool = True
    prune: bool = True
    wait: bool = True
    timeout: float = 300.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def check_crds(client: Client, objs: list[dict[str, Any]], opts: Options) -> None:
    """Every custom kind must have its CRD installed, serving our version, and Established."""
    needed: dict[str, str] = {}
    for obj in objs:
        res = rest.for_object(obj)
        name = rest.crd_name(res)
        if name:
            needed[name] = res.api_version.split("/")[1]
    crd_res = rest.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    deadline = opts.clock() + opts.timeout
    for name, version in sorted(needed.items()):
        while True:
            crd = client.get(crd_res, name)
            if crd is None:
                product = "Kueue" if name.endswith("kueue.x-k8s.io") else "Seldon Core v2"
                raise KubernetesError(
                    f"{product} is not installed: the cluster has no CRD {name}",
                    hint=f"install {product} first (docs/kubernetes.md), then rerun `infra handoff`",
                )
            served = [v["name"] for v in crd.get("spec", {}).get("versions", []) if v.get("served")]
            if version not in served:
                raise KubernetesError(
                    f"CRD {name} does not serve {version} (serves: {', '.join(served) or 'none'})",
                    hint="upgrade Kueue to v0.15 or later" if "kueue" in name else None,
                )
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                break
            if opts.clock() >= deadline:
                raise KubernetesError(f"CRD {name} is not Established after {opts.timeout:.0f}s")
            opts.sleep(POLL_SECONDS)


def apply_objects(client: Client, objs: list[dict[str, Any]], opts: Options, progress: Progress,
                  result: ApplyResult) -> None:
    ordered = sort_for_apply(objs)
    progress.start_task(len(ordered), "kubernetes apply")
    for obj in ordered:
        name = describe(obj)
        progress.current(name)
        _, created = client.apply(obj, force=opts.force)
        result.applied.append(name)
        if created:
            result.created.append(name)
        progress.advance(name, "created" if created else "applied")


def prune(client: Client, objs: list[dict[str, Any]], env: str, progress: Progress, result: ApplyResult) -> None:
    wanted = {rest.key(o) for o in objs}
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY},{ENV_LABEL}={env}"
    for api_version, kind in reversed(KIND_ORDER):
        res = rest.resource(api_version, kind)
        try:
            found = client.list(res, selector=selector)
        except ApiError as exc:
            if exc.status == 404:  # that API is not served here (e.g. Seldon not installed)
                continue
            raise
        for obj in found:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or labels.get(ENV_LABEL) != env:
                continue  # never trust the server's filtering alone
            if rest.key(obj) in wanted:
                continue
            name = describe(obj)
            if kind == "Namespace":
                result.stale_namespaces.append(obj["metadata"]["name"])
                progress.warn(f"namespace {obj['metadata']['name']} is no longer in the blueprint; "
                              "infra does not delete namespaces (delete it yourself when it is empty)")
                continue
            client.delete(res, obj["metadata"]["name"], obj["metadata"].get("namespace"))
            result.pruned.append(name)
            progress.info(f"  pruned {name}")


def _condition(obj: dict[str, Any], *types: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") in types:
            return c
    return None


def readiness(obj: dict[str, Any]) -> tuple[bool, str]:
    """Whether a live object is ready, and what it is waiting for."""
    kind, status = obj.get("kind"), obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation", 0)
    if kind in ("Deployment", "DaemonSet") and status.get("observedGeneration", 0) < generation:
        return False, "the controller has not seen the latest spec yet"
    if kind == "Deployment":
        want = (obj.get("spec") or {}).get("replicas", 1)
        have = status.get("availableReplicas", 0)
        return have >= want and status.get("updatedReplicas", 0) >= want, f"{have}/{want} replicas available"
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        have = status.get("numberAvailable", 0)
        return have >= want and status.get("updatedNumberScheduled", 0) >= want, f"{have}/{want} nodes available"
    if kind in ("ClusterQueue", "LocalQueue"):
        c = _condition(obj, "Active") or {}
        ok = c.get("status") == "True"
        return ok, "active" if ok else f"not active: {c.get('reason', 'no status yet')} {c.get('message', '')}".strip()
    if kind in ("Model", "Server"):
        c = _condition(obj, "Ready", "ModelReady") or {}
        ok = c.get("status") == "True"
        return ok, "ready" if ok else f"not ready: {c.get('reason') or c.get('message') or 'no status yet'}"
    if kind == "Namespace":
        return status.get("phase", "Active") == "Active", f"phase {status.get('phase')}"
    return True, "applied"


WAITED_KINDS = frozenset({"Deployment", "DaemonSet", "ClusterQueue", "LocalQueue", "Model", "Server"})


def wait_ready(client: Client, objs: list[dict[str, Any]], opts: Options, progress: Progress,
               result: ApplyResult) -> None:
    pending = [o for o in objs if o.get("kind") in WAITED_KINDS]
    started = opts.clock()
    details: dict[str, str] = {}
    while pending:
        still = []
        for obj in pending:
            res = rest.for_object(obj)
            live = client.get(res, obj["metadata"]["name"], obj["metadata"].get("namespace"))
            ok, detail = readiness(live) if live else (False, "not found")
            if not ok:
                still.append(obj)
                details[describe(obj)] = detail
        pending = still
        if not pending:
            break
        if opts.clock() - started >= opts.timeout:
            result.not_ready = [f"{describe(o)}: {details[describe(o)]}" for o in pending]
            raise KubernetesError(
                f"{len(pending)} objects not ready after {opts.timeout:.0f}s: " + "; ".join(result.not_ready[:5]),
                hint="GPU nodes may still be scaling up: rerun with a larger --timeout, or --no-wait",
            )
        progress.current(f"waiting for {len(pending)} objects")
        opts.sleep(POLL_SECONDS)
    result.waited_s = opts.clock() - started


def apply_all(client: Client, objs: list[dict[str, Any]], env: str, opts: Options | None = None,
              progress: Progress | None = None, install: list[dict[str, Any]] | None = None) -> ApplyResult:
    """Apply ``install`` (``rendered.read_install``) first, then ``objs`` (``rendered.read_rendered``)."""
    opts = opts or Options()
    progress = progress or NullProgress()
    result = ApplyResult(server_version=client.server_version())
    try:
        apply_install(client, install or [], opts, progress, result)
        check_crds(client, objs, opts)
        apply_objects(client, objs, opts, progress, result)
        if opts.prune:
            prune(client, objs, env, progress, result)
        if opts.wait:
            wait_ready(client, objs, opts, progress, result)
    finally:
        progress.close()
    return result
