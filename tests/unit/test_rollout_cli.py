"""``infra plan|up ROLLOUT`` through the real console script and the real per-environment run, on
bare-metal environments (no Terraform needed: their plan lists the hosts; their ``up`` reaches
Ansible, which finds nothing listening on 127.0.0.1 port 1 and fails with exit 4)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.blueprints import UNREACHABLE_LAB

INFRA = Path(sys.executable).with_name("infra")
LAB = UNREACHABLE_LAB
ROLLOUT = """rollout: 1
name: labs
environments:
  - path: lab-a.yaml
  - path: lab-b.yaml
    after: [lab-a]
  - path: lab-c.yaml
max_parallel: 2
on_failure: {policy}
"""


def _project(tmp_path: Path, policy: str = "stop") -> Path:
    for name in ("lab-a", "lab-b", "lab-c"):
        (tmp_path / f"{name}.yaml").write_text(LAB.format(name=name))
    (tmp_path / "rollout.yaml").write_text(ROLLOUT.format(policy=policy))
    return tmp_path


def _infra(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_")}
    env["COLUMNS"] = "200"
    return subprocess.run([str(INFRA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_plan_of_a_rollout_writes_a_record_per_environment_and_one_for_the_rollout(tmp_path: Path) -> None:
    _project(tmp_path)
    result = _infra(tmp_path, "plan", "rollout.yaml", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [(e["environment"], e["provider"], e["result"]) for e in doc["environments"]] == [
        ("lab-a", "baremetal", "success"), ("lab-b", "baremetal", "success"), ("lab-c", "baremetal", "success")]
    by = {e["environment"]: e for e in doc["environments"]}
    assert by["lab-b"]["started"] >= by["lab-a"]["finished"]
    for name, env in by.items():  # each environment: its own record, its own log (owner-only)
        [record] = list((tmp_path / ".infra" / "records" / name).glob("*.json"))
        assert json.loads(record.read_text())["id"] == env["record"]
        log = tmp_path / ".infra" / "logs" / "labs" / f"{name}.log"
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        assert "==> render" in log.read_text()
    rollout_record = json.loads(Path(doc["record"]).read_text())
    got = (rollout_record["rollout"], rollout_record["command"], rollout_record["outcome"])
    assert got == ("labs", "plan", "success")
    ids = [by[n]["record"] for n in ("lab-a", "lab-b", "lab-c")]
    assert [e["record"] for e in rollout_record["environments"]] == ids
    assert "[lab-a] starting" in result.stderr.splitlines()


def test_plan_markdown_is_a_pull_request_comment(tmp_path: Path) -> None:
    _project(tmp_path)
    result = _infra(tmp_path, "plan", "lab-a.yaml", "lab-c.yaml", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:5] == [
        "### infra plan: files (2 environments)", "",
        "| environment | provider | result | changes |", "|---|---|---|---|",
        "| `lab-a` | baremetal | ✅ success | - |"]
    assert "<details><summary><code>lab-c</code>: -</summary>" in result.stdout


def test_up_failure_stops_the_rollout_with_the_environments_exit_code(tmp_path: Path) -> None:
    _project(tmp_path, policy="stop")
    result = _infra(tmp_path, "up", "rollout.yaml", "--auto-approve")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in result.stdout.splitlines()
            if line.startswith("│")}
    assert rows == {"lab-a": "failed", "lab-b": "not-started", "lab-c": "failed"}
    assert not (tmp_path / ".infra" / "logs" / "labs" / "lab-b.log").exists()  # never started


def test_up_failure_with_continue_skips_only_the_dependents(tmp_path: Path) -> None:
    _project(tmp_path, policy="continue")
    result = _infra(tmp_path, "up", "rollout.yaml", "-y")
    assert result.returncode == 4
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in result.stdout.splitlines()
            if line.startswith("│")}
    assert rows == {"lab-a": "failed", "lab-b": "skipped", "lab-c": "failed"}


def test_sandbox_rollout_runs_bare_metal_environments_as_usual(tmp_path: Path) -> None:
    """--sandbox emulates clouds; bare metal has no cloud resources: its environments run against
    their hosts, in the ordinary workspace, and start no emulator."""
    _project(tmp_path)
    result = _infra(tmp_path, "plan", "rollout.yaml", "--sandbox", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert [(e["environment"], e["result"]) for e in doc["environments"]] == [
        ("lab-a", "success"), ("lab-b", "success"), ("lab-c", "success")]
    [record] = list((tmp_path / ".infra" / "records" / "lab-a").glob("*.json"))
    assert json.loads(record.read_text())["sandbox"] is False
    assert not (tmp_path / ".infra" / "sandbox").exists()


def test_drift_on_bare_metal_with_an_unreachable_host_exits_4_not_2(tmp_path: Path) -> None:
    _project(tmp_path)
    result = _infra(tmp_path, "drift", "lab-a.yaml", "--format", "json")
    assert result.returncode == 4, result.stdout + result.stderr
    [env] = json.loads(result.stdout)["environments"]
    assert (env["environment"], env["result"], env.get("drift")) == ("lab-a", "failed", None)
    assert env["error"].startswith("ansible: 1 of 1 host failed: node-1 unreachable at task '")
    [record] = list((tmp_path / ".infra" / "records" / "lab-a").glob("*.json"))
    assert (json.loads(record.read_text())["command"], json.loads(record.read_text())["outcome"]) == (
        "drift", "failed")
