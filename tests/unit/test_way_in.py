"""Who reaches the API: every private endpoint has a declared way in, the rendered Terraform admits
exactly it, and ``kube.reach`` tells an unreachable endpoint within its budget.

The invariant runs over every example and golden case, on the files as rendered (tests/golden):
a way in the blueprint declares but Terraform does not open is what breaks a team's first
``kubectl``. The hand-made cases below must each fail validation, located.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.blueprint.network import api_access_networks
from orchestrator.errors import BlueprintError
from orchestrator.kube import reach
from orchestrator.stages.handoff import way_in
from tests.conftest import EXAMPLES, REPO

GOLDEN = REPO / "tests" / "golden"
BLUEPRINTS = sorted([*EXAMPLES.glob("*.yaml"), *(GOLDEN / "inputs").glob("*.yaml")])


def _golden_dir(name: str) -> Path | None:
    folder = GOLDEN / name / "terraform"
    return folder if folder.is_dir() else None


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.stem)
def test_every_private_endpoint_has_a_declared_way_in_that_terraform_opens(path: Path) -> None:
    bp = load(path).model
    if not bp.is_cloud:
        assert bp.kubernetes.private_access is None
        return
    k8s = bp.kubernetes
    if k8s.public_endpoint:
        assert k8s.authorized_networks, path.name
        return
    assert k8s.private_access is not None, path.name
    admitted = api_access_networks(bp)
    assert admitted, path.name
    folder = _golden_dir(bp.name)
    if folder is None:
        return
    tfvars = json.loads((folder / "terraform.tfvars.json").read_text())
    module = folder / "modules" / f"{bp.provider}_gpu_cluster"
    if bp.provider == "aws":  # a 443 rule from exactly these networks on the cluster security group
        assert tfvars["api_access_cidrs"] == admitted
        network_tf = (module / "network.tf").read_text()
        rule = network_tf[network_tf.index('resource "aws_security_group_rule" "cluster_from_operators"'):]
        rule = rule[:rule.index("\n}\n")]
        assert "cidr_blocks       = var.api_access_cidrs" in rule and "from_port         = 443" in rule
        assert "security_group_id = aws_security_group.cluster.id" in rule
    elif bp.provider == "gcp":  # master authorized networks of the private endpoint
        assert tfvars["api_access_cidrs"] == admitted
        main = (module / "main.tf").read_text()
        assert "for_each = var.public_endpoint ? var.authorized_networks : var.api_access_cidrs" in main
    elif bp.provider == "azure":  # the private endpoint lives in the VNet; routed networks resolve it
        assert tfvars["private_fqdn_in_public_dns"] == (k8s.private_access.via == "networks")
        main = (module / "main.tf").read_text()
        assert re.search(r"private_cluster_public_fqdn_enabled *= !var.public_endpoint && "
                         r"var.private_fqdn_in_public_dns", main)


HEAD = "blueprint: 1\nname: t-env\nprovider: aws\nregion: us-east-1\n"  # lines 1-4
POOL = "node_pools:\n  - {name: system, instance_type: m6i.large, min: 1, max: 2}\n"  # lines 5-6


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bp.yaml"
    path.write_text(text)
    with pytest.raises(BlueprintError) as info:
        load(path)
    return [f"{p.line}:{p.column} {p.path}: {p.message}" for p in info.value.problems]


@pytest.mark.parametrize(("kubernetes", "where", "message"), [
    ("", "1:1 kubernetes.public_endpoint", "a private API endpoint (false, the default) needs a declared way in"),
    ("kubernetes:\n  public_endpoint: false\n", "8:20 kubernetes.public_endpoint", "needs a declared way in"),
    ("kubernetes:\n  private_access: {via: networks}\n", "8:3 kubernetes.private_access.networks",
     "via: networks needs the CIDRs"),
    ("kubernetes:\n  private_access: {via: inside_network, networks: [10.9.0.0/16]}\n",
     "8:41 kubernetes.private_access.networks", "is for via: networks"),
    ("kubernetes:\n  private_access: {via: networks, networks: [10.9.0.0/16, 8.8.8.0/24]}\n",
     "8:59 kubernetes.private_access.networks[1]", "8.8.8.0/24 is not a private range"),
    ("kubernetes:\n  private_access: {via: vpn}\n", "8:25 kubernetes.private_access.via",
     "must be one of: inside_network, networks"),
    ("kubernetes:\n  public_endpoint: true\n  authorized_networks: [203.0.113.0/24]\n"
     "  private_access: {via: inside_network}\n", "10:3 kubernetes.private_access", "is for a private endpoint"),
])
def test_a_private_endpoint_without_a_working_way_in_is_refused(tmp_path, kubernetes, where, message):
    problems = _problems(tmp_path, HEAD + POOL + kubernetes)
    assert len(problems) == 1, problems
    assert problems[0].startswith(where + ": ") and message in problems[0], problems[0]


def test_hosts_have_no_private_access(tmp_path):
    text = ("blueprint: 1\nname: t-env\nprovider: baremetal\nhosts:\n"
            "  - {name: cp, address: 10.1.0.10, roles: [control_plane]}\n"
            "kubernetes:\n  private_access: {via: inside_network}\n")
    assert _problems(tmp_path, text) == [
        "7:3 kubernetes.private_access: is for a cloud API endpoint; on hosts infra reaches the control plane "
        "over SSH"]


@pytest.mark.parametrize(("kubernetes", "says"), [
    ("  private_access: {via: inside_network}\n", "kubernetes.private_access is inside_network: run from 10.0.0.0/16"),
    ("  private_access: {via: networks, networks: [10.9.0.0/16, 192.168.4.0/24]}\n",
     "kubernetes.private_access.networks admits 10.9.0.0/16, 192.168.4.0/24"),
    ("  public_endpoint: true\n  authorized_networks: [203.0.113.0/24]\n",
     "kubernetes.authorized_networks admits 203.0.113.0/24"),
])
def test_the_unreachable_message_names_the_field_that_declares_the_way_in(tmp_path, kubernetes, says):
    path = tmp_path / "bp.yaml"
    path.write_text(HEAD + POOL + "kubernetes:\n" + kubernetes)
    assert way_in(load(path).model) == says


# --- kube.reach: name resolution and TCP within the budget ------------------------------------------


@pytest.fixture()
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


def test_an_open_port_is_reachable(listener):
    assert reach.probe(f"https://127.0.0.1:{listener.getsockname()[1]}") is None


def test_a_closed_port_is_refused_at_once(listener):
    port = listener.getsockname()[1]
    listener.close()
    started = time.monotonic()
    assert reach.probe(f"https://127.0.0.1:{port}") == f"127.0.0.1:{port}: Connection refused"
    assert time.monotonic() - started < 1


def test_a_name_that_does_not_resolve_is_said_so():
    reason = reach.probe("https://api.gpu-lab.invalid", within=3)
    assert reason is not None and reason.startswith("cannot resolve api.gpu-lab.invalid")


def test_a_port_that_drops_connections_is_reported_within_the_budget():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = [socket.socket() for _ in range(2)]
    try:
        for sock in fillers:  # the accept queue is full: Linux drops the next SYNs
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        started = time.monotonic()
        reason = reach.probe(f"https://127.0.0.1:{port}", within=1.5)
        elapsed = time.monotonic() - started
    finally:
        for sock in (*fillers, server):
            sock.close()
    assert reason == f"127.0.0.1:{port}: no answer within 1.5 s"
    assert 1.4 <= elapsed < 3


def test_the_server_comes_from_the_named_or_current_context(tmp_path):
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: a\n"
                  "contexts: [{name: a, context: {cluster: one}}, {name: b, context: {cluster: two}}]\n"
                  "clusters: [{name: one, cluster: {server: 'https://one:6443'}},"
                  " {name: two, cluster: {server: 'https://10.0.0.2'}}]\n")
    assert reach.server_of(kc, None) == "https://one:6443"
    assert reach.server_of(kc, "b") == "https://10.0.0.2"
    assert reach.server_of(kc, "c") is None
    assert reach.server_of(tmp_path / "missing", None) is None
