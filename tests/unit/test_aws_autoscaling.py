"""Scale from zero and webhook reachability, evaluated by Terraform itself over the rendered
golden cases: every node group's autoscaler node-template tags equal its rendered labels,
taints and GPU count, and the node security group opens 9443 (and the other recommended
ports) from the control plane."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
EFFECT = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
PREFIX = "k8s.io/cluster-autoscaler/"




@pytest.mark.parametrize("case", ["demo", "prod-us", "edge-eu"])
def test_node_template_tags_equal_labels_taints_and_gpus(tmp_path, case, tf_mirror):
    variables = json.loads((GOLDEN / case / "terraform" / "terraform.tfvars.json").read_text())
    work = tmp_path / case
    # Evaluate the module's locals with the golden variables.
    shutil.copytree(GOLDEN / case / "terraform", work)
    module = work / "modules" / "aws_gpu_cluster"
    (module / "terraform.tfvars.json").write_text(json.dumps(
        {k: v for k, v in variables.items() if k != "region"}))
    rc = tmp_path / "tfrc"
    rc.write_text(f'provider_installation {{\n  filesystem_mirror {{ path = "{tf_mirror}" }}\n}}\n')
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "TF_IN_AUTOMATION": "1", "AWS_REGION": "us-east-1"}
    subprocess.run(["terraform", "init", "-input=false", "-backend=false"], cwd=module, env=env, check=True,
                   capture_output=True)
    out = subprocess.run(["terraform", "console"], cwd=module, env=env, capture_output=True, text=True,
                         input="jsonencode([local.autoscaler_tags, local.control_plane_to_node_ports, "
                               "local.pool_subnet_indexes])\n")
    assert out.returncode == 0, out.stderr
    tags_line, ports_line, subnets = json.loads(json.loads(out.stdout.strip()))
    # CHECKLISTS §5: a cluster placement group lives in one zone, so its pool uses one subnet.
    zones = len(variables["private_subnets"])
    assert subnets == {p["name"]: [0] if p["placement_group"] else list(range(zones))
                       for p in variables["node_pools"]}
    if case == "prod-us":  # p5.48xlarge training pool: placed, in the first zone only
        assert subnets["h100"] == [0] and subnets["system"] == [0, 1, 2]
    for pool in variables["node_pools"]:  # the Cluster Autoscaler waits for GPUs only on this label
        if pool["gpu_count"]:
            assert pool["labels"]["k8s.amazonaws.com/accelerator"].startswith("nvidia-"), pool["name"]
            assert f"{pool['name']}|{PREFIX}node-template/label/k8s.amazonaws.com/accelerator" in tags_line
    for pool in variables["node_pools"]:
        mine = {k.split("|", 1)[1]: v for k, v in tags_line.items() if k.startswith(pool["name"] + "|")}
        expected = {PREFIX + "enabled": "true", PREFIX + variables["name"]: "owned"}
        expected |= {f"{PREFIX}node-template/label/{k}": v for k, v in pool["labels"].items()}
        expected |= {f"{PREFIX}node-template/taint/{t['key']}": f"{t['value']}:{EFFECT[t['effect']]}"
                     for t in pool["taints"]}
        if pool["gpu_count"]:
            expected[f"{PREFIX}node-template/resources/nvidia.com/gpu"] = str(pool["gpu_count"])
        assert mine == expected, pool["name"]
    # 8082: Kueue's visibility API (an APIService the handoff waits for: CHECKLISTS §5)
    assert sorted(ports_line, key=int) == ["443", "4443", "6443", "8082", "8443", "9443", "10250"]


def test_demo_gpu_pool_tags_literal():
    variables = json.loads((GOLDEN / "demo" / "terraform" / "terraform.tfvars.json").read_text())
    a100 = next(p for p in variables["node_pools"] if p["name"] == "a100")
    assert a100["gpu_count"] == 8
    assert a100["placement_group"] is True
    assert a100["taints"] == [{"effect": "NO_SCHEDULE", "key": "nvidia.com/gpu", "value": "present"}]
