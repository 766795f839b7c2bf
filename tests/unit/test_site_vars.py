"""Site-variables files are data (docs/security.md, "Site-variables files are data too").

A file given with ``infra configure -e`` or ``$INFRA_ANSIBLE_EXTRA_VARS`` may set the roles'
variables only (the names in ``ansible/roles/*/defaults/main.yml``). Ansible's own connection,
interpreter, become and behaviour variables (``ansible_*``) would run commands on the operator's
machine even with ``--check`` (``!unsafe`` stops templating, not an ssh ProxyCommand): each is a
located error, exit 2, and nothing is rendered or run. The payloads below are live: the last
tests show the same ProxyCommand creating its marker once it reaches Ansible by another way.
Host variables from the blueprint are a fixed set; a blueprint cannot add one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator import inventory
from orchestrator.blueprint.loader import load
from orchestrator.engines.ansible import RENAMED_SITE_VARS, Ansible, AnsibleRunError, allowed_site_vars
from orchestrator.errors import BlueprintError
from orchestrator.providers.baremetal import BaremetalProvider
from orchestrator.render.ansible import render_ansible
from orchestrator.stages.configure import check_site_files
from tests.conftest import REPO

INFRA = Path(sys.executable).with_name("infra")

BLUEPRINT = """\
blueprint: 1
name: lab
provider: baremetal
kubernetes:
  version: "1.31"
node_pools:
  - name: general
    labels:
      ansible_ssh_common_args: x
hosts:
  - name: cp-1
    address: 127.0.0.1
    port: 1
    roles: [control_plane, worker]
    pool: general
teams:
  - name: vision
"""

# Each variable with a value that runs ``touch MARKER`` (``{script}`` does) where Ansible uses it.
CONNECTION_VARS = [
    ("ansible_ssh_common_args", '-o ProxyCommand="touch {marker}"'),
    ("ansible_ssh_extra_args", '-o ProxyCommand="touch {marker}"'),
    ("ansible_ssh_args", '-o ProxyCommand="touch {marker}"'),
    ("ansible_scp_extra_args", '-o ProxyCommand="touch {marker}"'),
    ("ansible_sftp_extra_args", '-o ProxyCommand="touch {marker}"'),
    ("ansible_ssh_executable", "{script}"),
    ("ansible_connection", "local"),
    ("ansible_python_interpreter", "{script}"),
    ("ansible_perl_interpreter", "{script}"),
    ("ansible_shell_executable", "{script}"),
    ("ansible_become_exe", "{script}"),
    ("ansible_become_method", "su"),
    ("ansible_become_flags", "-c 'touch {marker}'"),
    ("ANSIBLE_SSH_COMMON_ARGS", '-o ProxyCommand="touch {marker}"'),
]


def lab(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bare-metal blueprint, the marker a payload would create and a script that creates it."""
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    marker = tmp_path / "PWNED"
    script = tmp_path / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexec /usr/bin/ssh \"$@\"\n")
    script.chmod(0o755)
    return tmp_path / "bp.yaml", marker, script


def configure(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(INFRA), "configure", "--check", "bp.yaml", *args], cwd=tmp_path,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("name", "value"), CONNECTION_VARS, ids=[n for n, _ in CONNECTION_VARS])
def test_a_connection_variable_in_a_site_file_is_refused_and_nothing_runs(tmp_path, name, value):
    _, marker, script = lab(tmp_path)
    site = tmp_path / "site.yml"
    site.write_text("nvidia_gpu_driver_branch: '550'\n" + yaml.safe_dump({name: value.format(marker=marker,
                                                                                          script=script)}))
    proc = configure(tmp_path, "-e", "site.yml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"site.yml:2:1 {name}: an Ansible connection, interpreter, become or behaviour variable: never taken "
        "from a site file (it would change how and where Ansible runs commands)")
    assert "1 problem found" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bp.yaml", "evil.sh", "site.yml"]  # nothing rendered or run


