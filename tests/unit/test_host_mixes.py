"""Every bare-metal host mix gets through ansible/site.yml (issue 22): the real playbook and roles,
run by the real engine in check mode over local connections (nothing on this machine changes), on
the inventory infra renders for

- an inference-only site: every host has only the role inference (no Kubernetes: nothing
  rendered for a cluster, `kubernetes_init_host` null, `up` skips the handoff and says so), and
- a control plane alone (nobody joins; a single-node cluster, its control plane untainted).

Both blueprints validate (the placement proof included) and render.

The control plane + worker + inference-only mix converges for real on SSH hosts in
tests/integration/test_ansible_hosts.py. Cross-host lookups (`hostvars[...]`, `run_once`,
`delegate_to`) must hold in each mix, and are checked here statically too.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator import inventory, records
from orchestrator.blueprint.loader import load
from orchestrator.blueprint.nodes import node_shapes
from orchestrator.blueprint.semantics import warnings
from orchestrator.engines.ansible import Ansible
from orchestrator.errors import BlueprintError
from orchestrator.progress import Progress
from orchestrator.providers.registry import get
from orchestrator.records_heads import HEAD_DIR_ENV
from orchestrator.render import render_files
from orchestrator.render.ansible import dump
from orchestrator.render.kubernetes.placement import CHECKS, prove
from orchestrator.stages.configure import HostsStage
from orchestrator.stages.context import Context, RunState, new_record
from orchestrator.stages.handoff import NO_CLUSTER_DETAIL
from orchestrator.stages.pipeline import pipeline, run
from orchestrator.workspace import STATE_DIR_ENV, Workspace
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


def _blueprint(tmp_path: Path, roles: dict[str, list[str]]) -> Path:
    model = tmp_path / "affine.onnx"
    model.write_bytes(b"not really a model: check mode only copies it in theory")
    lines = "\n".join(f"  - {{name: {name}, address: 10.9.0.{i}, roles: [{', '.join(r)}]}}"
                      for i, (name, r) in enumerate(roles.items(), start=1))
    path = tmp_path / "mix.yaml"
    path.write_text(BLUEPRINT.format(hosts=lines, model=model))
    return path


def _render(tmp_path: Path, roles: dict[str, list[str]]) -> tuple[Path, list]:
    """The inventory and group variables infra renders for hosts with these roles (the blueprint
    validated as `infra validate` does, placement proof included), every host a local connection."""
    bp = load(_blueprint(tmp_path, roles), checks=CHECKS).model
    hosts = inventory.from_blueprint(bp)
    inv = inventory.inventory(hosts)
    for variables in inv["all"]["hosts"].values():
        variables.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    folder = tmp_path / "inventory"
    (folder / "group_vars").mkdir(parents=True)
    (folder / "inventory.yml").write_text(dump(inv))
    (folder / "group_vars" / "all.yml").write_text(dump(inventory.group_vars(bp, hosts)))
    return folder / "inventory.yml", hosts


def _check(tmp_path: Path, roles: dict[str, list[str]]):
    inv, hosts = _render(tmp_path, roles)
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
    result, hosts = _check(tmp_path, {"inf-1": ["inference"], "inf-2": ["inference"]})
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


# --- the blueprints: validate, render, up's stages ------------------------------------------------

def test_an_inference_only_site_validates_and_renders_no_kubernetes(tmp_path):
    loaded = load(_blueprint(tmp_path, {"inf-1": ["inference"], "inf-2": ["inference"]}), checks=CHECKS)
    bp = loaded.model
    assert bp.has_kubernetes is False
    assert node_shapes(bp) == [] and prove(bp) == []  # no Kubernetes node, no pod to place
    assert warnings(bp) == []  # nothing about teams' RoleBindings or Jobs: there is no cluster
    files = render_files(bp, get("baremetal"))
    assert set(files) == {"ansible"}  # no manifests: nothing to hand to a cluster
    group_vars = yaml.safe_load(files["ansible"]["group_vars/all.yml"].replace("!unsafe ", ""))
    assert group_vars["kubernetes_init_host"] is None
    assert [m["name"] for m in group_vars["inference_onnx_models"]] == ["affine"]  # the hosts serve it


def test_up_on_an_inference_only_site_skips_the_handoff_and_says_why(tmp_path, monkeypatch):
    for name in (STATE_DIR_ENV, HEAD_DIR_ENV, records.HMAC_KEY_ENV):
        monkeypatch.delenv(name, raising=False)
    loaded = load(_blueprint(tmp_path, {"inf-1": ["inference"]}), checks=CHECKS)
    provider = get("baremetal")
    out = io.StringIO()
    ctx = Context(loaded=loaded, provider=provider, ws=Workspace(root=tmp_path, name="mix"),
                  progress=Progress(stream=out, err_stream=io.StringIO(), interactive=False),
                  confirm=lambda plan: True, state=RunState(record=new_record(loaded, "up", False)))
    stages = pipeline("up", provider)
    assert [s.name for s in stages] == ["render", "configure", "handoff"]
    # configure needs SSH hosts (tests/integration/test_ansible_hosts.py); render and handoff run here for real
    run(ctx, "up", [stages[0], stages[2]])
    [record] = [json.loads(p.read_text()) for p in (tmp_path / ".infra" / "records" / "mix").glob("*.json")]
    assert record["outcome"] == "success"
    assert HostsStage().run(ctx) == ("1 host to configure with ansible/site.yml (no cloud resources; "
                                     "no Kubernetes cluster: inference-only hosts)")  # what `plan` says
    handoff = record["stages"][-1]
    assert (handoff["name"], handoff["status"]) == ("handoff", "ok")
    assert handoff["detail"] == NO_CLUSTER_DETAIL and handoff["detail"].startswith("skipped: no Kubernetes cluster")
    assert NO_CLUSTER_DETAIL in out.getvalue()
    assert not (tmp_path / "build" / "mix" / "kubernetes").exists()
    assert (tmp_path / "build" / "mix" / "ansible" / "inventory.yml").is_file()


def test_a_worker_without_a_control_plane_is_refused(tmp_path):
    with pytest.raises(BlueprintError) as err:
        load(_blueprint(tmp_path, {"inf-1": ["inference"], "w-1": ["worker"]}), checks=CHECKS)
    assert len(err.value.problems) == 1
    assert re.fullmatch(r".*mix\.yaml:7:\d+ hosts\[1\]\.roles: a worker joins a Kubernetes control plane: .*",
                        str(err.value.problems[0])), err.value.problems


def test_a_control_plane_alone_validates_as_an_untainted_single_node_cluster(tmp_path):
    """Its pods (Kueue, the model's Deployment) must land on the control plane: kubeadm's
    control-plane taint stays off when the inventory has no worker (kubeadm-init.yaml.j2)."""
    bp = load(_blueprint(tmp_path, {"cp-1": ["control_plane"]}), checks=CHECKS).model
    assert bp.has_kubernetes is True
    [node] = node_shapes(bp)
    assert node.name == "cp-1" and list(node.taints) == []
    assert prove(bp) == []
    assert "kubernetes" in render_files(bp, get("baremetal"))
    # with a worker beside it, the control plane keeps the taint and pods go to the worker
    bp = load(_blueprint(tmp_path, {"cp-1": ["control_plane"], "w-1": ["worker"]}), checks=CHECKS).model
    taints = {n.name: [t["key"] for t in n.taints] for n in node_shapes(bp)}
    assert taints == {"cp-1": ["node-role.kubernetes.io/control-plane"], "w-1": []}


def test_an_inference_only_host_is_no_kubernetes_node_beside_a_cluster(tmp_path):
    bp = load(_blueprint(tmp_path, {"cp-1": ["control_plane", "worker"], "inf-1": ["inference"]}),
              checks=CHECKS).model
    assert [n.name for n in node_shapes(bp)] == ["cp-1"]


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
