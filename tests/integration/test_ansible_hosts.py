"""`infra up` on bare metal against real SSH hosts (debootstrap'd chroots, one sshd each).

The lab is a control plane (node-1), a worker (node-2) and an inference-only host (node-3, no
Kubernetes node): issue 22's host mix. One module-scoped convergence (a first `infra up`, then a
second that must change nothing) feeds several assertions: Ansible configures the hosts, kubeadm
(a test double) hands out the admin kubeconfig, and the handoff stage applies the manifests to the
fake Kubernetes API. The failure test then stops one host's sshd and brings it back; `infra
configure` runs the stage alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.hosts import aptrepo
from tests.hosts.cluster import TestHosts

from .conftest import MODEL_B, MODEL_W, CliResult, Lab, make_model, run_infra, write_blueprint

pytestmark = pytest.mark.integration
TOKEN = "infrat.0123456789secret"  # what the fake kubeadm hands out (tests/fixtures/ansible/fake-kubeadm)


def _env(lab: Lab) -> dict[str, str]:
    return {"INFRA_ANSIBLE_EXTRA_VARS": str(lab.extra_vars)}


def up(lab: Lab) -> CliResult:
    return run_infra(["up", str(lab.blueprint)], lab.dir, _env(lab))


def last_stats(lab: Lab) -> dict[str, dict[str, int]]:
    """Per-host counts from the newest run's playbook_on_stats event (ansible-runner's own record)."""
    newest = max(lab.artifacts().iterdir(), key=lambda p: p.stat().st_mtime)
    for path in sorted((newest / "job_events").glob("*.json"), reverse=True):
        event = json.loads(path.read_text())
        if event.get("event") == "playbook_on_stats":
            data = event["event_data"]
            hosts = set().union(*(data.get(k) or {} for k in ("ok", "changed", "failures", "dark")))
            return {h: {k: (data.get(k) or {}).get(h, 0) for k in ("ok", "changed", "failures", "dark")}
                    for h in hosts}
    raise AssertionError(f"no playbook_on_stats event in {newest}")


def changed_tasks(lab: Lab, role: str | None) -> list[str]:
    """``host: task`` of the newest run's changed results in ``role`` (None: in any role)."""
    newest = max(lab.artifacts().iterdir(), key=lambda p: p.stat().st_mtime)
    found = []
    for path in (newest / "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data") or {}
        if (event.get("event") == "runner_on_ok" and role in (None, data.get("role"))
                and (data.get("res") or {}).get("changed")):
            found.append(f"{data.get('host')}: {data.get('task')}")
    return found


@dataclass
class Converged:
    first: CliResult
    first_stats: dict
    first_nvidia_changes: list[str]
    first_inference_changes: list[str]
    second: CliResult
    second_stats: dict


@pytest.fixture(scope="module")
def converged(lab: Lab) -> Converged:
    first = up(lab)
    assert first.code == 0, first.stdout[-3000:] + first.stderr
    first_stats, nvidia = last_stats(lab), changed_tasks(lab, "nvidia_gpu")
    inference = changed_tasks(lab, "inference_onnx")
    second = up(lab)
    assert second.code == 0, second.stdout[-3000:] + second.stderr
    return Converged(first, first_stats, nvidia, inference, second, last_stats(lab))


def test_first_run_converges_every_host(converged, lab):
    names = {h.name for h in lab.hosts.hosts}
    assert set(converged.first_stats) == names
    for host, s in converged.first_stats.items():
        assert s["failures"] == 0 and s["dark"] == 0, host
        assert s["changed"] > 0, f"{host}: the first run should have changed something"
    assert "0 changes" not in converged.first.stdout


def test_second_run_changes_nothing(converged, lab):
    assert set(converged.second_stats) == {h.name for h in lab.hosts.hosts}
    assert {h: s["changed"] for h, s in converged.second_stats.items()} == dict.fromkeys(converged.second_stats, 0)
    assert all(s["failures"] == 0 and s["dark"] == 0 for s in converged.second_stats.values())
    assert "0 changes" in converged.second.stdout
    # a task whose name uses a variable that is not set yet is shown without Ansible's "<< error ... >>"
    assert "<< error" not in converged.first.stdout + converged.second.stdout


