"""Rollouts, drift and rollback end to end on the embedded AWS emulator (real terraform, real AWS
provider, real moto). One module-scoped rollout of two small independent environments is shared:

- ``infra up ROLLOUT`` runs both at once (their records overlap in time);
- ``infra drift`` exits 2 after boto3 changes the VPC's tags behind Terraform's back, 0 after
  ``infra up`` repairs it;
- ``infra rollback`` restores the earlier node-pool size (checked with boto3), and ``infra history``
  shows the rollback.

Both environments are in one region: each emulated cluster has its own OIDC issuer, so their IAM
OIDC providers do not collide (orchestrator/sandbox_moto.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_module

pytestmark = pytest.mark.integration
INFRA = str(Path(sys.executable).with_name("infra"))
BP = """blueprint: 1
name: {name}
provider: aws
region: {region}
tags: {{cost-center: ml}}
network: {{cidr: {cidr}, zones: 2}}
node_pools:
  - {{name: system, instance_type: m6i.large, min: 1, max: {max}}}
kubernetes: {{private_access: {{via: inside_network}}}}
"""
ROLLOUT = """rollout: 1
name: pair
environments:
  - path: sb-a.yaml
  - path: sb-b.yaml
max_parallel: 2
"""


def _infra(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([INFRA, *args], cwd=root, env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def rollout(tmp_path_factory, tf_mirror):
    boto3 = require_module("boto3", "boto3 (the sandbox extra: pip install -e '.[sandbox]')")
    root = tmp_path_factory.mktemp("rollout-project")
    (root / "sb-a.yaml").write_text(BP.format(name="sb-a", cidr="10.31.0.0/16", max=3, region="us-east-1"))
    (root / "sb-b.yaml").write_text(BP.format(name="sb-b", cidr="10.32.0.0/16", max=3, region="us-east-1"))
    (root / "rollout.yaml").write_text(ROLLOUT)
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror, "TF_CLI_CONFIG_FILE": str(root / "none.tfrc"),
           "COLUMNS": "200"}
    env.pop("INFRA_STATE_DIR", None)
    up = _infra(root, env, "up", "rollout.yaml", "--sandbox", "--auto-approve")
    yield {"root": root, "env": env, "boto3": boto3, "up": up}
    _infra(root, env, "sandbox", "stop")


def _clients(rollout):
    info = json.loads((rollout["root"] / ".infra" / "sandbox" / "server.json").read_text())
    kw = {"endpoint_url": f"http://127.0.0.1:{info['port']}", "region_name": "us-east-1",
          "aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
    return rollout["boto3"].client("ec2", **kw), rollout["boto3"].client("eks", **kw)


def _records(root: Path, env: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / ".infra" / "records" / env).glob("*.json"))]


def test_independent_environments_ran_at_the_same_time(rollout) -> None:
    up = rollout["up"]
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    a, b = _records(rollout["root"], "sb-a")[-1], _records(rollout["root"], "sb-b")[-1]
    assert (a["command"], a["outcome"], b["outcome"]) == ("up", "success", "success")
    assert a["started_at"] <= b["finished_at"] and b["started_at"] <= a["finished_at"]  # overlapped
    assert a["blueprint"]["merged"]["node_pools"] == [
        {"name": "system", "instance_type": "m6i.large", "min": 1, "max": 3}]
    [record] = (rollout["root"] / ".infra" / "rollouts" / "pair").glob("*.json")
    assert [e["record"] for e in json.loads(record.read_text())["environments"]] == [a["id"], b["id"]]


def test_drift_found_after_a_change_behind_terraforms_back_and_gone_after_up(rollout) -> None:
    root, env = rollout["root"], rollout["env"]
    ec2, _ = _clients(rollout)
    assert _infra(root, env, "drift", "rollout.yaml", "--sandbox").returncode == 0
    [vpc] = ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.31.0.0/16"]}])["Vpcs"]
    ec2.create_tags(Resources=[vpc["VpcId"]], Tags=[{"Key": "cost-center", "Value": "changed-by-hand"}])
    drift = _infra(root, env, "drift", "rollout.yaml", "--sandbox", "--format", "json")
    assert drift.returncode == 2, drift.stdout + drift.stderr
    by = {e["environment"]: e for e in json.loads(drift.stdout)["environments"]}
    assert by["sb-a"]["drift"] is True and by["sb-b"]["drift"] is False
    assert "module.cluster.aws_vpc.this (update)" in by["sb-a"]["changes"]["drift"]
    repair = _infra(root, env, "up", "sb-a.yaml", "--sandbox", "--auto-approve")
    assert repair.returncode == 0, repair.stdout[-3000:] + repair.stderr[-3000:]
    assert _infra(root, env, "drift", "sb-a.yaml", "--sandbox").returncode == 0


def test_rollback_restores_the_node_pool_size_and_history_shows_it(rollout) -> None:
    """The system pool's max goes from 3 to 5 and back, in place (UpdateNodegroupConfig, whose
    update the AWS provider waits on with DescribeUpdate: orchestrator/sandbox_moto.py). Its
    desired size is the autoscaler's (ignore_changes), so a size is min/max."""
    root, env = rollout["root"], rollout["env"]
    _, eks = _clients(rollout)

    def sizes() -> dict[str, tuple[int, int]]:
        names = eks.list_nodegroups(clusterName="sb-a")["nodegroups"]
        groups = [eks.describe_nodegroup(clusterName="sb-a", nodegroupName=n)["nodegroup"] for n in names]
        return {g["labels"]["infra.dev/pool"]: (g["scalingConfig"]["minSize"], g["scalingConfig"]["maxSize"])
                for g in groups}

    good = [r for r in _records(root, "sb-a") if r["command"] == "up" and r["outcome"] == "success"][-1]
    assert sizes() == {"system": (1, 3)}
    (root / "sb-a.yaml").write_text(BP.format(name="sb-a", cidr="10.31.0.0/16", max=5, region="us-east-1"))
    changed = _infra(root, env, "up", "sb-a.yaml", "--sandbox", "--auto-approve")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert "0 added, 1 changed, 0 destroyed" in changed.stdout  # resized in place, not replaced
    assert sizes() == {"system": (1, 5)}
    back = _infra(root, env, "rollback", "sb-a", good["id"], "--sandbox", "--auto-approve")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert sizes() == {"system": (1, 3)}
    last = _records(root, "sb-a")[-1]
    assert (last["command"], last["outcome"], last["rollback_of"]) == ("up", "success", good["id"])
    assert last["blueprint"]["merged"]["node_pools"][0]["max"] == 3
    history = _infra(root, env, "history", "sb-a")
    assert f"success (rollback of {good['id']})" in history.stdout
    assert "can restore" in history.stdout


def test_init_output_plans_in_the_sandbox(tmp_path, tf_mirror) -> None:
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror, "TF_CLI_CONFIG_FILE": str(tmp_path / "none.tfrc")}
    env.pop("INFRA_STATE_DIR", None)
    assert _infra(tmp_path, env, "init", "repo").returncode == 0
    repo = tmp_path / "repo"
    try:
        plan = _infra(repo, env, "plan", "rollout.yaml", "--sandbox", "--format", "json")
    finally:
        _infra(repo, env, "sandbox", "stop")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    results = json.loads(plan.stdout)["environments"]
    assert [(e["environment"], e["result"], e["changes"]["has_changes"]) for e in results] == [
        ("dev", "success", True), ("prod", "success", True)]
