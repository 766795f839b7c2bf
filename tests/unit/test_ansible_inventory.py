"""Bare-metal provider and the Ansible inventory render (pure functions, no hosts needed)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from orchestrator import inventory
from orchestrator.blueprint.loader import load
from orchestrator.blueprint.models import Blueprint
from orchestrator.engines.ansible import AnsibleResult, Failure, HostStats, SshSettings
from orchestrator.errors import UsageError
from orchestrator.progress import Progress
from orchestrator.providers.aws import AwsProvider
from orchestrator.providers.baremetal import BaremetalProvider
from orchestrator.providers.registry import get
from orchestrator.records import RunRecord
from orchestrator.render.ansible import render_ansible
from orchestrator.stages.configure import (
    ConfigureStage,
    HostsStage,
    extravars_files,
    limited_hosts,
    save_hosts_file,
    ssh_settings,
)
from orchestrator.stages.context import Context, RunState
from orchestrator.workspace import Workspace

BAREMETAL = {
    "blueprint": 1,
    "name": "onprem",
    "provider": "baremetal",
    "kubernetes": {"version": "1.31"},
    "node_pools": [
        {"name": "dgx-h100", "gpu": {"type": "h100", "count": 8}, "labels": {"workload": "training"},
         "mig": {"profile": "all-1g.10gb"}},
        {"name": "cpu", "labels": {"workload": "general"}, "taints": []},
    ],
    "hosts": [
        {"name": "cp-1", "address": "10.1.0.10", "roles": ["control_plane"], "pool": "cpu"},
        {"name": "gpu-01", "address": "10.1.0.11", "port": 2200, "user": "ubuntu", "roles": ["worker"],
         "pool": "dgx-h100"},
        {"name": "infer-1", "address": "infer-1.lab.example", "roles": ["inference", "worker"],
         "gpu": {"type": "l4", "count": 1}},
    ],
    "teams": [{"name": "vision"}],
    "inference": {"models": [{"name": "resnet50", "uri": "file:///models/resnet50.onnx", "team": "vision",
                              "replicas": 2}]},
    "secrets": {"ssh_key": "${env:LAB_SSH_KEY}"},
}


def bp(data=None) -> Blueprint:
    return Blueprint.model_validate(data or BAREMETAL)


def _context(tmp_path: Path, model: Blueprint, progress: Progress) -> Context:
    """The context a stage gets, for ``model`` written to a file and loaded."""
    file = tmp_path / "env.yaml"
    file.write_text(yaml.safe_dump(model.model_dump(mode="json", exclude_none=True)))
    loaded = load(file)
    record = RunRecord(env=loaded.model.name, command="up", blueprint_path=str(file), blueprint_sha256=loaded.sha256)
    ws = Workspace(root=tmp_path, name=loaded.model.name)
    return Context(loaded=loaded, provider=get(loaded.model.provider), ws=ws, progress=progress,
                   confirm=lambda plan: False, state=RunState(record=record))


class _AnsibleYaml(yaml.SafeLoader):
    """Reads the render as Ansible does, less the unsafe wrapper: ``!unsafe 'x'`` -> ``'x'``."""


_AnsibleYaml.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_rendered(text: str):
    return yaml.load(text, Loader=_AnsibleYaml)


def test_hosts_take_labels_taints_gpu_and_mig_from_their_pool():
    hosts = {h.name: h for h in inventory.from_blueprint(bp())}
    gpu = hosts["gpu-01"]
    assert (gpu.address, gpu.port, gpu.user, gpu.roles, gpu.pool) == ("10.1.0.11", 2200, "ubuntu", ("worker",),
                                                                     "dgx-h100")
    assert (gpu.gpu_type, gpu.gpu_count, gpu.mig_profile) == ("h100", 8, "all-1g.10gb")
    assert gpu.labels == {"infra.dev/gpu-type": "h100", "infra.dev/pool": "dgx-h100",
                          "nvidia.com/gpu.present": "true", "workload": "training"}
    assert gpu.taints == ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},)
    assert hosts["cp-1"].taints == () and hosts["cp-1"].gpu_type is None
    # no pool, but GPUs of its own: the GPU taint and labels still apply
    assert hosts["infer-1"].taints[0]["key"] == "nvidia.com/gpu"
    assert hosts["infer-1"].roles == ("worker", "inference")


def test_groups_by_role_pool_and_gpu_type():
    groups = inventory.groups(inventory.from_blueprint(bp()))
    assert groups == {
        "control_plane": ["cp-1"],
        "worker": ["gpu-01", "infer-1"],
        "inference": ["infer-1"],
        "pool_cpu": ["cp-1"],
        "pool_dgx_h100": ["gpu-01"],
        "gpu": ["gpu-01", "infer-1"],
        "gpu_h100": ["gpu-01"],
        "gpu_l4": ["infer-1"],
    }


def test_render_writes_inventory_and_group_vars_deterministically():
    files = render_ansible(bp(), BaremetalProvider())
    assert sorted(files) == ["group_vars/all.yml", "inventory.yml"]
    assert files == render_ansible(bp(), BaremetalProvider())
    assert "      ansible_host: !unsafe '10.1.0.11'\n" in files["inventory.yml"]
    inv = load_rendered(files["inventory.yml"])
    host = inv["all"]["hosts"]["gpu-01"]
    assert host["ansible_host"] == "10.1.0.11" and host["ansible_port"] == 2200
    assert host["ansible_become"] is True  # not root
    assert host["infra_gpu"] == {"type": "h100", "count": 8}
    assert host["infra_mig_profile"] == "all-1g.10gb"
    assert "ansible_become" not in inv["all"]["hosts"]["cp-1"]
    assert inv["all"]["children"]["pool_dgx_h100"] == {"hosts": {"gpu-01": None}}
    gv = load_rendered(files["group_vars/all.yml"])
    assert gv == {
        "infra_environment": "onprem",
        "infra_provider": "baremetal",
        "kubernetes_version": "1.31",
        "kubernetes_init_host": "cp-1",
        "infra_network_cidr": "10.0.0.0/16",
        "inference_onnx_models": [{"name": "resnet50", "uri": "file:///models/resnet50.onnx", "replicas": 2,
                                   "gpu": 0}],
    }
    assert files["inventory.yml"].startswith("# Generated by infra from the blueprint 'onprem'")
    assert "LAB_SSH_KEY" not in "".join(files.values())  # no secret references, let alone values


def test_inventory_is_valid_for_ansible(tmp_path):
    """ansible-inventory itself reads the render: groups and host vars as intended."""
    import subprocess
    import sys

    for rel, text in render_ansible(bp(), BaremetalProvider()).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    binary = Path(sys.executable).parent / "ansible-inventory"
    out = subprocess.run([str(binary), "-i", str(tmp_path / "inventory.yml"), "--list"],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["gpu_h100"]["hosts"] == ["gpu-01"]
    # group_vars/all.yml applied; ansible-core >= 2.19 marks the values it will never template
    assert data["_meta"]["hostvars"]["gpu-01"]["kubernetes_init_host"] in ({"__ansible_unsafe": "cp-1"}, "cp-1")
    assert data["_meta"]["hostvars"]["gpu-01"]["ansible_port"] == 2200


def test_cloud_providers_with_managed_node_groups_render_no_inventory():
    aws = bp({"blueprint": 1, "name": "cloud", "provider": "aws", "region": "us-east-1",
              "kubernetes": {"private_access": {"via": "inside_network"}},
              "node_pools": [{"name": "system", "instance_type": "m6i.large", "min": 1, "max": 2}]})
    assert render_ansible(aws, AwsProvider()) == {}
    assert inventory.provider_hosts(AwsProvider(), aws, {"cluster_name": "x"}) == []


def test_configure_stage_skips_and_says_so_without_hosts(tmp_path):
    aws = bp({"blueprint": 1, "name": "cloud", "provider": "aws", "region": "us-east-1",
              "kubernetes": {"private_access": {"via": "inside_network"}},
              "node_pools": [{"name": "system", "instance_type": "m6i.large", "min": 1, "max": 2}]})
    out = io.StringIO()
    ctx = _context(tmp_path, aws, Progress(stream=out, interactive=False))
    ctx.ws.outputs_file.parent.mkdir(parents=True)
    ctx.ws.outputs_file.write_text(json.dumps({"cluster_name": "cloud"}))  # what the last `up` saved
    assert ConfigureStage().run(ctx) == "skipped: no hosts to configure (managed node groups only)"
    assert ctx.state.outputs == {"cluster_name": "cloud"}
    assert "every node pool is a managed node group" in out.getvalue()


def test_provider_lists_hosts_with_their_last_result(tmp_path):
    provider = BaremetalProvider()
    assert provider.terraform_module is None and provider.terraform_variables(bp()) == {}
    result = AnsibleResult(rc=2, status="failed",
                           stats={"cp-1": HostStats(ok=30), "gpu-01": HostStats(ok=3, unreachable=1)},
                           failures=[Failure("gpu-01", "Gathering Facts", "Connection refused", True)],
                           data={"gpus": {"cp-1": {"count": 0, "nvswitches": 0}}})
    save_hosts_file(tmp_path / "ansible" / "hosts.json", result)
    outputs = provider.static_outputs(bp(), tmp_path)
    assert outputs["hosts"]["gpu-01"]["address"] == "10.1.0.11:2200"
    assert outputs["hosts"]["gpu-01"]["last_configure"]["status"] == "unreachable"
    assert outputs["hosts"]["gpu-01"]["last_configure"]["task"] == "Gathering Facts"
    rows = dict(provider.summarize_outputs(outputs))
    assert rows["cp-1"] == "10.1.0.10  control_plane  pool=cpu  gpu=none  last configure: ok (gpus found: 0)"
    assert rows["gpu-01"].startswith("10.1.0.11:2200  worker  pool=dgx-h100  gpu=8 x h100  last configure: unreachable")
    assert rows["infer-1"] == "infer-1.lab.example  worker+inference  gpu=1 x l4"
    assert provider.static_outputs(bp())["hosts"].keys() == {"cp-1", "gpu-01", "infer-1"}


def test_status_names_the_roles_a_failed_host_never_started(tmp_path):
    """infer-1 is a worker and an inference host: failing in kubernetes_node, its model server never ran."""
    provider = BaremetalProvider()
    task = "kubernetes_node : Install the Kubernetes packages"
    result = AnsibleResult(rc=2, status="failed", stats={"infer-1": HostStats(ok=40, failed=1)},
                           failures=[Failure("infer-1", task, "No package matching 'kubeadm'")],
                           roles={"infer-1": ["common", "nvidia_gpu", "container_runtime", "kubernetes_node"]},
                           plan={"infer-1": ("common", "nvidia_gpu", "container_runtime", "kubernetes_node",
                                             "inference_onnx")})
    save_hosts_file(tmp_path / "ansible" / "hosts.json", result)
    rows = dict(provider.summarize_outputs(provider.static_outputs(bp(), tmp_path)))
    assert rows["infer-1"] == ("infer-1.lab.example  worker+inference  gpu=1 x l4  last configure: failed; "
                               "not configured: inference_onnx")


def test_plan_on_bare_metal_lists_the_hosts(tmp_path):
    ctx = _context(tmp_path, bp(), Progress(stream=io.StringIO(), interactive=False))
    assert HostsStage().run(ctx) == "3 hosts to configure with ansible/site.yml (no cloud resources)"
    assert sorted(ctx.state.outputs["hosts"]) == ["cp-1", "gpu-01", "infer-1"]


def test_limit_accepts_hosts_and_groups_and_rejects_unknown_names():
    hosts = inventory.from_blueprint(bp())
    assert limited_hosts(hosts, None) == ["cp-1", "gpu-01", "infer-1"]
    assert limited_hosts(hosts, "gpu-01") == ["gpu-01"]
    assert limited_hosts(hosts, "control_plane,gpu_l4") == ["cp-1", "infer-1"]
    assert limited_hosts(hosts, "gpu*") == ["cp-1", "gpu-01", "infer-1"]  # patterns: Ansible decides
    with pytest.raises(UsageError, match="no host or group named 'gpu-02'"):
        limited_hosts(hosts, "gpu-02")


def test_ssh_key_file_is_used_in_place_and_env_keys_go_to_the_agent(tmp_path):
    from_file = bp({**BAREMETAL, "secrets": {"ssh_key": "${file:keys/id_ed25519}"}})
    settings = ssh_settings(from_file, {"ssh_key": "KEY CONTENT"}, tmp_path)
    assert settings.private_key_file == str(tmp_path / "keys" / "id_ed25519")  # relative to the blueprint
    assert settings.key_data is None
    from_env = ssh_settings(bp(), {"ssh_key": "KEYDATA"})
    assert (from_env.key_data, from_env.private_key_file) == ("KEYDATA\n", None)
    assert ssh_settings(bp({**BAREMETAL, "secrets": {}}), {}) == SshSettings()
    with pytest.raises(UsageError, match="no value"):
        ssh_settings(bp(), {})


def test_extra_vars_files_from_options_and_environment(tmp_path):
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text("x: 1\n")
    b.write_text("y: 2\n")
    assert extravars_files([a], env={"INFRA_ANSIBLE_EXTRA_VARS": str(b)}) == [a, b]
    with pytest.raises(UsageError, match="does not exist"):
        extravars_files([tmp_path / "missing.yml"], env={})


def _names(stages_list) -> list[str]:
    return [s.name for s in stages_list]


def test_up_configures_after_terraform_and_before_the_handoff():
    from orchestrator.stages.pipeline import pipeline

    assert _names(pipeline("up", AwsProvider())) == ["render", "plan", "apply", "outputs", "configure", "handoff"]
    assert _names(pipeline("plan", AwsProvider())) == ["render", "plan"]
    assert _names(pipeline("down", AwsProvider())) == ["render", "plan-destroy", "apply"]


def test_bare_metal_has_no_terraform_stages_and_nothing_to_destroy():
    from orchestrator.stages.pipeline import pipeline

    assert _names(pipeline("up", BaremetalProvider())) == ["render", "configure", "handoff"]
    assert _names(pipeline("plan", BaremetalProvider())) == ["render", "hosts"]
    with pytest.raises(UsageError, match="provider baremetal has no cloud resources to destroy"):
        pipeline("down", BaremetalProvider())


def test_a_model_sha256_reaches_the_role_and_a_bad_one_is_refused():
    import copy

    data = copy.deepcopy(BAREMETAL)
    data["inference"]["models"][0]["sha256"] = "ab" * 32
    gv = load_rendered(render_ansible(bp(data), BaremetalProvider())["group_vars/all.yml"])
    assert gv["inference_onnx_models"] == [{"name": "resnet50", "uri": "file:///models/resnet50.onnx", "replicas": 2,
                                            "gpu": 0, "sha256": "ab" * 32}]
    data["inference"]["models"][0]["sha256"] = "not-hex"
    with pytest.raises(ValueError, match="sha256"):
        bp(data)
