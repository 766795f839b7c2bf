"""Apply rendered objects to a cluster: check CRDs, server-side apply in order, prune, wait.

* **Install**: the vendored components (``install/``, Kueue) first, CRDs ``Established`` and
  Kueue's webhook serving before anything else (``kube.install``).
* **Order**: Namespaces and PriorityClasses first, then namespaced tenancy objects, then Kueue
  objects (after their CRDs are ``Established``), then the cluster's workloads (the NVIDIA
  device plugin, the cluster autoscaler) (``conventions.KIND_ORDER``); model servers last,
  behind two gates (``_gates``): the DaemonSets (the device plugin) rolled out, then each
  SeldonRuntime ``Ready``, before any Seldon Server or Model. The gates run with ``--no-wait``
  too; ``--timeout`` bounds each.
* **Seldon**: with any ``mlops.seldon.io`` object, Seldon Core v2's CRDs (models, servers,
  seldonruntimes) must be installed and ``Established`` before anything is applied; infra does
  not install Seldon Core v2.
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

from ..conventions import COMPONENT_LABEL, ENV_LABEL, KIND_ORDER, MANAGED_BY, MANAGED_BY_LABEL, sort_for_apply
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


SELDON_GROUP = "mlops.seldon.io"
SELDON_CRDS = tuple(f"{plural}.{SELDON_GROUP}" for plural in ("models", "seldonruntimes", "servers"))
SELDON_HINT = ("install Seldon Core v2's operator first (cluster-wide: its CRDs, controller and SeldonConfig "
               "'default'; infra does not install it, see docs/kubernetes.md), then rerun `infra handoff`")


def _group(obj: dict[str, Any]) -> str:
    api_version = obj.get("apiVersion") or ""
    return api_version.split("/")[0] if "/" in api_version else ""


def check_crds(client: Client, objs: list[dict[str, Any]], opts: Options, groups: frozenset[str] | None = None) -> None:
    """Every custom kind (of ``groups``, default all) must have its CRD installed, serving our
    version, and Established; with any Seldon object, all of Seldon Core v2's CRDs."""
    needed: dict[str, str] = {}
    for obj in objs:
        res = rest.for_object(obj)
        name = rest.crd_name(res)
        if name and (groups is None or _group(obj) in groups):
            needed[name] = res.api_version.split("/")[1]
            if _group(obj) == SELDON_GROUP:
                needed.update({crd: needed.get(crd, needed[name]) for crd in SELDON_CRDS})
    crd_res = rest.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    missing = [n for n in SELDON_CRDS if n in needed and client.get(crd_res, n) is None]
    if missing:  # one error naming all of them
        raise KubernetesError(f"Seldon Core v2 is not installed: the cluster has no CRD {', '.join(missing)}",
                              hint=SELDON_HINT)
    deadline = opts.clock() + opts.timeout
    for name, version in sorted(needed.items()):
        while True:
            crd = client.get(crd_res, name)
            if crd is None:
                raise KubernetesError(
                    f"Kueue is not installed: the cluster has no CRD {name}",
                    hint="install Kueue first (docs/kubernetes.md), then rerun `infra handoff`",
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


def is_serving(obj: dict[str, Any]) -> bool:
    """A model server, or Seldon's runtime for them: applied after the gates."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return _group(obj) == SELDON_GROUP or labels.get(COMPONENT_LABEL) == "inference"


def apply_objects(client: Client, objs: list[dict[str, Any]], opts: Options, progress: Progress,
                  result: ApplyResult) -> None:
    ordered = sorted(sort_for_apply(objs), key=is_serving)  # stable: the cluster's objects, then model servers
    applied: list[dict[str, Any]] = []
    progress.start_task(len(ordered), "kubernetes apply")
    for obj in ordered:
        _gates(client, obj, applied, opts, progress)
        applied.append(obj)
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


def _gates(client: Client, obj: dict[str, Any], applied: list[dict[str, Any]], opts: Options,
           progress: Progress) -> None:
    """Before the first model server: the DaemonSets applied so far (the NVIDIA device plugin)
    rolled out; before the first Seldon Server or Model: every SeldonRuntime applied Ready."""
    if not is_serving(obj):
        return
    if not any(is_serving(o) for o in applied):
        daemonsets = [o for o in applied if o.get("kind") == "DaemonSet"]
        wait_gate(client, daemonsets, opts, progress, "rolled out", lambda o: (
            f"see `kubectl -n {o['metadata'].get('namespace')} get daemonset,pods`: model servers are applied only "
            "once the NVIDIA device plugin runs on every GPU node; rerun with a larger --timeout"))
    if obj.get("kind") != "SeldonRuntime" and not any(is_serving(o) and o.get("kind") != "SeldonRuntime"
                                                      for o in applied):
        runtimes = [o for o in applied if o.get("kind") == "SeldonRuntime"]
        wait_gate(client, runtimes, opts, progress, "Ready", lambda o: (
            f"see `kubectl -n {o['metadata'].get('namespace')} get seldonruntime,pods`: Seldon Core v2's operator "
            "starts the runtime (scheduler, envoy, gateways) from its SeldonConfig; rerun with a larger --timeout"))


def wait_gate(client: Client, objs: list[dict[str, Any]], opts: Options, progress: Progress, state: str,
              hint: Callable[[dict[str, Any]], str]) -> None:
    """Poll until every one of ``objs`` is ready (``readiness``); past ``opts.timeout``, name the first that is not."""
    pending, deadline = list(objs), opts.clock() + opts.timeout
    while pending:
        still: list[tuple[dict[str, Any], str]] = []
        for obj in pending:
            live = client.get(rest.for_object(obj), obj["metadata"]["name"], obj["metadata"].get("namespace"))
            ok, detail = readiness(live) if live else (False, "not found")
            if not ok:
                still.append((obj, detail))
        if not still:
            return
        if opts.clock() >= deadline:
            first, detail = still[0]
            more = f" (and {len(still) - 1} more)" if len(still) > 1 else ""
            raise KubernetesError(f"{describe(first)} is not {state} after {opts.timeout:.0f}s: {detail}{more}; "
                                  "no model server was applied after it", hint=hint(first))
        pending = [o for o, _ in still]
        progress.current(f"waiting: {describe(pending[0])} {state}")
        opts.sleep(POLL_SECONDS)


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
    if kind in ("Model", "Server", "SeldonRuntime"):
        c = _condition(obj, "Ready", "ModelReady") or {}
        ok = c.get("status") == "True"
        return ok, "ready" if ok else f"not ready: {c.get('reason') or c.get('message') or 'no status yet'}"
    if kind == "Namespace":
        return status.get("phase", "Active") == "Active", f"phase {status.get('phase')}"
    return True, "applied"


WAITED_KINDS = frozenset({"Deployment", "DaemonSet", "ClusterQueue", "LocalQueue", "Model", "Server",
                          "SeldonRuntime"})


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
        check_crds(client, objs, opts, frozenset({SELDON_GROUP}))  # before anything changes: infra cannot install it
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
