"""A ``kubernetes.version`` below what the hosts run (a downgrade), or more than one minor above it,
is refused before anything runs (issue 22): `infra validate` and `infra up` exit 2 with one located
line. The version each host runs comes from the kubernetes_node role's report, kept per host in
hosts.json by the configure stage (and kept there by a run that did not report one)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.engines.ansible_events import AnsibleResult, HostStats
from orchestrator.stages.configure import save_hosts_file
from orchestrator.stages.versions import parse, recorded, step_problem
from tests.blueprints import LAB

CLI = [sys.executable, "-c", "from orchestrator.cli.main import run; run()"]


def project(tmp_path: Path, version: str, running: dict[str, str] | None) -> Path:
    """A project folder with the LAB blueprint at ``version`` and, when given, hosts.json saying
    which version each host runs."""
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.replace('version: "1.31"', f'version: "{version}"'))
    if running is not None:
        hosts = tmp_path / ".infra" / "env" / "lab" / "ansible" / "hosts.json"
        hosts.parent.mkdir(parents=True)
        hosts.write_text(json.dumps({"hosts": {h: {"status": "ok", "kubernetes_version": v}
                                               for h, v in running.items()}}))
    return path


def infra(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("text", "parsed"), [
    ("1.30", (1, 30)), ("1.30.2", (1, 30, 2)), ("v1.31.0", (1, 31, 0)), ("1.30.2-1.1", (1, 30, 2)),
    ("v1.30.2+k3s1", (1, 30, 2)), ("1.x", None), ("", None), ("1", None)])
def test_versions_parse(text, parsed):
    assert parse(text) == parsed


@pytest.mark.parametrize(("wanted", "running", "refused"), [
    ("1.30.2", {"cp-1": "1.30.2"}, None),                 # the same version: nothing to do
    ("1.30", {"cp-1": "1.30.2"}, None),                   # the minor: the installed patch stays
    ("1.30.3", {"cp-1": "1.30.2"}, None),                 # a patch up
    ("1.31", {"cp-1": "1.30.2"}, None),                   # one minor up
    ("1.31.0", {"cp-1": "1.30.2", "w-1": "1.29.9"}, None),  # workers may lag: the newest host counts
    ("1.30.1", {"cp-1": "1.30.2"}, "older"),              # a patch down
    ("1.29", {"cp-1": "1.30.2"}, "older"),                # a minor down
    ("1.30.9", {"cp-1": "1.31.0", "w-1": "1.30.2"}, "older"),
    ("1.32", {"cp-1": "1.30.2"}, "skips"),                # two minors up
    ("1.33.1", {"cp-1": "1.31.0"}, "skips"),
    ("1.32", {}, None),                                   # nothing recorded: a first up
])
def test_which_steps_are_refused(wanted, running, refused):
    why = step_problem(wanted, running)
    kind = None if why is None else "older" if " is older than " in why else "skips" if " skips " in why else why
    assert kind == refused, why
    if refused == "older":
        assert why.startswith(f"{wanted} is older than the version the hosts run (")
        assert "kubeadm never downgrades a cluster" in why
    if refused == "skips":
        assert "kubeadm upgrades one minor version at a time" in why


def test_validate_refuses_a_downgrade_with_one_located_line(tmp_path):
    path = project(tmp_path, "1.30.1", {"cp-1": "1.30.2", "w-1": "1.30.2"})
    proc = infra(tmp_path, "validate", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == (
        f"{path}:5:12 kubernetes.version: 1.30.1 is older than the version the hosts run (w-1 runs 1.30.2): "
        "kubeadm never downgrades a cluster; give 1.30.2 or newer\n1 problem found\n")
    assert proc.stdout == ""


def test_validate_refuses_a_skipped_minor_and_accepts_the_next_one(tmp_path):
    path = project(tmp_path, "1.32", {"cp-1": "1.30.2"})
    proc = infra(tmp_path, "validate", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"{path}:5:12 kubernetes.version: 1.32 skips a minor version (cp-1 runs 1.30.2): kubeadm upgrades one "
        "minor version at a time; give 1.31 first, run `infra up`, then 1.32")
    path.write_text(path.read_text().replace('"1.32"', '"1.31"'))
    ok = infra(tmp_path, "validate", str(path))
    assert (ok.returncode, ok.stdout) == (0, "ok: lab\n"), ok.stderr


def test_without_a_recorded_version_any_version_validates(tmp_path):
    path = project(tmp_path, "1.29", None)
    proc = infra(tmp_path, "validate", str(path))
    assert (proc.returncode, proc.stdout) == (0, "ok: lab\n"), proc.stderr


def test_up_refuses_a_downgrade_before_any_stage(tmp_path):
    """Nothing rendered, nothing recorded, no host contacted (the blueprint's host is not reachable)."""
    path = project(tmp_path, "1.29.5", {"cp-1": "1.30.2"})
    proc = infra(tmp_path, "up", str(path), "--auto-approve")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"{path}:5:12 kubernetes.version: 1.29.5 is older than the version the hosts "
                                  "run (cp-1 runs 1.30.2)")
    assert not (tmp_path / "build").exists()
    assert not (tmp_path / ".infra" / "records").exists()
    assert "==> render" not in proc.stdout


