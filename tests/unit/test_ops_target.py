"""The shared options of ``infra job``/``infra model`` become one target: blueprint, namespace,
client. And the one node-label convention that Terraform, Ansible and Kueue all use."""

from __future__ import annotations

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.errors import UsageError
from orchestrator.inventory import from_blueprint
from orchestrator.ops.target import TargetOptions, target
from orchestrator.providers.registry import get
from orchestrator.render.kubernetes import render_objects
from tests.unit.kube_fixtures import THREE_TEAMS, fake, kubeconfig  # noqa: F401


def test_namespace_flag_wins_and_a_team_names_its_namespace():
    assert target(TargetOptions(namespace="ns1", team="ghost", blueprint=THREE_TEAMS)).namespace == "ns1"
    assert target(TargetOptions(team="nlp", blueprint=THREE_TEAMS)).namespace == "nlp-team"
    assert target(TargetOptions(team="nlp")).namespace == "nlp"  # no blueprint: the team's name
    found = target(TargetOptions(team="nlp", blueprint=THREE_TEAMS))
    assert found.bp is not None and found.bp.name == "gpu-lab"
    assert (found.team().gpu_quota, found.team().borrowing_limit) == (4, 2)


def test_a_team_the_blueprint_lacks_and_no_team_at_all_are_bad_input():
    with pytest.raises(UsageError, match=r"^no team 'ghost' in blueprint gpu-lab \(teams: vision, nlp, research\)$"):
        target(TargetOptions(team="ghost", blueprint=THREE_TEAMS))
    with pytest.raises(UsageError, match=r"say which team \(--team\) or namespace \(--namespace\)"):
        target(TargetOptions())
    assert target(TargetOptions(), required=False).namespace is None  # list: every namespace


def test_client_uses_the_kubeconfig_flag_else_the_default(tmp_path, monkeypatch, fake, kubeconfig):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # no saved Terraform outputs here
    client = target(TargetOptions(team="vision", kubeconfig=kubeconfig)).client()
    assert client.host == fake.url
    client.close()
    import kubernetes.config.kube_config as kube_config  # reads $KUBECONFIG once, at import

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    client = target(TargetOptions(team="vision", blueprint=THREE_TEAMS)).client()
    assert client.host == fake.url
    client.close()


BAREMETAL = """\
blueprint: 1
name: onprem
provider: baremetal
node_pools:
  - {name: dgx, gpu: {type: h100, count: 8}, labels: {workload: training}}
hosts:
  - {name: cp-01, address: 10.1.0.10, roles: [control_plane]}
  - {name: gpu-01, address: 10.1.0.11, roles: [worker], pool: dgx}
teams:
  - {name: vision, gpu_quota: 8}
"""
DGX_LABELS = {"infra.dev/gpu-type": "h100", "infra.dev/pool": "dgx", "nvidia.com/gpu.present": "true",
              "workload": "training"}


def _flavor_labels(bp) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o["spec"]["nodeLabels"] for o in render_objects(bp) if o["kind"] == "ResourceFlavor"}


def test_one_label_convention_for_terraform_ansible_and_kueue(tmp_path):
    path = tmp_path / "bm.yaml"
    path.write_text(BAREMETAL)
    bm = load(path).model
    hosts = {h.name: h.labels for h in from_blueprint(bm)}
    assert hosts == {"cp-01": {}, "gpu-01": DGX_LABELS}  # the Ansible inventory (kubelet --node-labels)
    assert _flavor_labels(bm) == {"dgx": DGX_LABELS}  # the Kueue flavor selects exactly those

    aws = load(THREE_TEAMS).model
    node_groups = {p["name"]: p["labels"] for p in get("aws").terraform_variables(aws)["node_pools"]}
    h100 = {"infra.dev/gpu-type": "h100", "infra.dev/pool": "h100", "nvidia.com/gpu.present": "true",
            "workload": "training", "k8s.amazonaws.com/accelerator": "nvidia-h100"}
    assert node_groups["h100"] == h100 and node_groups["system"] == {"infra.dev/pool": "system"}
    flavors = _flavor_labels(aws)
    # l4 is an inference pool: no flavor (docs/kubernetes.md); system carries Jobs without GPUs.
    assert flavors == {"system": {"infra.dev/pool": "system"}, "h100": h100}
    assert node_groups["l4"] == {"infra.dev/gpu-type": "l4", "infra.dev/pool": "l4", "nvidia.com/gpu.present": "true",
                                 "workload": "inference", "k8s.amazonaws.com/accelerator": "nvidia-l4"}
