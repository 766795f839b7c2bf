"""``--include``/``--exclude``/``--changed-since`` (orchestrator/rollout/select.py) on a real git
repository made in tmp_path: the selection is checked exactly, on bare-metal environments (their
plan needs no Terraform), through the library and through the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import paths
from orchestrator.blueprint.rollout import load_rollout
from orchestrator.errors import UsageError
from orchestrator.rollout.select import Selection, provider_sources, select, touched

INFRA = Path(sys.executable).with_name("infra")
LAB = """blueprint: 1
name: {name}
provider: baremetal
{extra}hosts:
  - {{name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane, worker]}}
"""
ROLLOUT = """rollout: 1
name: site
environments:
  - path: envs/net.yaml
  - path: envs/gpu.yaml
  - path: envs/train.yaml
    after: [net]
  - path: envs/serve.yaml
    after: [gpu]
"""
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **GIT_ENV})
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """net and gpu; train after net (and extends _base.yaml); serve after gpu, reading its output.
    First commit: all of it. Second commit: gpu's blueprint changes."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "_base.yaml").write_text("tags: {team: ml}\n")
    texts = {"net": "", "gpu": "", "train": "extends: _base.yaml\n",
             "serve": 'tags: {upstream: "${output:gpu.control_plane_endpoint}"}\n'}
    for name, extra in texts.items():
        (tmp_path / "envs" / f"{name}.yaml").write_text(LAB.format(name=name, extra=extra))
    (tmp_path / "rollout.yaml").write_text(ROLLOUT)
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "one")
    gpu = tmp_path / "envs" / "gpu.yaml"
    gpu.write_text(gpu.read_text().replace("port: 1,", "port: 2,"))
    _git(tmp_path, "commit", "-q", "-am", "two")
    return tmp_path


def _picked(repo: Path, **kw) -> dict[str, str]:
    return select(load_rollout(repo / "rollout.yaml"), Selection(**kw)).reasons


def test_changed_since_selects_what_a_commit_touched_and_its_dependents(repo: Path) -> None:
    chosen = select(load_rollout(repo / "rollout.yaml"), Selection(changed_since="HEAD~1"))
    assert chosen.reasons == {"gpu": "blueprint envs/gpu.yaml changed",
                              "serve": "depends on gpu (after gpu)"}
    assert chosen.left_out == ["net", "train"]
    assert [(e.name, e.after) for e in chosen.rollout.environments] == [("gpu", ()), ("serve", ("gpu",))]
    assert chosen.base == _git(repo, "rev-parse", "HEAD~1")
    assert _picked(repo, changed_since="HEAD") == {}  # nothing since HEAD: nothing to plan
    assert _picked(repo, changed_since="main") == {}


def test_uncommitted_changes_extends_bases_and_new_rollout_entries_count(repo: Path) -> None:
    (repo / "envs" / "_base.yaml").write_text("tags: {team: vision}\n")  # not committed: train extends it
    assert _picked(repo, changed_since="HEAD") == {"train": "extends envs/_base.yaml changed"}
    _git(repo, "checkout", "-q", "--", "envs/_base.yaml")
    (repo / "envs" / "edge.yaml").write_text(LAB.format(name="edge", extra=""))  # untracked, added to the rollout
    (repo / "rollout.yaml").write_text(ROLLOUT + "  - path: envs/edge.yaml\n    after: [net]\n")
    assert _picked(repo, changed_since="HEAD") == {"edge": "blueprint envs/edge.yaml changed"}
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "three")
    (repo / "rollout.yaml").write_text(ROLLOUT.replace("after: [gpu]", "after: [gpu, net]") +
                                       "  - path: envs/edge.yaml\n    after: [net]\n")
    assert _picked(repo, changed_since="HEAD") == {"serve": "its after: changed in the rollout file"}
    assert _picked(repo, changed_since="HEAD~1") == {  # the merge base's rollout file had no edge
        "serve": "its after: changed in the rollout file", "edge": "blueprint envs/edge.yaml changed"}


def test_the_provider_templates_an_environment_renders_from_select_it(tmp_path: Path) -> None:
    """Where the provider's Terraform module and templates are in the repository (this project's own
    work tree), a change under them touches every environment of that provider, and only those."""
    from orchestrator.blueprint.rollout import expand

    top = paths.asset_root()
    assert [str(p.relative_to(top)) for p in provider_sources("aws")] == [
        "terraform/modules/aws_gpu_cluster", "templates/terraform/aws", "templates/terraform/common",
        "templates/kubernetes"]
    assert [str(p.relative_to(top)) for p in provider_sources("baremetal")] == ["ansible", "templates/kubernetes"]
    (tmp_path / "cloud.yaml").write_text("blueprint: 1\nname: cloud\nprovider: aws\nregion: us-east-1\n"
                                         "network: {cidr: 10.20.0.0/16, zones: 2}\n"
                                         "node_pools: [{name: system, instance_type: m6i.large, min: 1, max: 2}]\n"
                                         "kubernetes: {private_access: {via: inside_network}}\n")
    (tmp_path / "lab.yaml").write_text(LAB.format(name="lab", extra=""))
    cloud, lab = expand([tmp_path / "cloud.yaml", tmp_path / "lab.yaml"]).environments
    module = {"terraform/modules/aws_gpu_cluster/network.tf", "terraform/modules/aws_gpu_cluster/main.tf"}
    assert touched(cloud, module, top) == "aws templates changed: terraform/modules/aws_gpu_cluster/main.tf and 1 more"
    assert touched(lab, module, top) is None
    assert touched(lab, {"ansible/site.yml"}, top) == "baremetal templates changed: ansible/site.yml"
    assert touched(cloud, {"templates/terraform/gcp/main.tf.j2", "docs/rollouts.md"}, top) is None


