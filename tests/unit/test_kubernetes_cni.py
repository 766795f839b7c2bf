"""The kubernetes_node role's CNI (tasks/cni.yml), run by real ansible-playbook on the controller
(local connection) as the first control plane runs it: the manifest (the Calico-shaped test double
tests/fixtures/ansible/calico-test.yaml, by file:// URL) is fetched with its sha256 into a
root-only folder, its IPv4 pool set to kubeadm's pod subnet, and applied once through the fake
kubectl (tests/fixtures/ansible/fake-kubectl, which records calls); a second run changes nothing
and applies nothing; check mode applies nothing and says what a real run would do. The SSH-host
run of the same tasks is in tests/integration/test_ansible_hosts.py."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require

BIN = Path(sys.executable).parent
MANIFEST = REPO / "tests" / "fixtures" / "ansible" / "calico-test.yaml"
PLAY = [{"name": "The CNI as the first control plane applies it", "hosts": "localhost", "connection": "local",
         "gather_facts": False,
         "tasks": [{"name": "CNI", "ansible.builtin.include_role": {"name": "kubernetes_node", "tasks_from": "cni"}}]}]


class Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bin").mkdir()
        (root / "bin" / "kubectl").symlink_to(REPO / "tests" / "fixtures" / "ansible" / "fake-kubectl")
        for sub in ("cluster/var/log", "cluster/var/lib", "etc-kubernetes"):
            (root / sub).mkdir(parents=True)
        (root / "etc-kubernetes" / "admin.conf").write_text("fake admin kubeconfig\n")
        (root / "play.yml").write_text(yaml.safe_dump(PLAY, sort_keys=False))
        self.vars(kubernetes_node_cni_manifest_sha256=hashlib.sha256(MANIFEST.read_bytes()).hexdigest())

    def vars(self, **extra) -> None:
        (self.root / "vars.yml").write_text(yaml.safe_dump({
            "kubernetes_node_config_dir": str(self.root / "etc-kubernetes"),
            "kubernetes_node_cni_dir": str(self.root / "cni"),
            "kubernetes_node_cni_manifest_url": MANIFEST.as_uri(),
            **extra}))

    def play(self, *args: str) -> tuple[int, str, dict[str, int]]:
        env = {"PATH": f"{self.root / 'bin'}:{BIN}:/usr/bin:/bin", "HOME": str(self.root), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles"), "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
               "ANSIBLE_LOCALHOST_WARNING": "False", "FAKE_KUBECTL_ROOT": str(self.root / "cluster")}
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"@{self.root / 'vars.yml'}",
                               *args, str(self.root / "play.yml")], capture_output=True, text=True, env=env)
        recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
        counts = dict(zip(("ok", "changed", "failed"), map(int, recap.groups()), strict=True)) if recap else {}
        return proc.returncode, proc.stdout + proc.stderr, counts

    def calls(self) -> list[str]:
        log = self.root / "cluster" / "var" / "log" / "fake-kubectl.log"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def lab(tmp_path) -> Lab:
    require(os.geteuid() == 0, "root, to run the role's CNI tasks (root-owned files) on this machine")
    return Lab(tmp_path)


def test_the_cni_is_fetched_set_to_the_pod_subnet_applied_once_and_again_only_when_missing(lab):
    code, out, counts = lab.play()
    assert code == 0, out[-3000:]
    assert counts["changed"] == 5, out[-3000:]  # folder, download, copy, pool, apply
    kubeconfig = f"--kubeconfig {lab.root / 'etc-kubernetes' / 'admin.conf'}"
    files = list((lab.root / "cni").iterdir())
    (orig,) = [p for p in files if p.name.endswith(".orig.yaml")]
    (edited,) = [p for p in files if p != orig]
    assert re.fullmatch(r"calico-[0-9a-f]{12}\.yaml", edited.name), edited.name
    assert lab.calls() == [
        f"{kubeconfig} get daemonset/calico-node --namespace kube-system --ignore-not-found --output name",
        f"{kubeconfig} apply --server-side --force-conflicts --field-manager infra-cni --filename {edited}"]
    applied = lab.root / "cluster" / "var" / "lib" / "fake-kubectl" / "applied.yaml"
    assert ('            - name: CALICO_IPV4POOL_CIDR\n              value: "10.244.0.0/16"\n'
            '            - name: CALICO_DISABLE_FILE_LOGGING\n') in applied.read_text()
    assert orig.read_bytes() == MANIFEST.read_bytes()  # the download is kept as fetched
    assert (lab.root / "cni").stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in files} == {0o600}

    code, out, counts = lab.play()  # converged: one read, nothing applied
    assert code == 0 and counts["changed"] == 0, out[-3000:]
    assert [c.split()[2] for c in lab.calls()] == ["get", "apply", "get"]

    applied.unlink()  # the CNI is gone from the cluster
    code, out, counts = lab.play("--check")
    assert code == 0 and counts["changed"] == 1, out[-3000:]
    assert "Report that a real run would apply the CNI manifest" in out
    assert [c.split()[2] for c in lab.calls()] == ["get", "apply", "get", "get"]
    code, out, counts = lab.play()
    assert code == 0 and counts["changed"] == 1, out[-3000:]
    assert [c.split()[2] for c in lab.calls()] == ["get", "apply", "get", "get", "get", "apply"]


def test_a_manifest_that_does_not_match_its_sha256_is_refused(lab):
    lab.vars(kubernetes_node_cni_manifest_sha256="0" * 64)
    code, out, _ = lab.play()
    assert code != 0 and "The checksum for" in out and "did not match" in out, out[-3000:]
    assert lab.calls() == []