def _result(versions: dict[str, str] | None, hosts=("cp-1", "w-1")) -> AnsibleResult:
    data = {"kubernetes_versions": versions} if versions is not None else {}
    return AnsibleResult(rc=0, status="successful", stats={h: HostStats(ok=3) for h in hosts}, data=data)


def test_hosts_json_keeps_each_hosts_version_until_a_run_reports_another(tmp_path):
    env = tmp_path / "env"
    path = env / "ansible" / "hosts.json"
    path.parent.mkdir(parents=True)
    save_hosts_file(path, _result({"cp-1": "1.30.1", "w-1": "1.30.1"}))
    assert recorded(env) == {"cp-1": "1.30.1", "w-1": "1.30.1"}
    save_hosts_file(path, _result(None))  # a run that failed before the role reported (or check mode)
    assert recorded(env) == {"cp-1": "1.30.1", "w-1": "1.30.1"}
    save_hosts_file(path, _result({"cp-1": "1.31.0"}))  # the rolling upgrade stopped after the control plane
    assert recorded(env) == {"cp-1": "1.31.0", "w-1": "1.30.1"}
    assert json.loads(path.read_text())["hosts"]["cp-1"]["status"] == "ok"


# --- the rolling plays (ansible/site.yml) and their blueprint knob ------------------------------------

SITE = Path(__file__).resolve().parents[2] / "ansible" / "site.yml"


def test_max_unavailable_is_for_hosts_only(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.replace('  version: "1.31"\n', '  version: "1.31"\n  max_unavailable: 2\n'))
    assert infra(tmp_path, "validate", str(path)).returncode == 0
    cloud = tmp_path / "aws.yaml"
    cloud.write_text("blueprint: 1\nname: c-env\nprovider: aws\nregion: us-east-1\nkubernetes:\n  max_unavailable: 2\n"
                     "  public_endpoint: true\n  authorized_networks: [203.0.113.0/24]\nnode_pools:\n"
                     "  - {name: system, instance_type: m6i.large, min: 1, max: 2}\n")
    proc = infra(tmp_path, "validate", str(cloud))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[0] == (
        f"{cloud}:6:20 kubernetes.max_unavailable: is for hosts (bare metal): how many workers a rolling change "
        "drains at once; a cloud's node pools roll with the cloud's own upgrade settings")


def _rolling_plays() -> list[dict]:
    import yaml

    return [play for play in yaml.safe_load(SITE.read_text()) if play.get("serial") is not None]


