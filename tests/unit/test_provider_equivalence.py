"""One logical blueprint on aws, azure, gcp and bare metal means the same thing: the same pools
(names, GPU type and count, labels, taints, min/max, purpose) and the same Kubernetes tenancy
and Kueue objects, apart from what is provider-specific (listed here, literally)."""

from __future__ import annotations

import copy
import re

import yaml

from orchestrator.blueprint.loader import load
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.kubernetes import render_kubernetes

LOGICAL = {
    "blueprint": 1, "name": "same-env",
    "node_pools": [
        {"name": "system", "min": 1, "max": 3},
        {"name": "h100", "gpu": {"type": "h100", "count": 8}, "min": 0, "max": 4, "labels": {"workload": "training"}},
        {"name": "t4", "gpu": {"type": "t4", "count": 1}, "min": 1, "max": 6, "purpose": "inference",
         "labels": {"workload": "inference"},
         "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
                    {"key": "serving", "value": "only", "effect": "NoExecute"}]},
    ],
    "teams": [{"name": "vision", "gpu_quota": 16, "borrowing_limit": 8, "groups": ["vision-devs"]},
              {"name": "nlp", "gpu_quota": 8, "groups": ["nlp-devs"]}],
}
MACHINES = {
    "aws": ("us-east-1", ["m6i.xlarge", "p5.48xlarge", "g4dn.xlarge"]),
    "azure": ("westeurope", ["Standard_D4s_v5", "Standard_ND96isr_H100_v5", "Standard_NC4as_T4_v3"]),
    "gcp": ("us-central1", ["n2-standard-4", "a3-highgpu-8g", "n1-standard-8"]),
}
EXPECTED_POOLS = [
    ("h100", "h100", 8, {"infra.dev/gpu-type": "h100", "infra.dev/pool": "h100", "nvidia.com/gpu.present": "true",
                         "workload": "training"}, ["nvidia.com/gpu=present:NoSchedule"], 0, 4),
    ("system", None, 0, {"infra.dev/pool": "system"}, [], 1, 3),
    ("t4", "t4", 1, {"infra.dev/gpu-type": "t4", "infra.dev/pool": "t4", "nvidia.com/gpu.present": "true",
                     "workload": "inference"},
     ["nvidia.com/gpu=present:NoSchedule", "serving=only:NoExecute"], 1, 6),
]
_EFFECT = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def _blueprint(tmp_path, provider: str):
    data = copy.deepcopy(LOGICAL)
    data["provider"] = provider
    if provider == "baremetal":
        for pool in data["node_pools"]:
            pool.pop("min"), pool.pop("max")
        # As many hosts per pool as the clouds' max: the same capacity for Kueue.
        sizes = {"system": 3, "h100": 4, "t4": 6}
        data["hosts"] = [{"name": f"{pool}-{i}", "address": f"10.1.{n}.{i + 10}", "pool": pool,
                          "roles": ["control_plane"] if pool == "system" else ["worker"]}
                         for n, (pool, count) in enumerate(sizes.items()) for i in range(count)]
    else:
        data["region"], types = MACHINES[provider]
        for pool, machine in zip(data["node_pools"], types, strict=True):
            pool["instance_type"] = machine
    path = tmp_path / f"{provider}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load(path).model


def _taint(t) -> str:
    if isinstance(t, str):
        return t
    return f"{t['key']}={t['value']}:{_EFFECT.get(t['effect'], t['effect'])}"


def _pools(provider: str, variables: dict) -> list[tuple]:
    """(name, GPU type, GPU count, labels, taints, min, max) per pool, from the Terraform variables."""
    if provider == "azure":
        rows = [{**variables["system_pool"], "gpu_count": 0, "taints": []}, *variables["node_pools"]]
        rows = [{**r, "name": r["pool"]} for r in rows]
    else:
        rows = variables["node_pools"]
    lo, hi = ("min_size", "max_size") if provider == "aws" else ("min_count", "max_count")
    return sorted((r["name"], r["labels"].get("infra.dev/gpu-type"), r["gpu_count"], r["labels"],
                   [_taint(t) for t in r["taints"]], r[lo], r[hi]) for r in rows)


def test_cloud_pools_are_equivalent(tmp_path) -> None:
    for provider in ("aws", "azure", "gcp"):
        bp = _blueprint(tmp_path, provider)
        assert _pools(provider, get_provider(provider).terraform_variables(bp)) == EXPECTED_POOLS, provider


def test_pool_purposes_are_the_same_everywhere(tmp_path) -> None:
    for provider in ("aws", "azure", "gcp"):
        assert [p.purpose for p in _blueprint(tmp_path, provider).node_pools] == [None, None, "inference"]


# Files only one provider renders: the cluster autoscaler runs in-cluster only on EKS
# (AKS and GKE autoscale node pools themselves; bare metal does not autoscale).
PROVIDER_ONLY = {"aws": {"cluster/cluster-autoscaler.yaml"}}
TENANCY = ("teams/nlp.yaml", "teams/vision.yaml", "kueue/cluster-queues.yaml", "kueue/resource-flavors.yaml")


def test_tenancy_and_kueue_objects_are_identical(tmp_path) -> None:
    rendered = {p: render_kubernetes(_blueprint(tmp_path, p)) for p in ("aws", "azure", "gcp", "baremetal")}
    for provider, files in rendered.items():
        assert set(TENANCY) <= set(files), provider
        common = set(files) - PROVIDER_ONLY.get(provider, set())
        assert common == set(rendered["azure"]) - PROVIDER_ONLY.get("azure", set()), provider
        for rel in TENANCY:
            assert _gpu_only(files[rel]) == _gpu_only(rendered["aws"][rel]), (provider, rel)


def _gpu_only(text: str) -> list:
    """CPU and memory quotas follow each cloud's machine sizes (a p5.48xlarge has 192 vCPUs, an
    ND96isr H100 v5 96), and the HTTPS egress policy excludes each environment's own networks (on
    bare metal also the pod and service networks and the hosts): those are masked, everything
    else must be identical."""
    def mask(node, key=""):
        if isinstance(node, dict) and "ipBlock" in node:
            return {**node, "ipBlock": {**node["ipBlock"], "except": "<networks>"}}
        if isinstance(node, dict):
            if node.get("name") in ("cpu", "memory"):
                return {k: (v if k == "name" else "<machine>") for k, v in node.items()}
            return {k: mask(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [mask(v) for v in node]
        return "<machine>" if re.fullmatch(r"(\w+\.)?(cpu|memory)", key) else node
    return [mask(doc) for doc in yaml.safe_load_all(text)]
