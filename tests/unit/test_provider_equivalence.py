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
from tests.blueprints import with_way_in

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


# The same groups in each provider's form (teams[].groups: AKS binds Entra group object IDs, GKE
# Google Group emails); RoleBinding subjects are compared with the names masked.
GROUPS = {"azure": {"vision-devs": "0b9c3f8e-1d2a-4c6b-9e7f-2a3b4c5d6e7f",
                    "nlp-devs": "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"},
          "gcp": {"vision-devs": "vision-devs@example.com", "nlp-devs": "nlp-devs@example.com"}}


def _blueprint(tmp_path, provider: str):
    data = copy.deepcopy(LOGICAL)
    data["provider"] = provider
    for team in data["teams"]:
        team["groups"] = [GROUPS.get(provider, {}).get(g, g) for g in team["groups"]]
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
    path.write_text(with_way_in(yaml.safe_dump(data, sort_keys=False)))
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
    for r in rows:  # what only one cloud's autoscaler needs on GPU nodes, checked and set apart
        gpu = r["labels"].get("infra.dev/gpu-type")
        assert {k: r["labels"][k] for k in GPU_NODE_LABELS.get(provider, {}) if k in r["labels"]} == (
            {k: v.format(gpu=gpu) for k, v in GPU_NODE_LABELS.get(provider, {}).items()} if gpu else {}), r
    return sorted((r["name"], r["labels"].get("infra.dev/gpu-type"), r["gpu_count"], _common(provider, r["labels"]),
                   [_taint(t) for t in r["taints"]], r[lo], r[hi]) for r in rows)


# EKS's Cluster Autoscaler waits for GPUs only on nodes with this label (CHECKLISTS §5).
GPU_NODE_LABELS = {"aws": {"k8s.amazonaws.com/accelerator": "nvidia-{gpu}"}}


def _common(provider: str, labels: dict) -> dict:
    return {k: v for k, v in labels.items() if k not in GPU_NODE_LABELS.get(provider, {})}


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
# Files one provider does not render: GKE runs its own NVIDIA device plugin beside the driver it
# installs (gpu_driver_installation_config); a second plugin would fight it for the GPUs.
PROVIDER_LACKS = {"gcp": {"cluster/device-plugin.yaml"}}
TENANCY = ("teams/nlp.yaml", "teams/vision.yaml", "kueue/cluster-queues.yaml", "kueue/resource-flavors.yaml")


# Where Jobs without GPUs run (capacity.cpu_pools): the system pool, except where the platform
# keeps it for itself: AKS taints it CriticalAddonsOnly, and the bare-metal "system" hosts are
# control planes (kubeadm's taint). There those Jobs wait; they never take a GPU flavor.
CPU_FLAVORS = {"aws": ["system"], "gcp": ["system"], "azure": [], "baremetal": []}


def test_tenancy_and_kueue_objects_are_identical(tmp_path) -> None:
    rendered = {p: render_kubernetes(_blueprint(tmp_path, p)) for p in ("aws", "azure", "gcp", "baremetal")}
    for provider, files in rendered.items():
        assert set(TENANCY) <= set(files), provider
        common = set(files) - PROVIDER_ONLY.get(provider, set()) | PROVIDER_LACKS.get(provider, set())
        assert common == set(rendered["azure"]) - PROVIDER_ONLY.get("azure", set()), provider
        flavors = [d["metadata"]["name"] for d in yaml.safe_load_all(files["kueue/resource-flavors.yaml"])]
        assert [f for f in flavors if f in CPU_FLAVORS[provider]] == CPU_FLAVORS[provider], provider
        for rel in TENANCY:
            mine = _gpu_only(files[rel], CPU_FLAVORS[provider])
            theirs = _gpu_only(rendered["aws"][rel], CPU_FLAVORS["aws"])
            assert mine == theirs, (provider, rel)


