"""The nvidia_gpu role's package sources and Secure Boot decision (issue 22).

NVIDIA's CUDA repository folder comes from the distribution's MAJOR version (debian12, not
debian125 from a point release; ubuntu2204/2404; rhel9 for RHEL and its rebuilds): the role's own
default, resolved by real ansible-playbook over the facts of each distribution. Secure Boot is read
(mokutil, else the UEFI variable) and decides, before anything is installed or rebooted, between
Ubuntu's signed precompiled modules, a DKMS build (Secure Boot off, or its key enrolled) and a clear
failure: the role's real tasks (tasks/secure_boot.yml), on the controller, with a stand-in mokutil or
UEFI variable file."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

ROLE = REPO / "ansible" / "roles" / "nvidia_gpu"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROLE / "filter_plugins"))
import nvidia_gpu as filters  # noqa: E402 - the role's filter plugin, a plain module

FACTS = {
    "debian-12.5": {"ansible_distribution": "Debian", "ansible_distribution_version": "12.5",
                    "ansible_distribution_major_version": "12", "ansible_os_family": "Debian"},
    "ubuntu-22.04": {"ansible_distribution": "Ubuntu", "ansible_distribution_version": "22.04",
                     "ansible_distribution_major_version": "22", "ansible_os_family": "Debian"},
    "ubuntu-24.04": {"ansible_distribution": "Ubuntu", "ansible_distribution_version": "24.04",
                     "ansible_distribution_major_version": "24", "ansible_os_family": "Debian"},
    "rhel-9.4": {"ansible_distribution": "RedHat", "ansible_distribution_version": "9.4",
                 "ansible_distribution_major_version": "9", "ansible_os_family": "RedHat"},
    "rocky-9.4": {"ansible_distribution": "Rocky", "ansible_distribution_version": "9.4",
                  "ansible_distribution_major_version": "9", "ansible_os_family": "RedHat"},
}


def playbook(tmp_path: Path, tasks: list, extra: dict, path_dirs: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {"gpu-1": None}}}))
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Decide", "hosts": "gpu-1", "connection": "local", "gather_facts": False, "tasks": tasks}]))
    env = {"PATH": os.pathsep.join([*map(str, path_dirs), str(BIN), "/usr/bin", "/bin"]), "HOME": str(tmp_path),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles"),
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                           "-e", f"@{tmp_path / 'extra.json'}", str(tmp_path / "play.yml")],
                          capture_output=True, text=True, timeout=120, env=env)


FOLDERS = {  # host -> (facts, architecture, NVIDIA's folder)
    "debian": ("debian-12.5", "x86_64", "debian12/x86_64"),
    "jammy": ("ubuntu-22.04", "x86_64", "ubuntu2204/x86_64"),
    "noble-arm": ("ubuntu-24.04", "aarch64", "ubuntu2404/sbsa"),
    "rhel": ("rhel-9.4", "x86_64", "rhel9/x86_64"),
    "rocky": ("rocky-9.4", "x86_64", "rhel9/x86_64"),
}


def test_the_cuda_repository_folder_comes_from_the_major_version(tmp_path):
    """One ansible-playbook run, one host per distribution (its facts as host variables)."""
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        name: {**FACTS[facts], "ansible_architecture": arch} for name, (facts, arch, _) in FOLDERS.items()}}}))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Folders", "hosts": "all", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Show",
                   "ansible.builtin.debug": {"msg": "DIR={{ inventory_hostname }}:{{ nvidia_gpu_cuda_repo_dir }}="},
                   "vars": yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())}]}]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "play.yml")], capture_output=True, text=True, timeout=120,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1",
                               "ANSIBLE_FILTER_PLUGINS": str(ROLE / "filter_plugins"),
                               "ANSIBLE_PYTHON_INTERPRETER": sys.executable})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = dict(line.split(":", 1) for line in re.findall(r'"msg": "DIR=([^"]*)="', proc.stdout))
    assert found == {name: folder for name, (_, _, folder) in FOLDERS.items()}


def test_the_redhat_tasks_use_that_folder_too():
    text = (ROLE / "tasks" / "install-redhat.yml").read_text()
    assert "{{ nvidia_gpu_cuda_repo_base }}/{{ nvidia_gpu_cuda_repo_dir }}/" in text
    assert "rhel{{" not in text and "ansible_distribution_version" not in text


def _efivar(tmp_path: Path, value: int) -> Path:
    path = tmp_path / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
    path.write_bytes(bytes([0x06, 0, 0, 0, value]))  # attributes (NV|BS|RT), then the value
    return path


def _mokutil(tmp_path: Path, says: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "mokutil").write_text(f"#!/bin/sh\necho '{says}'\n")
    (folder / "mokutil").chmod(0o755)
    return folder


def secure_boot(tmp_path: Path, host: str, *, efivar: Path | None = None, mokutil: Path | None = None,
                **site) -> subprocess.CompletedProcess:
    """The role's tasks/secure_boot.yml with ``host``'s facts; prints the plan when it passes."""
    tasks = [{"name": "Check Secure Boot", "ansible.builtin.include_role": {"name": "nvidia_gpu",
                                                                         "tasks_from": "secure_boot"}},
             {"name": "Show", "ansible.builtin.debug": {
                 "msg": "PLAN={{ nvidia_gpu_secure_boot }}/{{ nvidia_gpu_module_plan.modules }}="}}]
    extra = {**FACTS[host], "ansible_architecture": "x86_64", **site,
             "nvidia_gpu_secure_boot_efivar": str(efivar or tmp_path / "no-such-efivar")}
    return playbook(tmp_path, tasks, extra, path_dirs=(mokutil,) if mokutil else ())


def plan(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout.split("PLAN=")[1].split("=")[0]


def test_ubuntu_with_secure_boot_uses_the_signed_precompiled_modules(tmp_path):
    proc = secure_boot(tmp_path, "ubuntu-22.04", mokutil=_mokutil(tmp_path, "SecureBoot enabled"))
    assert plan(proc) == "on/precompiled"


def test_debian_with_secure_boot_fails_before_anything_changes(tmp_path):
    """No mokutil: the UEFI variable says on; Debian's driver would be built by DKMS, unsigned."""
    proc = secure_boot(tmp_path, "debian-12.5", efivar=_efivar(tmp_path, 1))
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "Fail before the driver install when its kernel module could not load under Secure Boot" in proc.stdout
    assert ("gpu-1: Secure Boot is on: the NVIDIA kernel module DKMS would build here is not signed by a key the "
            "firmware trusts, so it would not load after the reboot; Debian has no signed precompiled NVIDIA modules, "
            "or enroll DKMS's signing key (MOK)") in proc.stdout
    assert "(nothing was installed or rebooted)" in proc.stdout