def test_progress_names_hosts_tasks_and_counts(converged):
    out = converged.first.stdout
    assert "==> configure" in out
    assert "ansible site.yml on 3 hosts" in out and "forks=3" in out
    assert "common : Persist sysctls for container networking: changed=3" in out
    assert "node-1                   ok=" in out


def test_gpu_discovery_runs_everywhere_and_changes_nothing_without_gpus(converged, lab):
    assert converged.first_nvidia_changes == []
    assert "nvidia_gpu : Say that there is no GPU to configure: ok=3" in converged.first.stdout
    hosts = json.loads((lab.env_dir / "ansible" / "hosts.json").read_text())["hosts"]
    assert {h: v["gpus_found"] for h, v in hosts.items()} == {"node-1": 0, "node-2": 0, "node-3": 0}
    assert not lab.hosts.by_name("node-2").path("/etc/modprobe.d/blacklist-nouveau.conf").exists()


def test_base_configuration_on_the_hosts(converged, lab):
    node = lab.hosts.by_name("node-2")
    assert node.path("/etc/modules-load.d/infra-kubernetes.conf").read_text().splitlines()[1:] == ["overlay",
                                                                                                   "br_netfilter"]
    assert "net.ipv4.ip_forward = 1" in node.path("/etc/sysctl.d/99-infra-kubernetes.conf").read_text()
    config = node.path("/etc/containerd/config.toml").read_text()
    assert "version = 2" in config and "SystemdCgroup = true" in config and "nvidia" not in config
    assert not lab.hosts.by_name("node-2").path("/etc/kubernetes/kubeadm-join.yaml").exists()  # removed after
    inference = lab.hosts.by_name("node-3")  # inference-only: the base configuration, no Kubernetes node
    assert inference.path("/etc/sysctl.d/99-infra-kubernetes.conf").is_file()
    assert not inference.path("/etc/containerd").exists() and not inference.path("/etc/kubernetes").exists()


def test_kubeadm_init_once_and_join_the_worker_only(converged, lab):
    """The inference-only host (node-3) never gets kubeadm: the join token is made for node-2 alone."""
    assert not lab.hosts.by_name("node-3").path("/var/log/fake-kubeadm.log").exists()
    assert not lab.hosts.by_name("node-3").path("/usr/bin/kubeadm").exists()
    calls = {h: lab.hosts.by_name(h).path("/var/log/fake-kubeadm.log").read_text().splitlines() for h in KUBE_NODES}
    inits = {h: [c for c in lines if c.startswith("init --config")] for h, lines in calls.items()}
    joins = {h: [c for c in lines if c.startswith("join")] for h, lines in calls.items()}
    assert inits == {"node-1": ["init --config /etc/kubernetes/kubeadm-config.yaml --upload-certs"], "node-2": []}
    assert joins == {"node-1": [], "node-2": ["join --config /etc/kubernetes/kubeadm-join.yaml"]}
    assert sum(c.startswith("token create") for c in calls["node-1"]) == 1  # the second run created none
    config = lab.hosts.by_name("node-1").path("/etc/kubernetes/kubeadm-config.yaml").read_text()
    # v1.30.1: the test kubeadm package at version A
    assert 'kubernetesVersion: "v1.30.1"' in config and "cgroupDriver: systemd" in config
    assert "node-role.kubernetes.io/control-plane" in config
    kubeconfig = lab.env_dir / "kubeconfig"  # fetched for the Kubernetes stage, owner-only
    assert kubeconfig.read_text() == lab.hosts.by_name("node-1").path("/etc/fake-kubeadm/admin.conf").read_text()
    assert kubeconfig.stat().st_mode & 0o777 == 0o600


