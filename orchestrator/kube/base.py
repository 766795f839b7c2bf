"""Shared by the manifests and the client: names, labels, API versions, pinned images, and
the path from templates to objects to deterministic YAML.

Templates under ``templates/kubernetes/`` give each manifest its shape; values computed in
Python enter them only through ``| tojson`` (JSON is YAML), so a value can never break the
YAML around it. The result is parsed back and dumped with sorted keys: same input, same bytes.
"""

from __future__ import annotations

from typing import Any

from .. import paths
from ..blueprint.labels import GPU_PRESENT_LABEL  # noqa: F401 - re-exported: on every GPU pool's nodes

FIELD_MANAGER = "infra"

# Every object we render carries both labels; prune deletes only objects that carry both.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "infra"
ENV_LABEL = "infra.dev/environment"
TEAM_LABEL = "infra.dev/team"
COMPONENT_LABEL = "infra.dev/component"
MODEL_LABEL = "infra.dev/model"
ADHOC_LABEL = "infra.dev/ad-hoc"
MODEL_URI_ANNOTATION = "infra.dev/model-uri"
# Namespaces allowed to reach inference Services (an ingress controller or API gateway).
GATEWAY_NAMESPACE_LABEL = "infra.dev/ingress-gateway"

# Kueue: v1beta2 (Kueue >= 0.15) with spec.cohortName; validated against the CRDs of
# kubernetes-sigs/kueue v0.20.0-devel (tests/fixtures/kube/crds/).
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
KUEUE_API = f"{KUEUE_GROUP}/{KUEUE_VERSION}"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"  # a team's LocalQueue is named after the team
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
COHORT = "infra-gpu"
POD_SET = "main"

SELDON_API = "mlops.seldon.io/v1alpha1"
SELDON_SERVER_CONFIG = "triton"
SELDON_GPU_SERVER = "triton-gpu"
SELDON_MODEL_MEMORY = "1Gi"

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}

# Pinned images (docs/kubernetes.md says why each was chosen).
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
# Triton serves ONNX models with ONNX Runtime and speaks the KServe v2 protocol = OIP v2.
ONNX_SERVER_IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"
# Fetches s3://, gs://, https:// (and Azure blob https) model URIs into a volume.
MODEL_FETCH_IMAGE = "docker.io/kserve/storage-initializer:v0.14.1"
OIP_HTTP_PORT = 8000
OIP_GRPC_PORT = 8001
METRICS_PORT = 8002

PRIORITY_CLASSES = {  # name -> (value, preemptionPolicy, description)
    "infra-batch": (1000, "Never", "Batch training jobs: queued by Kueue, never preempt running pods."),
    "infra-interactive": (10000, "PreemptLowerPriority", "Interactive work (notebooks, debugging)."),
    "infra-inference": (100000, "PreemptLowerPriority", "Model serving: preempts batch work when capacity is short."),
}
PRIORITY_BY_TIER = {"batch": "infra-batch", "interactive": "infra-interactive", "inference": "infra-inference"}

TEAM_ROLE = "infra-team-member"
TEAM_ROLE_BINDING = "infra-team-members"
POD_SECURITY_LEVEL = "baseline"


def objects_from_template(name: str, context: dict[str, Any]) -> list[dict[str, Any]]:
    """Render ``templates/kubernetes/<name>`` and parse every YAML document in it."""

    from ..render.jinja import render_template

    text = render_template(paths.templates() / "kubernetes", name, context)
    return load_all(text)


def dump(objs: list[dict[str, Any]]) -> str:
    """Multi-document YAML, keys sorted, one ``---`` between documents."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: same bytes (golden files), ~10x faster
    return "---\n".join(
        yaml.dump(o, Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1000)
        for o in objs
    )


def load_all(text: str) -> list[dict[str, Any]]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # same result, libyaml is faster
    return [doc for doc in yaml.load_all(text, Loader=loader) if doc]


def common_labels(env: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, ENV_LABEL: env}


def label(objs: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Add ``labels`` to each object's own metadata (not to pod templates)."""
    for o in objs:
        meta = o.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return objs
