"""Every pod lands, and only where it should (render/kubernetes/placement.py, docs/kubernetes.md
"Where pods land").

The invariant runs the placement proof over every example and golden input; the model itself is
tested on hand-made nodes and pods (each predicate fails where the scheduler's would); and each
fix the proof found has a test that fails without it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.blueprint import capacity
from orchestrator.blueprint.loader import load
from orchestrator.blueprint.nodes import NodeShape, node_shapes
from orchestrator.errors import BlueprintError
from orchestrator.kube.jobs import JobRequest, build_job, prepare_job
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.kubernetes import kueue, placement, render_objects
from orchestrator.render.kubernetes.placement import Pod, admit, check, job_pods, prove, why_not
from tests.blueprints import with_way_in
from tests.conftest import EXAMPLES, REPO

BLUEPRINTS = sorted([*EXAMPLES.glob("*.yaml"), *(REPO / "tests/golden/inputs").glob("*.yaml"),
                     REPO / "tests/fixtures/kube/three-teams.yaml"])
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _node(name="n", labels=None, taints=(), cpu=4000, memory=16384, gpus=0, pool=None, count=1) -> NodeShape:
    return NodeShape(name=name, pool=pool or name, role="gpu" if gpus else "cpu", labels=dict(labels or {}),
                     taints=tuple(taints), cpu_millis=cpu, memory_mib=memory, gpus=gpus, count=count)


def _spec(requests=None, **extra) -> dict:
    return {"containers": [{"name": "c", "resources": {"requests": dict(requests or {"cpu": "100m"})}}], **extra}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(text))
    return path


# --------------------------------------------------------------------------- the invariant


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_every_rendered_pod_places_and_jobs_land_only_where_they_should(path: Path) -> None:
    bp = load(path).model
    objs = render_objects(bp)
    nodes = node_shapes(bp)
    assert prove(bp, objs) == []
    # Not vacuous: Kueue's controller, every rendered workload and every team's Jobs were checked.
    pods = placement.kueue_pods(bp) + placement.rendered_pods(bp, objs) + job_pods(bp, objs, nodes)
    assert any(p.what == "Deployment kueue-system/kueue-controller-manager" for p in pods)
    workloads = [o for o in objs if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Server")]
    assert len(pods) >= 1 + len(workloads) + len(bp.teams)
    queues = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ClusterQueue"}
    for team in bp.teams:
        probes = [p for p in pods if p.what.startswith(("a 1-GPU Job of team " + team.name + " ",
                                                       "a CPU Job of team " + team.name + " "))]
        assert len(probes) == len(queues[team.name]["spec"]["resourceGroups"][0]["flavors"])
        for probe in probes:  # each lands on its own flavor's pool, nowhere else
            fits = {n.pool for n in nodes if n.count and why_not(probe.spec, n) is None}
            assert fits and fits <= probe.only_pools, probe.what
        for job in [p for p in pods if p.no_gpu_nodes and f"team {team.name} " in p.what]:
            assert not [n for n in nodes if n.has_gpus and why_not(job.spec, n) is None], job.what


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_a_cpu_only_job_is_never_admitted_to_a_gpu_flavor(path: Path) -> None:
    bp = load(path).model
    objs = render_objects(bp)
    flavors = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ResourceFlavor"}
    for team in bp.teams:
        queue = next(o for o in objs if o["kind"] == "ClusterQueue" and o["metadata"]["name"] == team.name)
        job = build_job(JobRequest(team=team.name, namespace=team.effective_namespace, image="x", command="true"))
        flavor = admit(job, queue, flavors)
        cpu_pools = {p.name for p in capacity.cpu_pools(bp)}
        if flavor is None:
            assert not cpu_pools or not capacity.gpu_pools(bp, capacity.TRAINING)
        elif flavor["metadata"]["name"] != "default":
            assert flavor["metadata"]["name"] in cpu_pools
            assert "nvidia.com/gpu.present" not in flavor["spec"]["nodeLabels"]


# --------------------------------------------------------------------------- the model, by hand


def test_taints_need_a_matching_toleration_with_the_right_effect():
    node = _node(taints=[GPU_TAINT])
    assert why_not(_spec(), node) == "untolerated taint nvidia.com/gpu=present:NoSchedule"
    assert why_not(_spec(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists"}]), node) is None
    assert why_not(_spec(tolerations=[{"key": "nvidia.com/gpu", "operator": "Equal", "value": "present",
                                       "effect": "NoSchedule"}]), node) is None
    assert why_not(_spec(tolerations=[{"key": "nvidia.com/gpu", "operator": "Equal", "value": "other"}]), node)
    assert why_not(_spec(tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}]), node)
    assert why_not(_spec(tolerations=[{"operator": "Exists"}]), node) is None  # tolerates everything
    soft = _node(taints=[{"key": "k", "value": "", "effect": "PreferNoSchedule"}])
    assert why_not(_spec(), soft) is None  # only NoSchedule and NoExecute keep a pod off


def test_node_selector_and_required_affinity():
    node = _node(labels={"infra.dev/pool": "a", "nvidia.com/gpu.present": "true"})
    assert why_not(_spec(nodeSelector={"infra.dev/pool": "b"}), node) == (
        "nodeSelector infra.dev/pool=b (node has infra.dev/pool=a)")
    off_gpu = build_job(JobRequest(team="t", namespace="t", image="x", command="true"))["spec"]["template"]["spec"]
    assert why_not(off_gpu, node).startswith("required node affinity (nvidia.com/gpu.present DoesNotExist)")
    assert why_not(off_gpu, _node(labels={"infra.dev/pool": "cpu"})) is None
    either = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "infra.dev/pool", "operator": "In", "values": ["x"]}]},
        {"matchExpressions": [{"key": "infra.dev/pool", "operator": "NotIn", "values": ["b"]}]}]}}}
    assert why_not(_spec(affinity=either), node) is None  # terms are ORed


def test_requests_must_fit_one_node_init_containers_counted_as_the_scheduler_does():
    node = _node(cpu=2000, memory=4096, gpus=1)
    assert why_not(_spec({"nvidia.com/gpu": "2"}), node) == (
        "insufficient nvidia.com/gpu: requests 2, node allocatable 1")
    assert why_not(_spec({"cpu": "2", "memory": "4Gi"}), node) is None
    spec = _spec({"cpu": "1"}, initContainers=[{"name": "i", "resources": {"limits": {"memory": "5Gi"}}}])
    assert why_not(spec, node) == "insufficient memory: requests 5120Mi, node allocatable 4096Mi"
    two = {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1500m"}}},
                          {"name": "b", "resources": {"requests": {"cpu": "600m"}}}]}
    assert why_not(two, node) == "insufficient cpu: requests 2100m, node allocatable 2000m"


def test_a_pod_that_fits_nowhere_names_every_node_and_its_predicate():
    nodes = [_node("cpu"), _node("h100", taints=[GPU_TAINT], gpus=8)]
    findings = list(check(Pod("Deployment t/m", _spec({"nvidia.com/gpu": "1"}), ("x",)), nodes))
    assert [f.message for f in findings] == [
        "Deployment t/m fits no node (pool cpu: insufficient nvidia.com/gpu: requests 1, node allocatable 0; "
        "pool h100: untolerated taint nvidia.com/gpu=present:NoSchedule)"]


def test_a_daemonset_must_run_on_every_node_it_selects():
    nodes = [_node("a", labels={"g": "1"}, taints=[GPU_TAINT]), _node("b", labels={"g": "1"}), _node("c")]
    pod = Pod("DaemonSet x/dp", _spec(nodeSelector={"g": "1"}), ("x",), daemon=True)
    assert [f.message for f in check(pod, nodes)] == [
        "DaemonSet x/dp selects pool a but cannot run there: untolerated taint nvidia.com/gpu=present:NoSchedule"]


def test_probe_and_cpu_only_jobs_must_not_stray():
    nodes = [_node("cpu"), _node("gpu", labels={"nvidia.com/gpu.present": "true"}, gpus=1)]
    stray = Pod("probe", _spec(), ("t",), only_pools=frozenset({"cpu"}))
    assert [f.message for f in check(stray, nodes)] == ["probe may also land on pool gpu, outside cpu"]
    cpu_job = Pod("job", _spec(), ("t",), no_gpu_nodes=True)
    assert [f.message for f in check(cpu_job, nodes)] == ["job requests no GPU but may land on GPU nodes: pool gpu"]


# --------------------------------------------------------------------------- the fixes


ONPREM_GPU_ONLY = """blueprint: 1
name: site
provider: baremetal
kubernetes: {version: "1.31"}
node_pools:
  - {name: dgx, gpu: {type: h100, count: 8}, mig: {profile: all-1g.10gb}}
  - {name: infer, gpu: {type: l4, count: 1}, purpose: inference}
