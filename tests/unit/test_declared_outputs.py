"""Declared outputs (catalog ``outputs:``, orchestrator/blueprint/placeholders.py): equal to what each
provider really produces, checked by ``infra validate ROLLOUT``; and the placeholders ``plan`` uses
for an environment of the rollout that has no outputs yet, valid where they are written."""

from __future__ import annotations

import io
import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import paths
from orchestrator.blueprint import catalog
from orchestrator.blueprint.loader import load
from orchestrator.blueprint.outputs import EnvOutputs
from orchestrator.blueprint.placeholders import Placeholders, marks
from orchestrator.blueprint.rollout import load_rollout
from orchestrator.errors import BlueprintError, UsageError
from orchestrator.providers.registry import get, names, provider_class

INFRA = Path(sys.executable).with_name("infra")
OUTPUT = re.compile(r'^output\s+"([A-Za-z_][A-Za-z0-9_]*)"\s*\{(.*?)^\}', re.M | re.S)
LAB = """blueprint: 1
name: lab
provider: baremetal
hosts:
  - {name: cp-1, address: 10.1.0.11, roles: [control_plane, worker]}
  - {name: gpu-1, address: gpu-1.lab.example.com, roles: [worker]}
"""
CLOUD = """blueprint: 1
name: cloud
provider: aws
region: us-east-1
tags: {peer: "${output:lab.control_plane_endpoint}"}
network: {cidr: 10.20.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
kubernetes: {public_endpoint: true, authorized_networks: ["203.0.113.0/24", "${output:lab.egress_cidrs}"]}
"""
AKS = """blueprint: 1
name: aks
provider: azure
region: westeurope
network: {cidr: 10.40.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: Standard_D4s_v5, min: 1, max: 2}
kubernetes: {private_access: {via: inside_network}}
"""
EDGE = """blueprint: 1
name: edge
provider: baremetal
tags: {cluster: "${output:cloud.cluster_name}", api: "${output:aks.cluster_endpoint}"}
node_pools:
  - {name: general, labels: {vpc: "${output:cloud.vpc_id}"}}
hosts:
  - {name: cp-1, address: 10.2.0.11, roles: [control_plane, worker], pool: general}
"""
ROLLOUT = """rollout: 1
name: hybrid
environments:
  - path: lab.yaml
  - path: aks.yaml
  - path: cloud.yaml
    after: [lab]
  - path: edge.yaml
    after: [cloud, aks]
"""


def _terraform_outputs(provider: str) -> dict[str, bool]:
    """``{output: sensitive}`` as the root module's outputs.tf declares them."""
    text = (paths.templates() / "terraform" / provider / "outputs.tf").read_text()
    return {name: re.search(r"^\s*sensitive\s*=\s*true\b", body, re.M) is not None
            for name, body in OUTPUT.findall(text)}


def test_every_provider_declares_exactly_the_outputs_it_produces(tmp_path: Path) -> None:
    seen = []
    for name in names():
        declared = catalog.outputs(name)
        assert declared, f"data/catalog/{name}.yaml declares no outputs"
        assert {spec["kind"] for spec in declared.values()} <= {"name", "text", "list", "map", "cidrs"}
        if provider_class(name).terraform_module is not None:
            got = {output: spec["sensitive"] for output, spec in declared.items()}
            assert got == _terraform_outputs(name), name
        else:  # bare metal: what a configure saves; kinds checked against the real values
            (tmp_path / "lab.yaml").write_text(LAB)
            exported = get(name).exported_outputs(load(tmp_path / "lab.yaml").model)
            assert set(declared) == set(exported)
            assert not any(spec["sensitive"] for spec in declared.values())
            for output, spec in declared.items():
                value = exported[output]
                assert isinstance(value, list if spec["kind"] in ("list", "cidrs") else str), output
                if spec["kind"] == "text":  # not a label value: a node label may not take it
                    assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", value) is None
                if spec["kind"] == "cidrs":
                    assert [str(ipaddress.ip_network(v)) for v in value] == value == ["10.1.0.11/32"]
        seen.append(name)
    assert seen == ["aws", "azure", "baremetal", "gcp"]
    assert _terraform_outputs("azure")["cluster_ca"] is True and _terraform_outputs("aws")["cluster_ca"] is False


