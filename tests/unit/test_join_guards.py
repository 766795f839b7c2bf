"""The join tasks' guards read every play host's variables; a host that runs no kubernetes_node
tasks (an inference-only host) never sets them. Run the role's own `when:` expressions with the
real ansible-playbook over a worker that must join and an inference-only host (local connections):
they must evaluate, not fail the play for everyone (issue 22: `HostVarsVars has no attribute
kubernetes_node_needs_join`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

JOIN = REPO / "ansible" / "roles" / "kubernetes_node" / "tasks" / "join.yml"
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def _guards() -> dict[str, str]:
    tasks = yaml.safe_load(JOIN.read_text())
    return {t["name"]: t["when"] for t in tasks if t.get("run_once")}


def _run(tmp_path: Path, hosts: dict[str, dict]) -> dict[str, bool]:
    """Which run_once join tasks would run for these hosts' facts (name -> ran)."""
    # The facts the role sets on the hosts it runs on, as host variables: an inference-only host has none.
    inventory = {"all": {"hosts": {name: {"ansible_connection": "local", "ansible_python_interpreter":
                                          sys.executable, **facts} for name, facts in hosts.items()}}}
    tasks = []
    for i, (name, when) in enumerate(_guards().items()):
        tasks.append({"name": name, "ansible.builtin.debug": {"msg": "would run"}, "run_once": True,
                      "when": when, "register": f"guard_{i}"})
    pairs = ", ".join(f"{json.dumps(n)}: not (guard_{i}.skipped | default(false))" for i, n in enumerate(_guards()))
    tasks.append({"name": "Report", "run_once": True, "ansible.builtin.copy": {
        "dest": str(tmp_path / "ran.json"), "content": "{{ {" + pairs + "} | to_json }}"}})
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0"}
    proc = subprocess.run([str(PLAYBOOK), "-i", "inventory.yml", "play.yml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads((tmp_path / "ran.json").read_text())


@pytest.mark.parametrize(("hosts", "token", "certs"), [
    ({"inference-only": {}, "worker": {"kubernetes_node_needs_join": True,
                                       "kubernetes_node_is_control_plane": False}}, True, False),
    ({"inference-only": {}, "cp-2": {"kubernetes_node_needs_join": True,
                                     "kubernetes_node_is_control_plane": True}}, True, True),
    ({"inference-only": {}, "worker": {"kubernetes_node_needs_join": False,
                                       "kubernetes_node_is_control_plane": False}}, False, False),
], ids=["a-worker-joins", "a-control-plane-joins", "nobody-joins"])
def test_join_guards_hold_with_an_inference_only_host(tmp_path, hosts, token, certs) -> None:
    ran = _run(tmp_path, hosts)
    names = list(_guards())
    assert len(names) == 2  # the join token and the certificate upload
    assert ran == {names[0]: token, names[1]: certs}
