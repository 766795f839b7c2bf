"""checkov over every rendered AWS example and golden case: zero failed checks, and every
skip written beside its resource with a reason (``#checkov:skip=ID:reason``).

checkov lives in its own virtualenv (``make checkov``; ``INFRA_CHECKOV`` names its binary).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.terraform import render_terraform
from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
CASES = [REPO / "examples" / "sandbox.yaml", REPO / "examples" / "aws-gpu.yaml",
         REPO / "tests" / "golden" / "inputs" / "edge-eu.yaml"]
SKIP = re.compile(r"#checkov:skip=([A-Z0-9_]+)(:?)(.*)")


def _checkov() -> str:
    path = os.environ.get("INFRA_CHECKOV") or "/var/cache/infra-tests/checkov-venv/bin/checkov"
    found = shutil.which(path)
    require(found is not None, "checkov (make checkov)")
    return found


@pytest.mark.parametrize("blueprint", CASES, ids=lambda p: p.stem)
def test_checkov_finds_nothing(tmp_path, blueprint):
    checkov = _checkov()
    bp = load(blueprint).model
    for rel, text in render_terraform(bp, get_provider(bp.provider)).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    out = subprocess.run([checkov, "-d", str(tmp_path), "--framework", "terraform", "--quiet", "--compact",
                          "--skip-download", "-o", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 200


def test_every_skip_has_a_reason():
    skips = []
    for path in sorted((REPO / "terraform" / "modules" / "aws_gpu_cluster").glob("*.tf")):
        for line in path.read_text().splitlines():
            if m := SKIP.search(line):
                skips.append(m.group(1))
                assert m.group(2) == ":" and len(m.group(3).strip()) >= 20, f"{path.name}: {line.strip()}"
    assert len(skips) == 11
