"""Rollout files: the loader's located problems (cycle, unknown ``after:``), the order (graph), and
the CLI on rollout files, folders and several files (validate, render, graph) without Terraform."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.blueprint.rollout import expand, is_rollout, load_rollout
from orchestrator.errors import BlueprintError, UsageError
from orchestrator.rollout import graph

INFRA = Path(sys.executable).with_name("infra")
BP = """blueprint: 1
name: {name}
provider: aws
region: us-east-1
network: {{cidr: 10.20.0.0/16, zones: 2}}
node_pools:
  - {{name: system, instance_type: m6i.large, min: 1, max: 2}}
kubernetes: {{private_access: {{via: inside_network}}}}
"""
LAB = """blueprint: 1
name: {name}
provider: baremetal
hosts:
  - {{name: node-1, address: 10.1.0.11, roles: [control_plane, worker]}}
"""


def _project(tmp_path: Path, rollout: str, names: dict[str, str]) -> Path:
    for name, kind in names.items():
        (tmp_path / f"{name}.yaml").write_text((LAB if kind == "baremetal" else BP).format(name=name))
    (tmp_path / "rollout.yaml").write_text(rollout)
    return tmp_path / "rollout.yaml"


def _infra(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    return subprocess.run([str(INFRA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


HYBRID = """rollout: 1
name: hybrid
environments:
  - path: onprem.yaml
  - path: burst-a.yaml
    after: [onprem]
  - path: burst-b.yaml
