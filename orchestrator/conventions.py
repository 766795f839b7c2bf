"""Names the rendered manifests and the Kubernetes client must agree on.

``render/kubernetes/`` writes objects that carry these labels, API versions and priority
classes; ``kube/`` applies, prunes, lists and explains them by the same names. Both import
this module and neither imports the other. It imports nothing of infra's. Node labels (what a
pool's nodes carry) are a blueprint convention: ``blueprint/labels.py``.
"""

from __future__ import annotations

from typing import Any

FIELD_MANAGER = "infra"  # server-side apply field manager
KUSTOMIZATION = "kustomization.yaml"  # lists the files of build/<name>/kubernetes/, in order
# Vendored components (Kueue) under build/<name>/kubernetes/install/: applied before everything
# else, as written (not relabelled, never pruned), then waited for.
INSTALL_DIR = "install"
KUEUE_NAMESPACE = "kueue-system"
KUEUE_WEBHOOK_SERVICE = "kueue-webhook-service"  # its endpoints must be ready before queues are applied

# Every object we render carries both labels; prune deletes only objects that carry both.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "infra"
ENV_LABEL = "infra.dev/environment"
TEAM_LABEL = "infra.dev/team"
COMPONENT_LABEL = "infra.dev/component"
MODEL_LABEL = "infra.dev/model"
ADHOC_LABEL = "infra.dev/ad-hoc"
MODEL_URI_ANNOTATION = "infra.dev/model-uri"
# The service account a team's model servers run as, bound to a cloud identity that reads its
# models (blueprint/storage.py: EKS Pod Identity, GKE Workload Identity Federation).
MODEL_SERVICE_ACCOUNT = "model-server"
# Annotations the handoff fills from Terraform outputs (kube/bind.py): JSON {annotation: output}.
BIND_ANNOTATIONS = "infra.dev/bind-annotations"

# Kueue: v1beta2 (Kueue >= 0.15) with spec.cohortName; validated against the CRDs of the vendored
# kubernetes-sigs/kueue v0.19.2 release (orchestrator/data/vendor/kueue-v0.19.2/manifests.yaml).
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
KUEUE_API = f"{KUEUE_GROUP}/{KUEUE_VERSION}"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"  # a team's LocalQueue is named after the team

SELDON_API = "mlops.seldon.io/v1alpha1"

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
OIP_HTTP_PORT = 8000  # Open Inference Protocol v2 over HTTP (the endpoint `infra model list` shows)

PRIORITY_CLASSES = {  # name -> (value, preemptionPolicy, description)
    "infra-batch": (1000, "Never", "Batch training jobs: queued by Kueue, never preempt running pods."),
    "infra-interactive": (10000, "PreemptLowerPriority", "Interactive work (notebooks, debugging)."),
    "infra-inference": (100000, "PreemptLowerPriority", "Model serving: preempts batch work when capacity is short."),
}
PRIORITY_BY_TIER = {"batch": "infra-batch", "interactive": "infra-interactive", "inference": "infra-inference"}

# Every kind infra renders, in apply order (prune looks for exactly these kinds).
KIND_ORDER: list[tuple[str, str]] = [
    ("v1", "Namespace"),
    ("scheduling.k8s.io/v1", "PriorityClass"),
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),  # a worker's MultiKueue token (docs/hybrid.md)
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    (KUEUE_API, "ResourceFlavor"),
    (KUEUE_API, "MultiKueueCluster"),
    (KUEUE_API, "MultiKueueConfig"),
    (KUEUE_API, "AdmissionCheck"),
    (KUEUE_API, "ClusterQueue"),
    (KUEUE_API, "LocalQueue"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    (SELDON_API, "SeldonRuntime"),
    (SELDON_API, "Server"),
    (SELDON_API, "Model"),
]


def common_labels(env: str) -> dict[str, str]:
    """The ownership labels of every object rendered for environment ``env``."""
    return {MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: env}


def kind_rank(obj: dict[str, Any]) -> int:
    key = (obj.get("apiVersion"), obj.get("kind"))
    return next((i for i, k in enumerate(KIND_ORDER) if k == key), len(KIND_ORDER))


def sort_for_apply(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objs, key=kind_rank)  # stable: keeps file order within a kind