def _project(tmp_path: Path, **texts: str) -> Path:
    for name, text in {"lab": LAB, "cloud": CLOUD, "aks": AKS, "edge": EDGE, **texts}.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    (tmp_path / "rollout.yaml").write_text(ROLLOUT)
    return tmp_path / "rollout.yaml"


def _infra(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    env["COLUMNS"] = "200"
    return subprocess.run([str(INFRA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


BAD_EDGE = EDGE.replace("aks.cluster_endpoint", "aks.cluster_ca").replace(
    '{vpc: "${output:cloud.vpc_id}"}',
    '{pools: "${output:cloud.node_pools}", subnets: "${output:cloud.private_subnet_ids}",\n'
    '              api: "${output:cloud.cluster_endpoint}"}') + (
    'kubernetes: {authorized_networks: ["${output:lab.host_addresses}"]}\n')


def test_validate_refuses_outputs_a_provider_does_not_declare_located_with_a_did_you_mean(tmp_path: Path) -> None:
    _project(tmp_path, cloud=CLOUD.replace("lab.egress_cidrs", "lab.egress_cidr"), edge=BAD_EDGE)
    result = _infra(tmp_path, "validate", "rollout.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "cloud.yaml:9:77 kubernetes.authorized_networks[1]: ${output:lab.egress_cidr}: environment lab (baremetal) "
        "declares no output egress_cidr; did you mean egress_cidrs? (its outputs: control_plane_endpoint, "
        "egress_cidrs, host_addresses)",
        "edge.yaml:4:54 tags.api: ${output:aks.cluster_ca}: azure marks cluster_ca sensitive: it is never copied "
        "into another blueprint",
        "edge.yaml:6:37 node_pools[0].labels.pools: ${output:cloud.node_pools} is a map, not a single value",
        "edge.yaml:6:76 node_pools[0].labels.subnets: ${output:cloud.private_subnet_ids} is a list, not a single "
        "value (a list fits only in kubernetes.authorized_networks[])",
        "edge.yaml:7:20 node_pools[0].labels.api: ${output:cloud.cluster_endpoint} is not a Kubernetes label value "
        "(declared text: a URL, an ARN or a path); put it in tags instead",
        "edge.yaml:10:36 kubernetes.authorized_networks[0]: ${output:lab.host_addresses} is not a list of CIDR blocks "
        "(declared list): kubernetes.authorized_networks[] takes one (of environment lab: egress_cidrs)",
        "6 problems found"]
    assert "Traceback" not in result.stderr
    plan = _infra(tmp_path, "plan", "rollout.yaml")  # plan loads the rollout the same way: nothing runs
    assert plan.returncode == 2 and "did you mean egress_cidrs?" in plan.stderr
    assert not (tmp_path / ".infra").exists()


def test_a_name_nothing_resembles_gets_no_guess_and_a_good_rollout_validates(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError) as info:
        load_rollout(_project(tmp_path, edge=EDGE.replace("aks.cluster_endpoint", "aks.zzz")))
    assert [p.message for p in info.value.problems] == [
        "${output:aks.zzz}: environment aks (azure) declares no output zzz (its outputs: cluster_ca, cluster_endpoint, "
        "cluster_name, kubelet_identity_object_id, node_pools, node_subnet_id, oidc_issuer, resource_group, "
        "tenant_id, vnet_id)"]
    (tmp_path / "edge.yaml").write_text(EDGE)
    result = _infra(tmp_path, "validate", "rollout.yaml")
    assert (result.returncode, result.stdout) == (0, "ok: rollout hybrid (lab, aks, cloud, edge)\n"), result.stderr


def test_placeholders_are_typed_by_the_field_and_pass_validation_and_render(tmp_path: Path) -> None:
    """An aws environment reading a bare-metal one not applied yet: a CIDR in authorized_networks, a
    tag value elsewhere; a bare-metal one reading the aws one: node labels. All validate and render."""
    from orchestrator.render import render

    _project(tmp_path)
    nothing = {}.get  # no environment has outputs yet
    lookup = Placeholders(nothing, {"lab": "baremetal", "cloud": "aws", "aks": "azure"})
    loaded = load(tmp_path / "cloud.yaml", outputs_of=lookup)
    assert loaded.model.tags == {"peer": "known-after-lab-applies"}
    assert loaded.model.kubernetes.authorized_networks == ["203.0.113.0/24", "192.0.2.2/32"]
    assert lookup.used == {"lab"}
    assert marks(loaded.references, lookup.used) == [
        {"field": "tags.peer", "reference": "${output:lab.control_plane_endpoint}",
         "value": "known-after-lab-applies", "environment": "lab"},
        {"field": "kubernetes.authorized_networks[1]", "reference": "${output:lab.egress_cidrs}",
         "value": "192.0.2.2/32", "environment": "lab"}]
    result = render(loaded.model, get("aws"), tmp_path / "build")
    tfvars = (result.root / "terraform" / "terraform.tfvars.json").read_text()
    assert "192.0.2.2/32" in tfvars and "known-after-lab-applies" in tfvars
    edge = load(tmp_path / "edge.yaml", outputs_of=lookup)
    assert edge.model.node_pools[0].labels == {"vpc": "known-after-cloud-applies"}
    assert edge.model.tags == {"cluster": "known-after-cloud-applies", "api": "known-after-aks-applies"}
    # the longest environment name still gives a valid label value (at most 63 characters)
    long = "l" + "a" * 38
    (tmp_path / "long.yaml").write_text(EDGE.replace("cloud.", f"{long}.").replace("aks.", f"{long}."))
    assert load(tmp_path / "long.yaml", outputs_of=Placeholders(nothing, {long: "aws"})).model.node_pools[0].labels == {
        "vpc": f"known-after-{long}-applies"}
    # real outputs win; an environment outside the rollout has no placeholder
    real = {"lab": EnvOutputs({"control_plane_endpoint": "https://10.1.0.11:6443", "egress_cidrs": ["10.1.0.11/32"],
                               "host_addresses": ["10.1.0.11"]}, frozenset())}.get
    applied = Placeholders(real, {"lab": "baremetal"})
    assert load(tmp_path / "cloud.yaml", outputs_of=applied).model.tags == {"peer": "https://10.1.0.11:6443"}
    assert applied.used == set()
    with pytest.raises(BlueprintError, match="environment lab has no outputs here yet"):
        load(tmp_path / "cloud.yaml", outputs_of=Placeholders(nothing, {"cloud": "aws"}))


def test_only_a_plan_takes_placeholders(tmp_path: Path) -> None:
    from orchestrator.progress import Progress
    from orchestrator.stages import commands

    _project(tmp_path)
    lookup = Placeholders({}.get, {"lab": "baremetal"})
    quiet = Progress(stream=io.StringIO(), err_stream=io.StringIO(), interactive=False)
    for command in ("up", "down", "drift"):
        with pytest.raises(UsageError, match=f"infra {command} never uses placeholder outputs: only a plan does"):
            commands.build_context(tmp_path / "cloud.yaml", command, lambda plan: True, root=tmp_path,
                                   progress=quiet, outputs_of=lookup)
    ctx = commands.build_context(tmp_path / "cloud.yaml", "plan", lambda plan: True, root=tmp_path, progress=quiet,
                                 outputs_of=lookup)
    assert ctx.bp.tags == {"peer": "known-after-lab-applies"}
