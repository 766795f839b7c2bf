"""Where a bare-metal cluster's Kubernetes comes from, as blueprint fields (issue 22):
``kubernetes.package_repository: {url, key_url?, key_sha256?}`` and ``kubernetes.cni:
{manifest_url, sha256}``.

Validation (located one-line errors), the group variables infra renders from them (nothing new
when they are absent: the golden renders stay as they were), and the kubernetes_node role
driven by those rendered variables alone, with real ansible-playbook on this machine (local
connection, file:// URLs): the repository key checked against its sha256 (tasks/repo-key.yml)
and the CNI manifest checked against the blueprint's (tasks/cni.yml). The lab converges with the
same tasks over SSH in tests/integration/test_ansible_hosts.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError
from orchestrator.providers.registry import get
from orchestrator.render.ansible import render_ansible
from tests.conftest import REPO, require

BIN = Path(sys.executable).parent
ROLE = REPO / "ansible" / "roles" / "kubernetes_node"
MANIFEST = REPO / "tests" / "fixtures" / "ansible" / "calico-test.yaml"
KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a real key: the role only checks its sha256\n" \
      "-----END PGP PUBLIC KEY BLOCK-----\n"
SHA = "ab" * 32
HOSTS = """\
blueprint: 1
name: lab
provider: baremetal
kubernetes:
  version: "1.30"
{extra}hosts:
  - {{name: cp-1, address: 10.9.0.1, roles: [control_plane, worker]}}
"""


def _bp(tmp_path: Path, kubernetes: str, head: str = HOSTS) -> Path:
    path = tmp_path / "bp.yaml"
    path.write_text(head.format(extra=kubernetes))
    return path


def _problems(tmp_path: Path, kubernetes: str, head: str = HOSTS) -> list[str]:
    with pytest.raises(BlueprintError) as err:
        load(_bp(tmp_path, kubernetes, head))
    return [str(p) for p in err.value.problems]


class _AnsibleYaml(yaml.SafeLoader):
    """Reads the rendered group_vars: ``!unsafe`` strings are plain strings."""


_AnsibleYaml.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _group_vars(tmp_path: Path, kubernetes: str) -> tuple[str, dict]:
    text = render_ansible(load(_bp(tmp_path, kubernetes)).model, get("baremetal"))["group_vars/all.yml"]
    return text, yaml.load(text, Loader=_AnsibleYaml)


# --- the blueprint ------------------------------------------------------------------------------

def test_the_fields_render_as_the_roles_group_variables(tmp_path):
    text, got = _group_vars(tmp_path, f"""\
  package_repository:
    url: https://mirror.site.internal/kubernetes/core:/stable:/
    key_url: https://mirror.site.internal/keys/kubernetes.asc
    key_sha256: {SHA.upper()}
  cni: {{manifest_url: "http://mirror.site.internal/calico/v3.31.3/calico.yaml", sha256: "{SHA}"}}
