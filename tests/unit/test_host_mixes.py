"""Every bare-metal host mix gets through ansible/site.yml (issue 22): the real playbook and roles,
run by the real engine in check mode over local connections (nothing on this machine changes), on
the inventory infra renders for

- hosts that are all inference-only (no Kubernetes node in the play; `kubernetes_init_host` is
  null, as the group variables of such a host list are rendered), and
- a control plane alone (nobody joins).

The control plane + worker + inference-only mix converges for real on SSH hosts in
tests/integration/test_ansible_hosts.py. Cross-host lookups (`hostvars[...]`, `run_once`,
`delegate_to`) must hold in each mix, and are checked here statically too.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator import inventory
from orchestrator.blueprint.loader import load
from orchestrator.engines.ansible import Ansible
from orchestrator.render.ansible import dump
from tests.conftest import REPO

ROLES = REPO / "ansible" / "roles"
BLUEPRINT = """\
blueprint: 1
name: mix
provider: baremetal
kubernetes: {{version: "1.30"}}
hosts:
{hosts}
teams: [{{name: ml}}]
inference: {{runtime: onnx, models: [{{name: affine, uri: "file://{model}", team: ml}}]}}
"""


def _render(tmp_path: Path, roles: dict[str, list[str]], drop_control_plane: bool = False) -> tuple[Path, list]:
    """The inventory and group variables infra renders for hosts with these roles, every host a
    local connection. ``drop_control_plane``: render without the control plane (the blueprint
    needs one to validate; the hosts left are what an inference-only site would run)."""
    model = tmp_path / "affine.onnx"
    model.write_bytes(b"not really a model: check mode only copies it in theory")
    lines = "\n".join(f"  - {{name: {name}, address: 10.9.0.{i}, roles: [{', '.join(r)}]}}"
                      for i, (name, r) in enumerate(roles.items(), start=1))
    path = tmp_path / "mix.yaml"
    path.write_text(BLUEPRINT.format(hosts=lines, model=model))
    bp = load(path).model
    hosts = inventory.from_blueprint(bp)
    if drop_control_plane:
        hosts = [h for h in hosts if "control_plane" not in h.roles]
    inv = inventory.inventory(hosts)
    for variables in inv["all"]["hosts"].values():
        variables.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    folder = tmp_path / "inventory"
    (folder / "group_vars").mkdir(parents=True)
    (folder / "inventory.yml").write_text(dump(inv))
    (folder / "group_vars" / "all.yml").write_text(dump(inventory.group_vars(bp, hosts)))
    return folder / "inventory.yml", hosts


def _check(tmp_path: Path, roles: dict[str, list[str]], drop_control_plane: bool = False):
    inv, hosts = _render(tmp_path, roles, drop_control_plane)
    site = tmp_path / "site-vars.yml"
    # nothing is fetched in check mode; the role refuses to run without a repository
    site.write_text(yaml.safe_dump({"kubernetes_node_repo_base": "http://127.0.0.1:9/kubernetes",
                                    "inference_onnx_home": str(tmp_path / "inference")}))
    engine = Ansible(tmp_path / "ansible")
    result = engine.run("site.yml", inv, host_count=len(hosts), check=True, extravars_files=[site],
                        expect_configured=[h.name for h in hosts],
                        role_plan={h.name: inventory.site_roles(h.roles) for h in hosts})
    return result, hosts


def test_hosts_that_are_all_inference_only_get_through_site_yml(tmp_path):
    result, hosts = _check(tmp_path, {"cp-1": ["control_plane"], "inf-1": ["inference"], "inf-2": ["inference"]},
                           drop_control_plane=True)
    assert [h.name for h in hosts] == ["inf-1", "inf-2"]
    assert "\nkubernetes_init_host:\n" in (tmp_path / "inventory" / "group_vars" / "all.yml").read_text()  # null
    assert result.configured == {"inf-1", "inf-2"} and result.host_failures() == []
    for host in ("inf-1", "inf-2"):
        assert "inference_onnx" in result.roles[host]
        assert not {"container_runtime", "kubernetes_node"} & set(result.roles[host]), result.roles[host]


def test_a_control_plane_alone_gets_through_site_yml(tmp_path):
    result, _ = _check(tmp_path, {"cp-1": ["control_plane"]})
    assert result.configured == {"cp-1"} and result.host_failures() == []
    assert {"container_runtime", "kubernetes_node"} <= set(result.roles["cp-1"])
    assert "inference_onnx" not in result.roles["cp-1"]


# --- cross-host lookups, statically --------------------------------------------------------------

def _role_files() -> list[Path]:
    return sorted(p for p in ROLES.glob("*/*/*.yml") if p.parent.name in ("tasks", "defaults", "handlers", "vars"))


def test_every_hostvars_lookup_is_guarded():
    """`hostvars[h].x` reads a variable another host may never set (an inference-only host runs
    no kubernetes_node tasks): it needs `| default(...)`, or a list of hosts filtered with
    `selectattr('x', 'defined')` before the variable is read."""
    bad = []
    for path in _role_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.lstrip().startswith("#"):
                continue
            for found in re.finditer(r"hostvars\[[^\]]+\](?:\.(\w+)|\[['\"](\w+)['\"]\])", line):
                rest = line[found.end():]
                if not re.match(r"\s*(\.\w+\s*)*\|\s*default\(", rest):
                    bad.append(f"{path.relative_to(REPO)}:{number}: {found.group(0)} without | default(...)")
            for found in re.finditer(r"map\('extract', hostvars\)((?:\s*\|\s*selectattr\([^)]*\))*)", line):
                names = re.findall(r"selectattr\('(\w+)'(, *'defined')?\)", found.group(1))
                defined = {n for n, d in names if d}
                unguarded = [n for n, d in names if not d and n not in defined]
                if unguarded or not names:
                    bad.append(f"{path.relative_to(REPO)}:{number}: hostvars of every host read without "
                               f"selectattr('{(unguarded or ['?'])[0]}', 'defined') first")
    assert bad == []


def _tasks(node, path):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item, path)
    elif isinstance(node, dict):
        if "name" in node and any(k.startswith("ansible.builtin.") for k in node) or "block" in node:
            yield node, path
        for key in ("block", "rescue", "always"):
            yield from _tasks(node.get(key), path)


@pytest.mark.parametrize("path", [p for p in _role_files() if p.parent.name in ("tasks", "handlers")],
                         ids=lambda p: str(p.relative_to(ROLES)))
def test_tasks_delegated_to_the_first_control_plane_are_guarded(path):
    """A task delegated to `kubernetes_init_host` runs in a play that may have no control plane
    (inference-only hosts): outside kubernetes_node (which fails first when it is unset) it checks
    `kubernetes_init_host | default('') | length > 0`."""
    bad = []
    for task, _ in _tasks(yaml.safe_load(path.read_text()), path):
        if "kubernetes_init_host" in str(task.get("delegate_to", "")) and path.parts[-3] != "kubernetes_node":
            when = " ".join(task["when"]) if isinstance(task.get("when"), list) else str(task.get("when", ""))
            if "kubernetes_init_host | default('') | length > 0" not in when:
                bad.append(task["name"])
    assert bad == []
