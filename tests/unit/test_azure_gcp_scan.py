"""checkov over the rendered Azure and GCP examples: zero failed checks, and every skip written
beside its resource with a reason (``#checkov:skip=ID:reason``). The same tool and virtualenv as
tests/unit/test_aws_scan.py (``make checkov``; ``INFRA_CHECKOV`` names its binary)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.providers.registry import get as get_provider
from orchestrator.render.terraform import render_terraform
from tests.unit.test_aws_scan import _checkov

REPO = Path(__file__).resolve().parents[2]
# example -> (module, least passed checks: the scan saw the resources)
CASES = {"azure-gpu": ("azure_gpu_cluster", 20), "gcp-gpu": ("gcp_gpu_cluster", 50)}
SKIP = re.compile(r"#checkov:skip=([A-Z0-9_]+)(:?)(.*)")


@pytest.mark.parametrize("example", sorted(CASES))
def test_checkov_finds_nothing(tmp_path: Path, example: str) -> None:
    checkov = _checkov()
    bp = load(REPO / "examples" / f"{example}.yaml").model
    for rel, text in render_terraform(bp, get_provider(bp.provider)).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    out = subprocess.run([checkov, "-d", str(tmp_path), "--framework", "terraform", "--quiet", "--compact",
                          "--skip-download", "-o", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(out.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] >= CASES[example][1]


@pytest.mark.parametrize(("module", "count"), [("azure_gpu_cluster", 6), ("gcp_gpu_cluster", 8)])
def test_every_skip_has_a_reason(module: str, count: int) -> None:
    skips = []
    for path in sorted((REPO / "terraform" / "modules" / module).glob("*.tf")):
        for line in path.read_text().splitlines():
            if m := SKIP.search(line):
                skips.append(m.group(1))
                assert m.group(2) == ":" and len(m.group(3).strip()) >= 20, f"{path.name}: {line.strip()}"
    assert len(skips) == count