def test_an_enrolled_dkms_key_lets_debian_build_the_module(tmp_path):
    proc = secure_boot(tmp_path, "debian-12.5", efivar=_efivar(tmp_path, 1), nvidia_gpu_dkms_mok_enrolled=True)
    assert plan(proc) == "on/dkms"


@pytest.mark.parametrize(("host", "how", "expected"), [
    ("rhel-9.4", "efivar-0", "off/dkms"),        # UEFI, Secure Boot off
    ("ubuntu-24.04", "no-efi", "off/dkms"),      # legacy BIOS: no UEFI variable at all
    ("debian-12.5", "mokutil-off", "off/dkms"),
])
def test_without_secure_boot_the_module_is_built_by_dkms(tmp_path, host, how, expected):
    kw = {"efivar-0": {"efivar": _efivar(tmp_path, 0)}, "no-efi": {},
          "mokutil-off": {"mokutil": _mokutil(tmp_path, "SecureBoot disabled")}}[how]
    assert plan(secure_boot(tmp_path, host, **kw)) == expected


def test_rhel_with_secure_boot_and_precompiled_asked_is_refused(tmp_path):
    proc = secure_boot(tmp_path, "rhel-9.4", efivar=_efivar(tmp_path, 1), nvidia_gpu_driver_modules="precompiled")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "signed precompiled NVIDIA modules come only from Ubuntu's own packages" in proc.stdout


@pytest.mark.parametrize(("efivar", "mokutil", "state"), [
    ({"content": base64.b64encode(bytes([6, 0, 0, 0, 1])).decode()}, "", "on"),
    ({"content": base64.b64encode(bytes([0x16, 0, 0, 0, 0])).decode()}, "", "off"),
    ({"failed": True, "msg": "file not found: /sys/firmware/efi/efivars/SecureBoot-8be4df61"}, "", "off"),
    ({"failed": True, "msg": "Permission denied"}, "", "unknown"),
    ({"skipped": True}, "SecureBoot enabled", "on"),
    ({"skipped": True}, "This system doesn't support Secure Boot", "off"),
])
def test_secure_boot_state_is_read_from_mokutil_or_the_uefi_variable(efivar, mokutil, state):
    assert filters.secure_boot_state(efivar, mokutil) == state
