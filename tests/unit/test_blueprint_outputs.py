"""``${output:ENV.NAME}`` (orchestrator/blueprint/outputs.py): one environment's outputs as values of
another's blueprint, resolved by plan/up from the project's outputs, located errors otherwise, and
the rollout order they imply. Every expected value is a literal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.blueprint.outputs import EnvOutputs
from orchestrator.blueprint.rollout import load_rollout
from orchestrator.errors import BlueprintError
from orchestrator.stages.commands import outputs_lookup

INFRA = Path(sys.executable).with_name("infra")
BURST = """blueprint: 1
name: burst
provider: aws
region: us-east-1
tags: {{cost-center: ml, peer: "{tag}"}}
kubernetes:
  public_endpoint: true
  authorized_networks: ["203.0.113.0/24", "{cidr}"]
network: {{cidr: 10.31.0.0/16, zones: 2}}
node_pools:
  - {{name: system, instance_type: m6i.large, min: 1, max: 3}}
"""
ONPREM = EnvOutputs({"endpoint": "https://10.1.0.11:6443", "egress_cidr": "198.51.100.0/24",
                     "ca": "Y2E=", "pools": ["a", "b"]}, frozenset({"ca"}))


def _write(tmp_path: Path, tag: str = "${output:onprem.endpoint}", cidr: str = "${output:onprem.egress_cidr}",
           name: str = "burst.yaml") -> Path:
    path = tmp_path / name
    path.write_text(BURST.format(tag=tag, cidr=cidr))
    return path


def _problems(path: Path, lookup) -> list[str]:
    with pytest.raises(BlueprintError) as info:
        load(path, outputs_of=lookup)
    return [f"{p.line}:{p.column} {p.path}: {p.message}" for p in info.value.problems]


def test_references_resolve_to_the_other_environments_outputs(tmp_path: Path) -> None:
    loaded = load(_write(tmp_path), outputs_of={"onprem": ONPREM}.get)
    assert loaded.model.tags == {"cost-center": "ml", "peer": "https://10.1.0.11:6443"}
    assert loaded.model.kubernetes.authorized_networks == ["203.0.113.0/24", "198.51.100.0/24"]
    assert [r.text for r in loaded.references] == ["${output:onprem.endpoint}", "${output:onprem.egress_cidr}"]


def test_without_a_lookup_the_references_are_left_out(tmp_path: Path) -> None:
    loaded = load(_write(tmp_path))  # validate, a rollout's order: the rest of the blueprint only
    assert loaded.model.tags == {"cost-center": "ml"}
    assert loaded.model.kubernetes.authorized_networks == ["203.0.113.0/24"]
    assert len(loaded.references) == 2


def test_a_reference_alone_in_authorized_networks_satisfies_public_endpoint_until_it_resolves(tmp_path: Path) -> None:
    """validate and a rollout's order leave the reference out; the list it fills at run time is not
    "missing" then. Resolved to an empty list, it is (the endpoint would be open to no one)."""
    path = tmp_path / "burst.yaml"
    path.write_text(BURST.format(tag="t", cidr="${output:lab.egress_cidrs}").replace('"203.0.113.0/24", ', ""))
    assert load(path).model.kubernetes.authorized_networks == []
    assert load(path, outputs_of={"lab": EnvOutputs({"egress_cidrs": ["192.0.2.10/32"]}, frozenset())}.get
                ).model.kubernetes.authorized_networks == ["192.0.2.10/32"]
    assert _problems(path, {"lab": EnvOutputs({"egress_cidrs": []}, frozenset())}.get) == [
        "7:20 kubernetes.public_endpoint: true requires kubernetes.authorized_networks (the CIDRs allowed to "
        "reach the API)"]


def test_unknown_environment_output_and_sensitive_output_are_located_errors(tmp_path: Path) -> None:
    assert _problems(_write(tmp_path), {}.get) == [
        "5:31 tags.peer: ${output:onprem.endpoint}: environment onprem has no outputs here yet "
        "(run `infra up` on it first; in a rollout, list it in after:)",
        "8:43 kubernetes.authorized_networks[1]: ${output:onprem.egress_cidr}: environment onprem has no "
        "outputs here yet (run `infra up` on it first; in a rollout, list it in after:)",
    ]
    path = _write(tmp_path, tag="${output:onprem.nope}", cidr="${output:onprem.ca}")
    problems = _problems(path, {"onprem": ONPREM}.get)
    assert problems == [
        "5:31 tags.peer: ${output:onprem.nope}: environment onprem has no output nope "
        "(it has: ca, egress_cidr, endpoint, pools)",
        "8:43 kubernetes.authorized_networks[1]: ${output:onprem.ca} is sensitive (or of unknown "
        "sensitivity): it is never copied into another blueprint",
    ]
    assert "Y2E=" not in " ".join(problems)
    assert _problems(_write(tmp_path, tag="${output:onprem.pools}"), {"onprem": ONPREM}.get) == [
        "5:31 tags.peer: ${output:onprem.pools} is a list, not a single value "
        "(a list fits only in kubernetes.authorized_networks[])"]


def test_a_resolved_value_is_validated_where_the_reference_was_written(tmp_path: Path) -> None:
    path = _write(tmp_path, cidr="${output:onprem.endpoint}")
    [problem] = _problems(path, {"onprem": ONPREM}.get)
    assert problem.startswith("8:43 kubernetes.authorized_networks[1]: ")


def test_misplaced_or_partial_references_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BURST.format(tag="x-${output:onprem.endpoint}", cidr="10.9.0.0/16").replace(
        "region: us-east-1", "region: ${output:onprem.region}"))
    assert _problems(path, {"onprem": ONPREM}.get) == [
        "4:9 region: an output reference is allowed only in tags.<key>, node_pools[].labels.<key> "
        "and kubernetes.authorized_networks[]",
        "5:31 tags.peer: an output reference is a whole value: ${output:ENVIRONMENT.OUTPUT}",
    ]


def test_the_lookup_reads_outputs_and_their_sensitivity_from_the_project(tmp_path: Path) -> None:
    env_dir = tmp_path / ".infra" / "sandbox" / "onprem"
    env_dir.mkdir(parents=True)
    (env_dir / "outputs.json").write_text(json.dumps({"endpoint": "https://x", "ca": "Y2E="}))
    lookup = outputs_lookup(tmp_path, sandbox=True)
    assert lookup("onprem") == EnvOutputs({"endpoint": "https://x", "ca": "Y2E="}, frozenset({"endpoint", "ca"}))
    (env_dir / "outputs-sensitive.json").write_text('["ca"]\n')
    assert lookup("onprem").sensitive == frozenset({"ca"})
    assert lookup("other") is None and outputs_lookup(tmp_path, sandbox=False)("onprem") is None


ROLLOUT = """rollout: 1
name: hybrid
environments:
  - path: onprem.yaml
  - path: mid.yaml{mid_after}
  - path: burst.yaml
    after: [{after}]
