"""A failed join token (a no_log task) still says what failed and why, without the token (issue 22):
the role's join.yml runs with the real ansible-playbook over a control plane and a worker that must
join (local connections), with a kubeadm test double on PATH whose `token create` fails and prints
a token-shaped secret in its error output."""

from __future__ import annotations

import os
import stat
import sys

import pytest
import yaml

from orchestrator.engines.ansible import Ansible, AnsibleRunError
from tests.conftest import REPO

TOKEN = "abcdef.0123456789abcdef"
KUBEADM = f"""#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls.log"
case "$1 $2" in
  "token create") echo "token {TOKEN} printed before the error"; echo "error: token {TOKEN}: timed out" >&2; exit 1 ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""


def test_a_failed_join_token_names_the_step_and_kubeadms_error_without_the_token(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubeadm = bin_dir / "kubeadm"
    kubeadm.write_text(KUBEADM)
    kubeadm.chmod(kubeadm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    project = tmp_path / "project"
    project.mkdir()
    (project / "roles").symlink_to(REPO / "ansible" / "roles")
    (project / "join.yml").write_text(yaml.safe_dump([{
        "name": "Join", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "Join the cluster", "ansible.builtin.include_role": {"name": "kubernetes_node",
                                                                                 "tasks_from": "join"}}]}]))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    # what kubernetes_node's main.yml sets on each host before join.yml
    inventory = {"all": {"vars": {"kubernetes_init_host": "cp"}, "hosts": {
        "cp": {**local, "kubernetes_node_needs_join": False, "kubernetes_node_is_control_plane": True},
        "wk": {**local, "kubernetes_node_needs_join": True, "kubernetes_node_is_control_plane": False}}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))

    engine = Ansible(tmp_path / "ansible", project_dir=project)
    with pytest.raises(AnsibleRunError) as info:
        engine.run("join.yml", tmp_path / "inventory.yml", host_count=2)
    assert (bin_dir / "calls.log").read_text().splitlines() == ["token create --print-join-command --ttl 24h"]
    [failure] = info.value.result.host_failures()
    assert (failure.host, failure.task) == ("wk", "kubernetes_node : Fail when the join token or the certificate "
                                                  "upload failed")
    assert failure.message == "kubeadm could not create a join token on cp (exit 1): error: token <token>: timed out"
    for path in (tmp_path / "ansible").rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path