""")
    assert {k: v for k, v in got.items() if k.startswith("infra_kubernetes_")} == {
        "infra_kubernetes_repo_base": "https://mirror.site.internal/kubernetes/core:/stable:",  # no trailing '/'
        "infra_kubernetes_repo_key_url": "https://mirror.site.internal/keys/kubernetes.asc",
        "infra_kubernetes_repo_key_sha256": SHA,  # lower case, as sha256sum prints it
        "infra_kubernetes_cni_manifest_url": "http://mirror.site.internal/calico/v3.31.3/calico.yaml",
        "infra_kubernetes_cni_manifest_sha256": SHA,
    }
    assert "infra_kubernetes_repo_base: !unsafe 'https://mirror.site.internal/kubernetes/core:/stable:'" in text
    # the role's defaults read exactly these names (a site variable of the role's own name wins)
    defaults = (ROLE / "defaults" / "main.yml").read_text()
    for name in ("repo_base", "repo_key_url", "repo_key_sha256", "cni_manifest_url", "cni_manifest_sha256"):
        assert re.search(rf"infra_kubernetes_{name}\s+\| default\(", defaults), name


def test_without_the_fields_nothing_new_is_rendered(tmp_path):
    _, got = _group_vars(tmp_path, "")
    assert not [k for k in got if k.startswith(("infra_kubernetes_repo", "infra_kubernetes_cni"))]
    _, got = _group_vars(tmp_path, "  package_repository: {url: 'http://127.0.0.1:8080/k8s'}\n")
    assert {k for k in got if k.startswith("infra_kubernetes_repo")} == {"infra_kubernetes_repo_base"}


@pytest.mark.parametrize(("kubernetes", "where", "says"), [
    (f"  package_repository: {{url: https://m.internal/k8s, key_sha256: {SHA[:-1]}}}\n",
     r"bp\.yaml:6:65 kubernetes\.package_repository\.key_sha256", "64 hex digits (sha256sum FILE), not 63 characters"),
    ("  cni: {manifest_url: 'https://m.internal/calico.yaml', sha256: '" + "g" * 64 + "'}\n",
     r"bp\.yaml:6:65 kubernetes\.cni\.sha256", "not a character that is not a hex digit"),
    ("  cni: {manifest_url: 'https://m.internal/calico.yaml'}\n",
     r"bp\.yaml:6:3 kubernetes\.cni\.sha256", "required field is missing"),
    ("  package_repository: {url: 'ftp://m.internal/k8s'}\n",
     r"bp\.yaml:6:29 kubernetes\.package_repository\.url", "must be an http:// or https:// URL"),
    ("  package_repository: {url: 'https://m.internal/{{lookup}}'}\n",
     r"bp\.yaml:6:29 kubernetes\.package_repository\.url", "must not contain"),
    ("  package_repository: {url: https://m.internal/k8s, key_url: 'https://m.internal/a key'}\n",
     r"bp\.yaml:6:62 kubernetes\.package_repository\.key_url", "must be an http:// or https:// URL"),
])
def test_bad_values_are_refused_with_their_line_and_field(tmp_path, kubernetes, where, says):
    [problem] = _problems(tmp_path, kubernetes)
    assert re.match(where + ": ", problem[problem.index("bp.yaml"):]) and says in problem, problem


def test_a_cloud_blueprint_is_refused_the_fields(tmp_path):
    head = """\
blueprint: 1
name: lab
provider: aws
region: us-east-1
kubernetes:
{extra}  private_access: {{via: inside_network}}
node_pools: [{{name: cpu, instance_type: m6i.large, min: 1, max: 2}}]
"""
    problems = _problems(tmp_path, f"  package_repository: {{url: https://m.internal/k8s}}\n"
                                   f"  cni: {{manifest_url: https://m.internal/c.yaml, sha256: {SHA}}}\n", head)
    assert [p.split("/")[-1].split(": ")[0] for p in problems] == [
        "bp.yaml:6:3 kubernetes.package_repository", "bp.yaml:7:3 kubernetes.cni"], problems
    assert all("is for hosts (bare metal)" in p for p in problems), problems


# --- the role, driven by the rendered variables ---------------------------------------------------

class Play:
    """ansible-playbook on this machine: the rendered group_vars (the blueprint's fields and
    nothing else about the sources) plus the folders a test may write to."""

    def __init__(self, root: Path, tasks_from: str, group_vars: str, **paths: str) -> None:
        self.root = root
        (root / "play.yml").write_text(yaml.safe_dump([{
            "name": f"kubernetes_node {tasks_from}", "hosts": "localhost", "connection": "local",
            "gather_facts": False,
            "tasks": [{"name": tasks_from, "ansible.builtin.include_role": {
                "name": "kubernetes_node", "tasks_from": tasks_from}}]}], sort_keys=False))
        (root / "group_vars.yml").write_text(group_vars)
        (root / "paths.yml").write_text(yaml.safe_dump(paths))

    def run(self, *args: str) -> tuple[int, str, int]:
        env = {"PATH": f"{self.root / 'bin'}:{BIN}:/usr/bin:/bin", "HOME": str(self.root), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles"), "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
               "ANSIBLE_LOCALHOST_WARNING": "False", "FAKE_KUBECTL_ROOT": str(self.root / "cluster")}
        # group_vars as a vars file (-e: the same values; precedence does not matter, nothing else sets them)
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,",
                               "-e", f"@{self.root / 'group_vars.yml'}", "-e", f"@{self.root / 'paths.yml'}",
                               *args, str(self.root / "play.yml")],
                              capture_output=True, text=True, env=env)
        recap = re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", proc.stdout)
        return proc.returncode, proc.stdout + proc.stderr, int(recap.group(1)) if recap else -1


@pytest.fixture
def root(tmp_path) -> Path:
    require(os.geteuid() == 0, "root, to run the role's tasks (root-owned files) on this machine")
    return tmp_path


def _rendered(root: Path, kubernetes: str) -> str:
    return render_ansible(load(_bp(root, kubernetes)).model, get("baremetal"))["group_vars/all.yml"]


def test_the_repository_key_is_checked_against_the_blueprints_sha256(root):
    key = root / "mirror" / "kubernetes.asc"
    key.parent.mkdir()
    key.write_text(KEY)
    good = hashlib.sha256(KEY.encode()).hexdigest()
    keyring = root / "keyrings" / "kubernetes.asc"
    mirror = "http://mirror.invalid/keys/kubernetes.asc"
    play = Play(root, "repo-key", _rendered(root, f"""\
  package_repository: {{url: "http://127.0.0.1:9/k8s", key_url: "{mirror}", key_sha256: {good}}}
