"""A rolling Kubernetes upgrade of the SSH lab (issue 22), one minor up: from the version the lab
runs (A, 1.30.1, when this module converges a fresh lab; B, 1.30.2, after test_ansible_hosts.py
on the same worker) to C, 1.31.0 (tests/hosts/aptrepo.py: its own repository folder, v1.31).

One `infra up` does it: the main play only marks the nodes, the rolling plays (serial) drain,
upgrade and uncordon them one at a time, the first control plane (`kubeadm upgrade apply`)
first. The order is read twice: from the run's Ansible events, and from the calls the kubeadm
and kubectl test doubles recorded on each host (timestamped, tests/fixtures/ansible/fake-kube*).
A downgrade and a skipped minor are then refused at validate and at `up`, before any stage.
(That the run after a rolling upgrade changes nothing is test_ansible_hosts.py's pin-B test: one
`up` less here, to keep this module near a minute on a converged lab.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.hosts import aptrepo

from .conftest import ROLES, CliResult, Lab, run_infra

pytestmark = pytest.mark.integration
C = aptrepo.NEXT_MINOR_VERSION  # "1.31.0-1.1"
C_UPSTREAM = C.split("-")[0]
CALLS = "/var/log/fake-cluster-calls.log"
# The upgrade play's tasks (roles/kubernetes_node/tasks/upgrade.yml) -> the step they are.
STEPS = {
    "Drain the node (on the first control plane)": "drain",
    "Upgrade kubeadm to the new version": "kubeadm package",
    "Upgrade the control plane (kubeadm upgrade apply, on the first control plane)": "kubeadm upgrade apply",
    "Upgrade the node's configuration (kubeadm upgrade node)": "kubeadm upgrade node",
    "Upgrade kubelet and kubectl to the new version": "kubelet package",
    "Uncordon the node (on the first control plane)": "uncordon",
    "Wait until the node is Ready": "ready",
}


def _env(lab: Lab) -> dict[str, str]:
    return {"INFRA_ANSIBLE_EXTRA_VARS": str(lab.extra_vars)}


def up(lab: Lab) -> CliResult:
    return run_infra(["up", str(lab.blueprint)], lab.dir, _env(lab))


def kube_nodes(lab: Lab) -> list[str]:
    """The lab's Kubernetes nodes in blueprint order (the first is the first control plane)."""
    return [h.name for i, h in enumerate(lab.hosts.hosts, start=1) if {"control_plane", "worker"} & set(ROLES[i])]


def hosts_json(lab: Lab) -> dict:
    path = lab.env_dir / "ansible" / "hosts.json"
    return json.loads(path.read_text())["hosts"] if path.is_file() else {}


def newest_events(lab: Lab) -> list[dict]:
    newest = max(lab.artifacts().iterdir(), key=lambda p: p.stat().st_mtime)
    events = [json.loads(p.read_text()) for p in (newest / "job_events").glob("*.json")]
    return sorted(events, key=lambda e: e.get("counter", 0))


def kube_packages(lab: Lab, host: str) -> dict[str, str]:
    proc = lab.hosts.by_name(host).chroot("dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Abbrev}\n",
                                          "kubeadm", "kubelet", "kubectl", check=False)
    return {line.split()[0]: " ".join(line.split()[1:3]) for line in proc.stdout.splitlines()}


@dataclass
class Upgrade:
    nodes: list[str]
    before: dict[str, str]  # node -> kubeadm version before
    result: CliResult
    steps: list[tuple[str, str]]  # (node, step) in event order
    calls: list[tuple[str, str]]  # (host the test double ran on, call) in time order


@pytest.fixture(scope="module")
def upgraded(lab: Lab) -> Upgrade:
    nodes = kube_nodes(lab)
    converged = hosts_json(lab)
    if not all(converged.get(h, {}).get("status") in ("ok", "changed") for h in (h.name for h in lab.hosts.hosts)):
        first = up(lab)  # a fresh lab on this worker: converge it at version A first
        assert first.code == 0, first.stdout[-3000:] + first.stderr
    before = {h: kube_packages(lab, h)["kubeadm"] for h in nodes}
    assert all(v.startswith("1.30.") and v.endswith(" hi") for v in before.values()), before
    aptrepo.publish(lab.apt.cache, lab.apt.root, aptrepo.ALL_VERSIONS)  # upstream publishes 1.31
    for host in nodes:
        lab.hosts.by_name(host).path(CALLS).unlink(missing_ok=True)
    lab.pin(C_UPSTREAM)
    result = up(lab)
    assert result.code == 0, result.stdout[-4000:] + result.stderr
    steps = [(e["event_data"]["host"], STEPS[e["event_data"]["task"]]) for e in newest_events(lab)
             if e.get("event") == "runner_on_ok" and e["event_data"].get("task") in STEPS]
    calls = []
    for host in nodes:
        path = lab.hosts.by_name(host).path(CALLS)
        for line in path.read_text().splitlines() if path.exists() else []:
            stamp, call = line.split(" ", 1)
            calls.append((float(stamp), host, call))
    return Upgrade(nodes, before, result, steps, [(h, c) for _, h, c in sorted(calls)])


