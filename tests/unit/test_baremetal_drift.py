"""``infra drift`` on bare metal: Ansible check mode, each task that would change a host is drift.

Real ansible-runner over local connections (tests/fixtures/ansible/project/drift.yml): the engine
collects, per host, the tasks and handlers a check-mode run reports as changed, and changes
nothing. The SSH hosts' end-to-end drift is in tests/integration/test_ansible_hosts.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from orchestrator.engines.ansible import Ansible
from orchestrator.stages.configure import host_drift
from tests.conftest import REPO

PROJECT = REPO / "tests" / "fixtures" / "ansible" / "project"


def _hosts(tmp_path: Path) -> tuple[Path, Path]:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"a": local, "b": local}}}))
    work = tmp_path / "hosts"
    for host in ("a", "b"):  # both converged by hand: what drift.yml enforces is there
        (work / host).mkdir(parents=True)
        (work / host / "99-test.conf").write_text("net.ipv4.ip_forward = 1\n")
        (work / host / "modules.conf").write_text("overlay\n")
    return inv, work


def test_check_mode_names_the_tasks_that_would_change_each_host_and_changes_nothing(tmp_path):
    inv, work = _hosts(tmp_path)
    (work / "b" / "99-test.conf").write_text("net.ipv4.ip_forward = 0\n")  # edited behind Ansible's back
    engine = Ansible(tmp_path / "ansible", project_dir=PROJECT)
    result = engine.run("drift.yml", inv, host_count=2, check=True, extravars={"work_dir": str(work)})
    assert result.changed_tasks == {"b": ["Persist a sysctl", "Reload sysctls"]}  # a: converged, no entry
    assert host_drift(result) == {"b": ["Persist a sysctl", "Reload sysctls"]}
    assert (result.stats["a"].changed, result.stats["b"].changed) == (0, 2)
    assert (work / "b" / "99-test.conf").read_text() == "net.ipv4.ip_forward = 0\n"  # check mode: untouched
    assert not (work / "b" / "reloaded").exists()