"""
LAB = """blueprint: 1
name: {name}
provider: baremetal
hosts:
  - {{name: node-1, address: 127.0.0.1, roles: [control_plane, worker]}}
"""


def _rollout(tmp_path: Path, after: str, mid_after: str = "") -> Path:
    for name in ("onprem", "mid"):
        (tmp_path / f"{name}.yaml").write_text(LAB.format(name=name))
    _write(tmp_path, tag="${output:onprem.control_plane_endpoint}", cidr="${output:onprem.egress_cidrs}")
    (tmp_path / "rollout.yaml").write_text(ROLLOUT.format(after=after, mid_after=mid_after))
    return tmp_path / "rollout.yaml"


def test_a_rollout_environment_reading_another_must_come_after_it(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError) as info:
        load_rollout(_rollout(tmp_path, after="mid"))
    assert [f"{p.file.rsplit('/', 1)[-1]}:{p.line}:{p.column} {p.path}: {p.message}" for p in info.value.problems] == [
        "burst.yaml:5:31 tags.peer: environment burst reads ${output:onprem.control_plane_endpoint} but does not "
        "come after onprem: add onprem to its after: in the rollout file",
        "burst.yaml:8:43 kubernetes.authorized_networks[1]: environment burst reads ${output:onprem.egress_cidrs} "
        "but does not come after onprem: add onprem to its after: in the rollout file",
    ]
    assert [e.name for e in load_rollout(_rollout(tmp_path, after="onprem")).environments] == ["onprem", "mid", "burst"]
    transitive = _rollout(tmp_path, after="mid", mid_after="\n    after: [onprem]")
    assert load_rollout(transitive).env("burst").after == ("mid",)


def test_plan_of_a_blueprint_whose_reference_cannot_resolve_exits_2_and_names_it(tmp_path: Path) -> None:
    _write(tmp_path)
    proc = subprocess.run([str(INFRA), "plan", "burst.yaml", "--sandbox"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "burst.yaml:5:31 tags.peer: ${output:onprem.endpoint}: environment onprem has no outputs" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / ".infra" / "sandbox" / "server.json").exists()