def test_the_cni_is_applied_once_from_the_control_plane_with_kubeadms_pod_subnet(converged, lab):
    """Calico's manifest (the test double served beside the apt repository) is applied by the
    first converge only; the second reads the cluster (kubectl get) and applies nothing."""
    logs = {h.name: h.path("/var/log/fake-kubectl.log") for h in lab.hosts.hosts}
    calls = {name: path.read_text().splitlines() if path.exists() else [] for name, path in logs.items()}
    applies = {name: [c for c in lines if " apply " in c] for name, lines in calls.items()}
    assert {name: len(found) for name, found in applies.items()} == {"node-1": 1, "node-2": 0, "node-3": 0}
    assert applies["node-1"][0].startswith(
        "--kubeconfig /etc/kubernetes/admin.conf apply --server-side --force-conflicts --field-manager infra-cni "
        "--filename /etc/kubernetes/infra-cni/calico-")
    assert sum(" get daemonset/calico-node " in c for c in calls["node-1"]) == 2  # one read per converge
    node = lab.hosts.by_name("node-1")
    assert 'podSubnet: "10.244.0.0/16"' in node.path("/etc/kubernetes/kubeadm-config.yaml").read_text()
    applied = node.path("/var/lib/fake-kubectl/applied.yaml").read_text()
    assert '            - name: CALICO_IPV4POOL_CIDR\n              value: "10.244.0.0/16"\n' in applied
    assert node.path("/etc/kubernetes/infra-cni").stat().st_mode & 0o777 == 0o700


def test_no_secret_in_artifacts_or_output(converged, lab):
    assert TOKEN not in converged.first.stdout + converged.first.stderr
    for path in (lab.env_dir / "ansible").rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path


def test_up_hands_off_to_the_cluster_kubeadm_made(converged, lab):
    """After Ansible, `up` applies the tenancy and inference manifests with kubeadm's admin kubeconfig."""
    assert "==> handoff" in converged.first.stdout
    assert lab.kube.get("v1", "Namespace", "ml") is not None
    assert lab.kube.get("kueue.x-k8s.io/v1beta2", "LocalQueue", "ml", "ml")["spec"]["clusterQueue"] == "ml"
    assert lab.kube.get("apps/v1", "Deployment", "affine", "ml") is not None
    records = sorted((lab.dir / ".infra" / "records" / "lab").glob("*.json"))
    first = json.loads(records[0].read_text())
    assert (first["command"], first["outcome"]) == ("up", "success")
    assert [(s["name"], s["status"]) for s in first["stages"]] == [("render", "ok"), ("configure", "ok"),
                                                                  ("handoff", "ok")]
    assert first["versions"]["ansible"] and first["versions"]["kubernetes"]


def test_plan_and_status_list_the_hosts_with_their_last_configure(converged, lab):
    plan = run_infra(["plan", str(lab.blueprint)], lab.dir, _env(lab))
    assert plan.code == 0, plan.stderr
    assert "3 hosts to configure with ansible/site.yml (no cloud resources)" in plan.stdout
    status = run_infra(["status", "--output", "json", str(lab.blueprint)], lab.dir, _env(lab))
    assert status.code == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["deployed"] is True and data["last_run"]["command"] == "plan"
    assert {h: v["last_configure"]["status"] for h, v in data["outputs"]["hosts"].items()} == dict.fromkeys(
        ("node-1", "node-2", "node-3"), "ok")


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_first_converge_starts_the_model_server_once(converged):
    starts = [t for t in converged.first_inference_changes if "model server" in t]
    assert starts == ["node-3: Start the model server"]