hosts:
  - {name: cp-1, address: 10.1.0.10, roles: [control_plane]}
  - {name: dgx-01, address: 10.1.0.11, roles: [worker], pool: dgx}
  - {name: infer-01, address: 10.1.0.21, roles: [worker, inference], pool: infer}
teams:
  - {name: vision, gpu_quota: 4, groups: [vision-devs]}
inference:
  runtime: onnx
  models:
    - {name: cpu-model, uri: "https://models.example.com/m.onnx", team: vision}
"""


def _kueue_pod(bp) -> Pod:
    return next(p for p in placement.kueue_pods(bp) if "kueue-controller-manager" in p.what)


def test_kueue_tolerates_the_kubeadm_control_plane_on_bare_metal(tmp_path):
    """Control plane + GPU hosts only: Kueue can run on the control plane (kubeadm's taint), not
    on GPU hosts. Without the toleration the proof fails exactly as the cluster would."""
    bp = load(_write(tmp_path, ONPREM_GPU_ONLY)).model
    nodes = node_shapes(bp)
    pod = _kueue_pod(bp)
    assert [n.name for n in nodes if why_not(pod.spec, n) is None] == ["cp-1"]
    bare = Pod(pod.what, {**pod.spec, "tolerations": []}, pod.where)
    assert "host cp-1: untolerated taint node-role.kubernetes.io/control-plane:NoSchedule" in \
        next(check(bare, nodes)).message


def test_kueue_tolerates_the_aks_system_pool(tmp_path):
    bp = load(EXAMPLES / "azure-gpu.yaml").model
    nodes = node_shapes(bp)
    system = next(n for n in nodes if n.name == "system")
    assert {"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"} in system.taints
    pod = _kueue_pod(bp)
    assert [n.name for n in nodes if why_not(pod.spec, n) is None] == ["system"]
    assert pod.spec["priorityClassName"] == "system-cluster-critical"


def test_the_kueue_install_is_patched_once_and_only_its_controller(tmp_path):
    docs = [d for d in yaml.safe_load_all(kueue.install_manifest()) if d]
    tolerating = [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"
                  and d["spec"]["template"]["spec"].get("tolerations")]
    assert tolerating == ["kueue-controller-manager"]
    raw = kueue.MANIFESTS.read_text(encoding="utf-8")
    assert kueue.install_manifest().count("priorityClassName: system-cluster-critical") == \
        raw.count("priorityClassName: system-cluster-critical") + 1


def test_a_cpu_only_model_server_runs_on_its_teams_inference_pool_and_sees_no_gpu(tmp_path):
    bp = load(_write(tmp_path, ONPREM_GPU_ONLY)).model
    assert prove(bp) == []
    deployment = next(o for o in render_objects(bp) if o["kind"] == "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert [n.name for n in node_shapes(bp) if why_not(spec, n) is None] == ["infer-01"]
    assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in spec["containers"][0]["env"]


def test_cpu_only_jobs_get_a_flavor_of_their_own_tried_first():
    bp = load(EXAMPLES / "sandbox.yaml").model
    objs = render_objects(bp)
    flavors = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ResourceFlavor"}
    assert flavors["system"]["spec"]["nodeLabels"] == {"infra.dev/pool": "system"}
    queue = next(o for o in objs if o["kind"] == "ClusterQueue")
    order = [f["name"] for f in queue["spec"]["resourceGroups"][0]["flavors"]]
    assert order[0] == "system"
    system = queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    assert system[2] == {"name": "nvidia.com/gpu", "nominalQuota": 0, "borrowingLimit": 0}
    cpu_job = build_job(JobRequest(team="vision", namespace="vision", image="x", command="true"))
    gpu_job = build_job(JobRequest(team="vision", namespace="vision", image="x", command="true", gpus=1))
    assert admit(cpu_job, queue, flavors)["metadata"]["name"] == "system"
    assert admit(gpu_job, queue, flavors)["metadata"]["name"] == "a100"
    # A user's Job YAML without GPUs is kept off GPU nodes the same way.
    mine = prepare_job({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m"}, "spec": {"template": {
        "spec": {"containers": [{"name": "c", "image": "x"}]}}}}, "vision", "vision", [])
    assert admit(mine, queue, flavors)["metadata"]["name"] == "system"


def test_a_cpu_only_job_without_a_cpu_pool_waits_instead_of_taking_a_gpu_flavor():
    bp = load(EXAMPLES / "azure-gpu.yaml").model
    objs = render_objects(bp)
    flavors = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ResourceFlavor"}
    queue = next(o for o in objs if o["kind"] == "ClusterQueue")
    cpu_job = build_job(JobRequest(team="vision", namespace="vision", image="x", command="true"))
    assert admit(cpu_job, queue, flavors) is None


def test_capacity_uses_the_smallest_of_instance_types(tmp_path):
    bp = load(_write(tmp_path, """blueprint: 1
name: t-env
provider: aws
region: us-east-1
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
  - {name: spot, instance_types: [g6.2xlarge, g6.xlarge], gpu: {type: l4, count: 1}, min: 0, max: 4,
     capacity_type: spot}
teams:
  - {name: a, gpu_quota: 4, groups: [a]}
""")).model
    cap = capacity.capacities(bp)["spot"]
    assert (cap.vcpus, cap.memory_gib) == (4 * 4, 4 * 16)  # g6.xlarge: 4 vCPUs, 16 GiB
    shape = next(n for n in node_shapes(bp) if n.name == "spot")
    assert shape.instance_type == "g6.xlarge" and shape.labels["node.kubernetes.io/instance-type"] == "g6.xlarge"
    queue = next(o for o in render_objects(bp) if o["kind"] == "ClusterQueue")
    spot = next(f for f in queue["spec"]["resourceGroups"][0]["flavors"] if f["name"] == "spot")
    assert spot["resources"][:2] == [{"name": "cpu", "nominalQuota": 16}, {"name": "memory", "nominalQuota": "64Gi"}]


@pytest.mark.parametrize(("zones", "desired", "per_zone"), [
    ("3", 3, 1), ("3", 2, 0), ("[us-central1-a, us-central1-b]", 5, 2), ("[us-central1-a, us-central1-b]", 6, 3)])
def test_gke_counts_initial_nodes_per_zone(tmp_path, zones, desired, per_zone):
    bp = load(_write(tmp_path, f"""blueprint: 1
name: t-env
provider: gcp
region: us-central1
network: {{cidr: 10.40.0.0/16, zones: {zones}}}
node_pools:
  - {{name: system, instance_type: e2-standard-4, min: 0, desired: {desired}, max: 6}}
""")).model
    pools = get_provider("gcp").terraform_variables(bp)["node_pools"]
    assert pools[0]["initial_count"] == per_zone
    assert pools[0]["initial_count"] * (len(bp.network.zone_names) or 3) <= desired  # never above desired


def test_mig_counts_in_the_unit_the_device_plugin_advertises(tmp_path):
    """8 H100 split all-1g.10gb: 56 nvidia.com/gpu per node; Kueue and the namespace quota count
    the team's 4 GPUs as 28 of them."""
    bp = load(_write(tmp_path, ONPREM_GPU_ONLY)).model
    dgx = next(n for n in node_shapes(bp) if n.name == "dgx-01")
    assert dgx.gpus == 56
    objs = render_objects(bp)
    queue = next(o for o in objs if o["kind"] == "ClusterQueue")
    gpu = next(r for f in queue["spec"]["resourceGroups"][0]["flavors"] if f["name"] == "dgx"
               for r in f["resources"] if r["name"] == "nvidia.com/gpu")
    assert gpu["nominalQuota"] == 28
    quota = next(o for o in objs if o["kind"] == "ResourceQuota")
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "28"
    limits = next(o for o in objs if o["kind"] == "LimitRange")["spec"]["limits"][0]["max"]
    assert limits["nvidia.com/gpu"] == "56"


@pytest.mark.parametrize(("provider", "head", "pool"), [
    ("aws", "region: us-east-1\n", "{name: a100, instance_type: p4d.24xlarge, gpu: {type: a100, count: 8}, "
                                   "min: 0, max: 1, mig: {profile: all-1g.5gb}}"),
    ("azure", "region: westeurope\n", "{name: a100, instance_type: Standard_ND96asr_v4, "
                                      "gpu: {type: a100, count: 8}, min: 0, max: 1, mig: {profile: all-1g.5gb}}"),
])
def test_mig_is_refused_where_nothing_partitions_the_gpus(tmp_path, provider, head, pool):
    text = f"blueprint: 1\nname: t-env\nprovider: {provider}\n{head}node_pools:\n  - {pool}\n"
    with pytest.raises(BlueprintError) as info:
        load(_write(tmp_path, text))
    assert [p.path for p in info.value.problems] == ["node_pools[0].mig"]
    assert f"nothing partitions GPUs on {provider} node pools" in info.value.problems[0].message


def test_a_host_mig_profile_must_exist_on_the_gpu(tmp_path):
    with pytest.raises(BlueprintError) as info:
        load(_write(tmp_path, ONPREM_GPU_ONLY.replace("all-1g.10gb", "all-1g.5gb").replace("h100", "h100")))
    assert "no h100 GPU offers MIG profile 1g.5gb" in str(info.value)
    with pytest.raises(BlueprintError, match="all-balanced mixes MIG sizes"):
        load(_write(tmp_path, ONPREM_GPU_ONLY.replace("all-1g.10gb", "all-balanced")))


def test_validate_refuses_an_unplaceable_model_server(tmp_path):
    """``gpu: 2`` on 1-GPU inference nodes: exit 2, located at the model, naming the predicate."""
    text = (EXAMPLES / "aws-gpu.yaml").read_text()
    bp = load(EXAMPLES / "aws-gpu.yaml").model
    model = bp.inference.models[0]
    assert model.gpu == 1
    path = _write(tmp_path, text.replace("      gpu: 1\n", "      gpu: 2\n", 1))
    proc = subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", "validate",
                           str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"{path}:64:7 inference.models[0]: Deployment vision/resnet50 fits no node (")
    assert "pool l4: insufficient nvidia.com/gpu: requests 2, node allocatable 1" in first
    assert "Traceback" not in proc.stderr