def test_control_planes_roll_one_at_a_time_then_workers_by_the_knob():
    control, workers = _rolling_plays()
    assert (control["hosts"], control["serial"]) == ("control_plane", 1)
    assert workers["hosts"] == "worker:!control_plane"
    assert workers["serial"] == "{{ infra_max_unavailable | default(1) }}"
    for play in (control, workers):
        assert "max_fail_percentage" not in play  # Ansible would count hosts failed in the main play
        [task] = play["tasks"]
        assert task["ansible.builtin.include_role"] == {"name": "kubernetes_node", "tasks_from": "upgrade"}


def test_the_rolling_plays_batch_and_stop_as_ansible_runs_them(tmp_path):
    """The rolling plays as in site.yml (headers and `when`), each node's work a stand-in with the
    real rescue of upgrade.yml, after a main play: batches in blueprint order (control planes first,
    one each; workers max_unavailable at a time), a failed node stops the change for every later
    batch, and a host that failed in the main play stops nothing."""
    import yaml

    rescue = yaml.safe_load((SITE.parent / "roles" / "kubernetes_node" / "tasks" / "upgrade.yml").read_text())
    rescue = next(t for t in rescue if t["name"] == "Change this node")["rescue"]
    plays = [{"name": "Main", "hosts": "all", "gather_facts": False, "connection": "local",
              "tasks": [{"name": "Main work", "ansible.builtin.fail": {"msg": "main"},
                         "when": "inventory_hostname == (main_fail | default(''))"}]}]
    for play in _rolling_plays():
        [task] = play["tasks"]
        work = [{"name": "Stand-in", "ansible.builtin.debug": {"msg": "BATCH={{ ansible_play_batch | join(',') }}="}},
                {"name": "Fail one", "ansible.builtin.fail": {"msg": "boom"},
                 "when": "inventory_hostname == (fail_on | default(''))"}]
        plays.append({**{k: play[k] for k in ("name", "hosts", "serial")}, "gather_facts": False, "connection": "local",
                      # a dynamic include, as the real include_role: its `when` is not inherited by the tasks
                      "tasks": [{"name": "Change", "when": task["when"],
                                 "ansible.builtin.include_tasks": str(tmp_path / "work.yml")}]})
    (tmp_path / "work.yml").write_text(yaml.safe_dump([{"name": "Change this node", "block": work, "rescue": rescue}]))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {
        "hosts": dict.fromkeys(["cp-2", "cp-1", "w-1", "w-2", "w-3", "inf-1"]),
        "children": {"control_plane": {"hosts": dict.fromkeys(["cp-1", "cp-2"])},
                     "worker": {"hosts": dict.fromkeys(["cp-1", "w-1", "w-2", "w-3"])},
                     "inference": {"hosts": dict.fromkeys(["inf-1"])}}}}))
    bin_dir = Path(sys.executable).parent

    def batches(*extra: str) -> tuple[int, list[list[str]]]:
        proc = subprocess.run([str(bin_dir / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                               "-e", "kubernetes_init_host=cp-1", "-e", "kubernetes_node_upgrade_pending=true", *extra,
                               str(tmp_path / "play.yml")], capture_output=True, text=True, timeout=120,
                              env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1",
                                   "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
        found = []
        for names in re.findall(r'"msg": "BATCH=([\w,-]*)="', proc.stdout):
            if names.split(",") not in found:
                found.append(names.split(","))
        return proc.returncode, found

    assert batches("-e", "infra_max_unavailable=2") == (0, [["cp-1"], ["cp-2"], ["w-1", "w-2"], ["w-3"]])
    assert batches() == (0, [["cp-1"], ["cp-2"], ["w-1"], ["w-2"], ["w-3"]])
    assert batches("-e", "main_fail=inf-1") == (2, [["cp-1"], ["cp-2"], ["w-1"], ["w-2"], ["w-3"]])
    assert batches("-e", "fail_on=cp-2") == (2, [["cp-1"], ["cp-2"]])
    assert batches("-e", "fail_on=w-2") == (2, [["cp-1"], ["cp-2"], ["w-1"], ["w-2"]])
    assert batches("-e", "infra_max_unavailable=2", "-e", "fail_on=w-1") == (2, [["cp-1"], ["cp-2"], ["w-1", "w-2"]])
