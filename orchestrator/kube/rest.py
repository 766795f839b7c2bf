"""How infra addresses the API: REST paths of the kinds it reads and writes (a static table,
so no discovery round-trips), and when and how long to wait before retrying a request.

Retried: 429 (API Priority and Fairness throttling: the server's ``Retry-After`` is honoured),
5xx (an overloaded or restarting server, a webhook not yet reachable), 409 conflicts that a
retry can resolve (an optimistic-concurrency ``Conflict``; not ``AlreadyExists``, and not a
field-manager conflict of server-side apply, which needs ``force`` or a human), and
connection errors. Never retried: other 4xx (validation, auth, not found). Without
``Retry-After``: capped exponential backoff with full jitter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import KubernetesError


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def prefix(self) -> str:
        return f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        """Collection or object path; a namespaced kind without namespace lists all namespaces."""
        path = self.prefix
        if self.namespaced and namespace:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        if name:
            path += f"/{name}"
            if sub:
                path += f"/{sub}"
        return path


_TABLE = [
    Resource("v1", "Namespace", "namespaces", False),
    Resource("v1", "ResourceQuota", "resourcequotas", True),
    Resource("v1", "LimitRange", "limitranges", True),
    Resource("v1", "Service", "services", True),
    Resource("v1", "Pod", "pods", True),
    Resource("v1", "Event", "events", True),
    Resource("v1", "ConfigMap", "configmaps", True),
    Resource("v1", "ServiceAccount", "serviceaccounts", True),
    Resource("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False),
    Resource("rbac.authorization.k8s.io/v1", "Role", "roles", True),
    Resource("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True),
    Resource("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    Resource("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Resource("v1", "Secret", "secrets", True),
    Resource("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration",
             "mutatingwebhookconfigurations", False),
    Resource("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
             "validatingwebhookconfigurations", False),
    Resource("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False),
    Resource("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding",
             "validatingadmissionpolicybindings", False),
    Resource("apiregistration.k8s.io/v1", "APIService", "apiservices", False),
    Resource("v1", "Endpoints", "endpoints", True),
    Resource("discovery.k8s.io/v1", "EndpointSlice", "endpointslices", True),
    Resource("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True),
    Resource("apps/v1", "DaemonSet", "daemonsets", True),
    Resource("apps/v1", "Deployment", "deployments", True),
    Resource("batch/v1", "Job", "jobs", True),
    Resource("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False),
    Resource("kueue.x-k8s.io/v1beta2", "ResourceFlavor", "resourceflavors", False),
    Resource("kueue.x-k8s.io/v1beta2", "ClusterQueue", "clusterqueues", False),
    Resource("kueue.x-k8s.io/v1beta2", "LocalQueue", "localqueues", True),
    Resource("kueue.x-k8s.io/v1beta2", "Workload", "workloads", True),
    Resource("kueue.x-k8s.io/v1beta2", "MultiKueueCluster", "multikueueclusters", False),
    Resource("kueue.x-k8s.io/v1beta2", "MultiKueueConfig", "multikueueconfigs", False),
    Resource("kueue.x-k8s.io/v1beta2", "AdmissionCheck", "admissionchecks", False),
    Resource("mlops.seldon.io/v1alpha1", "Model", "models", True),
    Resource("mlops.seldon.io/v1alpha1", "Server", "servers", True),
    Resource("mlops.seldon.io/v1alpha1", "SeldonRuntime", "seldonruntimes", True),
]
CUSTOM_GROUPS = frozenset({"kueue.x-k8s.io", "mlops.seldon.io"})
_BY_KIND = {(r.api_version, r.kind): r for r in _TABLE}


def resource(api_version: str, kind: str) -> Resource:
    try:
        return _BY_KIND[(api_version, kind)]
    except KeyError:
        raise KubernetesError(f"infra does not know the REST path of {kind} ({api_version})") from None


def for_object(obj: dict[str, Any]) -> Resource:
    return resource(obj["apiVersion"], obj["kind"])


def crd_name(res: Resource) -> str | None:
    """``plural.group`` of a custom resource (None for built-in kinds)."""
    group = res.api_version.split("/")[0] if "/" in res.api_version else ""
    return f"{res.plural}.{group}" if group in CUSTOM_GROUPS else None


def key(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    """Identity of an object: group (not version), kind, namespace, name."""
    meta = obj.get("metadata") or {}
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return group, obj["kind"], meta.get("namespace") or "", meta["name"]


# --- retries ------------------------------------------------------------------------------------

MAX_RETRY_AFTER = 60.0  # seconds; a server asking for more is treated as asking for this


@dataclass
class RetryPolicy:
    attempts: int = 10  # tries in all, the first included
    base: float = 0.5  # first backoff (seconds)
    cap: float = 30.0  # largest backoff
    deadline: float = 300.0  # give up on a request once this much time was spent waiting for it
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random
    slept: list[float] = field(default_factory=list)  # every delay, all requests (tests read it)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)], at least a tenth of it."""
        ceiling = min(self.cap, self.base * (2**attempt))
        return max(ceiling * self.rand(), ceiling / 10)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        return self.backoff(attempt)

    def wait(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.sleep(seconds)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retryable(status: int, body: dict[str, Any] | None) -> bool:
    if status == 0 or status == 429 or 500 <= status <= 599:
        return True
    if status == 409:
        body = body or {}
        if body.get("reason") == "AlreadyExists":
            return False
        causes = (body.get("details") or {}).get("causes") or []
        return not any(c.get("type") == "FieldManagerConflict" for c in causes)
    return False
