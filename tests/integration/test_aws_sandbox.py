"""End to end on the embedded AWS emulator: real terraform, real AWS provider, real moto.

One environment goes through its whole life: ``up`` (while a second ``up`` is refused by the
lock), checks with boto3 that what the blueprint asked for exists, a second ``up`` that must
apply nothing, then ``down`` and checks that everything is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, require_module
from tests.unit.test_pulumi_bridge import mocks, run_program  # noqa: F401 - mocks: a fixture

pytestmark = pytest.mark.integration
INFRA = str(Path(sys.executable).with_name("infra"))
REGION = "us-east-1"


def _infra(project: Path, env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [INFRA, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory, tf_mirror):
    boto3 = require_module("boto3", "boto3 (the sandbox extra: pip install -e '.[sandbox]')")
    root = tmp_path_factory.mktemp("sandbox-project")
    shutil.copy(EXAMPLES / "sandbox.yaml", root / "env.yaml")
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror, "TF_CLI_CONFIG_FILE": str(root / "none.tfrc")}
    env.pop("INFRA_STATE_DIR", None)
    yield {"root": root, "env": env, "boto3": boto3}
    _infra(root, env, "sandbox", "stop", timeout=60)


def _clients(project):
    info = json.loads((project["root"] / ".infra" / "sandbox" / "server.json").read_text())
    kw = {
        "endpoint_url": f"http://127.0.0.1:{info['port']}",
        "region_name": REGION,
        "aws_access_key_id": "sandbox",
        "aws_secret_access_key": "sandbox",
    }
    return project["boto3"].client("ec2", **kw), project["boto3"].client("eks", **kw)


def _node_groups(eks) -> dict[str, dict]:
    """Pool name -> node group (node groups are named <pool>-<suffix>: node_group_name_prefix)."""
    names = eks.list_nodegroups(clusterName="demo")["nodegroups"]
    groups = [eks.describe_nodegroup(clusterName="demo", nodegroupName=n)["nodegroup"] for n in names]
    return {g["labels"]["infra.dev/pool"]: g for g in groups}


def _state_serial(root: Path) -> int:
    return json.loads((root / ".infra" / "sandbox" / "demo" / "terraform.tfstate").read_text())["serial"]


@pytest.fixture(scope="module")
def first_up(project):
    """Run the first ``up``; while it applies, start a second one, which must fail fast."""
    root, env = project["root"], project["env"]
    proc = subprocess.Popen(
        [INFRA, "up", "--sandbox", "--auto-approve", "env.yaml"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("apply:"):  # terraform apply has started
            break
    started = time.monotonic()
    second = _infra(root, env, "up", "--sandbox", "--auto-approve", "env.yaml", timeout=120)
    second_seconds = time.monotonic() - started
    still_running = proc.poll() is None
    lines.extend(proc.stdout)
    assert proc.wait(timeout=600) == 0, "".join(lines)
    return {
        "output": "".join(lines),
        "pid": proc.pid,
        "second": second,
        "second_seconds": second_seconds,
        "first_running_during_second": still_running,
    }


def test_second_up_while_applying_is_refused_naming_the_holder(first_up):
    second = first_up["second"]
    assert first_up["first_running_during_second"], "the first up finished before the second was tried"
    assert second.returncode == 6, second.stderr
    assert "environment 'demo' is locked by" in second.stderr
    assert f"pid {first_up['pid']}" in second.stderr
    assert "infra up env.yaml" in second.stderr
    assert "Traceback" not in second.stderr
    # it failed fast: it did not wait for the first run (which applies for tens of seconds)
    assert first_up["second_seconds"] < 30


def test_first_up_reports_progress_and_summary(first_up):
    out = first_up["output"]
    assert "==> plan" in out and "==> apply" in out
    assert "module.cluster.aws_eks_cluster.this: created" in out
    assert "infra up demo (sandbox): success" in out
    # what the emulator does not implement is planned but left out, and said so
    assert ("  left out (sandbox) aws_eks_addon, aws_eks_access_entry, aws_eks_access_policy_association, "
            "aws_eks_pod_identity_association, aws_autoscaling_group_tag, aws_placement_group\n") in out


def test_network_matches_blueprint(project, first_up):
    ec2, _ = _clients(project)
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["demo"]}])["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.20.0.0/16"]
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    by_cidr = {s["CidrBlock"]: {t["Key"]: t["Value"] for t in s.get("Tags", [])} for s in subnets}
    assert sorted(by_cidr) == ["10.20.0.0/20", "10.20.128.0/20", "10.20.144.0/20", "10.20.16.0/20"]
    for cidr in ("10.20.0.0/20", "10.20.16.0/20"):
        assert by_cidr[cidr]["kubernetes.io/role/internal-elb"] == "1"
        assert by_cidr[cidr]["kubernetes.io/cluster/demo"] == "owned"
    for cidr in ("10.20.128.0/20", "10.20.144.0/20"):
        assert by_cidr[cidr]["kubernetes.io/role/elb"] == "1"
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NatGateways"]
    assert len([n for n in nats if n["State"] == "available"]) == 2  # one per zone


def test_cluster_matches_blueprint(project, first_up):
    _, eks = _clients(project)
    cluster = eks.describe_cluster(name="demo")["cluster"]
    assert cluster["version"] == "1.35"
    assert cluster["resourcesVpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["resourcesVpcConfig"]["endpointPublicAccess"] is False
    assert cluster["encryptionConfig"][0]["resources"] == ["secrets"]
    assert cluster["encryptionConfig"][0]["provider"]["keyArn"].startswith("arn:aws:kms:")
    assert cluster["identity"]["oidc"]["issuer"].startswith("https://")
    enabled = {t for group in cluster["logging"]["clusterLogging"] if group["enabled"] for t in group["types"]}
    assert {"api", "audit", "authenticator"} <= enabled


def test_one_node_group_per_pool_with_types_labels_taints(project, first_up):
    _, eks = _clients(project)
    groups = _node_groups(eks)
    assert sorted(groups) == ["a100", "l4", "system"]
    assert all(g["nodegroupName"].startswith(f"{pool}-") for pool, g in groups.items())
    assert groups["system"]["instanceTypes"] == ["m6i.large"]
    assert groups["a100"]["instanceTypes"] == ["p4d.24xlarge"]
    assert groups["l4"]["instanceTypes"] == ["g6.xlarge"]
    assert groups["system"]["amiType"] == "AL2023_x86_64_STANDARD"
    assert groups["a100"]["amiType"] == "AL2023_x86_64_NVIDIA"
    assert groups["l4"]["capacityType"] == "ON_DEMAND"  # an inference pool
    assert groups["a100"]["capacityType"] == "ON_DEMAND"
    assert groups["system"]["scalingConfig"] == {"minSize": 1, "desiredSize": 2, "maxSize": 3}
    assert groups["a100"]["scalingConfig"] == {"minSize": 0, "desiredSize": 0, "maxSize": 4}
    assert groups["a100"]["labels"] == {
        "infra.dev/gpu-type": "a100",
        "infra.dev/pool": "a100",
        "k8s.amazonaws.com/accelerator": "nvidia-a100",  # the Cluster Autoscaler's GPU label
        "nvidia.com/gpu.present": "true",
        "workload": "training",
    }
    assert groups["system"]["labels"] == {"infra.dev/pool": "system"}
    gpu_taint = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert groups["a100"]["taints"] == gpu_taint
    assert groups["l4"]["taints"] == gpu_taint
    assert not groups["system"].get("taints")


def test_node_groups_carry_discovery_and_node_template_tags(project, first_up):
    """The emulator creates no Auto Scaling group for a node group, so the group-level copies
    (aws_autoscaling_group_tag) are left out here; the node group's own tags are the same set."""
    _, eks = _clients(project)
    tags = _node_groups(eks)["a100"]["tags"]
    got = {k: v for k, v in tags.items() if k.startswith("k8s.io/cluster-autoscaler/")}
    assert tags["cost-center"] == "ml-platform"
    assert got == {
        "k8s.io/cluster-autoscaler/enabled": "true",
        "k8s.io/cluster-autoscaler/demo": "owned",
        "k8s.io/cluster-autoscaler/node-template/label/infra.dev/gpu-type": "a100",
        "k8s.io/cluster-autoscaler/node-template/label/infra.dev/pool": "a100",
        "k8s.io/cluster-autoscaler/node-template/label/k8s.amazonaws.com/accelerator": "nvidia-a100",
        "k8s.io/cluster-autoscaler/node-template/label/nvidia.com/gpu.present": "true",
        "k8s.io/cluster-autoscaler/node-template/label/workload": "training",
        "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu": "present:NoSchedule",
        "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu": "8",
    }


