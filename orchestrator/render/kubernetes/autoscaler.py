"""The Cluster Autoscaler for EKS (pure): scales managed node groups, from zero too.

It discovers the node groups by their Auto Scaling group tags
(``k8s.io/cluster-autoscaler/enabled`` and ``k8s.io/cluster-autoscaler/<cluster>``, set by
terraform/modules/aws_gpu_cluster/autoscaler.tf, which also sets the node-template tags for a
pool's labels, taints and GPU count) and gets its AWS permissions through EKS Pod Identity
(service account ``kube-system/cluster-autoscaler``). The release is pinned per Kubernetes
minor in data/versions/eks.yaml. Why not Karpenter: docs/aws.md.
"""

from __future__ import annotations

from typing import Any

from ...blueprint import catalog, eks_versions
from ...blueprint.models import Blueprint

NAME = "cluster-autoscaler"
NAMESPACE = "kube-system"
IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler"


def _rules(spec: str) -> list[dict[str, Any]]:
    """``group:resource,resource:verb,verb`` per line, as RBAC rules."""
    rules = []
    for line in spec.strip().splitlines():
        group, resources, verbs = line.split(":")
        rules.append({"apiGroups": [group], "resources": resources.split(","), "verbs": verbs.split(",")})
    return rules


_CLUSTER_RULES = _rules("""
:events,endpoints:create,patch
:pods/eviction:create
:pods/status:update
:endpoints:get,update
:nodes:watch,list,get,update
:namespaces,pods,services,replicationcontrollers,persistentvolumeclaims,persistentvolumes:watch,list,get
extensions:replicasets,daemonsets:watch,list,get
policy:poddisruptionbudgets:watch,list
apps:statefulsets,replicasets,daemonsets:watch,list,get
storage.k8s.io:storageclasses,csinodes,csidrivers,csistoragecapacities,volumeattachments:watch,list,get
batch:jobs,cronjobs:watch,list,get
coordination.k8s.io:leases:create
""") + [{"apiGroups": ["coordination.k8s.io"], "resourceNames": [NAME], "resources": ["leases"],
         "verbs": ["get", "update"]}]

_ROLE_RULES = _rules("""
:configmaps:create,list,watch
""") + [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["delete", "get", "update"],
         "resourceNames": ["cluster-autoscaler-status", "cluster-autoscaler-priority-expander"]}]


def cluster_autoscaler(bp: Blueprint) -> list[dict[str, Any]]:
    """ServiceAccount, RBAC and Deployment; empty unless the provider's catalog asks for it (aws)."""
    if catalog.setting(bp.provider, "autoscaler") != NAME:
        return []
    meta = {"name": NAME, "namespace": NAMESPACE}
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    tag = eks_versions.cluster_autoscaler(bp.kubernetes.minor)
    command = [
        "./cluster-autoscaler",
        "--cloud-provider=aws",
        f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/{bp.name}",
        "--balance-similar-node-groups",
        "--skip-nodes-with-system-pods=false",
        "--expander=least-waste",
    ]
    container = {
        "name": NAME,
        "image": f"{IMAGE}:{tag}",
        "command": command,
        # Nodes keep IMDS to one hop (pods cannot reach it): the region comes from here.
        "env": [{"name": "AWS_REGION", "value": bp.region or ""}],
        "resources": {"requests": {"cpu": "100m", "memory": "600Mi"}, "limits": {"memory": "600Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    pod = {
        "serviceAccountName": NAME,
        "priorityClassName": "system-cluster-critical",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": NAME},
         "rules": _CLUSTER_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": NAME},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": dict(meta), "rules": _ROLE_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(meta),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME}, "subjects": subject},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict(meta),
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": NAME}},
                  "template": {"metadata": {"labels": {"app": NAME}}, "spec": pod}}},
    ]
