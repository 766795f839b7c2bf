"""Kubernetes manifests from the blueprint: the numbers, labels and policies they carry."""

from __future__ import annotations

import yaml

from orchestrator import conventions
from orchestrator.render.kubernetes import inference, render_kubernetes, render_objects, scheduling, tenancy
from orchestrator.render.writer import write_tree
from tests.blueprints import with_way_in
from tests.unit.kube_fixtures import lab  # noqa: F401

GPU = "nvidia.com/gpu"


def by_kind(objs, kind):
    return {f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}".lstrip("/"): o
            for o in objs if o["kind"] == kind}


def test_three_teams_quotas_queues_and_flavors_carry_the_blueprint_numbers(lab):  # noqa: F811
    bp, _ = lab
    objs = render_objects(bp)

    quotas = by_kind(objs, "ResourceQuota")
    assert {k: q["spec"]["hard"][f"requests.{GPU}"] for k, q in quotas.items()} == {
        "vision/team-quota": "12", "nlp-team/team-quota": "6", "research/team-quota": "8",
    }
    assert not any(k.startswith("limits.nvidia") for q in quotas.values() for k in q["spec"]["hard"])

    queues = by_kind(objs, "ClusterQueue")
    assert sorted(queues) == ["nlp", "research", "vision"]
    # gpu_quota less the model servers' GPUs (vision: 2 x resnet50 on l4), all in the one training
    # pool h100 (4 x p5.48xlarge: 32 GPUs, 768 vCPUs, 8192 GiB); CPU and memory follow that share.
    expected = {"vision": (6, 4, 144, "1536Gi"), "nlp": (4, 2, 96, "1024Gi"), "research": (0, 8, 0, "0Gi")}
    for name, (nominal, borrow, cpu, memory) in expected.items():
        spec = queues[name]["spec"]
        assert spec["cohortName"] == scheduling.COHORT and "cohort" not in spec
        assert spec["namespaceSelector"] == {"matchLabels": {conventions.TEAM_LABEL: name}}
        group = spec["resourceGroups"][0]
        assert group["coveredResources"] == ["cpu", "memory", GPU]
        # system: the CPU pool, first (Jobs without GPUs), with an even share and no GPUs.
        assert [f["name"] for f in group["flavors"]] == ["system", "h100"]
        assert group["flavors"][0]["resources"][2] == {"name": GPU, "nominalQuota": 0, "borrowingLimit": 0}
        for flavor in group["flavors"][1:]:
            assert flavor["resources"] == [
                {"name": "cpu", "nominalQuota": cpu}, {"name": "memory", "nominalQuota": memory},
                {"name": GPU, "nominalQuota": nominal, "borrowingLimit": borrow}]
        assert spec["preemption"] == {"reclaimWithinCohort": "Any", "borrowWithinCohort": {"policy": "Never"},
                                      "withinClusterQueue": "LowerPriority"}

    flavors = by_kind(objs, "ResourceFlavor")
    # l4 is an inference pool: model servers, not queued jobs; system carries Jobs without GPUs.
    assert sorted(flavors) == ["h100", "system"]
    assert flavors["system"]["spec"]["nodeLabels"] == {"infra.dev/pool": "system"}
    # Exactly the labels the node groups carry (docs/kubernetes.md): pool, its own labels, GPU type.
    assert flavors["h100"]["spec"]["nodeLabels"] == {
        "infra.dev/gpu-type": "h100", "infra.dev/pool": "h100", "nvidia.com/gpu.present": "true",
        "k8s.amazonaws.com/accelerator": "nvidia-h100",  # EKS: what the Cluster Autoscaler waits for
        "workload": "training",
    }
    assert flavors["h100"]["spec"]["tolerations"] == [
        {"key": GPU, "operator": "Equal", "value": "present", "effect": "NoSchedule"}]

    local = by_kind(objs, "LocalQueue")
    assert {k: q["spec"]["clusterQueue"] for k, q in local.items()} == {
        "vision/vision": "vision", "nlp-team/nlp": "nlp", "research/research": "research"}