"""), kubernetes_node_repo_keyring=str(keyring))
    # the blueprint takes http(s) only; here the host's get_url reads the same key from a file:// URL
    (root / "group_vars.yml").write_text((root / "group_vars.yml").read_text().replace(mirror, key.as_uri()))
    code, out, changed = play.run()
    assert code == 0 and changed == 2, out[-3000:]  # folder, key
    assert keyring.read_text() == KEY and keyring.stat().st_mode & 0o777 == 0o644
    code, out, changed = play.run()
    assert code == 0 and changed == 0, out[-3000:]  # converged: nothing downloaded again

    key.write_text(KEY.replace("not a real key", "another key"))  # the mirror's key changed
    keyring.unlink()
    code, out, _ = play.run()
    assert code != 0 and "The checksum for" in out and "did not match" in out, out[-3000:]
    assert not keyring.exists()  # a key that does not match is never put where apt would trust it


def test_the_key_url_defaults_to_the_repositorys_own_key(root):
    """Without key_url the key is <url>/v<minor>/deb/Release.key (rpm: repodata/repomd.xml.key)."""
    play = Play(root, "repo-key", _rendered(root, f"  package_repository: {{url: 'http://127.0.0.1:9/k8s', "
                                                   f"key_sha256: {SHA}}}\n"),
                kubernetes_node_repo_keyring=str(root / "keyrings" / "kubernetes.asc"))
    code, out, _ = play.run()  # nothing listens there: the error names the URL the role chose
    assert code != 0 and "http://127.0.0.1:9/k8s/v1.30/deb/Release.key" in out, out[-3000:]


def test_the_cni_manifest_comes_from_the_blueprint_and_is_checked(root):
    (root / "bin").mkdir()
    (root / "bin" / "kubectl").symlink_to(REPO / "tests" / "fixtures" / "ansible" / "fake-kubectl")
    for sub in ("cluster/var/log", "cluster/var/lib", "etc-kubernetes"):
        (root / sub).mkdir(parents=True)
    (root / "etc-kubernetes" / "admin.conf").write_text("fake admin kubeconfig\n")
    paths = {"kubernetes_node_config_dir": str(root / "etc-kubernetes"), "kubernetes_node_cni_dir": str(root / "cni")}
    url = "http://127.0.0.1:9/calico.yaml"

    wrong = Play(root, "cni", _rendered(root, f"  cni: {{manifest_url: '{url}', sha256: {SHA}}}\n"), **paths)
    (root / "group_vars.yml").write_text((root / "group_vars.yml").read_text().replace(url, MANIFEST.as_uri()))
    code, out, _ = wrong.run()
    assert code != 0 and "The checksum for" in out and "did not match" in out, out[-3000:]
    assert not (root / "cluster" / "var" / "log" / "fake-kubectl.log").exists()  # nothing applied

    good = hashlib.sha256(MANIFEST.read_bytes()).hexdigest()
    play = Play(root, "cni", _rendered(root, f"  cni: {{manifest_url: '{url}', sha256: {good}}}\n"), **paths)
    (root / "group_vars.yml").write_text((root / "group_vars.yml").read_text().replace(url, MANIFEST.as_uri()))
    code, out, changed = play.run()
    assert code == 0 and changed >= 3, out[-3000:]
    [orig] = (root / "cni").glob("*.orig.yaml")
    assert orig.read_bytes() == MANIFEST.read_bytes()
    assert "apply --server-side" in (root / "cluster" / "var" / "log" / "fake-kubectl.log").read_text()
