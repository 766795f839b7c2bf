"""What infra says about a failed host (issue 22): a no_log task's failure still names the task and
a reason, never the secret; Python library warnings are not reasons; a task name Ansible could not
template is shown without its `<< error ... >>`; a host that failed before its first role ran is
not configured for `common` either; each run has SSH master connections of its own.

Real ansible-runner runs use local connections (tests/fixtures/ansible/project).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.engines.ansible import Ansible, AnsibleRunError, EventCollector
from orchestrator.engines.ansible_events import censored_reason, task_name, without_warnings
from orchestrator.progress import Progress
from orchestrator.stages.configure import host_status
from tests.conftest import REPO

PROJECT = REPO / "tests" / "fixtures" / "ansible" / "project"
SECRET = "tok3n-0f-the-join-that-must-not-leak"
WARNING = ("/usr/lib/python3/dist-packages/cryptography/hazmat/backends/__init__.py:18: "
           "CryptographyDeprecationWarning: DSA is deprecated and support will be removed in a future release.")
WARNING_SOURCE = "  from cryptography.hazmat.primitives.asymmetric.dsa import ("


def _inventory(tmp_path: Path, hosts: tuple[str, ...], **variables: str) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": dict.fromkeys(hosts, local), "vars": variables}}))
    return path


def test_a_no_log_failure_names_the_task_and_a_reason_without_the_secret(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    engine = Ansible(tmp_path / "ansible", progress=Progress(stream=out, err_stream=err, interactive=False),
                     project_dir=PROJECT)
    site = tmp_path / "site-vars.yml"
    site.write_text(yaml.safe_dump({"engine_test_secret": SECRET}))
    with pytest.raises(AnsibleRunError) as info:
        engine.run("no_log_fail.yml", _inventory(tmp_path, ("a", "b", "c", "d")), host_count=4,
                   extravars_files=[site])
    failures = {f.host: f for f in info.value.result.host_failures()}
    assert {h: f.task for h, f in failures.items()} == {
        "a": "Read a variable another host never set (the join guard's old bug)",
        "b": "Run a command that prints the secret and fails",
        "c": "Fail with a message that holds the secret",
        "d": "Run a command that prints the secret and fails"}
    assert failures["a"].message == ("Error while evaluating conditional: object of type 'HostVarsVars' has no "
                                     "attribute 'kubernetes_node_needs_join' (output hidden by no_log)")
    # Ansible prints the reason once per task: the second host of the task gets the same one
    assert failures["b"].message == failures["d"].message == (
        "Module failed: non-zero return code (output hidden by no_log)")
    assert failures["c"].message == "Action failed (output hidden by no_log)"
    status = host_status(info.value.result)
    shown = "\n".join(info.value.lines()) + out.getvalue() + err.getvalue() + json.dumps(status)
    assert "a failed at task 'Read a variable another host never set" in shown
    assert SECRET not in shown


@pytest.mark.parametrize(("stdout", "reason"), [
    ("\x1b[0;31m[ERROR]: Task failed: Finalization of task args for 'ansible.builtin.command' failed: Error while "
     "resolving value for '_raw_params': 'kubernetes_node_join_command' is undefined\x1b[0m\r\n",
     "Finalization of task args for 'ansible.builtin.command' failed: 'kubernetes_node_join_command' is undefined "
     "(output hidden by no_log)"),
    (f"[ERROR]: Task failed: Action failed: kubeadm said --token {SECRET}\r\n",
     "Action failed (output hidden by no_log)"),
    (f"[ERROR]: Task failed: {SECRET}: whatever\r\n", "output hidden by no_log"),  # not one of Ansible's categories
    ("fatal: [b]: FAILED! => {\"censored\": \"...\"}", "output hidden by no_log"),
])
def test_censored_reasons_keep_categories_and_names_only(stdout, reason):
    assert censored_reason(stdout) == reason


def _progress() -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    return Progress(stream=out, err_stream=io.StringIO(), interactive=False), out


def _feed(collector: EventCollector, *events: tuple[str, dict, str]) -> None:
    for kind, data, stdout in events:
        collector.feed({"event": kind, "event_data": data, "stdout": stdout})


def test_python_warnings_are_never_a_hosts_reason():
    progress, _ = _progress()
    c = EventCollector(progress)
    _feed(c,
          ("verbose", {}, f"{WARNING}\n{WARNING_SOURCE}\n"),
          ("playbook_on_task_start", {"task": "Install ONNX Runtime", "role": "inference_onnx"}, ""),
          ("runner_on_failed", {"host": "n1", "res": {
              "msg": "MODULE FAILURE", "module_stderr": f"Traceback (most recent call last):\nOSError: disk full\n"
                                                        f"{WARNING}\n{WARNING_SOURCE}\n"}}, ""),
          ("runner_on_failed", {"host": "n2", "res": {
              "msg": "non-zero return code", "stderr": f"pip: no space left\n{WARNING}\n{WARNING_SOURCE}"}}, ""),
          ("playbook_on_stats", {"failures": {"n1": 1, "n2": 1}}, ""))
    result = c.result(rc=2, status="failed")
    assert [f.message for f in result.host_failures()] == ["MODULE FAILURE: OSError: disk full",
                                                           "non-zero return code: pip: no space left"]
    assert c.tail() == "no output"  # the warning was all ansible-playbook printed
    assert without_warnings(f"first\n{WARNING}\n{WARNING_SOURCE}\n  indented, kept\nlast") == [
        "first", "  indented, kept", "last"]


def test_a_task_name_ansible_could_not_template_is_shown_without_the_error():
    progress, out = _progress()
    c = EventCollector(progress)
    _feed(c,
          ("playbook_on_task_start", {"task": "Install kubelet, kubeadm and kubectl << error 1 - "
                                              "'kubernetes_node_package_version' is undefined >>",
                                      "role": "kubernetes_node"}, ""),
          ("runner_on_skipped", {"host": "n1"}, ""),
          ("playbook_on_task_start", {"task": "Install the fabric manager (<< error 1 - object of type 'dict' has "
                                              "no attribute 'stdout' >>)", "role": "nvidia_gpu"}, ""),
          ("runner_on_skipped", {"host": "n1"}, ""),
          ("playbook_on_stats", {"ok": {"n1": 0}}, ""))
    text = out.getvalue()
    assert "kubernetes_node : Install kubelet, kubeadm and kubectl: skipped=1" in text
    assert "nvidia_gpu : Install the fabric manager: skipped=1" in text
    assert "<< error" not in text
    assert task_name("Plain name") == "Plain name"


def test_a_host_that_failed_before_its_first_role_is_not_configured_for_common_either():
    """`common` includes host_facts first: a host failing there (or in fact gathering) ran no
    task of a planned role, yet none of them is configured. An unreachable host lists none."""
    progress, _ = _progress()
    c = EventCollector(progress)
    _feed(c,
          ("playbook_on_task_start", {"task": "Install missing packages with a fresh index (base)",
                                      "role": "host_facts"}, ""),
          ("runner_on_failed", {"host": "n1", "role": "host_facts", "res": {"msg": "no package index"}}, ""),
          ("runner_on_unreachable", {"host": "n3", "role": "host_facts", "res": {"msg": "Connection refused"}}, ""),
          ("runner_on_ok", {"host": "n2", "role": "host_facts", "res": {}}, ""),
          ("playbook_on_task_start", {"task": "Persist sysctls", "role": "common"}, ""),
          ("runner_on_failed", {"host": "n2", "role": "common", "res": {"msg": "read-only /etc"}}, ""),
          ("playbook_on_stats", {"failures": {"n1": 1, "n2": 1}, "dark": {"n3": 1}}, ""))
    plan = ("common", "nvidia_gpu", "container_runtime", "kubernetes_node")
    result = c.result(rc=2, status="failed", plan=dict.fromkeys(("n1", "n2", "n3"), plan))
    assert {f.host: f.not_run for f in result.host_failures()} == {
        "n1": plan, "n2": plan[1:], "n3": ()}
    assert result.host_failures()[0].describe() == (
        "n1 failed at task 'host_facts : Install missing packages with a fresh index (base)': no package index "
        "(not configured: common, nvidia_gpu, container_runtime, kubernetes_node)")


def test_each_run_has_ssh_masters_of_its_own_and_removes_them(tmp_path):
    engine = Ansible(tmp_path / "ansible", project_dir=PROJECT)
    dirs = [engine.envvars(2, tmp_path / f"cp-{i}")["ANSIBLE_SSH_CONTROL_PATH_DIR"] for i in range(2)]
    assert dirs == [str(tmp_path / "cp-0"), str(tmp_path / "cp-1")]
    assert "ANSIBLE_SSH_CONTROL_PATH_DIR" not in engine.envvars(2)

    (tmp_path / "work").mkdir()
    inventory = _inventory(tmp_path, ("a",), work_dir=str(tmp_path / "work"))
    results = [engine.run("converge.yml", inventory, host_count=1) for _ in range(2)]
    used = [json.loads((r.artifacts / "command").read_text())["env"]["ANSIBLE_SSH_CONTROL_PATH_DIR"] for r in results]
    assert used[0] != used[1]  # never a master connection from an earlier run
    assert not any(Path(d).exists() for d in used)  # closed and removed when the run ended