def test_a_pool_no_team_can_fill_a_node_of_is_a_warning(tmp_path):
    """Three teams on 2 x 8 H100: 5 + 5 + 6 GPUs guaranteed, no borrowing: no team reaches 8, so
    an 8-GPU Job is never admitted. Borrowing enough makes it go away."""
    text = """blueprint: 1
name: t-env
provider: baremetal
node_pools:
  - {name: dgx, gpu: {type: h100, count: 8}}
  - {name: cpu}
hosts:
  - {name: cp, address: 10.0.0.1, roles: [control_plane]}
  - {name: c1, address: 10.0.0.2, roles: [worker], pool: cpu}
  - {name: g1, address: 10.0.0.3, roles: [worker], pool: dgx}
  - {name: g2, address: 10.0.0.4, roles: [worker], pool: dgx}
teams:
  - {name: a, gpu_quota: 5, groups: [a]}
  - {name: b, gpu_quota: 5, groups: [b]}
  - {name: c, gpu_quota: 6, groups: [c]}
"""
    from orchestrator.blueprint import semantics

    found = semantics.warnings(load(_write(tmp_path, text)).model)
    assert (("node_pools", 0, "gpu"), "no team may hold a whole node of pool 'dgx' (8 GPUs): the most any team's "
            "nominal plus borrowing quota reaches there is 6, so a Job that needs a whole node is never admitted; "
            "raise a team's gpu_quota or borrowing_limit") in found
    fixed = text.replace("{name: c, gpu_quota: 6, groups: [c]}",
                         "{name: c, gpu_quota: 6, borrowing_limit: 2, groups: [c]}")
    assert not [w for w in semantics.warnings(load(_write(tmp_path, fixed)).model) if "whole node" in w[1]]


