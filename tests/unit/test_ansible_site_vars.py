"""Site variables renamed to their role's prefix (issue 12, ansible-lint production profile): the
old names keep working for one release, with a deprecation warning from infra."""

from __future__ import annotations

import io

import yaml

from orchestrator.engines.ansible import RENAMED_SITE_VARS, Ansible
from orchestrator.progress import Progress
from tests.conftest import REPO

ROLES = REPO / "ansible" / "roles"
ROLE_OF = {"kubernetes_node_": "kubernetes_node", "nvidia_gpu_": "nvidia_gpu",
           "container_runtime_": "container_runtime"}


def test_every_renamed_site_variable_falls_back_to_its_old_name():
    for old, new in RENAMED_SITE_VARS.items():
        role = next(r for prefix, r in ROLE_OF.items() if new.startswith(prefix))
        defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
        assert defaults[new].startswith(f"{{{{ {old} | default("), (new, defaults[new])
        assert old not in defaults


def test_an_old_name_in_a_site_file_warns_and_still_reaches_ansible(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    engine = Ansible(tmp_path / "ansible", progress=Progress(stream=out, err_stream=err, interactive=False))
    site = tmp_path / "site.yml"
    site.write_text("kubernetes_repo_base: https://mirror.example.invalid/k8s\nnvidia_gpu_driver_branch: '570'\n")
    copy = engine._unsafe_copy(site, "site-vars-0.yml")
    assert err.getvalue().splitlines() == [
        f"warning: {site}: site variable kubernetes_repo_base is deprecated, use kubernetes_node_repo_base "
        "(the old name works until the next release)"]
    assert yaml.safe_load(copy.read_text().replace("!unsafe ", "")) == {
        "kubernetes_repo_base": "https://mirror.example.invalid/k8s", "nvidia_gpu_driver_branch": "570"}
