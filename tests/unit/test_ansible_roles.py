"""Static rules for ansible/ (docs/ansible.md, CHECKLISTS.md section 2) and the roles' templates
rendered by Ansible itself for every variant (containerd 1.x/2.x, GPU or not, kubeadm API
v1beta3/v1beta4, init/join)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from orchestrator.providers.baremetal import BaremetalProvider
from orchestrator.render.ansible import render_ansible
from tests.conftest import REPO
from tests.unit.test_ansible_inventory import bp

ANSIBLE = REPO / "ansible"
ROLES = ["common", "container_runtime", "host_facts", "inference_onnx", "kubernetes_node", "nvidia_gpu"]
BIN = Path(sys.executable).parent
# Task keywords (not modules); anything else in a task is its module.
KEYWORDS = {
    "name", "when", "register", "loop", "loop_control", "vars", "notify", "listen", "changed_when", "failed_when",
    "check_mode", "no_log", "become", "delegate_to", "run_once", "until", "retries", "delay", "tags", "block",
    "rescue", "always", "environment", "ignore_errors", "args", "with_items", "diff", "delegate_facts",
}


def task_files() -> list[Path]:
    return sorted(p for p in ANSIBLE.rglob("*.yml") if "/tasks/" in str(p) or "/handlers/" in str(p))


def all_tasks():
    def walk(tasks, path):
        for task in tasks or []:
            yield path, task
            for key in ("block", "rescue", "always"):
                yield from walk(task.get(key), path)

    for path in task_files():
        yield from walk(yaml.safe_load(path.read_text()), path)
    for play in yaml.safe_load((ANSIBLE / "site.yml").read_text()):
        yield from walk(play.get("tasks"), ANSIBLE / "site.yml")


def module_of(task: dict) -> str | None:
    mods = [k for k in task if k not in KEYWORDS]
    assert len(mods) <= 1, f"task {task.get('name')} has several modules: {mods}"
    return mods[0] if mods else None


def test_every_role_has_defaults_meta_and_tasks():
    assert sorted(p.name for p in (ANSIBLE / "roles").iterdir()) == ROLES
    for role in ROLES:
        for part in ("defaults/main.yml", "meta/main.yml", "tasks/main.yml"):
            assert (ANSIBLE / "roles" / role / part).is_file(), f"{role}/{part}"


def test_only_ansible_builtin_modules():
    for path, task in all_tasks():
        if "block" in task:
            continue
        module = module_of(task)
        assert module and module.startswith("ansible.builtin."), f"{path}: {task.get('name')}: {module}"


def test_commands_say_when_they_change_something():
    for path, task in all_tasks():
        module = module_of(task) if "block" not in task else None
        if module not in ("ansible.builtin.command", "ansible.builtin.shell"):
            continue
        args = task[module] if isinstance(task[module], dict) else {}
        guarded = "changed_when" in task or "creates" in args or "removes" in args
        assert guarded, f"{path}: '{task.get('name')}' needs changed_when, creates or removes"
        script = task[module] if isinstance(task[module], str) else args.get("cmd", "")
        if module == "ansible.builtin.shell" and re.search(r"[^|]\|[^|]", script):
            assert "set -o pipefail" in script, f"{path}: '{task.get('name')}' pipes without pipefail"


def test_every_task_is_named_and_nothing_is_latest():
    for path, task in all_tasks():
        assert task.get("name"), f"{path}: unnamed task {task}"
        assert "latest" not in json.dumps(task), f"{path}: '{task['name']}' installs 'latest'"


def test_tasks_that_handle_join_secrets_are_no_log():
    for path, task in all_tasks():
        if "block" in task:
            continue
        text = json.dumps(task)
        if any(word in text for word in ("token create", "upload-certs", "kubeadm-join.yaml.j2", "kubeadm, join")):
            assert task.get("no_log") is True, f"{path}: '{task['name']}' must be no_log"


def test_one_variable_pins_the_driver_branch():
    defaults = yaml.safe_load((ANSIBLE / "roles/nvidia_gpu/defaults/main.yml").read_text())
    assert defaults["nvidia_gpu_driver_branch"] == "{{ nvidia_driver_branch | default('570') }}"
    text = "".join(p.read_text() for p in (ANSIBLE / "roles/nvidia_gpu/tasks").glob("*.yml"))
    assert "cuda-drivers\"" not in text and "cuda-drivers'" not in text  # never the unpinned meta package
    for package in ("nvidia-headless-", "nvidia-utils-", "nvidia-fabricmanager-", "cuda-drivers-", "nvidia-open-"):
        for line in (m for m in text.splitlines() if package in m):
            assert "nvidia_gpu_driver_branch" in line or "nvidia_gpu_fm_driver" in line, line


def test_site_playbook_passes_ansible_syntax_check(tmp_path):
    for rel, text in render_ansible(bp(), BaremetalProvider()).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(tmp_path / "inventory.yml"), "site.yml"],
        cwd=ANSIBLE, capture_output=True, text=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("templates")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"out={out}",
         str(REPO / "tests/fixtures/ansible/render-templates.yml")],
        capture_output=True, text=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(out), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_LOCALHOST_WARNING": "False"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


@pytest.mark.parametrize("schema", [2, 3])
def test_containerd_config_uses_systemd_cgroups_and_the_nvidia_runtime_on_gpu_hosts(rendered, schema):
    cri = "io.containerd.grpc.v1.cri" if schema == 2 else "io.containerd.cri.v1.runtime"
    cpu = tomllib.loads((rendered / f"containerd-v{schema}-cpu.toml").read_text())
    gpu = tomllib.loads((rendered / f"containerd-v{schema}-gpu.toml").read_text())
    assert cpu["version"] == gpu["version"] == schema
    assert "imports" not in gpu  # one file: a drop-in would replace the whole CRI section
    cpu_rt = cpu["plugins"][cri]["containerd"]
    assert cpu_rt["default_runtime_name"] == "runc" and set(cpu_rt["runtimes"]) == {"runc"}
    assert cpu_rt["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    gpu_rt = gpu["plugins"][cri]["containerd"]
    assert gpu_rt["default_runtime_name"] == "nvidia"
    assert gpu_rt["runtimes"]["nvidia"]["runtime_type"] == "io.containerd.runc.v2"
    assert gpu_rt["runtimes"]["nvidia"]["options"] == {"BinaryName": "/usr/bin/nvidia-container-runtime",
                                                       "SystemdCgroup": True}
    assert gpu_rt["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


def test_kubeadm_init_config(rendered):
    v3 = list(yaml.safe_load_all((rendered / "init-v1beta3-control_plane.yaml").read_text()))
    assert [d["kind"] for d in v3] == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    init, cluster, kubelet = v3
    assert init["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert init["nodeRegistration"]["taints"] == [
        {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}]
    assert init["nodeRegistration"]["kubeletExtraArgs"] == {"node-labels": "infra.dev/pool=cpu,workload=general"}
    assert cluster["kubernetesVersion"] == "v1.31.4" and cluster["controlPlaneEndpoint"] == "10.1.0.10:6443"
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12"}
    assert kubelet["cgroupDriver"] == "systemd"
    v4 = list(yaml.safe_load_all((rendered / "init-v1beta4-control_plane+worker.yaml").read_text()))
    assert v4[0]["nodeRegistration"]["taints"] == []  # a control plane that is also a worker
    alone = list(yaml.safe_load_all((rendered / "init-v1beta4-control_plane-alone.yaml").read_text()))
    assert alone[0]["nodeRegistration"]["taints"] == []  # no worker in the inventory: a single-node cluster
    assert v4[0]["nodeRegistration"]["kubeletExtraArgs"] == [
        {"name": "node-labels", "value": "infra.dev/pool=cpu,workload=general"}]


def test_kubeadm_join_config(rendered):
    worker = yaml.safe_load((rendered / "join-v1beta4-worker.yaml").read_text())
    assert worker["kind"] == "JoinConfiguration"
    assert worker["discovery"]["bootstrapToken"] == {"apiServerEndpoint": "10.1.0.10:6443",
                                                     "token": "abcdef.0123456789abcdef",
                                                     "caCertHashes": ["sha256:" + "7" * 64]}
    assert "unsafeSkipCAVerification" not in json.dumps(worker)
    assert worker["nodeRegistration"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present",
                                                     "effect": "NoSchedule"}]
    assert "controlPlane" not in worker
    cp = yaml.safe_load((rendered / "join-v1beta3-control_plane.yaml").read_text())
    assert cp["controlPlane"] == {"certificateKey": "c" * 64, "localAPIEndpoint": {"advertiseAddress": "10.1.0.10"}}
    assert {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"} in \
        cp["nodeRegistration"]["taints"]


def test_inference_settings(rendered):
    models = json.loads((rendered / "models.json").read_text())["models"]
    assert models == [
        {"name": "resnet50", "path": "/opt/infra-inference/models/resnet50.onnx", "version": "1",
         "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"], "require_gpu": True},
        {"name": "tiny", "path": "/opt/infra-inference/models/tiny.onnx", "version": "1",
         "providers": ["CPUExecutionProvider"], "require_gpu": False},
    ]
    assert "INFERENCE_PORT=8000" in (rendered / "server.env").read_text()
    unit = (rendered / "infra-inference.service").read_text()
    assert "DynamicUser=yes" in unit and "oip_server.py --config /opt/infra-inference/models.json" in unit


def test_kubernetes_node_task_names_are_static_text():
    """A name that templates a fact set at run time shows `<< error 1 - ... is undefined >>` when
    the task starts before the fact exists (a skipped block, check mode): kubernetes_node's task
    names are plain text; the versions are in the tasks' arguments and results."""
    tasks = sorted((ANSIBLE / "roles/kubernetes_node/tasks").glob("*.yml"))
    templated = [f"{path.name}: {line.strip()}" for path in tasks
                 for line in path.read_text().splitlines() if re.match(r"\s*- name: .*\{[{%]", line)]
    assert templated == []