def test_jobs_cannot_ask_for_the_inference_priority():
    """The admission policy refuses infra-inference on Jobs: submit says so instead of offering it."""
    with pytest.raises(Exception, match=r"--priority must be one of batch, interactive, not 'inference' "
                                        r"\(inference is for model servers"):
        build_job(JobRequest(team="t", namespace="t", image="x", command="true", priority="inference"))
    assert build_job(JobRequest(team="t", namespace="t", image="x", command="true", priority="interactive"))


def test_a_gpu_on_a_control_plane_only_host_is_refused_at_that_host(tmp_path):
    """The device plugin does not tolerate kubeadm's control-plane taint (GPU nodes are for GPU
    work): a GPU declared on a control plane that is not also a worker would never be advertised."""
    text = ONPREM_GPU_ONLY.replace("roles: [control_plane]}", "roles: [control_plane], gpu: {type: l4, count: 1}}")
    with pytest.raises(BlueprintError) as info:
        load(_write(tmp_path, text), checks=placement.CHECKS)
    assert ("hosts[0]", "DaemonSet kube-system/nvidia-device-plugin selects host cp-1 but cannot run there: "
                        "untolerated taint node-role.kubernetes.io/control-plane:NoSchedule") in \
        [(p.path, p.message) for p in info.value.problems]


def test_a_changed_kueue_configuration_rolls_the_controller():
    """The controller reads its Configuration at start only: the pod template carries the
    ConfigMap's checksum, so a changed configuration is a changed template (a rollout)."""
    import hashlib
    import json

    docs = [d for d in yaml.safe_load_all(kueue.install_manifest()) if d]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kueue-manager-config")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    annotation = deployment["spec"]["template"]["metadata"]["annotations"]["infra.dev/config-sha256"]
    assert annotation == hashlib.sha256(json.dumps(config["data"], sort_keys=True).encode()).hexdigest()
    assert "manageJobsWithoutQueueName: true" in config["data"]["controller_manager_config.yaml"]
