"""Rollouts, drift and rollback end to end on the embedded AWS emulator (real terraform, real AWS
provider, real moto). One module-scoped rollout of two small independent environments is shared:

- ``infra up ROLLOUT`` runs both at once (their records overlap in time);
- ``infra drift`` exits 2 after boto3 changes the VPC's tags behind Terraform's back, 0 after
  ``infra up`` repairs it;
- ``infra rollback`` restores the earlier node-pool size (checked with boto3) and prints the
  blueprint change to commit, and ``infra history`` shows the rollback.

Both keep their state in S3 (``state: {backend: s3}``), which in the sandbox is the emulator's
bucket (made by ``infra state bootstrap --sandbox``): the run records, the chain's head and the
outputs live beside it. So a second, fresh clone (the blueprint files only; the emulator's address
stands for the credentials) lists the history, shows the status, resolves ``${output:sb-a.…}`` in a
third blueprint and does the rollback (docs/records.md, "Shared where the state is").

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
state: {{backend: s3, bucket: rollout-state}}
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
    bootstrap = _infra(root, env, "state", "bootstrap", "sb-a.yaml", "--sandbox")  # starts the emulator
    assert bootstrap.stdout.startswith("state backend s3: s3://rollout-state (sandbox) created"), bootstrap.stderr
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
    [vpc_drift] = [d for d in by["sb-a"]["changes"]["drift"] if d.startswith("module.cluster.aws_vpc.this ")]
    assert vpc_drift.startswith("module.cluster.aws_vpc.this (update: ") and "tags.cost-center" in vpc_drift
    assert "changed-by-hand" not in drift.stdout  # attribute names, never values
    last = _records(root, "sb-a")[-1]
    assert (last["command"], last["outcome"]) == ("drift", "drift")
    repair = _infra(root, env, "up", "sb-a.yaml", "--sandbox", "--auto-approve")
    assert repair.returncode == 0, repair.stdout[-3000:] + repair.stderr[-3000:]
    assert _infra(root, env, "drift", "sb-a.yaml", "--sandbox").returncode == 0


APP = """blueprint: 1
name: app
provider: aws
region: us-east-1
tags: {{cost-center: ml, network-of: "${{output:sb-a.vpc_id}}"}}
network: {{cidr: 10.35.0.0/16, zones: 2}}
node_pools:
  - {{name: system, instance_type: m6i.large, min: 1, max: 2}}