def _gpu_only(text: str, cpu_flavors: list[str] = ()) -> list:
    """CPU and memory quotas follow each cloud's machine sizes (a p5.48xlarge has 192 vCPUs, an
    ND96isr H100 v5 96), and the HTTPS egress policy's ``except`` list is each provider's own
    in-cluster networks (asserted literally by test_egress_excepts_every_in_cluster_network):
    those are masked, everything else must be identical."""
    def mask(node, key=""):
        if isinstance(node, dict) and node.get("kind") == "Group" and "apiGroup" in node:
            return {**node, "name": "<group>"}
        if isinstance(node, dict) and "ipBlock" in node:
            return {**node, "ipBlock": {**node["ipBlock"], "except": "<networks>"}}
        if isinstance(node, dict):
            if node.get("name") in ("cpu", "memory"):
                return {k: (v if k == "name" else "<machine>") for k, v in node.items()}
            return {k: mask(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [mask(v) for v in node]
        return "<machine>" if re.fullmatch(r"(\w+\.)?(cpu|memory)", key) else node
    def drop(doc):  # the CPU flavor, where the provider has one (CPU_FLAVORS), and GPU_NODE_LABELS
        if doc.get("kind") == "ResourceFlavor" and doc["metadata"]["name"] in cpu_flavors:
            return None
        if doc.get("kind") == "ResourceFlavor":
            for labels in GPU_NODE_LABELS.values():
                for key in labels:
                    doc["spec"].get("nodeLabels", {}).pop(key, None)
        if doc.get("kind") == "ClusterQueue":
            for group in doc["spec"]["resourceGroups"]:
                group["flavors"] = [f for f in group["flavors"] if f["name"] not in cpu_flavors]
        return doc
    return [mask(doc) for doc in map(drop, yaml.safe_load_all(text)) if doc is not None]


# What allow-egress-https excepts ("inside the cluster") for LOGICAL (network.cidr 10.0.0.0/16):
# the node network, the pod and Service ranges each provider sets, and on GKE the control plane's.
EGRESS_EXCEPT = {
    "aws": ["10.0.0.0/16", "172.20.0.0/16"],  # pods are in the VPC (VPC CNI); Services: service_cidr
    "azure": ["10.0.0.0/16", "10.244.0.0/16", "10.245.0.0/16"],  # overlay pod_cidr, service_cidr
    "gcp": ["10.0.0.0/16", "10.244.0.0/14", "10.248.0.0/20", "172.16.0.16/28"],  # pods, services, master
    "baremetal": ["10.0.0.0/16", "10.244.0.0/16", "10.96.0.0/12",  # kubeadm's pod and service networks
                  *[f"10.1.0.{i}/32" for i in range(10, 13)], *[f"10.1.1.{i}/32" for i in range(10, 14)],
                  *[f"10.1.2.{i}/32" for i in range(10, 16)]],
}
# The Terraform variables that give the cloud those ranges: the render and the cluster agree.
RANGE_VARIABLES = {"aws": ("vpc_cidr", "service_cidr"), "azure": ("vnet_cidr", "pod_cidr", "service_cidr"),
                   "gcp": ("subnet_cidr", "pods_cidr", "services_cidr", "master_cidr")}


def test_egress_excepts_every_in_cluster_network(tmp_path) -> None:
    for provider, expected in EGRESS_EXCEPT.items():
        bp = _blueprint(tmp_path, provider)
        docs = list(yaml.safe_load_all(render_kubernetes(bp)["teams/vision.yaml"]))
        policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "allow-egress-https")
        assert policy["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": expected}}], provider
        if provider in RANGE_VARIABLES:
            variables = get_provider(provider).terraform_variables(bp)
            assert [variables[name] for name in RANGE_VARIABLES[provider]] == expected, provider


def test_eks_service_range_is_the_one_eks_would_pick_and_misses_the_vpc() -> None:
    from orchestrator.providers.aws import service_cidr

    assert [service_cidr(c) for c in ("10.0.0.0/16", "10.100.0.0/16", "172.20.0.0/16", "192.168.0.0/24")] == [
        "172.20.0.0/16", "172.20.0.0/16", "10.100.0.0/16", "10.100.0.0/16"]


# What a cloud puts on every node of a spot pool by itself, which its node pool must list (else it
# drifts) and Kueue, the device plugin and model servers must tolerate (else admitted pods never
# schedule): AKS's label and NoSchedule taint. EKS and GKE label spot nodes without tainting them,
# and their node pools do not drift for it. Written out literally: these are the only differences.
SPOT_LABELS = {"aws": {}, "gcp": {}, "azure": {"kubernetes.azure.com/scalesetpriority": "spot"}}
SPOT_TAINTS = {"aws": [], "gcp": [], "azure": ["kubernetes.azure.com/scalesetpriority=spot:NoSchedule"]}
SPOT_MACHINES = {"aws": ["g4dn.xlarge", "g4dn.2xlarge"], "azure": ["Standard_NC4as_T4_v3"], "gcp": ["n1-standard-8"]}


def test_a_spot_pool_carries_what_its_cloud_adds_in_terraform_and_kueue_alike(tmp_path) -> None:
    for provider, machines in SPOT_MACHINES.items():
        data = {"blueprint": 1, "name": "spot-env", "provider": provider, "region": MACHINES[provider][0],
                "node_pools": [{"name": "system", "instance_type": MACHINES[provider][1][0], "min": 1, "max": 2},
                               {"name": "batch", "instance_types": machines, "gpu": {"type": "t4", "count": 1},
                                "min": 0, "max": 4, "spot": True}]}
        path = tmp_path / f"{provider}.yaml"
        path.write_text(with_way_in(yaml.safe_dump(data, sort_keys=False)))
        bp = load(path).model
        labels = {"infra.dev/gpu-type": "t4", "infra.dev/pool": "batch", "nvidia.com/gpu.present": "true",
                  **SPOT_LABELS[provider]}
        taints = ["nvidia.com/gpu=present:NoSchedule", *SPOT_TAINTS[provider]]
        row = next(r for r in _pools(provider, get_provider(provider).terraform_variables(bp)) if r[0] == "batch")
        assert (row[3], row[4]) == (labels, taints), provider
        files = render_kubernetes(bp)
        flavor = next(d for d in yaml.safe_load_all(files["kueue/resource-flavors.yaml"])
                      if d["metadata"]["name"] == "batch")
        assert _common(provider, flavor["spec"]["nodeLabels"]) == labels, provider  # + GPU_NODE_LABELS
        assert [_taint(t) for t in flavor["spec"]["tolerations"]] == taints, provider
        if "cluster/device-plugin.yaml" in files:  # the plugin must run on spot GPU nodes too
            docs = yaml.safe_load_all(files["cluster/device-plugin.yaml"])
            plugin = next(d for d in docs if d["kind"] == "DaemonSet")
            tolerated = [_taint(t) for t in plugin["spec"]["template"]["spec"]["tolerations"] if "value" in t]
            assert tolerated == SPOT_TAINTS[provider], provider
