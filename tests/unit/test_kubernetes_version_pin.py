"""``kubernetes.version`` as "MAJOR.MINOR" or, on hosts, "MAJOR.MINOR.PATCH" (issue 12: the
blueprint pins the patch release that the kubernetes_node role installs and holds). A cloud
refuses a patch (located, exit 2); everything that uses the version keeps the minor; the patch
reaches the role through the rendered group_vars, and a site variable still overrides it (one
release, with a warning)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.blueprint.loader import load
from orchestrator.engines.ansible import Ansible
from orchestrator.errors import BlueprintError
from orchestrator.progress import Progress
from orchestrator.providers.registry import get
from orchestrator.render import render_files
from tests.blueprints import with_way_in
from tests.conftest import REPO

AWS = ("blueprint: 1\nname: t-env\nprovider: aws\nregion: us-east-1\nkubernetes:\n  version: \"{v}\"\n"
       "node_pools:\n  - {{name: system, instance_type: m6i.large, min: 1, max: 2}}\n")
HOSTS = ("blueprint: 1\nname: lab\nprovider: baremetal\nkubernetes:\n  version: \"{v}\"\n"
         "hosts:\n  - {{name: cp-1, address: 10.1.0.10, roles: [control_plane, worker]}}\n"
         "teams:\n  - {{name: ml}}\n")
BIN = Path(sys.executable).parent


def blueprint(tmp_path: Path, template: str, version: str):
    path = tmp_path / "bp.yaml"
    path.write_text(with_way_in(template.format(v=version)))
    return load(path).model


def test_a_patch_version_on_a_cloud_is_a_located_error(tmp_path):
    with pytest.raises(BlueprintError) as info:
        blueprint(tmp_path, AWS, "1.34.2")
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'bp.yaml'}:6:12 kubernetes.version: EKS/AKS/GKE choose the patch release; give 1.34 "
        "(a patch version such as \"1.30.2\" is only for hosts)"]


def test_validate_exits_2_on_a_cloud_patch_version(tmp_path):
    path = tmp_path / "bp.yaml"
    gcp = AWS.replace("provider: aws\nregion: us-east-1", "provider: gcp\nregion: us-central1")
    path.write_text(with_way_in(gcp.format(v="1.35.1")))
    proc = subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"{path}:6:12 kubernetes.version: EKS/AKS/GKE choose the patch release; give 1.35 "
                           "(a patch version such as \"1.30.2\" is only for hosts)\n1 problem found\n")


@pytest.mark.parametrize("version", ["1.30.02", "1.30.", "1.30.2.1", "1.30-2", "v1.30.2"])
def test_malformed_versions_are_refused(tmp_path, version):
    with pytest.raises(BlueprintError) as info:
        blueprint(tmp_path, HOSTS, version)
    assert [p.path for p in info.value.problems] == ["kubernetes.version"]


def test_hosts_pin_a_patch_and_everything_else_uses_the_minor(tmp_path):
    bp = blueprint(tmp_path, HOSTS, "1.30.2")
    assert (bp.kubernetes.version, bp.kubernetes.minor, bp.kubernetes.patch) == ("1.30.2", "1.30", "1.30.2")
    files = render_files(bp, get(bp.provider))
    group_vars = files["ansible"]["group_vars/all.yml"]
    assert "infra_kubernetes_patch_version: !unsafe '1.30.2'\n" in group_vars
    assert "kubernetes_version: '1.30'\n" in group_vars
    namespace = files["kubernetes"]["teams/ml.yaml"]
    assert "pod-security.kubernetes.io/enforce-version: v1.30\n" in namespace


def test_a_minor_version_pins_no_patch(tmp_path):
    bp = blueprint(tmp_path, HOSTS, "1.31")
    assert (bp.kubernetes.minor, bp.kubernetes.patch) == ("1.31", None)
    assert "patch" not in render_files(bp, get(bp.provider))["ansible"]["group_vars/all.yml"]


def _role_patch_version(tmp_path: Path, bp, *site: Path) -> str:
    """kubernetes_node_patch_version as Ansible resolves it (ansible-playbook, local connection): the
    role's default expression over the rendered group_vars beside the inventory, with the site
    files as extra variables (which beat both)."""
    inv = tmp_path / "inventory"
    for rel, text in render_files(bp, get(bp.provider))["ansible"].items():
        (inv / rel).parent.mkdir(parents=True, exist_ok=True)
        (inv / rel).write_text(text)
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Resolve", "hosts": "cp-1", "connection": "local", "gather_facts": False,
        "vars_files": [str(REPO / "ansible" / "roles" / "kubernetes_node" / "defaults" / "main.yml")],
        "tasks": [{"name": "Show", "ansible.builtin.debug": {"msg": "PATCH={{ kubernetes_node_patch_version }}="}}]}]))
    args = [arg for path in site for arg in ("-e", f"@{path}")]
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inv / "inventory.yml"), *args,
                           str(tmp_path / "play.yml")], capture_output=True, text=True, timeout=120,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1",
                               "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout.split("PATCH=")[1].split("=")[0]


def test_the_blueprint_patch_reaches_the_role_and_a_site_variable_overrides_it_with_a_warning(tmp_path):
    bp = blueprint(tmp_path, HOSTS, "1.30.2")
    assert _role_patch_version(tmp_path, bp) == "1.30.2"
    site = tmp_path / "site.yml"
    site.write_text("kubernetes_node_patch_version: '1.30.9'\n")
    assert _role_patch_version(tmp_path, bp, site) == "1.30.9"
    assert _role_patch_version(tmp_path, blueprint(tmp_path, HOSTS, "1.30")) == ""

    err = io.StringIO()
    engine = Ansible(tmp_path / "ansible", progress=Progress(stream=io.StringIO(), err_stream=err, interactive=False))
    engine._unsafe_copy(site, "site-vars-0.yml")
    assert err.getvalue().splitlines() == [
        f"warning: {site}: site variable kubernetes_node_patch_version is deprecated, use kubernetes.version in the "
        "blueprint (e.g. \"1.30.2\"); until the next release the site variable overrides the blueprint"]
