"""Blueprint additions for EKS (issue 10): access, zones, instance_types, capacity_type, the
version table, and what the AWS provider renders from them into terraform.tfvars.json."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from orchestrator.blueprint import eks_versions
from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError
from orchestrator.providers.registry import get as get_provider
from tests.blueprints import with_way_in

HEAD = "blueprint: 1\nname: t-env\nprovider: aws\nregion: us-east-1\n"  # lines 1-4
ARN = "arn:aws:iam::123456789012:role/"


def _load(tmp_path: Path, body: str):
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(HEAD + textwrap.dedent(body)))
    return load(path).model


def _problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(BlueprintError) as info:
        _load(tmp_path, body)
    return [f"{p.line}:{p.column} {p.path}: {p.message}" for p in info.value.problems]


def _tfvars(tmp_path: Path, body: str) -> dict:
    bp = _load(tmp_path, body)
    return get_provider("aws").terraform_variables(bp)


POOLS = """
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
"""


def test_access_admins_members_and_creator(tmp_path):
    tfvars = _tfvars(tmp_path, POOLS + f"""
access:
  admins: [{ARN}admins]
teams:
  - {{name: vision, groups: [vision-devs], members: [{ARN}vision, {ARN}both]}}
  - {{name: nlp, groups: [nlp-devs, nlp-leads], members: [{ARN}both]}}
""")
    assert tfvars["cluster_admins"] == [f"{ARN}admins"]
    assert tfvars["creator_admin"] is False  # admins given: the creator does not stay admin by default
    assert tfvars["access_members"] == [
        {"principal_arn": f"{ARN}both", "kubernetes_groups": ["nlp-devs", "nlp-leads", "vision-devs"]},
        {"principal_arn": f"{ARN}vision", "kubernetes_groups": ["vision-devs"]},
    ]


def test_creator_stays_admin_without_admins_or_when_asked(tmp_path):
    assert _tfvars(tmp_path, POOLS)["creator_admin"] is True
    assert _tfvars(tmp_path, POOLS + f"access: {{admins: [{ARN}a], creator_admin: true}}\n")["creator_admin"] is True


def test_malformed_principals_are_located(tmp_path):
    got = _problems(tmp_path, POOLS + """
access:
  admins: [arn:aws:iam::123:role/x]
teams:
  - {name: t, members: [arn:aws:iam::123456789012:role/ok]}
""")
    assert got == [
        "10:12 access.admins[0]: must be an IAM role or user ARN such as arn:aws:iam::123456789012:role/ml-admins",
    ]
    got = _problems(tmp_path, POOLS + "teams:\n  - {name: t, members: [arn:aws:iam::123456789012:role/ok]}\n")
    assert got == ["9:15 teams[0].members: needs groups: members are mapped to the team's Kubernetes groups"]


def test_zone_names_are_pinned_and_counted(tmp_path):
    tfvars = _tfvars(tmp_path, POOLS + "network: {zones: [us-east-1a, us-east-1c]}\n")
    assert tfvars["zones"] == ["us-east-1a", "us-east-1c"]
    assert tfvars["private_subnets"] == ["10.0.0.0/20", "10.0.16.0/20"]
    default = _tfvars(tmp_path, POOLS)
    assert default["zones"] == []
    assert default["private_subnets"] == ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]  # 3 by default


def test_bad_zones_are_located(tmp_path):
    assert _problems(tmp_path, POOLS + "network: {zones: [us-east-1a]}\n") == [
        "8:11 network.zones: must name 2 to 6 zones, not 1"]
    assert _problems(tmp_path, POOLS + "network: {zones: [us-east-1a, us-east-1a]}\n") == [
        "8:11 network.zones: names a zone twice"]


def test_instance_types_capacity_and_placement(tmp_path):
    tfvars = _tfvars(tmp_path, """
node_pools:
  - {name: l4, instance_types: [g6.xlarge, g6.2xlarge], gpu: {type: l4, count: 1}, min: 0, max: 4,
     capacity_type: spot}
  - {name: serve, instance_type: g6.xlarge, gpu: {type: l4, count: 1}, min: 0, max: 2, purpose: inference}
  - {name: h100, instance_type: p5.48xlarge, gpu: {type: h100, count: 8}, min: 0, max: 2,
     capacity_type: capacity_block, capacity_reservation_id: cr-0123456789abcdef0}
""")
    pools = {p["name"]: p for p in tfvars["node_pools"]}
    assert pools["l4"]["instance_types"] == ["g6.xlarge", "g6.2xlarge"]
    assert [pools[n]["capacity_type"] for n in ("l4", "serve", "h100")] == ["SPOT", "ON_DEMAND", "CAPACITY_BLOCK"]
    assert pools["h100"]["capacity_reservation_id"] == "cr-0123456789abcdef0"
    assert pools["serve"]["capacity_reservation_id"] is None
    assert [pools[n]["placement_group"] for n in ("l4", "serve", "h100")] == [False, False, True]
    assert [pools[n]["gpu_count"] for n in ("l4", "serve", "h100")] == [1, 1, 8]


def test_purchase_rules_are_located(tmp_path):
    got = _problems(tmp_path, """
