"""``kill -9`` of infra during ``infra up``: Terraform does not outlive it, and the next run converges."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
INFRA = str(Path(sys.executable).with_name("infra"))

BLUEPRINT = """\
blueprint: 1
name: orph
provider: aws
region: us-east-1
network: {cidr: 10.31.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
kubernetes: {private_access: {via: inside_network}}
"""


def terraform_pids(root: Path) -> set[int]:
    """Terraform and its provider plugins working in ``root`` (found in /proc, not in infra's notes)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if "terraform" in Path(exe).name and Path(cwd).is_relative_to(root):
            found.add(int(entry.name))
    return found


def test_sigkill_during_apply_stops_terraform_and_the_next_run_converges(tmp_path, tf_mirror):
    root = tmp_path.resolve()
    (root / "bp.yaml").write_text(BLUEPRINT)
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror}
    run = ["up", "--sandbox", "--auto-approve", "bp.yaml"]
    try:
        proc = subprocess.Popen(
            [INFRA, *run], cwd=root, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        out = []
        for line in proc.stdout:
            out.append(line)
            if "created" in line:  # terraform is applying: a resource is done, others are pending
                break
        applying = terraform_pids(root)
        assert applying, "".join(out)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL

        deadline = time.monotonic() + 5  # a liveness bound: terraform must not keep applying
        while terraform_pids(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not terraform_pids(root), f"terraform still running 5 s after infra was killed: {terraform_pids(root)}"

        state = json.loads((root / ".infra/sandbox/orph/terraform.tfstate").read_text())
        assert state["resources"], "terraform saved the resources it had created before it stopped"
        assert not (root / ".infra/sandbox/orph/.terraform.tfstate.lock.info").exists()

        again = subprocess.run([INFRA, *run], cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "recorded as `lost`" in again.stderr
        assert "force-unlock" not in again.stdout + again.stderr
        assert "infra up orph (sandbox): success" in again.stdout
        third = subprocess.run([INFRA, *run], cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert third.returncode == 0, third.stdout + third.stderr
        assert "skipped: the plan has no changes" in third.stdout, (
            "second run:\n" + again.stdout + again.stderr + "\nthird run:\n" + third.stdout + third.stderr
        )

        outcomes = [json.loads(p.read_text())["outcome"] for p in sorted((root / ".infra/records/orph").glob("*.json"))]
        assert outcomes == ["lost", "success", "no-changes"]
        assert not list((root / ".infra/sandbox/orph/logs").glob("terraform-*.running"))
    finally:
        subprocess.run([INFRA, "sandbox", "stop"], cwd=root, env=env, capture_output=True, timeout=60)