def test_the_environment_variable_is_held_to_the_same_rule(tmp_path):
    _, marker, _ = lab(tmp_path)
    (tmp_path / "a.yml").write_text("kubernetes_node_repo_base: https://mirror.example/k8s\n")
    (tmp_path / "b.yml").write_text(f"# from the environment\n"
                                    f"ansible_ssh_common_args: -o ProxyCommand='touch {marker}'\n")
    proc = configure(tmp_path, env={"INFRA_ANSIBLE_EXTRA_VARS": f"a.yml{os.pathsep}b.yml"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("b.yml:2:1 ansible_ssh_common_args: an Ansible connection")
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yml", "b.yml", "bp.yaml", "evil.sh"]


def test_every_key_outside_the_roles_variables_is_located_at_once(tmp_path):
    lab(tmp_path)
    (tmp_path / "site.yml").write_text(
        "nvidia_gpu_driver_branch: '550'\n"
        "kubernetes_init_host: localhost        # infra's own: tasks are delegated to it\n"
        "base: &base {ansible_connection: local}\n"
        "<<: *base\n"
        "nvidia_gpu_drivr_open: true\n")
    proc = configure(tmp_path, "-e", "site.yml")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[:4] == [
        "site.yml:2:1 kubernetes_init_host: not a role variable: a site file may set only the variables in "
        'ansible/roles/*/defaults/main.yml (docs/ansible.md, "Site variables")',
        "site.yml:3:1 base: not a role variable: a site file may set only the variables in "
        'ansible/roles/*/defaults/main.yml (docs/ansible.md, "Site variables")',
        "site.yml:4:1 ansible_connection: an Ansible connection, interpreter, become or behaviour variable: "
        "never taken from a site file (it would change how and where Ansible runs commands)",
        "site.yml:5:1 nvidia_gpu_drivr_open: not a role variable (did you mean 'nvidia_gpu_driver_open'?): a site "
        'file may set only the variables in ansible/roles/*/defaults/main.yml (docs/ansible.md, "Site variables")',
    ]
    assert lines[4:6] == ["4 problems found", 'hint: site variables are data: set role variables only '
                          '(docs/security.md, "Site-variables files are data too")']


def test_the_allowed_names_are_the_roles_defaults():
    roles = REPO / "ansible" / "roles"
    expected = set(RENAMED_SITE_VARS)  # the names before the rename still work for one release
    for defaults in roles.glob("*/defaults/main.yml"):
        expected |= set(yaml.safe_load(defaults.read_text()))
    assert allowed_site_vars() == expected
    assert {"kubernetes_node_repo_base", "nvidia_gpu_driver_branch", "inference_onnx_wheel_dir",
            "container_runtime_nvidia_container_toolkit_repo", "nvidia_driver_branch"} <= expected
    assert not [n for n in expected if n.lower().startswith("ansible_")]


def test_a_new_role_variable_needs_no_code_change(tmp_path):
    defaults = tmp_path / "roles" / "new_role" / "defaults" / "main.yml"
    defaults.parent.mkdir(parents=True)
    defaults.write_text("new_role_mirror: ''\nansible_become_exe: sudo  # never, even from a role\n")
    assert allowed_site_vars(tmp_path) == {"new_role_mirror"} | set(RENAMED_SITE_VARS)


def test_a_site_file_of_role_variables_passes(tmp_path):
    site = tmp_path / "site.yml"
    site.write_text(yaml.safe_dump({
        "kubernetes_node_repo_base": "http://127.0.0.1:8080/kubernetes",
        "kubernetes_node_cni_manifest_url": "http://127.0.0.1:8080/calico.yaml",
        "kubernetes_node_cni_manifest_sha256": "0" * 64,
        "inference_onnx_listen_on_host_address": True,
        "inference_onnx_wheel_dir": "/srv/wheels",
        "nvidia_driver_branch": "550",  # an old name: a deprecation warning at run time, not an error
    }))
    empty = tmp_path / "empty.yml"
    empty.write_text("# nothing for this site\n")
    assert check_site_files([site, empty]) == [site, empty]


def test_the_engine_refuses_ansible_variables_from_any_file(tmp_path):
    """The second layer: the engine itself, whatever project it runs, never passes an ``ansible_*``
    site variable to ansible-playbook (it refuses before starting it)."""
    marker = tmp_path / "PWNED"
    site = tmp_path / "site.yml"
    site.write_text(yaml.safe_dump({"any_value": 1, "ansible_ssh_common_args": f'-o ProxyCommand="touch {marker}"'}))
    inv = remote_inventory(tmp_path)
    engine = Ansible(tmp_path / "private", project_dir=project(tmp_path))
    with pytest.raises(BlueprintError) as info:
        engine.run("ping.yml", inv, host_count=1, extravars_files=[site])
    assert [str(p) for p in info.value.problems] == [
        f"{site}:1:1 ansible_ssh_common_args: an Ansible connection, interpreter, become or behaviour variable: "
        "never taken from a site file (it would change how and where Ansible runs commands)"]
    assert not marker.exists()
    assert not (tmp_path / "private" / "artifacts").exists() or not any((tmp_path / "private" / "artifacts").iterdir())


# --- the payload is live: what the checks stop would run --------------------------------------------


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "ping.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    return folder


def remote_inventory(tmp_path: Path, **host_vars: str) -> Path:
    """One host over SSH at a port where nothing listens."""
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"cp-1": {"ansible_host": "127.0.0.1", "ansible_port": 1,
                                                                 **host_vars}}}}))
    return path