max_parallel: 2
on_failure: continue
"""


def test_a_rollout_loads_with_its_order(tmp_path: Path) -> None:
    path = _project(tmp_path, HYBRID, {"onprem": "baremetal", "burst-a": "aws", "burst-b": "aws"})
    assert is_rollout(path) and not is_rollout(tmp_path / "onprem.yaml")
    ro = load_rollout(path)
    assert (ro.name, ro.max_parallel, ro.on_failure) == ("hybrid", 2, "continue")
    assert [(e.name, e.provider, e.after) for e in ro.environments] == [
        ("onprem", "baremetal", ()), ("burst-a", "aws", ("onprem",)), ("burst-b", "aws", ())]
    assert graph.waves(ro) == [["burst-b", "onprem"], ["burst-a"]]
    assert graph.waves(ro, reverse=True) == [["burst-a", "burst-b"], ["onprem"]]
    assert graph.mermaid(ro).splitlines()[-1] == "  onprem --> burst_a"


def test_a_cycle_is_a_located_problem_naming_both_environments(tmp_path: Path) -> None:
    text = ("rollout: 1\nname: loop\nenvironments:\n  - path: a.yaml\n    after: [bb]\n"
            "  - path: b.yaml\n    after: [aa]\n")
    (tmp_path / "a.yaml").write_text(BP.format(name="aa"))
    (tmp_path / "b.yaml").write_text(BP.format(name="bb"))
    (tmp_path / "rollout.yaml").write_text(text)
    with pytest.raises(BlueprintError) as err:
        load_rollout(tmp_path / "rollout.yaml")
    [problem] = err.value.problems
    assert (problem.line, problem.column, problem.path) == (5, 13, "environments[0].after[0]")
    assert "dependency cycle: aa after bb after aa" in problem.message
    result = _infra(tmp_path, "validate", "rollout.yaml")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith("rollout.yaml:5:13 environments[0].after[0]: dependency cycle")
    assert "Traceback" not in result.stderr
    plan = _infra(tmp_path, "plan", "rollout.yaml")
    assert plan.returncode == 2 and "environment aa and environment bb" in plan.stderr
    assert not (tmp_path / ".infra").exists() and not (tmp_path / "build").exists()


def test_unknown_after_and_bad_fields_are_all_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = ("rollout: 1\nname: Bad\nenvironments:\n  - path: a.yaml\n    after: [ghost]\n"
            "  - path: missing.yaml\nmax_parallel: 0\non_failure: retry\nextra: 1\n")
    (tmp_path / "a.yaml").write_text(BP.format(name="aa"))
    (tmp_path / "rollout.yaml").write_text(text)
    with pytest.raises(BlueprintError) as err:
        load_rollout("rollout.yaml")
    got = [str(p).split(": ", 1)[0] for p in err.value.problems]
    assert got == ["rollout.yaml:2:7 name", "rollout.yaml:5:13 environments[0].after[0]",
                   "rollout.yaml:6:11 path", "rollout.yaml:7:15 max_parallel",
                   "rollout.yaml:8:13 on_failure", "rollout.yaml:9:1 extra"]
    assert "after names ghost, which is not in this rollout" in str(err.value.problems[1])


def test_a_problem_in_a_named_blueprint_points_into_that_blueprint(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text(BP.format(name="aa").replace("min: 1", "min: -1"))
    (tmp_path / "rollout.yaml").write_text("rollout: 1\nname: one\nenvironments:\n  - path: a.yaml\n")
    with pytest.raises(BlueprintError) as err:
        load_rollout("rollout.yaml")
    assert str(err.value.problems[0]).startswith("a.yaml:7:")


def test_folders_and_files_expand_to_independent_environments(tmp_path: Path) -> None:
    _project(tmp_path, HYBRID, {"onprem": "baremetal", "burst-a": "aws", "burst-b": "aws"})
    (tmp_path / "_base.yaml").write_text("provider: aws\n")  # a base for extends: not an environment
    ro = expand([tmp_path])
    assert [e.name for e in ro.environments] == ["burst-a", "burst-b", "onprem"]
    assert all(e.after == () for e in ro.environments)
    with pytest.raises(UsageError):
        expand([tmp_path / "onprem.yaml", tmp_path / "rollout.yaml"])
    with pytest.raises(BlueprintError) as err:  # the same environment twice
        expand([tmp_path / "onprem.yaml", tmp_path / "onprem.yaml"])
    assert "environment onprem appears twice" in err.value.problems[0].message


def test_cli_validate_render_and_graph_take_a_rollout(tmp_path: Path) -> None:
    _project(tmp_path, HYBRID, {"onprem": "baremetal", "burst-a": "aws", "burst-b": "aws"})
    result = _infra(tmp_path, "validate", "rollout.yaml", ".")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ok: rollout hybrid (onprem, burst-a, burst-b)",
                                          "ok: burst-a", "ok: burst-b", "ok: onprem"]
    result = _infra(tmp_path, "render", "rollout.yaml")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["burst-a", "burst-b", "onprem"]
    result = _infra(tmp_path, "graph", "rollout.yaml")
    assert result.stdout.splitlines() == [
        "rollout hybrid (max_parallel 2, on_failure continue)",
        "  1. burst-b (aws)", "  1. onprem (baremetal)", "  2. burst-a (aws)  after onprem"]
    result = _infra(tmp_path, "graph", "rollout.yaml", "--format", "mermaid")
    assert "  onprem --> burst_a" in result.stdout.splitlines()


def test_init_writes_a_repository_that_validates(tmp_path: Path) -> None:
    import yaml

    result = _infra(tmp_path, "init", "repo")
    assert result.returncode == 0, result.stderr
    repo = tmp_path / "repo"
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()) == [
        ".github/actionlint.yaml", ".github/workflows/infra.yml", ".gitignore", "README.md", "blueprints/dev.yaml",
        "blueprints/prod.yaml", "rollout.yaml"]
    assert (repo / ".gitignore").read_text().splitlines()[-1] == ".infra/"
    result = _infra(repo, "validate", "rollout.yaml", "blueprints")
    assert (result.returncode, result.stdout.splitlines()) == (0, ["ok: rollout platform (dev, prod)", "ok: dev",
                                                                   "ok: prod"])
    flow = yaml.safe_load((repo / ".github" / "workflows" / "infra.yml").read_text())
    runs = {job: [s.get("run", "") for s in spec["steps"]] for job, spec in flow["jobs"].items()}
    assert "infra validate rollout.yaml" in runs["plan"]
    assert "infra plan rollout.yaml --out plans --format markdown > plan.md" in runs["plan-main"]
    assert "infra up rollout.yaml --plan plans --auto-approve" in runs["apply"]  # tests/unit/test_gitops_scaffold.py
    again = _infra(tmp_path, "init", "repo")
    assert again.returncode == 2 and "exists already; nothing written" in again.stderr
