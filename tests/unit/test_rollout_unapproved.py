"""Two rollout edges: ``infra up|down ROLLOUT`` without ``--auto-approve`` is refused before anything is
planned (its environments run in parallel: none can be asked), and an environment whose apply failed
shows what was applied of what was planned, never "-"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestrator.engines.tfjson import ApplyCollector
from orchestrator.errors import TerraformError
from orchestrator.progress import Progress
from orchestrator.rollout import report
from orchestrator.rollout.runner import failed_changes
from orchestrator.rollout.scheduler import EnvResult
from orchestrator.stages import commands

INFRA = Path(sys.executable).with_name("infra")
LAB = """blueprint: 1
name: {name}
provider: baremetal
hosts:
  - {{name: node-1, address: 127.0.0.1, port: 1, roles: [control_plane, worker]}}
"""


def _infra(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    return subprocess.run([str(INFRA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_up_and_down_of_a_rollout_without_auto_approve_refuse_before_planning(tmp_path: Path) -> None:
    for name in ("lab-a", "lab-b"):
        (tmp_path / f"{name}.yaml").write_text(LAB.format(name=name))
    (tmp_path / "rollout.yaml").write_text("rollout: 1\nname: labs\nenvironments:\n  - path: lab-a.yaml\n"
                                           "  - path: lab-b.yaml\n")
    for command, verb in (("up", "apply"), ("down", "destroy")):
        result = _infra(tmp_path, command, "rollout.yaml")
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[0] == (f"error: refusing to {verb} rollout labs (2 environments) without --auto-approve: its "
                            "environments run in parallel and are not asked one by one; nothing was planned")
        assert lines[1].startswith("hint: review `infra plan rollout.yaml` first, then run with --auto-approve")
        assert not (tmp_path / ".infra" / "records").exists()  # nothing ran, nothing recorded
    result = _infra(tmp_path, "up", "rollout.yaml", "--include", "lab-b")
    assert result.returncode == 2 and "rollout labs (1 environment) without" in result.stderr


def test_a_failed_apply_shows_what_was_applied_of_what_was_planned(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LAB.format(name="lab"))
    ctx = commands.build_context(tmp_path / "lab.yaml", "up", lambda plan: True, root=tmp_path)
    ctx.state.record.plan = {"has_changes": True, "add": 59, "change": 1, "destroy": 0, "by_type": {}}
    collector = ApplyCollector(Progress(quiet=True))
    for addr, action in (("aws_vpc.this", "create"), ("aws_subnet.a", "create"), ("aws_iam_role.x", "update")):
        collector.feed({"type": "apply_complete", "hook": {"resource": {"addr": addr}, "action": action}})
    collector.feed({"type": "apply_errored", "hook": {"resource": {"addr": "aws_eks_cluster.this"}}})
    failed = TerraformError("terraform apply failed at aws_eks_cluster.this")
    failed.result = collector.result  # as TerraformEngine.apply attaches it
    changes = failed_changes(ctx, "up", failed)
    assert changes["applied"] == {"add": 2, "change": 1, "destroy": 0}
    row = report.rows([EnvResult("lab", "aws", "failed", changes=changes)])[0]
    assert row[4] == "+2 ~1 -0 applied of +59 ~1 -0 planned"
    before = failed_changes(ctx, "up", TerraformError("state lock"))  # failed before its apply
    assert report.changes_text(EnvResult("lab", "aws", "failed", changes=before)) == "+59 ~1 -0 planned, not applied"
    assert "applied" not in failed_changes(ctx, "plan", failed)
    ctx.state.applied = True  # the apply finished, a later stage failed: the plan is what was applied
    assert report.changes_text(EnvResult("lab", "aws", "failed", changes=failed_changes(ctx, "up", failed))) == \
        "+59 ~1 -0"