def test_onnx_model_served_over_the_open_inference_protocol(converged, lab):
    host = lab.hosts.by_name("node-3")
    base = f"http://{host.address}:8000"
    with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=10) as resp:
        assert json.loads(resp.read()) == {"ready": True}
    with urllib.request.urlopen(f"{base}/v2/models/affine", timeout=10) as resp:
        meta = json.loads(resp.read())
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]
    x = [[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]]
    status, body = _post(f"{base}/v2/models/affine/infer",
                         {"id": "t1", "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                                                  "data": [v for row in x for v in row]}]})
    assert status == 200, body
    expected = [sum(xi * MODEL_W[i][j] for i, xi in enumerate(row)) + MODEL_B[j] for row in x for j in range(2)]
    (out,) = body["outputs"]
    assert (body["id"], body["model_name"], out["name"], out["datatype"], out["shape"]) == ("t1", "affine", "y",
                                                                                         "FP32", [2, 2])
    assert out["data"] == pytest.approx(expected, rel=1e-6)
    status, body = _post(f"{base}/v2/models/nope/infer", {"inputs": []})
    assert status == 404 and "no model named 'nope'" in body["error"]


def _ssh_sessions(lab: Lab) -> dict[str, int]:
    """Per host, the sshd processes beside the listener: one per SSH connection still open into it."""
    return {h.name: sum(comm == "sshd" or comm.startswith("sshd-") for _, comm in h.processes()) - 1
            for h in lab.hosts.hosts}


def _no_ssh_sessions_left(lab: Lab, wait: float = 5.0) -> dict[str, int]:
    deadline = time.monotonic() + wait
    while any(_ssh_sessions(lab).values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _ssh_sessions(lab)


def test_a_down_host_makes_up_exit_4_naming_it_then_a_rerun_converges(converged, lab):
    """No SSH connection outlives a run (a master kept from an earlier run would reach a host
    whose sshd has stopped since); the sshd is stopped the way `systemctl stop ssh` does it: the
    listener only, open sessions left alone."""
    assert _no_ssh_sessions_left(lab) == dict.fromkeys(ALL_HOSTS, 0)
    node = lab.hosts.by_name("node-2")
    node.stop_sshd(sessions=False)
    try:
        failed = up(lab)
    finally:
        node.start_sshd()
    print(failed.stderr)
    assert failed.code == 4, failed.stdout[-2000:] + failed.stderr
    assert "error: ansible: 1 of 3 hosts failed: node-2 unreachable at task '" in failed.stderr
    assert "Connection refused" in failed.stderr
    stats = last_stats(lab)
    assert stats["node-2"]["dark"] == 1 and stats["node-1"]["failures"] == 0 and stats["node-3"]["failures"] == 0
    hosts = json.loads((lab.env_dir / "ansible" / "hosts.json").read_text())["hosts"]
    assert hosts["node-2"]["status"] == "unreachable" and hosts["node-1"]["status"] == "ok"
    records = sorted((lab.dir / ".infra" / "records" / "lab").glob("*.json"))
    assert json.loads(records[-1].read_text())["outcome"] == "failed"

    again = up(lab)
    assert again.code == 0, again.stdout[-2000:] + again.stderr
    assert {h: s["changed"] for h, s in last_stats(lab).items()} == {"node-1": 0, "node-2": 0, "node-3": 0}, (
        changed_tasks(lab, None))
    assert _no_ssh_sessions_left(lab) == dict.fromkeys(ALL_HOSTS, 0)  # the run closed its connections


def test_check_mode_with_limit_and_unknown_limit(converged, lab):
    checked = run_infra(["configure", "--check", "--limit", "node-1", str(lab.blueprint)], lab.dir, _env(lab))
    assert checked.code == 0, checked.stdout[-2000:] + checked.stderr
    assert "on 1 host (check mode)" in checked.stdout and "check mode: nothing was changed" in checked.stdout
    assert set(last_stats(lab)) == {"node-1"}
    bad = run_infra(["configure", "--limit", "node-9", str(lab.blueprint)], lab.dir, _env(lab))
    assert bad.code == 2 and "no host or group named 'node-9'" in bad.stderr


MINIMAL = ("python3-apt", "python3-packaging", "python3-venv")  # what check mode's apt and pip modules need


def test_check_on_fresh_minimal_hosts_exits_0_and_reports_what_it_would_change(lab, tmp_path):
    """Two hosts nothing ran on yet (no containerd, no kubeadm, no python3-debian), made minimal: no
    python3-apt (the apt module refuses check mode without it) and no Python packaging (nor does
    the pip module). A control plane and an inference-only host: --check exits 0, changes nothing
    and lists what a real run would do (docs/ansible.md, "Check mode")."""
    fresh = TestHosts.start(2, tmp_path / "fresh", prefix="fresh", offset=10)
    try:
        for host in fresh.hosts:
            aptrepo.configure_host(host.path("/"), lab.apt.url, lab.apt.cache)
            host.remove_packages(*MINIMAL)  # in this host's own overlay only
        cp, inference = fresh.hosts
        bp = {"blueprint": 1, "name": "fresh", "provider": "baremetal", "kubernetes": {"version": "1.30"},
              "hosts": [{"name": cp.name, "address": cp.address, "port": cp.port, "roles": ["control_plane"]},
                        {"name": inference.name, "address": inference.address, "port": inference.port,
                         "roles": ["inference"]}],
              "teams": [{"name": "ml"}],
              "inference": {"runtime": "onnx",
                            "models": [{"name": "affine", "uri": f"file://{lab.model}", "team": "ml"}]},
              "secrets": {"ssh_key": f"${{file:{fresh.private_key}}}"}}
        (tmp_path / "fresh.yaml").write_text(yaml.safe_dump(bp, sort_keys=False))
        (tmp_path / ".infra").mkdir()
        checked = run_infra(["configure", "--check", str(tmp_path / "fresh.yaml")], tmp_path, _env(lab))
        assert checked.code == 0, checked.stdout[-3000:] + checked.stderr
        out = checked.stdout
        assert "(check mode: nothing was changed)" in out
        assert ": Report the packages a real run would install (containerd): changed=1" in out
        assert ("kubernetes_node : Report the Kubernetes packages a real run would install (check mode, no "
                "python3-apt here): changed=1") in out
        assert "kubernetes_node : Report that a real run would install kubeadm, then init or join: changed=1" in out
        assert ("inference_onnx : Report what a real run would install for the model server (check mode, no "
                "packaging module here): changed=1") in out
        for host in fresh.hosts:
            for package in ("containerd", *MINIMAL):  # still not installed
                status = host.chroot("dpkg-query", "-W", "-f=${db:Status-Abbrev}", package, check=False).stdout
                assert not status.startswith(("ii", "hi")), (host.name, package, status)
        assert not cp.path("/etc/containerd/config.toml").exists()
        assert not inference.path("/opt/infra-inference").exists()
    finally:
        fresh.destroy()


def test_declared_gpus_missing_from_the_host_fail_clearly(converged, lab, tmp_path):
    """A worker (node-2) declared with a GPU it lacks. (On node-1, a control plane only, the
    placement proof refuses the GPU at validate: the device plugin could not run there.)"""
    blueprint = tmp_path / "gpu.yaml"
    write_blueprint(blueprint, lab.hosts, lab.model, gpu_host="node-2")
    # Jobs that request no GPU need a Kubernetes node without GPUs (the placement proof; node-3,
    # inference-only, is no node): node-1 takes them here. Only node-2 is configured (--limit).
    bp = yaml.safe_load(blueprint.read_text())
    bp["hosts"][0]["roles"] = ["control_plane", "worker"]
    blueprint.write_text(yaml.safe_dump(bp, sort_keys=False))
    result = run_infra(["configure", "--limit", "node-2", str(blueprint)], lab.dir, _env(lab))
    assert result.code == 4, result.stderr
    assert "node-2 failed at task 'nvidia_gpu : Fail when the blueprint gives this host GPUs" in result.stderr
    assert "1 x l4 GPUs, but no NVIDIA GPU is on its PCI bus" in result.stderr


# --- packages from the local signed apt repository (tests/hosts/aptrepo.py) -------------------------
# These run last: they move the lab from version A to B and break/fix the repository.

KUBE_NODES = ("node-1", "node-2")  # node-3 is inference-only
ALL_HOSTS = ("node-1", "node-2", "node-3")


def dpkg(lab: Lab, host: str, *packages: str) -> dict[str, str]:
    """``package: "version status"`` for the packages on ``host`` (``hi`` = held and installed)."""
    proc = lab.hosts.by_name(host).chroot("dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Abbrev}\n",
                                          *packages, check=False)
    return {line.split()[0]: " ".join(line.split()[1:3]) for line in proc.stdout.splitlines()}


def test_first_up_installs_containerd_and_kubeadm_a_from_the_repository(converged, lab):
    for host in KUBE_NODES:
        assert dpkg(lab, host, "containerd", "runc", "python3-debian", "kubeadm", "kubelet", "kubectl") == {
            "containerd": "1.6.20~ds1-1+deb12u3 ii", "runc": "1.1.5+ds1-1+deb12u1 ii",
            "python3-debian": "0.1.49 ii", "kubeadm": "1.30.1-1.1 hi", "kubelet": "1.30.1-1.1 hi",
            "kubectl": "1.30.1-1.1 hi"}, host
    installed = dpkg(lab, "node-3", "containerd", "runc", "kubeadm", "kubelet", "kubectl")
    assert not {p for p, v in installed.items() if v.endswith(("ii", "hi"))}  # inference-only: none of them
    node = lab.hosts.by_name("node-1")
    assert "Test double for kubeadm" in node.path("/usr/bin/kubeadm").read_text()
    sources = node.path("/etc/apt/sources.list.d/kubernetes.sources").read_text()
    assert f"URIs: {lab.apt.url}/kubernetes/v1.30/deb/" in sources and "Signed-By:" in sources
    # version A is the blueprint's kubernetes.version "1.30.1", not a site variable
    group_vars = (lab.env_dir / "ansible" / "inventory" / "group_vars" / "all.yml").read_text()
    assert "infra_kubernetes_patch_version: !unsafe '1.30.1'\n" in group_vars
    assert "kubernetes_version: '1.30'\n" in group_vars
    assert "patch_version" not in lab.extra_vars.read_text()


def test_pin_b_with_the_repository_broken_fails_then_upgrades_held_packages(converged, lab):
    aptrepo.publish(lab.apt.cache, lab.apt.root, aptrepo.VERSIONS)  # upstream publishes version B
    lab.pin("1.30.2")  # the blueprint pins version B
    lab.apt.broken = "/kubernetes/"
    try:
        failed = up(lab)
    finally:
        lab.apt.broken = ""
    assert failed.code == 4, failed.stdout[-2000:] + failed.stderr
    assert "error: ansible: 2 of 3 hosts failed:" in failed.stderr
    for host in KUBE_NODES:
        assert (f"  {host} failed at task 'kubernetes_node : Refresh the package index (repository changed, "
                f"or the wanted version is not listed)'") in failed.stderr
    hosts = json.loads((lab.env_dir / "ansible" / "hosts.json").read_text())["hosts"]
    assert {h: v["status"] for h, v in hosts.items()} == {"node-1": "failed", "node-2": "failed", "node-3": "ok"}

    fixed = up(lab)  # the repository is back: the retry refreshes again and upgrades the held packages
    assert fixed.code == 0, fixed.stdout[-2000:] + fixed.stderr
    for host in KUBE_NODES:
        assert dpkg(lab, host, "kubeadm", "kubelet", "kubectl") == dict.fromkeys(
            ("kubeadm", "kubelet", "kubectl"), "1.30.2-1.1 hi"), host
    assert lab.hosts.by_name("node-2").chroot("kubeadm", "version", "-o", "short").stdout.strip() == "v1.30.2"
    again = up(lab)
    assert again.code == 0, again.stdout[-2000:] + again.stderr
    assert {h: s["changed"] for h, s in last_stats(lab).items()} == dict.fromkeys(ALL_HOSTS, 0)
    hosts = json.loads((lab.env_dir / "ansible" / "hosts.json").read_text())["hosts"]
    assert hosts["node-2"]["roles"] == ["host_facts", "common", "nvidia_gpu", "container_runtime", "kubernetes_node"]
    assert hosts["node-3"]["roles"] == ["host_facts", "common", "nvidia_gpu", "inference_onnx"]


def test_missing_kubernetes_repository_fails_every_kube_host_then_converges(converged, lab):
    """Every Kubernetes host fails; the inference-only host (node-3) needs no repository and is
    configured all the same."""
    lab.site_vars(kubernetes_node_repo_base="")
    missing = up(lab)
    assert missing.code == 4, missing.stdout[-2000:] + missing.stderr
    assert "error: ansible: 2 of 3 hosts failed:" in missing.stderr
    for host in KUBE_NODES:
        [line] = [x for x in missing.stderr.splitlines() if x.startswith(f"error:   {host} ")] or [missing.stderr]
        assert line.startswith(f"error:   {host} failed at task 'kubernetes_node : Fail when the Kubernetes "
                               "package repository is not configured': kubernetes_node_repo_base is not set"), line
        assert "(not configured:" not in line  # kubernetes_node is the last role of a Kubernetes host
    hosts = json.loads((lab.env_dir / "ansible" / "hosts.json").read_text())["hosts"]
    assert {h: v["status"] for h, v in hosts.items()} == {"node-1": "failed", "node-2": "failed", "node-3": "ok"}
    assert {h: v.get("not_configured") for h, v in hosts.items()} == dict.fromkeys(ALL_HOSTS)  # the last role failed
    status = run_infra(["status", "--output", "json", str(lab.blueprint)], lab.dir, _env(lab))
    data = json.loads(status.stdout)
    assert {h: v["last_configure"]["status"] for h, v in data["outputs"]["hosts"].items()} == {
        "node-1": "failed", "node-2": "failed", "node-3": "ok"}
    lab.site_vars()
    fixed = up(lab)
    assert fixed.code == 0, fixed.stdout[-2000:] + fixed.stderr
    hosts = json.loads((lab.env_dir / "ansible" / "hosts.json").read_text())["hosts"]
    assert {h: v["status"] for h, v in hosts.items()} == dict.fromkeys(ALL_HOSTS, "ok")


def test_a_changed_model_is_copied_again_and_restarts_the_server_once(converged, lab):
    make_model(lab.model, weights=[[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]], bias=[0.0, 0.0])
    result = up(lab)
    assert result.code == 0, result.stdout[-2000:] + result.stderr
    assert sorted(changed_tasks(lab, "inference_onnx")) == [
        "node-3: Copy models from the controller (file://)", "node-3: Restart the plain model server process"]
    status, body = _post(f"http://{lab.hosts.by_name('node-3').address}:8000/v2/models/affine/infer",
                         {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]})
    assert status == 200 and body["outputs"][0]["data"] == [5.0, 7.0]


# --- drift and a hybrid rollout (issue 14): after everything above, the lab is converged ----------

SYSCTL_FILE = "/etc/sysctl.d/99-infra-kubernetes.conf"  # role common writes it (copy)
SYSCTL_TASK = "common : Persist sysctls for container networking"


def test_drift_names_the_host_and_task_after_a_managed_file_is_edited_and_up_repairs_it(converged, lab):
    node = lab.hosts.by_name("node-2").path(SYSCTL_FILE)
    managed = node.read_text()
    node.write_text(managed.replace("net.ipv4.ip_forward = 1", "net.ipv4.ip_forward = 0"))
    # one check run (each costs about a converge), read as JSON: changes.drift holds the items
    # the text form prints as `lab: drifted: <item>`
    as_json = run_infra(["drift", str(lab.blueprint), "--format", "json"], lab.dir, _env(lab))
    assert as_json.code == 2, as_json.stdout[-3000:] + as_json.stderr
    [env] = json.loads(as_json.stdout)["environments"]
    assert (env["environment"], env["provider"], env["result"], env["drift"]) == ("lab", "baremetal", "drift", True)
    assert env["changes"]["drift"] == [f"node-2: {SYSCTL_TASK}"]
    assert env["changes"]["hosts"] == {"node-2": [SYSCTL_TASK]}
    assert "net.ipv4.ip_forward = 0" in node.read_text()  # check mode changed nothing

    repaired = up(lab)
    assert repaired.code == 0, repaired.stdout[-3000:] + repaired.stderr
    assert node.read_text() == managed
    clean = run_infra(["drift", str(lab.blueprint)], lab.dir, _env(lab))
    assert clean.code == 0, clean.stdout[-3000:] + clean.stderr
    assert "no drift" in clean.stdout and "drifted:" not in clean.stdout


AWS_BP = """blueprint: 1
name: {name}
provider: aws
region: us-east-1
network: {{cidr: {cidr}, zones: 2}}
node_pools:
  - {{name: system, instance_type: m6i.large, min: 1, max: 2}}
"""
HYBRID = """rollout: 1
name: hybrid
environments:
  - path: lab.yaml
  - path: sb-x.yaml
  - path: sb-y.yaml
    after: [lab]
max_parallel: 2
"""


def test_hybrid_rollout_bare_metal_and_two_sandbox_environments(converged, lab, tf_mirror):
    """The lab (bare metal, real SSH hosts: --sandbox leaves it alone) and sb-x run at the same
    time; sb-y comes after the lab. Their run records show it."""
    (lab.dir / "sb-x.yaml").write_text(AWS_BP.format(name="sb-x", cidr="10.41.0.0/16")
                                        + "kubernetes: {private_access: {via: inside_network}}\n")
    # sb-y, the cloud burst, reads the lab's outputs (saved by its configure): its API admits the lab's hosts
    (lab.dir / "sb-y.yaml").write_text(AWS_BP.format(name="sb-y", cidr="10.42.0.0/16") + (
        'tags: {peer: "${output:lab.control_plane_endpoint}"}\n'
        'kubernetes: {public_endpoint: true, authorized_networks: ["${output:lab.egress_cidrs}"]}\n'))
    (lab.dir / "hybrid.yaml").write_text(HYBRID)
    env = {**os.environ, **_env(lab), "INFRA_TF_PLUGIN_MIRROR": tf_mirror,
           "TF_CLI_CONFIG_FILE": str(lab.dir / "none.tfrc"), "COLUMNS": "200"}
    env.pop("INFRA_STATE_DIR", None)
    infra = [str(Path(sys.executable).with_name("infra"))]
    try:
        run = subprocess.run([*infra, "up", "hybrid.yaml", "--sandbox", "--auto-approve"], cwd=lab.dir, env=env,
                             capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([*infra, "sandbox", "stop"], cwd=lab.dir, env=env, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [path] = (lab.dir / ".infra" / "rollouts" / "hybrid").glob("*.json")
    rollout = json.loads(path.read_text())
    assert (rollout["command"], rollout["sandbox"], rollout["outcome"]) == ("up", True, "success")
    assert [e["environment"] for e in rollout["environments"]] == ["lab", "sb-x", "sb-y"]
    rec = {}
    for entry in rollout["environments"]:
        [found] = [json.loads(p.read_text()) for p in (lab.dir / ".infra" / "records" / entry["environment"]).glob(
            "*.json") if json.loads(p.read_text())["id"] == entry["record"]]
        rec[entry["environment"]] = found
    assert {n: (r["command"], r["outcome"], r["sandbox"]) for n, r in rec.items()} == {
        "lab": ("up", "success", False), "sb-x": ("up", "success", True), "sb-y": ("up", "success", True)}
    lab_r, x, y = rec["lab"], rec["sb-x"], rec["sb-y"]
    assert lab_r["started_at"] <= x["finished_at"] and x["started_at"] <= lab_r["finished_at"]  # overlapped
    assert y["started_at"] >= lab_r["finished_at"]  # after its dependency
    assert {h: s["changed"] for h, s in last_stats(lab).items()} == dict.fromkeys(ALL_HOSTS, 0)  # a no-op converge
    tfvars = json.loads((lab.dir / "build" / "sb-y" / "terraform" / "terraform.tfvars.json").read_text())
    first = lab.hosts.by_name("node-1").address  # the control plane
    assert tfvars["authorized_networks"] == [f"{h.address}/32" for h in lab.hosts.hosts]
    assert tfvars["tags"]["peer"] == f"https://{first}:6443"