def test_include_and_exclude_patterns_keep_the_order_through_left_out_environments(repo: Path) -> None:
    assert _picked(repo, include=("*r*",)) == {"train": "matches --include *r*", "serve": "matches --include *r*"}
    chosen = select(load_rollout(repo / "rollout.yaml"), Selection(exclude=("gpu",)))
    assert list(chosen.reasons) == ["net", "train", "serve"]
    assert chosen.rollout.env("serve").after == ()  # gpu came after nothing
    with_chain = load_rollout(repo / "rollout.yaml")
    with_chain.env("gpu").after = ("net",)
    assert select(with_chain, Selection(exclude=("gpu",))).rollout.env("serve").after == ("net",)
    assert _picked(repo, changed_since="HEAD~1", exclude=("serve",)) == {"gpu": "blueprint envs/gpu.yaml changed"}
    assert _picked(repo, changed_since="HEAD~1", include=("s*",)) == {"serve": "depends on gpu (after gpu)"}
    with pytest.raises(UsageError, match=r"--include 'gpus' matches no environment of rollout site "
                                         r"\(environments: net, gpu, train, serve\)"):
        select(load_rollout(repo / "rollout.yaml"), Selection(include=("gpus",)))


def _infra(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    env.update(GIT_ENV, COLUMNS="200")
    return subprocess.run([str(INFRA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_plan_prints_the_selection_and_plans_only_it(repo: Path) -> None:
    result = _infra(repo, "plan", "rollout.yaml", "--changed-since", "HEAD~1", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert [(e["environment"], e["result"]) for e in doc["environments"]] == [("gpu", "success"),
                                                                              ("serve", "success")]
    assert doc["selection"]["selected"] == {"gpu": "blueprint envs/gpu.yaml changed",
                                            "serve": "depends on gpu (after gpu)"}
    assert doc["selection"]["not_selected"] == ["net", "train"]
    assert result.stderr.splitlines()[:4] == [
        f"selected 2 of 4 environments (changed since HEAD~1, from {doc['selection']['base'][:12]}):",
        "  gpu: blueprint envs/gpu.yaml changed", "  serve: depends on gpu (after gpu)",
        "not selected: net, train"]
    assert sorted(p.name for p in (repo / ".infra" / "records").iterdir()) == ["gpu", "serve"]
    md = _infra(repo, "plan", "rollout.yaml", "--changed-since", "HEAD~1", "--exclude", "serve", "--format", "markdown")
    assert md.returncode == 0, md.stderr
    assert md.stdout.splitlines()[0] == "### infra plan: site (1 environment)"
    assert "- `gpu`: blueprint envs/gpu.yaml changed" in md.stdout.splitlines()
    assert "Not selected: `net`, `train`, `serve`." in md.stdout.splitlines()
    one = _infra(repo, "validate", "rollout.yaml", "--include", "t*", "--output", "json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)[0]["selection"]["selected"] == {"train": "matches --include t*"}


def test_cli_errors_are_one_located_line_and_exit_2(repo: Path, tmp_path_factory) -> None:
    bad = _infra(repo, "plan", "rollout.yaml", "--changed-since", "no-such-branch")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[0] == f"error: --changed-since 'no-such-branch': no such revision in {repo}"
    assert "Traceback" not in bad.stderr and not (repo / ".infra").exists()
    with pytest.raises(UsageError, match="not a revision"):  # never an option of git's
        select(load_rollout(repo / "rollout.yaml"), Selection(changed_since="--output=/tmp/x"))
    typo = _infra(repo, "up", "rollout.yaml", "--include", "gpus", "-y")
    assert typo.returncode == 2 and typo.stderr.startswith("error: --include 'gpus' matches no environment")
    outside = tmp_path_factory.mktemp("no-git")
    (outside / "net.yaml").write_text(LAB.format(name="net", extra=""))
    got = _infra(outside, "plan", "net.yaml", "--changed-since", "HEAD")
    assert got.returncode == 2
    assert got.stderr.splitlines()[0] == f"error: --changed-since needs a git work tree: {outside} is not in one"
    assert _infra(outside, "validate", "net.yaml", "--include", "net").returncode == 2  # selection needs a rollout
