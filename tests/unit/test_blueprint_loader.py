"""Loading: defaults, positions, ``extends`` overlays, YAML-level errors, the data hash."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
import yaml

from orchestrator.blueprint.loader import data_sha256, load
from orchestrator.blueprint.models import GPU_TAINT
from orchestrator.errors import BlueprintError, Problem, UsageError
from tests.blueprints import with_way_in

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "blueprints"
VALID = """\
blueprint: 1
name: t-env
provider: aws
region: us-east-1
node_pools:
  - name: system
    instance_type: m6i.large
    min: 1
    max: 2
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(with_way_in(textwrap.dedent(text).lstrip("\n")))
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(BlueprintError) as info:
        load(path)
    return info.value.problems


# --- a valid blueprint --------------------------------------------------------------------------


def test_full_example_loads_with_defaults():
    path = FIXTURES / "full_aws.yaml"
    loaded = load(path)
    bp = loaded.model
    assert (bp.name, bp.provider, bp.region) == ("prod-us", "aws", "us-east-1")
    system, a100 = bp.node_pools
    assert (system.effective_desired, a100.effective_desired) == (2, 0)
    assert a100.desired is None
    assert a100.effective_taints == [GPU_TAINT]
    assert system.effective_taints == []
    assert a100.spot is False and system.spot is None
    assert bp.teams[0].namespace is None
    assert bp.teams[0].effective_namespace == "vision"
    assert bp.inference.models[0].replicas == 2
    assert (bp.state.backend, bp.state.bucket, bp.state.lock) == ("s3", "my-tf-state", True)
    assert bp.hosts == []
    assert bp.secrets["ssh_key"] == "${file:~/.ssh/id_ed25519}"


def test_loaded_blueprint_carries_path_files_data_and_hash():
    path = FIXTURES / "full_aws.yaml"
    loaded = load(path)
    data = yaml.safe_load(path.read_text())
    assert loaded.path == path.resolve()
    assert loaded.files == [path.resolve()]
    assert loaded.data == data
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert loaded.sha256 == hashlib.sha256(canonical.encode()).hexdigest()


def test_locate_points_at_values_and_collection_keys():
    path = FIXTURES / "full_aws.yaml"
    loaded = load(path)
    assert loaded.locate(("node_pools", 1, "gpu", "count")) == (str(path), 29, 30)
    assert loaded.locate(("node_pools", 1, "gpu")) == (str(path), 29, 5)
    assert loaded.locate(("node_pools", 1)) == (str(path), 27, 5)
    assert loaded.locate(("node_pools",)) == (str(path), 21, 1)
    assert loaded.locate(("region",)) == (str(path), 6, 9)
    # an absent value falls back to the nearest ancestor that was written
    assert loaded.locate(("node_pools", 1, "desired")) == (str(path), 27, 5)
    assert loaded.locate(("hosts",)) == (str(path), 3, 1)


def test_sha256_is_independent_of_key_order(tmp_path):
    reordered = "region: us-east-1\nnode_pools:\n"
    reordered += "  - {max: 2, min: 1, instance_type: m6i.large, name: system}\n"
    reordered += "provider: aws\nname: t-env\nblueprint: 1\n"
    one = load(write(tmp_path / "one.yaml", VALID))
    two = load(write(tmp_path / "two.yaml", reordered))
    three = load(write(tmp_path / "three.yaml", VALID.replace("max: 2", "max: 3")))
    assert one.sha256 == two.sha256 == data_sha256(one.data)
    assert three.sha256 != one.sha256


def test_yaml_anchors_and_merge_keys(tmp_path):
    text = VALID + (
        "  - &gpu\n"
        "    name: l4\n"
        "    instance_type: g6.xlarge\n"
        "    gpu: {type: l4, count: 1}\n"
        "    min: 0\n"
        "    max: 2\n"
        "  - <<: *gpu\n"
        "    name: l4-big\n"
        "    max: 4\n"
    )
    pools = load(write(tmp_path / "bp.yaml", text)).model.node_pools
    assert [(p.name, p.instance_type, p.max) for p in pools] == [
        ("system", "m6i.large", 2), ("l4", "g6.xlarge", 2), ("l4-big", "g6.xlarge", 4),
    ]


# --- extends ------------------------------------------------------------------------------------


def test_extends_deep_merges_maps_and_replaces_lists():
    base, prod = FIXTURES / "extends" / "base.yaml", FIXTURES / "extends" / "prod.yaml"
    loaded = load(prod)
    assert "extends" not in loaded.data
    assert loaded.files == [prod.resolve(), base.resolve()]
    assert loaded.data["tags"] == {"cost-center": "ml", "owner": "ml-infra"}
    assert loaded.data["kubernetes"] == {
        "version": "1.35", "public_endpoint": True, "authorized_networks": ["203.0.113.0/24"],
    }
    assert [p["name"] for p in loaded.data["node_pools"]] == ["h100"]
    bp = loaded.model
    assert (bp.name, bp.region, bp.teams[0].gpu_quota) == ("prod-eu", "eu-west-1", 8)


def test_extends_locations_come_from_the_file_that_wrote_the_value():
    base, prod = FIXTURES / "extends" / "base.yaml", FIXTURES / "extends" / "prod.yaml"
    loaded = load(prod)
    base_name = str(base)
    assert loaded.locate(("kubernetes", "version")) == (str(prod), 6, 12)
    assert loaded.locate(("kubernetes", "public_endpoint")) == (base_name, 8, 20)
    assert loaded.locate(("tags", "cost-center")) == (base_name, 5, 21)
    assert loaded.locate(("tags", "owner")) == (str(prod), 4, 15)
    assert loaded.locate(("teams", 0, "gpu_quota")) == (base_name, 17, 16)
    assert loaded.locate(("node_pools", 0, "gpu", "count")) == (str(prod), 10, 30)