def test_the_proxy_command_payload_runs_once_it_reaches_ansible(tmp_path):
    """The control for the tests above: the same value, given to Ansible as an inventory variable
    (no site file, so no check), runs its command on this machine while Ansible connects."""
    marker = tmp_path / "PWNED"
    inv = remote_inventory(tmp_path, ansible_ssh_common_args=f'-o ProxyCommand="touch {marker}"')
    engine = Ansible(tmp_path / "private", project_dir=project(tmp_path))
    with pytest.raises(AnsibleRunError):  # the proxy exits at once: the host is unreachable
        engine.run("ping.yml", inv, host_count=1)
    assert marker.exists()


# --- host variables from the blueprint: a fixed set ------------------------------------------------


def test_a_blueprint_cannot_add_a_host_variable(tmp_path):
    path = tmp_path / "bp.yaml"
    path.write_text(BLUEPRINT)
    bp = load(path).model
    [hv] = yaml.safe_load(render_ansible(bp, BaremetalProvider())["inventory.yml"]
                          .replace("!unsafe ", ""))["all"]["hosts"].values()
    assert hv["infra_labels"]["ansible_ssh_common_args"] == "x"  # a label is data, under infra_labels
    assert set(hv) == {"ansible_host", "ansible_port", "ansible_user", "infra_roles", "infra_labels",
                       "infra_taints", "infra_pool"}


def test_host_variables_are_the_connection_fields_and_infras_own():
    """Every host variable the bare-metal example produces: the validated address, port and user
    (and ``ansible_become`` for a user that is not root), else ``infra_*``; group variables likewise."""
    loaded = load(REPO / "examples" / "onprem-gpu.yaml")
    hosts = inventory.from_blueprint(loaded.model)
    assert len(hosts) == 4 and any(h.user != "root" for h in hosts)
    for host in hosts:
        keys = set(inventory.host_vars(host))
        assert {k for k in keys if k.startswith("ansible_")} <= {"ansible_host", "ansible_port", "ansible_user",
                                                                 "ansible_become"}
        assert all(k.startswith(("ansible_", "infra_")) for k in keys), keys
    assert not [k for k in inventory.group_vars(loaded.model, hosts) if k.startswith("ansible_")]