def test_rhel_packages_held_by_repository_excludes_are_installed_past_them():
    """A dnf install of a held package must name a repository that excludes it (CHECKLISTS 2: driver,
    fabric manager, toolkit and Kubernetes stay where the role put them across `dnf update`)."""
    repos = {t[m]["name"]: t[m] for _, t in all_tasks() if (m := module_of(t)) == "ansible.builtin.yum_repository"}
    installs = [(p, t) for p, t in all_tasks() if module_of(t) == "ansible.builtin.dnf"
                and "disable_excludes" in t["ansible.builtin.dnf"]]
    assert {t["ansible.builtin.dnf"]["disable_excludes"] for _, t in installs} == {
        "cuda", "nvidia-container-toolkit", "kubernetes"}
    for path, task in installs:
        repo = repos.get(task["ansible.builtin.dnf"]["disable_excludes"])
        assert repo is not None and repo.get("exclude"), f"{path.name}: {task['name']}"


def test_cuda_lists_are_refreshed_whenever_a_driver_package_has_no_candidate():
    """Not only when the keyring changed (issue 12): a run after a failed refresh refreshes again."""
    tasks = yaml.safe_load((ANSIBLE / "roles/nvidia_gpu/tasks/install-debian.yml").read_text())
    flat = [t for task in tasks for t in (task.get("block") or [task])]
    names = [t["name"] for t in flat]
    policy = names.index("Check that the driver packages are installable")
    refresh = names.index("Refresh the package lists when a driver package has no candidate")
    headers = next(i for i, n in enumerate(names) if n.startswith("Install the kernel headers"))
    driver = names.index("Install the driver packages (held packages move to the pinned branch)")
    assert headers < policy < refresh < driver
    assert flat[policy]["check_mode"] is False
    assert flat[refresh]["when"] == (
        "(nvidia_gpu_driver_policy.stdout | regex_findall('Candidate: (?!\\\\(none\\\\))') | length)"
        " < (nvidia_gpu_driver_packages | length)")
    assert flat[driver]["ansible.builtin.apt"]["allow_change_held_packages"] is True
    assert flat[headers]["ansible.builtin.apt"]["name"] == "linux-headers-{{ ansible_kernel }}"


