"""``infra plan ROLLOUT`` when an environment reads an output of one not applied yet: placeholders,
marked in the text, markdown and JSON reports, exit 0; ``up`` refuses to apply without the real
outputs. The real console script and rollout engine on bare-metal environments (their plan lists
the hosts: no Terraform), with an AWS environment of the rollout left out of the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

INFRA = Path(sys.executable).with_name("infra")
LAB = """blueprint: 1
name: lab
provider: baremetal
hosts:
  - {name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane, worker]}
"""
CLOUD = """blueprint: 1
name: cloud
provider: aws
region: us-east-1
network: {cidr: 10.20.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
kubernetes: {public_endpoint: true, authorized_networks: ["${output:lab.egress_cidrs}"]}
"""
EDGE = """blueprint: 1
name: edge
provider: baremetal
tags: {upstream: "${output:lab.control_plane_endpoint}", cluster: "${output:cloud.cluster_name}"}
node_pools:
  - {name: general, labels: {vpc: "${output:cloud.vpc_id}"}}
hosts:
  - {name: node-1, address: 127.0.0.2, port: 1, roles: [control_plane, worker], pool: general}
"""
ROLLOUT = """rollout: 1
name: hybrid
environments:
  - path: lab.yaml
  - path: cloud.yaml
    after: [lab]
  - path: edge.yaml
    after: [lab, cloud]
"""


def _project(tmp_path: Path) -> Path:
    for name, text in {"lab": LAB, "cloud": CLOUD, "edge": EDGE, "rollout": ROLLOUT}.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def _infra(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    env["COLUMNS"] = "200"
    return subprocess.run([str(INFRA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_plan_of_a_new_dependent_uses_placeholders_marked_in_the_markdown(tmp_path: Path) -> None:
    """lab plans first; edge then reads lab (planned, never applied) and cloud (not in this run)."""
    _project(tmp_path)
    result = _infra(tmp_path, "plan", "rollout.yaml", "--exclude", "cloud", "--format", "markdown")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:6] == [
        "### infra plan: hybrid (2 environments)", "",
        "| environment | provider | result | changes |", "|---|---|---|---|",
        "| `lab` | baremetal | ✅ success | - |",
        "| `edge` | baremetal | ✅ success | - (with 3 placeholders) |"]
    assert "<details><summary><code>edge</code>: - (with 3 placeholders)</summary>" in lines
    assert [line for line in lines if line.startswith("- placeholder:")] == [
        "- placeholder: `tags.upstream` = `known-after-lab-applies` for `${output:lab.control_plane_endpoint}` "
        "(lab has no outputs yet)",
        "- placeholder: `tags.cluster` = `known-after-cloud-applies` for `${output:cloud.cluster_name}` "
        "(cloud has no outputs yet)",
        "- placeholder: `node_pools[0].labels.vpc` = `known-after-cloud-applies` for `${output:cloud.vpc_id}` "
        "(cloud has no outputs yet)"]
    log = (tmp_path / ".infra" / "logs" / "hybrid" / "edge.log").read_text()
    assert "warning: placeholder: tags.upstream = known-after-lab-applies (${output:lab.control_plane_endpoint}: " \
           "lab has no outputs yet)" in log


def test_text_and_json_mark_them_and_real_outputs_replace_them(tmp_path: Path) -> None:
    from orchestrator.blueprint.loader import load
    from orchestrator.progress import Progress
    from orchestrator.providers.registry import get
    from orchestrator.records import RunRecord
    from orchestrator.stages.configure import save_exported_outputs
    from orchestrator.stages.context import Context, RunState
    from orchestrator.workspace import Workspace

    _project(tmp_path)
    text = _infra(tmp_path, "plan", "rollout.yaml", "--include", "edge")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "edge: placeholder: node_pools[0].labels.vpc = known-after-cloud-applies for ${output:cloud.vpc_id} " \
           "(cloud has no outputs yet)" in text.stdout.splitlines()
    # lab configured: what a successful configure saves, saved by the real function
    loaded = load(tmp_path / "lab.yaml")
    save_exported_outputs(Context(
        loaded=loaded, provider=get("baremetal"), ws=Workspace(root=tmp_path, name="lab"),
        progress=Progress(interactive=False), confirm=lambda plan: False,
        state=RunState(record=RunRecord(env="lab", command="up", blueprint_path=None, blueprint_sha256=None))))
    doc = _infra(tmp_path, "plan", "rollout.yaml", "--include", "edge", "--format", "json")
    assert doc.returncode == 0, doc.stderr
    [edge] = json.loads(doc.stdout)["environments"]
    assert edge["placeholders"] == [
        {"field": "tags.cluster", "reference": "${output:cloud.cluster_name}", "value": "known-after-cloud-applies",
         "environment": "cloud"},
        {"field": "node_pools[0].labels.vpc", "reference": "${output:cloud.vpc_id}",
         "value": "known-after-cloud-applies", "environment": "cloud"}]
    [record] = [json.loads(p.read_text()) for p in (tmp_path / ".infra" / "rollouts" / "hybrid").glob("*.json")
                if json.loads(p.read_text())["environments"][0].get("placeholders") == edge["placeholders"]]
    assert record["command"] == "plan"


def test_up_refuses_without_the_real_outputs(tmp_path: Path) -> None:
    _project(tmp_path)
    result = _infra(tmp_path, "up", "rollout.yaml", "--include", "edge", "--auto-approve")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "[edge] failed: edge.yaml:4:18 tags.upstream: ${output:lab.control_plane_endpoint}: environment lab " \
           "has no outputs here yet" in result.stdout
    assert "placeholder" not in result.stdout + result.stderr
    assert not (tmp_path / ".infra" / "records" / "edge").exists()  # refused before anything ran
