"""The Ansible engine: settings, event stream -> progress, failures, artifacts without secrets.

Real ansible-runner runs use local connections (no SSH needed); the SSH hosts are exercised by
tests/integration/test_ansible_hosts.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.engines.ansible import (
    Ansible,
    AnsibleResult,
    AnsibleRunError,
    EventCollector,
    Failure,
    HostStats,
    SshSettings,
    forks_for,
)
from orchestrator.errors import AnsibleError
from orchestrator.progress import Progress
from tests.conftest import REPO

PROJECT = REPO / "tests" / "fixtures" / "ansible" / "project"
SECRET = "s3cr3t-value-that-must-not-leak"


def plain_progress() -> tuple[Progress, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Progress(stream=out, err_stream=err, interactive=False), out, err


def local_inventory(tmp_path: Path, hosts=("a", "b")) -> Path:
    inv = {"all": {"hosts": {h: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                             for h in hosts},
                   "vars": {"work_dir": str(tmp_path / "work")}}}
    (tmp_path / "work").mkdir(exist_ok=True)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


@pytest.mark.parametrize(("hosts", "forks"), [(0, 1), (1, 1), (4, 4), (20, 20), (500, 20)])
def test_forks_follow_the_host_count_up_to_the_cap(hosts, forks):
    assert forks_for(hosts) == forks


def test_settings_for_fan_out(tmp_path):
    engine = Ansible(tmp_path / "ansible", ssh=SshSettings(private_key_file="~/.ssh/id_test"))
    env = engine.envvars(8)
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert "ControlPersist=60s" in env["ANSIBLE_SSH_ARGS"]
    assert "StrictHostKeyChecking=accept-new" in env["ANSIBLE_SSH_ARGS"]
    assert f"UserKnownHostsFile={tmp_path / 'ansible' / 'known_hosts'}" in env["ANSIBLE_SSH_ARGS"]
    assert env["ANSIBLE_CACHE_PLUGIN"] == "jsonfile"
    assert env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] == str(tmp_path / "ansible" / "facts")
    assert env["ANSIBLE_GATHERING"] == "smart"
    assert env["ANSIBLE_GATHER_SUBSET"].startswith("!all,!min,")
    assert env["ANSIBLE_PRIVATE_KEY_FILE"] == str(Path("~/.ssh/id_test").expanduser())
    assert env["ANSIBLE_CONFIG"].endswith("ansible/ansible.cfg")  # the shipped project dir


def test_converge_then_nothing_changes_and_no_secret_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_CLOUD_SECRET", SECRET)  # ansible-runner records the environment
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    key_data = key.read_text()
    key.unlink()
    progress, out, err = plain_progress()
    engine = Ansible(tmp_path / "ansible", progress=progress, project_dir=PROJECT, keep_artifacts=1,
                     ssh=SshSettings(key_data=key_data))  # handed to ssh-agent through a FIFO
    inventory = local_inventory(tmp_path)
    extra = tmp_path / "secret-vars.yml"
    extra.write_text(yaml.safe_dump({"engine_test_secret": SECRET}))

    first = engine.run("converge.yml", inventory, host_count=2, extravars_files=[extra])
    assert first.rc == 0 and first.status == "successful"
    assert {h: s.changed for h, s in first.stats.items()} == {"a": 2, "b": 2}
    assert first.data == {"seen": {"a": True, "b": True}}
    text = out.getvalue()
    assert "ansible converge.yml on 2 hosts, forks=2" in text
    assert "Write a marker file: changed=2" in text
    assert "Probe something: ok=2" in text
    assert "Handle a secret: changed=2" in text  # no_log hides the result, not the change
    assert "a                        ok=4 changed=2 failed=0 unreachable=0 skipped=0" in text

    second = engine.run("converge.yml", inventory, host_count=2, extravars_files=[extra])
    assert {h: s.changed for h, s in second.stats.items()} == {"a": 0, "b": 0}
    assert err.getvalue() == ""

    assert [p.name for p in engine.artifacts_dir.iterdir()] == [second.artifacts.name]  # rotation
    key_body = key_data.splitlines()[1]
    for path in (tmp_path / "ansible").rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert SECRET not in text and key_body not in text, path
    command = json.loads((second.artifacts / "command").read_text())
    assert "SOME_CLOUD_SECRET" not in command["env"]
    assert command["env"]["ANSIBLE_PIPELINING"] == "True"
    # passed as a private !unsafe copy (docs/security.md), deleted when the run ends
    copy = tmp_path / "ansible" / "vars" / "site-vars-0.yml"
    assert any(f"@{copy}" in arg for arg in command["command"])
    assert not copy.exists()


def test_failure_names_host_and_task(tmp_path):
    progress, out, err = plain_progress()
    engine = Ansible(tmp_path / "ansible", progress=progress, project_dir=PROJECT)
    with pytest.raises(AnsibleRunError) as info:
        engine.run("fail.yml", local_inventory(tmp_path, ("a", "b", "c")), host_count=3)
    exc = info.value
    assert isinstance(exc, AnsibleError) and exc.exit_code == 4
    assert exc.message.startswith("ansible: 1 of 3 hosts failed: b failed at task 'Break on host b'")
    assert "disk full on purpose" in exc.message
    assert exc.result.stats["a"].failed == 0 and exc.result.stats["b"].failed == 1
    assert "Only reached by the others: ok=2" in out.getvalue()
    assert "warning: b failed at task 'Break on host b'" in err.getvalue()


def test_syntax_errors_are_reported_without_hosts(tmp_path):
    bad = tmp_path / "project"
    bad.mkdir()
    (bad / "broken.yml").write_text("- hosts: all\n  tasks:\n    - ansible.builtin.debug: {msg: [unclosed\n")
    engine = Ansible(tmp_path / "ansible", project_dir=bad)
    with pytest.raises(AnsibleError) as info:
        engine.run("broken.yml", local_inventory(tmp_path), host_count=2)
    assert not isinstance(info.value, AnsibleRunError)
    assert "ansible-playbook failed (exit" in info.value.message


def _events(*items):
    return [{"event": kind, "event_data": data, "stdout": stdout} for kind, data, stdout in items]


def test_collector_turns_events_into_lines_and_failures():
    progress, out, err = plain_progress()
    c = EventCollector(progress)
    for e in _events(
        ("playbook_on_task_start", {"task": "Install base packages", "role": "common"}, ""),
        ("runner_on_ok", {"host": "n1", "res": {"changed": True}}, "changed: [n1]"),
        ("runner_on_ok", {"host": "n2", "res": {"changed": False}}, "ok: [n2]"),
        ("runner_on_unreachable", {"host": "n3", "res": {"msg": "ssh: connect to host 127.0.0.13 port 22: "
                                                                "Connection refused", "unreachable": True}}, ""),
        ("playbook_on_task_start", {"task": "Join", "role": "kubernetes_node"}, ""),
        ("runner_on_ok", {"host": "n2", "res": {"censored": "hidden"}}, "changed: [n2]"),
        ("runner_on_failed", {"host": "n1", "res": {"msg": "non-zero return code", "stderr": "boom\nreal cause"}}, ""),
        ("runner_on_failed", {"host": "n2", "ignore_errors": True, "res": {"msg": "ignored"}}, ""),
        ("playbook_on_stats", {"ok": {"n1": 1, "n2": 2}, "changed": {"n1": 1, "n2": 1}, "failures": {"n1": 1},
                               "dark": {"n3": 1}, "ignored": {"n2": 1}, "artifact_data": {"gpus": {}}}, ""),
    ):
        c.feed(e)
    result = c.result(rc=2, status="failed")
    lines = out.getvalue()
    assert "common : Install base packages: unreachable=1 changed=1 ok=1" in lines
    assert "kubernetes_node : Join: failed=1 changed=1 ignored=1" in lines
    assert [f.describe() for f in result.host_failures()] == [
        "n1 failed at task 'kubernetes_node : Join': non-zero return code: real cause",
        "n3 unreachable at task 'common : Install base packages': ssh: connect to host 127.0.0.13 port 22: "
        "Connection refused",
    ]
    exc = AnsibleRunError(result)
    assert exc.lines()[0] == "ansible: 2 of 3 hosts failed:"
    assert exc.lines()[1].startswith("  n1 failed at task 'kubernetes_node : Join'")


def test_result_summary_and_rescued_failures_do_not_count():
    result = AnsibleResult(rc=0, status="successful", stats={"a": HostStats(ok=3, changed=1, rescued=1)},
                           failures=[Failure("a", "t", "rescued later")])
    assert result.host_failures() == []
    assert result.summary() == "1 host: ok=3 changed=1 failed=0 unreachable=0 skipped=0"