def test_error_in_inherited_value_points_at_base_file(tmp_path, monkeypatch):
    monkeypatch.setenv("INFRA_BLUEPRINT_ROOT", str(tmp_path))  # a declared root: base.yaml is above envs/
    write(tmp_path / "base.yaml", VALID + "  - {name: a100, instance_type: p4d.24xlarge, min: 0, max: 1}\n")
    child = write(tmp_path / "envs" / "child.yaml", "extends: ../base.yaml\nname: child\n")
    problems = problems_of(child)
    assert [(p.file, p.line, p.column, p.path) for p in problems] == [
        (str(tmp_path / "base.yaml"), 10, 33, "node_pools[1].instance_type"),
    ]
    assert problems[0].message == "p4d.24xlarge has 8 x a100 GPUs: add gpu: {type: a100, count: 8}"


def test_model_error_in_base_and_child_are_both_located(tmp_path, monkeypatch):
    monkeypatch.setenv("INFRA_BLUEPRINT_ROOT", str(tmp_path))  # a declared root: base.yaml is above envs/
    write(tmp_path / "base.yaml", VALID.replace("min: 1", "min: -1"))
    child = write(tmp_path / "envs" / "child.yaml", "extends: ../base.yaml\nname: child\nsurprise: 1\n")
    problems = problems_of(child)
    assert [(p.file, p.line, p.column, p.path) for p in problems] == [
        (str(tmp_path / "base.yaml"), 8, 10, "node_pools[0].min"),
        (str(child), 3, 1, "surprise"),
    ]
    assert problems[1].message == (
        "unknown field 'surprise' (allowed: blueprint, name, provider, region, tags, kubernetes, network, "
        "node_pools, hosts, teams, inference, state, access, secrets, overcommit, burst_from, extends)"
    )


def test_extends_chain_of_three(tmp_path):
    write(tmp_path / "c.yaml", VALID)
    write(tmp_path / "b.yaml", "extends: c.yaml\ntags: {a: '1'}\n")
    top = write(tmp_path / "a.yaml", "extends: b.yaml\ntags: {b: '2'}\nname: a-env\n")
    loaded = load(top)
    assert loaded.data["tags"] == {"a": "1", "b": "2"}
    assert loaded.model.name == "a-env"
    assert loaded.files == [top.resolve(), (tmp_path / "b.yaml").resolve(), (tmp_path / "c.yaml").resolve()]


def test_extends_cycle_is_an_error_naming_the_chain(tmp_path):
    a = write(tmp_path / "a.yaml", "extends: b.yaml\nname: a-env\n")
    write(tmp_path / "b.yaml", "name: b-env\nextends: a.yaml\n")
    problems = problems_of(a)
    located = [(p.file, p.line, p.column, p.path) for p in problems]
    assert located == [(str(tmp_path / "b.yaml"), 2, 10, "extends")]
    assert problems[0].message == f"extends cycle: {a} -> {tmp_path / 'b.yaml'} -> {a}"


def test_extends_itself_is_a_cycle(tmp_path):
    a = write(tmp_path / "a.yaml", "extends: ./a.yaml\n")
    problems = problems_of(a)
    assert [(p.line, p.column, p.message) for p in problems] == [(1, 10, f"extends cycle: {a} -> {a}")]


def test_extends_missing_file_is_located_at_extends(tmp_path):
    a = write(tmp_path / "a.yaml", "name: a-env\nextends: nope.yaml\n")
    problems = problems_of(a)
    assert [(p.line, p.column, p.path, p.message) for p in problems] == [
        (2, 10, "extends", f"cannot read {tmp_path / 'nope.yaml'}: file not found"),
    ]


def test_extends_must_be_a_path(tmp_path):
    problems = problems_of(write(tmp_path / "a.yaml", "extends: [base.yaml]\n"))
    assert [(p.line, p.column, p.path) for p in problems] == [(1, 1, "extends")]


# --- YAML-level problems ------------------------------------------------------------------------


def test_duplicate_key_in_nested_mapping(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID + 'kubernetes:\n  version: "1.34"\n  version: "1.35"\n')
    problems = problems_of(path)
    assert [(p.line, p.column, p.path, p.message) for p in problems] == [
        (12, 3, "kubernetes.version", "duplicate key 'version' (first given on line 11)"),
    ]


def test_yaml_syntax_error_location(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID + "  - name: gpu\n   min: 1\n")
    problems = problems_of(path)
    assert [(p.file, p.line, p.column, p.path) for p in problems] == [(str(path), 11, 4, "")]
    assert problems[0].message.startswith("invalid YAML: ")


def test_tab_indentation_is_a_syntax_error(tmp_path):
    path = write(tmp_path / "bp.yaml", "blueprint: 1\n\tname: x\n")
    problems = problems_of(path)
    assert [(p.line, p.column) for p in problems] == [(2, 1)]
    assert "found character '\\t' that cannot start any token" in problems[0].message


def test_empty_file_is_not_a_blueprint(tmp_path):
    problems = problems_of(write(tmp_path / "bp.yaml", "# nothing here\n"))
    assert [(p.line, p.column, p.message) for p in problems] == [
        (1, 1, "a blueprint must be a mapping of keys to values"),
    ]


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        load(tmp_path / "absent.yaml")
    assert info.value.message == f"cannot read blueprint {tmp_path / 'absent.yaml'}: file not found"
    assert info.value.exit_code == 2


def test_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        load(tmp_path)
    assert str(tmp_path) in info.value.message