def test_nominal_quota_is_split_over_training_pools_by_their_gpus(lab):  # noqa: F811
    bp, _ = lab
    bp.node_pools[2].purpose = "training"  # l4 trains too now: 12 GPUs beside h100's 32
    bp.inference.models[0].gpu = 0
    cq = by_kind(render_objects(bp), "ClusterQueue")["vision"]
    gpus = {f["name"]: f["resources"][2]["nominalQuota"] for f in cq["spec"]["resourceGroups"][0]["flavors"]}
    assert gpus == {"system": 0, "h100": 6, "l4": 2}  # 8 x 32/44 = 5.8 -> 6, 8 x 12/44 = 2.2 -> 2


def test_no_borrowing_limit_means_no_borrowing(lab):  # noqa: F811
    bp, _ = lab
    bp.teams[0].borrowing_limit = None
    objs = render_objects(bp)
    cq = by_kind(objs, "ClusterQueue")["vision"]
    assert all(f["resources"][2]["borrowingLimit"] == 0 for f in cq["spec"]["resourceGroups"][0]["flavors"])
    assert by_kind(objs, "ResourceQuota")["vision/team-quota"]["spec"]["hard"][f"requests.{GPU}"] == "8"


def test_without_gpu_pools_one_default_flavor(lab):  # noqa: F811
    bp, _ = lab
    bp.node_pools = [p for p in bp.node_pools if not p.gpu]
    bp.inference = None
    objs = render_objects(bp)
    assert list(by_kind(objs, "ResourceFlavor")) == ["default"]
    assert not by_kind(objs, "DaemonSet")
    cq = by_kind(objs, "ClusterQueue")["vision"]
    assert [f["name"] for f in cq["spec"]["resourceGroups"][0]["flavors"]] == ["default"]


def test_render_is_deterministic_and_kustomization_lists_every_file(lab, tmp_path):  # noqa: F811
    bp, _ = lab
    first, second = render_kubernetes(bp), render_kubernetes(bp)
    assert first == second
    kust = yaml.safe_load(first["kustomization.yaml"])
    assert kust["kind"] == "Kustomization"
    # the Kueue install first, then every other file in name order
    assert kust["resources"] == ["install/kueue.yaml"] + sorted(
        p for p in first if p not in ("kustomization.yaml", "install/kueue.yaml"))
    assert "teams/vision.yaml" in first and "inference/resnet50.yaml" in first
    result = write_tree(tmp_path, first)
    assert sorted(result.written) == sorted(first)
    assert write_tree(tmp_path, second).written == []
    total = sum(len(list(yaml.safe_load_all(text))) for p, text in first.items()
                if p not in ("kustomization.yaml", "install/kueue.yaml"))
    assert total == len(render_objects(bp))  # render_objects leaves the vendored install out


def test_every_object_carries_both_ownership_labels(lab):  # noqa: F811
    bp, _ = lab
    for obj in render_objects(bp):
        labels = obj["metadata"]["labels"]
        assert labels[conventions.MANAGED_BY_LABEL] == "infra", obj["kind"]
        assert labels[conventions.ENV_LABEL] == "gpu-lab", obj["kind"]


def test_apply_order_puts_namespaces_first_and_workloads_last(lab):  # noqa: F811
    bp, _ = lab
    kinds = [o["kind"] for o in render_objects(bp)]
    assert kinds[0] == "Namespace"
    assert kinds.index("ClusterQueue") > kinds.index("NetworkPolicy")
    assert kinds.index("Deployment") > kinds.index("LocalQueue")
    ranks = [conventions.kind_rank(o) for o in render_objects(bp)]
    assert ranks == sorted(ranks)


def test_namespace_labels_for_selectors_and_pod_security(lab):  # noqa: F811
    bp, _ = lab
    ns = by_kind(render_objects(bp), "Namespace")["nlp-team"]["metadata"]["labels"]
    assert ns[conventions.TEAM_LABEL] == "nlp"
    assert ns["pod-security.kubernetes.io/enforce"] == "baseline"
    assert ns["pod-security.kubernetes.io/enforce-version"] == "v1.35"  # the fixture's kubernetes.version


def test_limit_range_defaults_and_gpu_default_equals_request(lab):  # noqa: F811
    bp, _ = lab
    lr = by_kind(render_objects(bp), "LimitRange")["vision/team-defaults"]["spec"]["limits"][0]
    assert lr["type"] == "Container"
    assert {"cpu", "memory"} <= set(lr["default"]) and {"cpu", "memory"} <= set(lr["defaultRequest"])
    assert lr["default"][GPU] == lr["defaultRequest"][GPU]
    assert lr["max"] == {"cpu": "192", "memory": "2048Gi", GPU: "8"}  # the p5.48xlarge


