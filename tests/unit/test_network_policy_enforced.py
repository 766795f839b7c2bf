"""CHECKLISTS §4 "Network policy is enforced": the rendered team NetworkPolicies only matter if the
cluster's network plugin enforces them. Checked on the render of every cloud example and golden
input (the emulators run no CNI, so nothing else can show it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.providers.registry import get
from orchestrator.render import render_files

REPO = Path(__file__).resolve().parents[2]
BLUEPRINTS = sorted([*REPO.glob("examples/*.yaml"), *REPO.glob("tests/golden/inputs/*.yaml")])
# What makes each cloud's CNI enforce NetworkPolicy, as written in its module (docs/providers.md).
ENFORCING = {
    "aws": ("aws_gpu_cluster/addons.tf", 'configuration = jsonencode({ enableNetworkPolicy = "true" })'),
    "azure": ("azure_gpu_cluster/main.tf", 'network_policy      = "cilium"'),
    "gcp": ("gcp_gpu_cluster/main.tf", 'datapath_provider           = "ADVANCED_DATAPATH"'),
}


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_every_cloud_render_enforces_the_policies_it_ships(path: Path) -> None:
    bp = load(path).model
    files = render_files(bp, get(bp.provider))
    if bp.provider not in ENFORCING:  # bare metal: the CNI is the site's (docs/kubernetes.md, prerequisites)
        assert "terraform" not in files
        return
    policies = [rel for rel in files["kubernetes"] if rel.startswith("teams/")]
    assert policies and all("kind: NetworkPolicy" in files["kubernetes"][rel] for rel in policies)
    module, setting = ENFORCING[bp.provider]
    assert setting in files["terraform"][f"modules/{module}"]
