"""CHECKLISTS §4 "Network policy is enforced": the rendered team NetworkPolicies only matter if the
cluster's network plugin enforces them. Checked on the render of every example and golden input
(the emulators run no CNI, so nothing else can show it): on clouds the module's CNI setting, on
bare metal the Ansible render (group_vars over the kubernetes_node role's defaults) selecting
Calico, whose manifest the role applies with the pool set to kubeadm's pod subnet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

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
def test_every_render_enforces_the_policies_it_ships(path: Path) -> None:
    bp = load(path).model
    files = render_files(bp, get(bp.provider))
    policies = [rel for rel in files["kubernetes"] if rel.startswith("teams/")]
    assert policies and all("kind: NetworkPolicy" in files["kubernetes"][rel] for rel in policies)
    if bp.provider not in ENFORCING:  # bare metal: the kubernetes_node role applies Calico
        assert "terraform" not in files
        _assert_hosts_apply_calico(files["ansible"])
        return
    module, setting = ENFORCING[bp.provider]
    assert setting in files["terraform"][f"modules/{module}"]


ROLE = REPO / "ansible" / "roles" / "kubernetes_node"


class _AnsibleYaml(yaml.SafeLoader):
    """Reads the rendered group_vars: ``!unsafe`` strings are plain strings."""


_AnsibleYaml.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _assert_hosts_apply_calico(ansible: dict[str, str]) -> None:
    """Role defaults, overridden by the rendered group_vars (the precedence Ansible applies)."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    settings = defaults | yaml.load(ansible["group_vars/all.yml"], Loader=_AnsibleYaml)
    assert settings["kubernetes_node_cni"] == "calico"
    url = settings["kubernetes_node_cni_manifest_url"]  # the blueprint's kubernetes.cni, else Calico's release
    assert re.fullmatch(r"\{\{ infra_kubernetes_cni_manifest_url\s+\| default\('"
                        r"https://\S+/calico/v3\.\d+\.\d+/manifests/calico\.yaml'\) \}\}", url), url
    assert "- name: Apply the CNI from the first control plane (enforces NetworkPolicy)\n" \
           "  ansible.builtin.include_tasks: cni.yml\n" \
           "  when: inventory_hostname == kubernetes_init_host and kubernetes_node_cni != 'none'\n" in (
               ROLE / "tasks" / "main.yml").read_text()
    cni = (ROLE / "tasks" / "cni.yml").read_text()
    assert """replace: '\\1- name: CALICO_IPV4POOL_CIDR\\n\\1  value: "{{ kubernetes_node_pod_subnet }}"'""" in cni
    assert 'podSubnet: "{{ kubernetes_node_pod_subnet }}"' in (ROLE / "templates" / "kubeadm-init.yaml.j2").read_text()