def test_mig_change_stops_gpu_clients_and_a_failure_puts_nothing_back_in_service():
    """stop the host's GPU clients -> apply -> verify -> start them; a failure leaves them stopped and
    a Kubernetes node cordoned, since the layout may be half-applied (issue 22: the old rescue
    uncordoned it). A Kubernetes node changes its layout in the rolling play, drained; mig.yml only
    notes it there."""
    tasks = yaml.safe_load((ANSIBLE / "roles/nvidia_gpu/tasks/mig_change.yml").read_text())
    change = next(t for t in tasks if t["name"] == "Change the layout")
    assert [t["name"] for t in change["block"]] == [
        "Stop the GPU clients on the host while the GPUs change",
        "Apply the layout (the service's hooks reset the GPUs)", "Check the layout again",
        "Reboot when the GPUs need a reset the service could not do",
        "Verify the layout after the reboot", "Start the GPU clients on the host again"]
    [report] = change["rescue"]
    assert "ansible.builtin.command" not in report and "uncordon" not in json.dumps(report)
    assert "may be half-applied" in report["ansible.builtin.fail"]["msg"]
    assert "the node stays cordoned" in report["ansible.builtin.fail"]["msg"]
    mig = yaml.safe_load((ANSIBLE / "roles/nvidia_gpu/tasks/mig.yml").read_text())
    assert "drain" not in json.dumps(mig).replace("drained", "")
    now = next(t for t in mig if t["name"] == "Change the MIG layout now (not a Kubernetes node)")
    assert now["ansible.builtin.include_tasks"] == "mig_change.yml"
    assert "not nvidia_gpu_mig_change_pending" in now["when"]


def test_rhel_names_epel_and_crb_as_rhel_has_them():
    """RHEL proper has no epel-release package and calls CRB codeready-builder-for-rhel-N-ARCH-rpms."""
    defaults = yaml.safe_load((ANSIBLE / "roles/nvidia_gpu/defaults/main.yml").read_text())
    assert defaults["nvidia_gpu_crb_repo"] == (
        "{{ ('codeready-builder-for-rhel-' ~ ansible_distribution_major_version ~ '-' ~ ansible_architecture"
        " ~ '-rpms')\n"
        "   if ansible_distribution == 'RedHat' else 'crb' }}")
    assert defaults["nvidia_gpu_epel_release_rpm"] == ""
    tasks = yaml.safe_load((ANSIBLE / "roles/nvidia_gpu/tasks/install-redhat.yml").read_text())
    epel = next(t for t in tasks if t["name"] == "Enable EPEL (DKMS comes from there)")
    assert epel["ansible.builtin.dnf"]["name"] == (
        "{{ nvidia_gpu_epel_release_rpm if ansible_distribution == 'RedHat' else 'epel-release' }}")
    crb = next(t for t in tasks if t["name"] == "Enable the CRB repository")
    assert crb["ansible.builtin.command"]["argv"][-1] == "{{ nvidia_gpu_crb_repo }}"
