"""Ctrl-C during ``infra up`` leaves state consistent, the lock free, and the run resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
INFRA = str(Path(sys.executable).with_name("infra"))

BLUEPRINT = """\
blueprint: 1
name: intr
provider: aws
region: us-east-1
network: {cidr: 10.30.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
kubernetes: {private_access: {via: inside_network}}
"""


def test_ctrl_c_during_apply_then_rerun_converges(tmp_path, tf_mirror):
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": tf_mirror}
    run = ["up", "--sandbox", "--auto-approve", "bp.yaml"]
    try:
        proc = subprocess.Popen(
            [INFRA, *run], cwd=tmp_path, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        out = []
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if "created" in line:  # terraform is applying: a resource is done, others are pending
                break
        proc.send_signal(signal.SIGINT)
        out.extend(proc.stdout)
        code = proc.wait(timeout=300)
        text = "".join(out)
        assert code == 130, text
        assert "waiting for terraform to stop and save state" in text

        state = json.loads((tmp_path / ".infra/sandbox/intr/terraform.tfstate").read_text())
        assert state["resources"], "terraform saved the resources it had created"
        records = sorted((tmp_path / ".infra/records/intr").glob("*.json"))
        assert json.loads(records[-1].read_text())["outcome"] == "interrupted"

        again = subprocess.run([INFRA, *run], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr  # the lock was released; it resumes
        assert "infra up intr (sandbox): success" in again.stdout
        third = subprocess.run([INFRA, *run], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert "skipped: the plan has no changes" in third.stdout, third.stdout + third.stderr
    finally:
        subprocess.run([INFRA, "sandbox", "stop"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
