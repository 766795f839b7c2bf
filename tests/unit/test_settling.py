"""The refresh after an apply covers what other resources change (orchestrator/stages/terraform.py
``refresh_targets``, data/terraform/settling.yaml): its table is sound and its choice right."""

from __future__ import annotations

import re

from orchestrator import datafiles, paths
from orchestrator.stages.terraform import refresh_targets

TABLE = datafiles.load(paths.package_data() / "terraform" / "settling.yaml")


def _module_types() -> set[str]:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "terraform" / "modules" / "aws_gpu_cluster"
    return {m for f in root.glob("*.tf") for m in re.findall(r'^resource "(\w+)"', f.read_text(), re.M)}


def test_every_entry_has_a_source_attributes_and_a_cause():
    for rtype, entry in TABLE["types"].items():
        assert rtype.startswith(tuple(f"{p}_" for p in TABLE["providers"])), rtype
        assert entry["attributes"] and entry["changed_by"], rtype
        assert entry["source"].startswith("https://registry.terraform.io/providers/hashicorp/"), rtype


def test_every_cause_in_our_aws_module_has_its_settling_type_listed():
    """A module that gains a resource changing another one's attributes (an aws_route, a rule) must
    list the changed type, or drift right after `up` would report Terraform's own work."""
    used = _module_types()
    causes = {c for entry in TABLE["types"].values() for c in entry["changed_by"]}
    for cause in sorted(causes & used):
        changed = [t for t, e in TABLE["types"].items() if cause in e["changed_by"]]
        assert any(t in used for t in changed), f"{cause} is used but none of {changed} is"
    for known in ("aws_route", "aws_security_group_rule", "aws_iam_role_policy"):
        assert known in used, f"the module no longer uses {known}: is this table still complete?"


def _r(rtype, name, module=None, mode="managed"):
    return {"mode": mode, "type": rtype, "name": name, **({"module": module} if module else {})}


def test_only_the_settling_resources_are_targeted_with_their_module_path():
    resources = [_r("aws_vpc", "this", "module.cluster"), _r("aws_route_table", "private", "module.cluster"),
                 _r("aws_route", "private_nat", "module.cluster"), _r("aws_security_group", "node", "module.cluster"),
                 _r("aws_iam_role", "node"), _r("aws_availability_zones", "available", mode="data"),
                 _r("aws_route_table", "private", "module.cluster")]
    assert refresh_targets(resources) == ["aws_iam_role.node", "module.cluster.aws_route_table.private",
                                          "module.cluster.aws_security_group.node"]


def test_nothing_settling_means_no_refresh():
    assert refresh_targets([_r("aws_vpc", "this"), _r("aws_s3_bucket", "logs")]) == []
    assert refresh_targets([]) == []


def test_another_providers_resource_means_the_full_refresh():
    assert refresh_targets([_r("aws_route_table", "private"), _r("azurerm_resource_group", "this")]) is None
    assert refresh_targets([_r("aws_route_table", "private"), _r("random_id", "suffix")]) is None
    # data sources of other providers change nothing
    assert refresh_targets([_r("aws_route_table", "x"), _r("tls_certificate", "oidc", mode="data")]) == [
        "aws_route_table.x"]