def test_team_role_is_least_privilege_and_bound_to_groups(lab):  # noqa: F811
    bp, _ = lab
    objs = render_objects(bp)
    role = by_kind(objs, "Role")["vision/" + tenancy.TEAM_ROLE]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
        assert "secrets" not in rule["resources"] and "pods/exec" not in rule["resources"]
        assert not {"roles", "rolebindings", "resourcequotas"} & set(rule["resources"])
    jobs_rule = next(r for r in role["rules"] if r["apiGroups"] == ["batch"])
    assert jobs_rule["verbs"] == ["create", "get", "list", "watch", "delete"]
    binding = by_kind(objs, "RoleBinding")["vision/" + tenancy.TEAM_ROLE_BINDING]
    assert binding["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "vision-devs"},
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "vision-leads"},
    ]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": tenancy.TEAM_ROLE}
    assert "research/" + tenancy.TEAM_ROLE_BINDING not in by_kind(objs, "RoleBinding")  # no groups, no binding


def test_network_policies_deny_by_default(lab):  # noqa: F811
    bp, _ = lab
    nps = by_kind(render_objects(bp), "NetworkPolicy")
    deny = nps["vision/default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    same = nps["vision/allow-same-namespace"]["spec"]
    assert same["ingress"] == [{"from": [{"podSelector": {}}]}] and same["egress"] == [{"to": [{"podSelector": {}}]}]
    dns = nps["vision/allow-dns"]["spec"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    https = nps["vision/allow-egress-https"]["spec"]["egress"][0]
    # The VPC (nodes and pods) and the EKS Service range (providers/aws service_cidr).
    assert https["to"][0]["ipBlock"] == {"cidr": "0.0.0.0/0", "except": ["10.30.0.0/16", "172.20.0.0/16"]}


def test_priority_classes_follow_the_rules():
    pcs = tenancy.priority_classes()
    assert [p["metadata"]["name"] for p in pcs] == ["infra-batch", "infra-interactive", "infra-inference"]
    assert all(p["value"] <= 1_000_000_000 and not p["metadata"]["name"].startswith("system-") for p in pcs)
    assert sum(bool(p.get("globalDefault")) for p in pcs) <= 1
    assert pcs[0]["preemptionPolicy"] == "Never"


def test_device_plugin_is_pinned_and_tolerates_every_gpu_taint(lab):  # noqa: F811
    bp, _ = lab
    ds = by_kind(render_objects(bp), "DaemonSet")["kube-system/nvidia-device-plugin"]
    pod = ds["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["priorityClassName"] == "system-node-critical"
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert {"key": "capacity", "operator": "Equal", "value": "spot", "effect": "NoSchedule"} in pod["tolerations"]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]
    assert pod["volumes"][0]["hostPath"] == {"path": "/var/lib/kubelet/device-plugins", "type": "Directory"}
    assert {"name": "MIG_STRATEGY", "value": "none"} in container["env"]


def test_merge_tolerations_skips_covered_ones():
    exists = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
    equal = {"key": GPU, "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    other = {"key": GPU, "operator": "Equal", "value": "present", "effect": "NoExecute"}
    assert scheduling.merge_tolerations([exists], [equal, other]) == [exists, other]


def test_onnx_model_deployment_requests_gpus_and_tolerates_gpu_pools(lab):  # noqa: F811
    bp, _ = lab
    objs = render_objects(bp)
    dep = by_kind(objs, "Deployment")["vision/resnet50"]
    pod = dep["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["image"] == inference.ONNX_SERVER_IMAGE
    assert server["resources"]["requests"][GPU] == server["resources"]["limits"][GPU] == "1"
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/models/resnet50/ready"
    assert {"key": "capacity", "operator": "Equal", "value": "spot", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["priorityClassName"] == "infra-inference"
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-model", "layout-model"]
    assert pod["initContainers"][0]["args"] == ["s3://models/resnet50.onnx", "/staging"]
    assert "cp /staging/resnet50.onnx /models/resnet50/1/model.onnx" in pod["initContainers"][1]["args"][0]
    assert dep["metadata"]["annotations"][conventions.MODEL_URI_ANNOTATION] == "s3://models/resnet50.onnx"
    svc = by_kind(objs, "Service")["vision/resnet50"]
    assert [p["port"] for p in svc["spec"]["ports"]] == [8000, 8001]
    # A model without GPUs runs on the team's inference pool too (its serving nodes; GPU-tainted,
    # so tolerated), and sees no GPU there.
    cpu_only = by_kind(objs, "Deployment")["nlp-team/bert"]["spec"]["template"]["spec"]
    assert cpu_only["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "infra.dev/pool", "operator": "In", "values": ["l4"]}]}]}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in cpu_only["tolerations"]
    assert GPU not in cpu_only["containers"][0]["resources"]["limits"]
    assert cpu_only["containers"][0]["env"] == [{"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]


def test_file_model_reads_from_the_node_and_relaxes_pod_security(lab):  # noqa: F811
    bp, _ = lab
    bp.inference.models[1].uri = "file:///srv/models/bert.onnx"
    objs = render_objects(bp)
    pod = by_kind(objs, "Deployment")["nlp-team/bert"]["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {"name": "staging", "hostPath": {"path": "/srv/models", "type": "Directory"}}
    assert [c["name"] for c in pod["initContainers"]] == ["layout-model"]
    labels = by_kind(objs, "Namespace")["nlp-team"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_seldon_models_and_gpu_server(lab):  # noqa: F811
    bp, _ = lab
    bp.inference.runtime = "seldon"
    bp.inference.models[0].uri = "s3://models/resnet50/"
    objs = render_objects(bp)
    models = by_kind(objs, "Model")
    assert models["vision/resnet50"]["spec"] == {
        "storageUri": "s3://models/resnet50/", "requirements": ["onnx"], "replicas": 2, "memory": "1Gi",
        "server": inference.SELDON_GPU_SERVER}
    assert models["nlp-team/bert"]["spec"]["storageUri"] == "https://models.example.com/bert/"
    assert "server" not in models["nlp-team/bert"]["spec"]
    server = by_kind(objs, "Server")["vision/" + inference.SELDON_GPU_SERVER]
    pod = server["spec"]["podSpec"]
    assert server["spec"]["serverConfig"] == "triton"
    assert pod["containers"][0]["resources"]["limits"][GPU] == "1"
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "infra.dev/pool", "operator": "In", "values": ["l4"]}]}]  # inference pool only
    assert not [k for k in by_kind(objs, "Deployment") if not k.startswith("kube-system/")]  # no model Deployments


def test_seldon_needs_a_folder_holding_model_onnx(lab):  # noqa: F811
    import pytest

    from orchestrator.errors import UsageError

    bp, _ = lab
    bp.inference.runtime = "seldon"
    with pytest.raises(UsageError, match=r"inference.models\[0\].uri: .*folder that holds model.onnx"):
        inference.blueprint_models(bp)


def test_bare_metal_pools_hold_the_hosts_that_name_them(tmp_path):
    from orchestrator.blueprint.loader import load

    path = tmp_path / "bm.yaml"
    path.write_text(with_way_in(
        "blueprint: 1\nname: onprem\nprovider: baremetal\n"
        "node_pools:\n  - name: dgx\n    gpu: {type: h100, count: 8}\n"
        "hosts:\n  - {name: cp-01, address: 10.1.0.10, roles: [control_plane]}\n"
        "  - {name: gpu-01, address: 10.1.0.11, roles: [worker], pool: dgx}\n"
        "  - {name: gpu-02, address: 10.1.0.12, roles: [worker], pool: dgx}\n"
        "teams:\n  - {name: vision, gpu_quota: 16, borrowing_limit: 4}\n"
    ))
    bp = load(path).model  # 2 hosts x 8 GPUs: 16 is all the pool holds (17 is refused: test_kube_capacity)
    objs = render_objects(bp)
    cq = by_kind(objs, "ClusterQueue")["vision"]["spec"]["resourceGroups"][0]["flavors"][0]
    assert cq["name"] == "dgx" and cq["resources"][2] == {"name": GPU, "nominalQuota": 16, "borrowingLimit": 4}
    assert by_kind(objs, "ResourceFlavor")["dgx"]["spec"]["nodeLabels"] == {
        "infra.dev/gpu-type": "h100", "infra.dev/pool": "dgx", "nvidia.com/gpu.present": "true"}
    assert by_kind(objs, "ResourceQuota")["vision/team-quota"]["spec"]["hard"][f"requests.{GPU}"] == "20"