def test_node_security_group_opens_webhook_ports_from_the_control_plane(project, first_up):
    ec2, _ = _clients(project)
    groups = ec2.describe_security_groups(Filters=[{"Name": "tag:Name", "Values": ["demo-node", "demo-cluster"]}])
    by_name = {next(t["Value"] for t in g["Tags"] if t["Key"] == "Name"): g for g in groups["SecurityGroups"]}
    cluster_sg = by_name["demo-cluster"]["GroupId"]
    from_cluster = sorted(
        p["FromPort"] for p in by_name["demo-node"]["IpPermissions"]
        if any(pair["GroupId"] == cluster_sg for pair in p.get("UserIdGroupPairs", []))
    )
    assert from_cluster == [443, 4443, 6443, 8082, 8443, 9443, 10250]  # 8082: Kueue's visibility API


def test_flow_log_and_closed_default_security_group(project, first_up):
    ec2, _ = _clients(project)
    vpc_id = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["demo"]}])["Vpcs"][0]["VpcId"]
    logs = ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])["FlowLogs"]
    assert [(f["TrafficType"], f["LogDestinationType"], f["LogDestination"].split(":log-group:")[1]) for f in logs] == [
        ("ALL", "cloud-watch-logs", "/aws/vpc/demo/flow-logs")]
    default = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                    {"Name": "group-name", "Values": ["default"]}])
    assert [(g["IpPermissions"], g["IpPermissionsEgress"]) for g in default["SecurityGroups"]] == [([], [])]


