"""Apply the vendored installs (``build/<name>/kubernetes/install/``, i.e. Kueue) before anything else.

Order: the CustomResourceDefinitions, waited for until ``Established``; then the rest of the
release in dependency order (Namespace, ServiceAccount, RBAC, ConfigMap, Secret, Service,
Deployment, webhook configurations, APIService); then a wait until Kueue's webhook Service
has a ready endpoint (an EndpointSlice of ``kueue-webhook-service`` with a ready address):
until then every write of a Kueue object, and every Job in a managed namespace, is refused by
the webhook's ``failurePolicy: Fail``. Only after that are ResourceFlavors, ClusterQueues and
LocalQueues applied; last, a wait until every APIService of the install is ``Available`` (Kueue's
visibility API: an unavailable aggregated API breaks API discovery for every client and leaves
deleted namespaces Terminating). These waits run with ``--no-wait`` too (``--timeout`` bounds them).

Installed objects are applied as written: not relabelled, and never pruned (a cluster-wide
component another environment may share).
"""

from __future__ import annotations

from typing import Any

from ..conventions import KUEUE_NAMESPACE, KUEUE_WEBHOOK_SERVICE
from ..errors import KubernetesError
from ..progress import Progress
from . import rest
from .client import Client
from .validate import describe

POLL_SECONDS = 2.0  # every wait of the handoff polls this often
CRD = "CustomResourceDefinition"
INSTALL_ORDER = [
    CRD, "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
    "ConfigMap", "Secret", "Service", "Deployment", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "APIService",
]
SLICE = rest.resource("discovery.k8s.io/v1", "EndpointSlice")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _rank(obj: dict[str, Any]) -> int:
    kind = obj.get("kind")
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


def _established(crd: dict[str, Any] | None) -> bool:
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def webhook_ready(client: Client) -> bool:
    """Whether Kueue's webhook Service has at least one ready endpoint."""
    slices = client.list(SLICE, KUEUE_NAMESPACE, selector=f"{SERVICE_NAME_LABEL}={KUEUE_WEBHOOK_SERVICE}")
    for item in slices:
        for endpoint in item.get("endpoints") or []:
            # "ready" absent means ready (discovery.k8s.io/v1 EndpointConditions)
            if endpoint.get("addresses") and (endpoint.get("conditions") or {}).get("ready", True) is not False:
                return True
    return False


def api_service_available(client: Client, name: str) -> bool:
    """Whether the aggregator reports the APIService ``Available`` (it reached the Service behind it)."""
    found = client.get(rest.resource("apiregistration.k8s.io/v1", "APIService"), name)
    conditions = ((found or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)


def _until(what: str, check: Any, opts: Any, progress: Progress, hint: str) -> None:
    deadline = opts.clock() + opts.timeout
    while not check():
        if opts.clock() >= deadline:
            raise KubernetesError(f"{what} after {opts.timeout:.0f}s", hint=hint)
        progress.current(f"waiting: {what}")
        opts.sleep(POLL_SECONDS)


def apply_install(client: Client, objs: list[dict[str, Any]], opts: Any, progress: Progress,
                  result: Any) -> None:
    """Apply ``objs`` (the install files' objects) in order and wait as the module says."""
    if not objs:
        return
    ordered = sorted(objs, key=_rank)  # stable: keeps the release's order within a kind
    progress.start_task(len(ordered), "kubernetes install")
    crd_res = rest.resource("apiextensions.k8s.io/v1", CRD)
    crds = [o["metadata"]["name"] for o in ordered if o.get("kind") == CRD]
    for i, obj in enumerate(ordered):
        if i == len(crds) and crds:
            _until(f"CRDs not Established ({', '.join(crds[:3])}...)",
                   lambda: all(_established(client.get(crd_res, n)) for n in crds), opts, progress,
                   "the API server did not accept the CRDs: see `kubectl get crd` and its conditions")
        name = describe(obj)
        progress.current(name)
        _, created = client.apply(obj, force=opts.force)
        result.applied.append(name)
        if created:
            result.created.append(name)
        progress.advance(name, "created" if created else "applied")
    if any(o.get("kind") == "Service" and o["metadata"].get("name") == KUEUE_WEBHOOK_SERVICE for o in objs):
        _until(f"Kueue's webhook ({KUEUE_NAMESPACE}/{KUEUE_WEBHOOK_SERVICE}) has no ready endpoint",
               lambda: webhook_ready(client), opts, progress,
               f"see `kubectl -n {KUEUE_NAMESPACE} get pods,endpointslices`: GPU-less clusters need a node "
               "for kueue-controller-manager; rerun with a larger --timeout")
    for name in [o["metadata"]["name"] for o in objs if o.get("kind") == "APIService"]:
        _until(f"APIService {name} not Available", lambda n=name: api_service_available(client, n), opts, progress,
               f"see `kubectl get apiservice {name} -o yaml` (status.conditions): the control plane must reach "
               "the Service behind it (Kueue's visibility API listens on 8082: open it from the control plane)")