kubernetes: {{private_access: {{via: inside_network}}}}
"""


def test_rollback_from_a_fresh_clone_restores_the_node_pool_size_and_both_clones_see_it(rollout, tmp_path) -> None:
    """The system pool's max goes from 3 to 5 (an ``up`` in the first clone) and back (a rollback in
    a second, fresh clone), in place (UpdateNodegroupConfig, whose update the AWS provider waits on
    with DescribeUpdate: orchestrator/sandbox_moto.py). Its desired size is the autoscaler's
    (ignore_changes), so a size is min/max. Before the rollback, the fresh clone lists the first
    clone's runs, shows sb-a's status and outputs, and plans a blueprint reading ``${output:sb-a.vpc_id}``."""
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
    assert not (root / ".infra" / "sandbox" / "sb-a" / "terraform.tfstate").exists()  # the state is in the bucket
    vpc = json.loads((root / ".infra" / "sandbox" / "sb-a" / "outputs.json").read_text())["vpc_id"]

    clone = tmp_path / "clone"  # a second clone: the blueprint files, no .infra/
    clone.mkdir()
    for name in ("sb-a.yaml", "sb-b.yaml", "rollout.yaml"):
        (clone / name).write_text((root / name).read_text())
    (clone / "app.yaml").write_text(APP.format())
    port = json.loads((root / ".infra" / "sandbox" / "server.json").read_text())["port"]
    env_b = {**env, "INFRA_SANDBOX_ENDPOINT": f"http://127.0.0.1:{port}"}
    ran = [r["id"] for r in _records(root, "sb-a")]
    listed = _infra(clone, env_b, "history", "sb-a.yaml", "--sandbox", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)["records"]] == ran[-20:]
    status = _infra(clone, env_b, "status", "sb-a.yaml", "--sandbox", "--output", "json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert (shown["deployed"], shown["outputs"]["vpc_id"], shown["last_run"]["id"]) == (True, vpc, ran[-1])
    plan = _infra(clone, env_b, "plan", "app.yaml", "--sandbox")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    tfvars = json.loads((clone / "build" / "app" / "terraform" / "terraform.tfvars.json").read_text())
    assert tfvars["tags"]["network-of"] == vpc

    back = _infra(clone, env_b, "rollback", "sb-a.yaml", good["id"], "--sandbox", "--auto-approve")
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert "0 added, 1 changed, 0 destroyed" in back.stdout  # the first clone's state, read from the bucket
    assert sizes() == {"system": (1, 3)}
    pool = "  - {name: system, instance_type: m6i.large, min: 1, max: %d}\n"
    assert "--- a/sb-a.yaml\n+++ b/sb-a.yaml\n" in back.stdout  # the blueprint change to commit, in place
    assert "\n-" + pool % 5 + "+" + pool % 3 in back.stdout
    verified = _infra(clone, env_b, "history", "sb-a.yaml", "--sandbox", "--verify")
    assert verified.returncode == 0, verified.stderr
    assert f"verified: {len(ran) + 1} records, chain intact" in verified.stdout

    history = _infra(root, env, "history", "sb-a.yaml", "--sandbox")  # the first clone reads the rollback
    assert history.returncode == 0, history.stderr
    assert f"success (rollback of {good['id']})" in history.stdout
    assert "can restore" in history.stdout
    last = _records(root, "sb-a")[-1]
    assert (last["command"], last["outcome"], last["rollback_of"]) == ("up", "success", good["id"])
    assert last["blueprint"]["merged"]["node_pools"][0]["max"] == 3


BURST = """blueprint: 1
name: burst
provider: aws
region: us-east-1
tags: {peer: "${output:onsite.control_plane_endpoint}"}
network: {cidr: 10.33.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
kubernetes: {public_endpoint: true, authorized_networks: ["203.0.113.0/24", "${output:onsite.egress_cidrs}"]}
"""


def test_a_pull_request_adding_a_dependent_plans_it_with_placeholders(rollout) -> None:
    """A new cloud environment reads outputs of a new bare-metal one: Terraform plans it with a
    CIDR placeholder among the API's allowed networks; the markdown says so; exit 0."""
    root, env = rollout["root"], rollout["env"]
    (root / "onsite.yaml").write_text("blueprint: 1\nname: onsite\nprovider: baremetal\nhosts:\n  - {name: node-1, "
                                      "address: 127.0.0.1, port: 1, roles: [control_plane, worker]}\n")
    (root / "burst.yaml").write_text(BURST)
    (root / "pr.yaml").write_text("rollout: 1\nname: pr\nenvironments:\n  - path: onsite.yaml\n"
                                  "  - path: burst.yaml\n    after: [onsite]\n")
    plan = _infra(root, env, "plan", "pr.yaml", "--sandbox", "--format", "markdown")
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    lines = plan.stdout.splitlines()
    [row] = [line for line in lines if line.startswith("| `burst` |")]
    assert row.startswith("| `burst` | aws | ✅ success | +") and row.endswith(" (with 2 placeholders) |")
    assert "- placeholder: `kubernetes.authorized_networks[1]` = `192.0.2.2/32` for `${output:onsite.egress_cidrs}` " \
           "(onsite has no outputs yet)" in lines
    [record] = [r for r in _records(root, "burst") if r["command"] == "plan"]
    assert record["outcome"] == "success" and record["plan"]["add"] > 0


def test_up_applies_the_reviewed_plan_and_refuses_it_once_the_blueprint_changed(rollout) -> None:
    """`infra plan FILE --out DIR` saves the plan; `infra up FILE --plan DIR` applies exactly that
    one (no second plan). Planned again, then the blueprint changes before the apply: `up --plan`
    refuses, exit 2, and nothing is applied (sb-b only: the tests above change sb-a). A rollout's
    folder per environment: tests/unit/test_saved_plan.py, on bare metal."""
    root, env = rollout["root"], rollout["env"]
    _, eks = _clients(rollout)

    def write(max_size: int) -> None:
        (root / "sb-b.yaml").write_text(BP.format(name="sb-b", cidr="10.32.0.0/16", max=max_size, region="us-east-1"))

    def serial() -> int:  # the state: in the emulator's bucket (state: {backend: s3}), else local
        local = root / ".infra" / "sandbox" / "sb-b" / "terraform.tfstate"
        if local.is_file():
            return json.loads(local.read_text())["serial"]
        from botocore.config import Config

        from orchestrator.providers.base import STATE_KEY

        port = json.loads((root / ".infra" / "sandbox" / "server.json").read_text())["port"]
        s3 = rollout["boto3"].client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                                     aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
                                     config=Config(s3={"addressing_style": "path"}))
        body = s3.get_object(Bucket="rollout-state", Key=STATE_KEY.format(name="sb-b"))["Body"].read()
        return json.loads(body)["serial"]

    def sizes() -> tuple[int, int]:
        [name] = eks.list_nodegroups(clusterName="sb-b")["nodegroups"]
        config = eks.describe_nodegroup(clusterName="sb-b", nodegroupName=name)["nodegroup"]["scalingConfig"]
        return config["minSize"], config["maxSize"]

    write(4)
    saved = _infra(root, env, "plan", "sb-b.yaml", "--sandbox", "--out", "plans")
    assert saved.returncode == 0, saved.stdout[-3000:] + saved.stderr[-3000:]
    assert sorted(p.name for p in (root / "plans" / "sb-b").iterdir()) == ["manifest.json", "plan.tfplan"]
    applied = _infra(root, env, "up", "sb-b.yaml", "--sandbox", "--auto-approve", "--plan", "plans")
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    assert "==> saved-plan" in applied.stdout and "==> plan" not in applied.stdout  # no second plan
    assert "0 added, 1 changed, 0 destroyed" in applied.stdout
    last = _records(root, "sb-b")[-1]
    assert (last["command"], last["outcome"]) == ("up", "success")
    assert [s["name"] for s in last["stages"]][:3] == ["render", "saved-plan", "apply"]
    assert sizes() == (1, 4)

    write(5)
    again = _infra(root, env, "plan", "sb-b.yaml", "--sandbox", "--out", "plans")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    before = serial()
    write(6)  # changed after the review
    refused = _infra(root, env, "up", "sb-b.yaml", "--sandbox", "--auto-approve", "--plan", "plans")
    assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert ("error: saved plan plans/sb-b no longer matches: the blueprint changed (node_pools[0].max 5 -> 6); "
            "the rendered inputs changed (terraform/terraform.tfvars.json); nothing was applied") in \
        " ".join(refused.stderr.split())
    assert "==> apply" not in refused.stdout
    assert serial() == before
    assert sizes() == (1, 4)
    assert _records(root, "sb-b")[-1]["outcome"] == "failed"


def test_drift_of_an_environment_never_applied_finds_none(rollout) -> None:
    """A refresh-only plan of an empty state can fail on count-indexed data sources: drift of an
    environment with nothing applied says so and exits 0, recorded as no-changes."""
    root, env = rollout["root"], rollout["env"]
    (root / "sb-new.yaml").write_text(BP.format(name="sb-new", cidr="10.33.0.0/16", max=3, region="us-east-1"))
    drift = _infra(root, env, "drift", "sb-new.yaml", "--sandbox")
    assert drift.returncode == 0, drift.stdout[-3000:] + drift.stderr[-3000:]
    last = _records(root, "sb-new")[-1]
    assert (last["command"], last["outcome"]) == ("drift", "no-changes")
    assert "nothing applied here yet" in [s for s in last["stages"] if s["name"] == "drift"][0]["detail"]
