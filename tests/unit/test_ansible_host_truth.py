"""Per-host truth (issue 12): a host whose roles never all ran is `not configured`, never ok.

Real ansible-runner runs over local connections: `groups.yml` reproduces the old per-group
plays (every Kubernetes host fails, so ansible-playbook stops before the inference play);
`one_play.yml` has ansible/site.yml's shape, where the inference host finishes regardless.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.engines.ansible import Ansible, AnsibleRunError
from orchestrator.stages.configure import host_status
from tests.conftest import REPO

PROJECT = REPO / "tests" / "fixtures" / "ansible" / "project"


def inventory(tmp_path: Path) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inv = {"all": {"children": {"kube": {"hosts": {"cp": local, "wk": local}}, "inf": {"hosts": {"inf": local}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def test_a_host_whose_play_never_started_is_not_configured(tmp_path):
    engine = Ansible(tmp_path / "ansible", project_dir=PROJECT)
    with pytest.raises(AnsibleRunError) as info:
        engine.run("groups.yml", inventory(tmp_path), host_count=3, expect_configured=["cp", "wk", "inf"])
    exc = info.value
    assert exc.exit_code == 4
    assert exc.header == "ansible: 3 of 3 hosts failed"
    lines = exc.lines()
    assert lines[1].startswith("  cp failed at task 'Install the Kubernetes packages': non-zero return code: "
                               "no Kubernetes repository")
    assert lines[2] == ("  inf not configured: the playbook stopped before this host's roles all ran "
                        "(roles that ran: none)")
    status = host_status(exc.result)
    assert status["inf"]["status"] == "not configured"
    assert status["inf"]["reason"].startswith("the playbook stopped before this host's roles all ran")
    assert [status[h]["status"] for h in ("cp", "wk")] == ["failed", "failed"]


def test_without_the_check_the_stopped_host_would_pass_for_fine(tmp_path):
    """The bug as it was: nothing failed on `inf`, so without the marker check it is not reported."""
    engine = Ansible(tmp_path / "ansible", project_dir=PROJECT)
    with pytest.raises(AnsibleRunError) as info:
        engine.run("groups.yml", inventory(tmp_path), host_count=3)
    assert [f.host for f in info.value.result.host_failures()] == ["cp", "wk"]


def test_one_play_lets_the_inference_host_finish(tmp_path):
    engine = Ansible(tmp_path / "ansible", project_dir=PROJECT)
    with pytest.raises(AnsibleRunError) as info:
        engine.run("one_play.yml", inventory(tmp_path), host_count=3, expect_configured=["cp", "wk", "inf"])
    result = info.value.result
    assert info.value.header == "ansible: 2 of 3 hosts failed"
    assert result.configured == {"inf"}
    status = host_status(result)
    assert {h: v["status"] for h, v in status.items()} == {"cp": "failed", "inf": "ok", "wk": "failed"}


def test_site_yml_is_one_play_over_all_hosts_ending_with_the_marker():
    """One play configures every host; after it, only the rolling plays (issue 22: serial, cluster
    nodes with a noted version, driver or MIG change; test_kubernetes_version_step.py)."""
    plays = yaml.safe_load((REPO / "ansible" / "site.yml").read_text())
    assert plays[0]["hosts"] == "all" and "serial" not in plays[0]
    assert [(p["hosts"], p["tasks"][0]["ansible.builtin.include_role"]) for p in plays[1:]] == [
        (hosts, {"name": "kubernetes_node", "tasks_from": "upgrade"}) for hosts in ("control_plane",
                                                                                  "worker:!control_plane")]
    tasks = plays[0]["tasks"]
    assert [t.get("ansible.builtin.include_role", {}).get("name") for t in tasks[:5]] == [
        "common", "nvidia_gpu", "container_runtime", "kubernetes_node", "inference_onnx"]
    assert tasks[-1]["ansible.builtin.set_stats"]["data"] == {"infra_configured": "{{ {inventory_hostname: true} }}"}


def test_a_failed_host_names_its_roles_that_never_started(tmp_path):
    """A worker that is also an inference host fails in its Kubernetes role: its model server role
    never starts, and it is reported `not configured` on that host (not hidden behind `failed`)."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inv = {"all": {"children": {"kube": {"hosts": {"both": local}}, "inf": {"hosts": {"both": None, "inf": local}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    engine = Ansible(tmp_path / "ansible", project_dir=PROJECT)
    with pytest.raises(AnsibleRunError) as info:
        engine.run("one_play_roles.yml", path, host_count=2, expect_configured=["both", "inf"],
                   role_plan={"both": ["kube", "serve"], "inf": ["serve"]})
    assert info.value.message == (
        "ansible: 1 of 2 hosts failed: both failed at task 'kube : Install the Kubernetes packages': "
        "non-zero return code: no Kubernetes repository (not configured: serve)")
    status = host_status(info.value.result)
    assert status["both"]["status"] == "failed" and status["both"]["not_configured"] == ["serve"]
    assert status["both"]["roles"] == ["kube"]
    assert status["inf"]["status"] == "ok" and "not_configured" not in status["inf"]


def test_site_roles_follow_site_yml():
    """inventory.SITE_ROLES (what infra reports as not configured) is site.yml's role list and `when:`s."""
    from orchestrator.inventory import SITE_ROLES, site_roles

    tasks = yaml.safe_load((REPO / "ansible" / "site.yml").read_text())[0]["tasks"]
    included = []
    for task in tasks:
        role = task.get("ansible.builtin.include_role", {}).get("name")
        if role:
            when = task.get("when") or ""
            groups = frozenset(re.findall(r"'(\w+)' in group_names", when)) or None
            included.append((role, groups))
    assert tuple(included) == SITE_ROLES
    assert site_roles(("worker", "inference")) == (
        "common", "nvidia_gpu", "container_runtime", "kubernetes_node", "inference_onnx")
    assert site_roles(("inference",)) == ("common", "nvidia_gpu", "inference_onnx")