def test_second_up_applies_nothing(project, first_up):
    root, env = project["root"], project["env"]
    serial = _state_serial(root)
    again = _infra(root, env, "up", "--sandbox", "--auto-approve", "env.yaml")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped: the plan has no changes" in again.stdout
    assert "==> apply" in again.stdout and "apply: " not in again.stdout  # no apply ran
    assert _state_serial(root) == serial
    history = json.loads(_infra(root, env, "history", "demo", "--output", "json").stdout)
    outcomes = [r["outcome"] for r in history["records"]]
    assert outcomes[-1] == "no-changes"
    assert "success" in outcomes
    assert history["chain_problems"] == []


def _taint(root: Path, types: set[str]) -> list[str]:
    """Mark every instance of ``types`` tainted in the sandbox state, as an apply interrupted while
    it created them leaves them (what ``terraform taint`` writes)."""
    path = root / ".infra" / "sandbox" / "demo" / "terraform.tfstate"
    state = json.loads(path.read_text())
    tainted = []
    for resource in state["resources"]:
        if resource["mode"] == "managed" and resource["type"] in types:
            for instance in resource["instances"]:
                instance["status"] = "tainted"
                tainted.append(f"{resource['type']}.{resource['name']}")
    state["serial"] += 1
    path.write_text(json.dumps(state))
    return tainted


def test_replacing_a_tainted_policy_attachment_leaves_the_policies_attached(project, first_up):
    """The node groups are create_before_destroy, which Terraform forces onto the role policies
    they depend on: replacing one attaches (or puts) it, then destroys the old object. A
    per-policy attachment or a fixed-name inline policy would so detach the policy it had just
    attached, and only the next plan would notice; the exclusive attachments and prefixed names
    must come out of it attached and converged."""
    root, env = project["root"], project["env"]
    tainted = _taint(root, {"aws_iam_role_policy_attachments_exclusive", "aws_iam_role_policy"})
    assert "aws_iam_role_policy_attachments_exclusive.node" in tainted, tainted
    replaced = _infra(root, env, "up", "--sandbox", "--auto-approve", "env.yaml")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert f"{len(tainted)} to add" in replaced.stdout, replaced.stdout

    info = json.loads((root / ".infra" / "sandbox" / "server.json").read_text())
    iam = project["boto3"].client("iam", endpoint_url=f"http://127.0.0.1:{info['port']}", region_name=REGION,
                                  aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("demo-node-")]
    assert len(roles) == 1, roles
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=roles[0])["AttachedPolicies"]}
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"}

    again = _infra(root, env, "up", "--sandbox", "--auto-approve", "env.yaml")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped: the plan has no changes" in again.stdout, again.stdout