node_pools:
  - {name: a, instance_type: g6.xlarge, gpu: {type: l4, count: 1}, min: 0, max: 2, spot: true}
  - {name: b, instance_types: [g6.xlarge, g6.2xlarge], gpu: {type: l4, count: 1}, min: 0, max: 2,
     capacity_type: spot, purpose: inference}
  - {name: c, instance_types: [g6.xlarge, p5.48xlarge], gpu: {type: l4, count: 1}, min: 0, max: 2}
  - {name: d, instance_type: m6i.large, min: 0, max: 2, capacity_type: capacity_block}
""")
    assert got == [
        "7:30 node_pools[0].instance_type: a spot pool needs at least 2 instance_types "
        "(one capacity shortage would starve it)",
        "9:21 node_pools[1].capacity_type: inference pools serve traffic and must not be reclaimed: "
        "use on_demand or capacity_block",
        "10:43 node_pools[2].instance_types[1]: p5.48xlarge has 8 x h100, not 1 x l4",
        "11:72 node_pools[3].capacity_type: capacity_block requires capacity_reservation_id (cr-...)",
    ]


def test_version_table_default_and_support():
    assert eks_versions.default_version() == "1.35"
    assert eks_versions.table()["recorded"] == "2026-12-01"
    assert eks_versions.support("1.34", dt.date(2026, 12, 1)) == "standard"
    assert eks_versions.support("1.33", dt.date(2026, 12, 1)) == "extended"
    assert eks_versions.support("1.30", dt.date(2026, 12, 1)) == "ended"
    assert eks_versions.support("1.39", dt.date(2026, 12, 1)) == "unknown"
    assert eks_versions.cluster_autoscaler("1.33") == "v1.33.1"


def test_default_kubernetes_version_is_the_tables_newest(tmp_path):
    assert _tfvars(tmp_path, POOLS)["kubernetes_version"] == "1.35"


def test_version_issues_warn_in_extended_and_error_past_it():
    today = dt.date(2026, 12, 1)
    assert eks_versions.version_issues("aws", "1.34", today) == []
    assert eks_versions.version_issues("aws", "1.33", today) == [
        ("warning", "1.33 is in EKS extended support until 2027-07-29 (standard support ended 2026-07-29): "
                    "upgrade to 1.35")]
    assert eks_versions.version_issues("aws", "1.30", today) == [
        ("error", "1.30 reached the end of EKS extended support on 2026-07-23: use 1.35")]
    assert eks_versions.version_issues("gcp", "1.30", today) == []


@pytest.mark.parametrize("blueprint", ["examples/sandbox.yaml", "examples/aws-gpu.yaml",
                                       "tests/golden/inputs/edge-eu.yaml"])
def test_every_team_group_is_reachable_by_an_access_entry(blueprint):
    """CHECKLISTS §4 "Identity": a RoleBinding to a group no AWS identity is mapped to is dead."""
    bp = load(Path(__file__).resolve().parents[2] / blueprint).model
    tfvars = get_provider("aws").terraform_variables(bp)
    reachable = {g for m in tfvars["access_members"] for g in m["kubernetes_groups"]}
    assert {g for t in bp.teams for g in t.groups} - reachable == set()
    assert tfvars["access_members"]  # not vacuous


def test_validate_refuses_a_version_eks_no_longer_runs(tmp_path):
    """1.31's extended support ended on 2026-11-26: the error stays true on every later day."""
    assert _problems(tmp_path, 'kubernetes:\n  version: "1.31"\n' + POOLS) == [
        "6:12 kubernetes.version: 1.31 reached the end of EKS extended support on 2026-11-26: use 1.35"]


def test_the_same_version_is_not_checked_on_other_providers(tmp_path):
    path = tmp_path / "bp.yaml"
    path.write_text("blueprint: 1\nname: t-env\nprovider: baremetal\nkubernetes:\n  version: \"1.31\"\n"
                    "hosts:\n  - {name: cp, address: 10.0.0.1, roles: [control_plane]}\n")
    assert load(path).model.kubernetes.version == "1.31"


def test_validate_warns_on_a_version_in_extended_support(tmp_path):
    """1.33 is in extended support from 2026-07-30 to 2027-07-29 (on 2026-12-06 here: INFRA_TODAY)."""
    import os
    import subprocess
    import sys

    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(HEAD + 'kubernetes:\n  version: "1.33"\n' + POOLS))
    proc = subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", "validate", str(path)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "INFRA_TODAY": "2026-12-06"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (f"warning: {path}:6:12 kubernetes.version: 1.33 is in EKS extended support until "
                           "2027-07-29 (standard support ended 2026-07-29): upgrade to 1.35\n")
    assert proc.stdout == "ok: t-env\n"