def test_nodes_are_upgraded_one_at_a_time_control_plane_first(upgraded):
    """Per node: drain -> kubeadm -> kubeadm upgrade -> kubelet -> uncordon -> Ready, and the next
    node starts only after the one before is Ready again (the run's own events)."""
    first, *others = upgraded.nodes
    expected = []
    for node in upgraded.nodes:
        kubeadm = "kubeadm upgrade apply" if node == first else "kubeadm upgrade node"
        expected += [(node, step) for step in ("drain", "kubeadm package", kubeadm, "kubelet package", "uncordon",
                                               "ready")]
    assert upgraded.steps == expected
    assert others, "the lab needs a second Kubernetes node"


def test_the_test_doubles_saw_the_same_order(upgraded):
    """What kubectl (on the first control plane) and kubeadm (on each node) were asked, by time."""
    first = upgraded.nodes[0]
    expected = []
    for node in upgraded.nodes:
        expected += [
            (first, f"kubectl drain {node} --ignore-daemonsets --delete-emptydir-data --timeout=10m"),
            (node, f"kubeadm upgrade apply v{C_UPSTREAM} --yes" if node == first else "kubeadm upgrade node"),
            (first, f"kubectl uncordon {node}"),
            (first, f"kubectl get node {node} --output jsonpath={{.status.conditions[?(@.type==\"Ready\")].status}}"),
        ]
    assert upgraded.calls == expected


def test_every_node_runs_and_holds_the_new_version(upgraded, lab):
    for node in upgraded.nodes:
        assert kube_packages(lab, node) == dict.fromkeys(("kubeadm", "kubelet", "kubectl"), f"{C} hi"), node
    assert lab.hosts.by_name(upgraded.nodes[0]).chroot("kubeadm", "version", "-o", "short").stdout.strip() == (
        f"v{C_UPSTREAM}")
    config = lab.hosts.by_name(upgraded.nodes[0]).path("/etc/kubernetes/kubeadm-config.yaml").read_text()
    assert f'kubernetesVersion: "v{C_UPSTREAM}"' in config and "kubeadm.k8s.io/v1beta4" in config  # 1.31's API
    sources = lab.hosts.by_name(upgraded.nodes[-1]).path("/etc/apt/sources.list.d/kubernetes.sources").read_text()
    assert f"URIs: {lab.apt.url}/kubernetes/v1.31/deb/" in sources
    hosts = hosts_json(lab)
    assert {h: hosts[h].get("kubernetes_version") for h in upgraded.nodes} == dict.fromkeys(upgraded.nodes, C_UPSTREAM)
    assert {h: hosts[h]["status"] for h in upgraded.nodes} == dict.fromkeys(upgraded.nodes, "changed")
    # the run reported what it did in its summary, one node at a time
    assert "kubernetes_node : Drain the node (on the first control plane): changed=1" in upgraded.result.stdout


def test_a_downgrade_and_a_skipped_minor_are_refused_at_validate_and_up(upgraded, lab):
    records = sorted((lab.dir / ".infra" / "records" / "lab").glob("*.json"))
    try:
        lab.pin("1.30.2")
        validate = run_infra(["validate", str(lab.blueprint)], lab.dir, _env(lab))
        assert validate.code == 2, validate.stdout + validate.stderr
        assert validate.stderr.splitlines()[0] == (
            f"{lab.blueprint}:5:12 kubernetes.version: 1.30.2 is older than the version the hosts run "
            f"({upgraded.nodes[-1]} runs {C_UPSTREAM}): kubeadm never downgrades a cluster; give {C_UPSTREAM} or newer")
        refused = up(lab)
        assert refused.code == 2, refused.stdout[-2000:] + refused.stderr
        assert "kubeadm never downgrades a cluster" in refused.stderr and "==> configure" not in refused.stdout
        lab.pin("1.33")
        skipped = run_infra(["validate", str(lab.blueprint)], lab.dir, _env(lab))
        assert skipped.code == 2 and "1.33 skips a minor version" in skipped.stderr, skipped.stderr
    finally:
        lab.pin(C_UPSTREAM)
    assert sorted((lab.dir / ".infra" / "records" / "lab").glob("*.json")) == records  # nothing ran