def _without_mirror(env: dict) -> dict:
    """A plain shell: no INFRA_TF_PLUGIN_MIRROR (the environment remembers the one it used)."""
    return {k: v for k, v in env.items() if k != "INFRA_TF_PLUGIN_MIRROR"}


def test_plan_from_a_plain_shell_runs_no_init(project, first_up):
    root, env = project["root"], project["env"]
    init_log = root / ".infra" / "sandbox" / "demo" / "logs" / "init.jsonl"
    remembered = root / ".infra" / "sandbox" / "demo" / "tf-mirror"
    assert remembered.read_text() == f"{Path(env['INFRA_TF_PLUGIN_MIRROR']).resolve()}\n"
    init_log.unlink()
    plan = _infra(root, _without_mirror(env), "plan", "--sandbox", "env.yaml")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "terraform init skipped: its inputs are unchanged" in plan.stdout + plan.stderr
    assert not init_log.exists()  # the engine's log: no terraform init ran
    # the cost estimate follows the summary (docs/cost.md): a100 is 4 x p4d.24xlarge x 730 h at most
    assert "Estimated monthly cost (USD, 730 h/month, list prices for us-east-1)" in plan.stdout
    assert "$0 – $95,696" in plan.stdout
    assert "as configured (spot pools at spot prices): $70 per month at min, $99,431 at max" in plan.stdout
    assert "note: an estimate from approximate list prices, not a quote" in plan.stdout


def test_working_files_are_owner_only(project, first_up):
    """Everything under .infra/ (state, logs, CLI config, sandbox copy, records, server files) is
    out of reach of group and others; the no-change `up` above kept no plan file."""
    root = project["root"]
    assert not (root / ".infra" / "sandbox" / "demo" / "plan.tfplan").exists()
    assert (root / ".infra" / "sandbox" / "demo" / "terraform.tfstate").is_file()  # the walk sees real files
    offenders = []
    for folder, _dirs, files in os.walk(root / ".infra"):  # symlinks (terraform's provider links) not followed
        for path in [Path(folder), *(Path(folder, name) for name in files)]:
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                offenders.append(f"{stat.S_IMODE(mode):04o} {path.relative_to(root)}")
    assert offenders == [], "group or others have access to:\n" + "\n".join(offenders)


def test_status_reports_outputs(project, first_up):
    status = _infra(project["root"], project["env"], "status", "--sandbox", "env.yaml", "--output", "json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["deployed"] is True
    assert data["outputs"]["cluster_name"] == "demo"
    assert sorted(data["outputs"]["node_pools"]) == ["a100", "l4", "system"]


@pytest.mark.usefixtures("mocks")
def test_the_pulumi_example_reads_the_outputs_of_this_up(project, first_up, monkeypatch):
    """examples/pulumi under Pulumi's mocks (tests/unit/test_pulumi_bridge.py) on what this real up left:
    the emulator's cluster endpoint and VPC, the three pools, a kubeconfig that is a secret."""
    monkeypatch.delenv("INFRA_STATE_DIR", raising=False)
    ec2, eks = _clients(project)
    exported = run_program(blueprint=str(project["root"] / "env.yaml"), sandbox="true")
    assert exported["cluster_endpoint"] == (eks.describe_cluster(name="demo")["cluster"]["endpoint"], False)
    [vpc] = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["demo"]}])["Vpcs"]
    assert exported["vpc_id"] == (vpc["VpcId"], False)
    assert sorted(exported["node_pools"][0]) == ["a100", "l4", "system"]
    kubeconfig, secret = exported["kubeconfig"]
    assert secret is True and "eks" in kubeconfig and "--cluster-name" in kubeconfig


def test_down_removes_everything(project, first_up):
    root, env = project["root"], project["env"]
    ec2, eks = _clients(project)
    down = _infra(root, _without_mirror(env), "down", "--sandbox", "-y", "env.yaml")  # as after `make demo`
    assert down.returncode == 0, down.stdout + down.stderr
    assert "infra down demo (sandbox): success" in down.stdout
    assert eks.list_clusters()["clusters"] == []
    assert ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["demo"]}])["Vpcs"] == []
    assert ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["10.20.0.0/20"]}])["Subnets"] == []
    keys = ec2.describe_nat_gateways()["NatGateways"]
    assert all(n["State"] in ("deleted", "deleting") for n in keys)
    status = json.loads(_infra(root, env, "status", "--sandbox", "env.yaml", "--output", "json").stdout)
    assert status["deployed"] is False
