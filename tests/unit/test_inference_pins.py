"""The inference_onnx role's wheels (issue 22): pinned in data per target Python and flavour
(ansible/roles/inference_onnx/vars/main.yml), never in task text; the role picks the set for the
host's Python (real ansible-playbook) and refuses a Python it has no pins for; the release check
(scripts/check-pins, `make check-pins`) resolves every set and fails on one that cannot be
installed (here against a local folder of stand-in wheels: no index is asked at test time); and the
model server's start-up check says GPU or CPU, failing where a GPU was asked for."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.conftest import make_model

ROLE = REPO / "ansible" / "roles" / "inference_onnx"
PINS = ROLE / "vars" / "main.yml"
BIN = Path(sys.executable).parent
DATA = yaml.safe_load(PINS.read_text())
VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def test_every_supported_python_has_cpu_and_gpu_pins():
    pins = DATA["inference_onnx_pins"]
    assert {"3.9", "3.10", "3.11", "3.12"} <= set(pins)  # RHEL 9, Ubuntu 22.04, Debian 12, Ubuntu 24.04
    for python, entry in pins.items():
        assert set(entry) == {"onnxruntime", "onnxruntime_gpu", "numpy"}, python
        assert all(VERSION.match(str(v)) for v in entry.values()), (python, entry)
    cuda = DATA["inference_onnx_cuda_packages"]
    assert all(re.match(r"^nvidia-[a-z0-9-]+-cu12==\d+(\.\d+)+$", p) for p in cuda), cuda
    assert {p.split("==")[0] for p in cuda} >= {"nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu12",
                                                "nvidia-cublas-cu12"}


def test_no_task_default_or_template_names_a_version():
    """Versions live in vars/main.yml only: tasks, defaults, handlers and templates read them."""
    pinned = {str(v) for entry in DATA["inference_onnx_pins"].values() for v in entry.values()}
    pinned |= {p.split("==")[1] for p in DATA["inference_onnx_cuda_packages"]}
    found = []
    for path in sorted(ROLE.rglob("*")):
        if not path.is_file() or path == PINS or path.suffix not in (".yml", ".j2", ".py", ""):
            continue
        text = path.read_text()
        where = path.relative_to(REPO)
        found += [f"{where}: {m}" for m in re.findall(r"(?:onnxruntime|numpy|nvidia-\S+)[=<>~]=\d", text)]
        found += [f"{where}: {v}" for v in sorted(pinned) if re.search(rf"(?<![\d.]){re.escape(v)}(?![\d.])", text)]
    assert found == []


def _playbook(tmp_path: Path, tasks: list, extra: dict, inventory: bool = True) -> subprocess.CompletedProcess:
    if inventory:
        (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {"inf-1": None}}}))
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Pins", "hosts": "all", "connection": "local", "gather_facts": False, "tasks": tasks}]))
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                           "-e", f"@{tmp_path / 'extra.json'}", str(tmp_path / "play.yml")],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1",
                               "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles"),
                               "ANSIBLE_PYTHON_INTERPRETER": sys.executable})


def test_the_role_installs_the_set_pinned_for_the_hosts_python(tmp_path):
    """inference_onnx_packages as Ansible resolves it from the role's defaults and the pins file: one
    run, one host per (Python, GPU or not)."""
    hosts = {"rhel9-gpu": ("3.9", True), "jammy-cpu": ("3.10", False), "bookworm-gpu": ("3.11", True),
             "noble-cpu": ("3.12", False)}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        name: {"ansible_python": {"version": {"major": 3, "minor": int(py.split(".")[1])}}, "nvidia_gpu_present": gpu}
        for name, (py, gpu) in hosts.items()}}}))
    tasks = [{"name": "Load the pins", "ansible.builtin.include_vars": {"file": str(PINS)}},
             {"name": "Show",
              "ansible.builtin.debug": {"msg": "PKGS {{ inventory_hostname }} "
                                               "{{ inference_onnx_packages | join(' ') }}="},
              "vars": yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())}]
    proc = _playbook(tmp_path, tasks, {}, inventory=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = re.findall(r'"msg": "PKGS ([^"]*)="', proc.stdout)
    found = {line.split(" ", 1)[0]: line.split(" ", 1)[1].split() for line in lines}
    expected = {}
    for name, (python, gpu) in hosts.items():
        pins = DATA["inference_onnx_pins"][python]
        expected[name] = ([f"onnxruntime-gpu=={pins['onnxruntime_gpu']}", f"numpy=={pins['numpy']}",
                           *DATA["inference_onnx_cuda_packages"]] if gpu
                          else [f"onnxruntime=={pins['onnxruntime']}", f"numpy=={pins['numpy']}"])
    assert found == expected


def test_a_python_without_pins_fails_the_host_with_the_supported_list(tmp_path):
    tasks = [{"name": "Install the runtime", "ansible.builtin.include_role": {"name": "inference_onnx",
                                                                           "tasks_from": "runtime"}}]
    proc = _playbook(tmp_path, tasks, {"ansible_python": {"version": {"major": 3, "minor": 8},
                                                          "executable": "/usr/bin/python3.8"},
                                       "ansible_distribution": "Ubuntu", "ansible_distribution_version": "20.04"})
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "inference_onnx : Fail when no ONNX Runtime pins exist for this host's Python" in proc.stdout
    assert ("no ONNX Runtime pins for Python 3.8 (/usr/bin/python3.8 on Ubuntu 20.04): "
            f"roles/inference_onnx/vars/main.yml pins {', '.join(DATA['inference_onnx_pins'])}") in proc.stdout


# --- the release check, against a folder of stand-in wheels ------------------------------------------

def _wheel(folder: Path, name: str, version: str, requires_python: str | None = None) -> None:
    dist = f"{name.replace('-', '_')}-{version}"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += f"Requires-Python: {requires_python}\n" if requires_python else ""
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{dist}.dist-info/METADATA", meta)
        whl.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                                "Tag: py3-none-any\n")
        whl.writestr(f"{dist}.dist-info/RECORD", "")


def _all_pinned_wheels(folder: Path, skip: str = "") -> None:
    folder.mkdir()
    seen = set()
    for entry in DATA["inference_onnx_pins"].values():
        for name, key in (("onnxruntime", "onnxruntime"), ("onnxruntime-gpu", "onnxruntime_gpu"), ("numpy", "numpy")):
            if (name, entry[key]) not in seen and f"{name}=={entry[key]}" != skip:
                seen.add((name, entry[key]))
                _wheel(folder, name, entry[key])
    for pin in DATA["inference_onnx_cuda_packages"]:
        _wheel(folder, *pin.split("=="))


def _check_pins(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "check-pins"), *args], capture_output=True,
                          text=True, timeout=600)


def test_check_pins_passes_when_every_set_resolves(tmp_path):
    _all_pinned_wheels(tmp_path / "wheels")
    proc = _check_pins("--find-links", str(tmp_path / "wheels"), "--python", "3.9", "--python", "3.11")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["ok   python 3.9 cpu", "ok   python 3.9 gpu",
                                                           "ok   python 3.11 cpu", "ok   python 3.11 gpu"]
    assert lines[-1] == "every pinned set resolves"


def test_check_pins_fails_naming_the_python_and_flavour_of_a_missing_wheel(tmp_path):
    gpu310 = f"onnxruntime-gpu=={DATA['inference_onnx_pins']['3.10']['onnxruntime_gpu']}"
    _all_pinned_wheels(tmp_path / "wheels", skip=gpu310)
    proc = _check_pins("--find-links", str(tmp_path / "wheels"), "--python", "3.10")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ok   python 3.10 cpu: ")
    assert lines[1].startswith(f"FAIL python 3.10 gpu: {gpu310} ")
    assert lines[1].endswith(f"ERROR: Could not find a version that satisfies the requirement {gpu310} (from versions: "
                             f"{DATA['inference_onnx_pins']['3.9']['onnxruntime_gpu']}, "
                             f"{DATA['inference_onnx_pins']['3.11']['onnxruntime_gpu']})")
    assert lines[-1] == "1 of the pinned sets cannot be installed"


def test_check_pins_checks_each_python_on_its_own(tmp_path):
    """A numpy that needs Python 3.10 or newer fails the 3.9 sets only."""
    numpy39 = DATA["inference_onnx_pins"]["3.9"]["numpy"]
    _all_pinned_wheels(tmp_path / "wheels", skip=f"numpy=={numpy39}")
    _wheel(tmp_path / "wheels", "numpy", numpy39, requires_python=">=3.10")
    proc = _check_pins("--find-links", str(tmp_path / "wheels"), "--python", "3.9", "--python", "3.10")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()[:4]] == [
        "FAIL python 3.9 cpu", "FAIL python 3.9 gpu", "ok   python 3.10 cpu", "ok   python 3.10 gpu"]
    assert proc.stdout.splitlines()[0].endswith(": ERROR: Package 'numpy' requires a different Python: 3.9.0 not in "
                                                "'>=3.10'")


# --- the model server's start-up check ----------------------------------------------------------------

def _server(tmp_path: Path, *extra: str, require_gpu: bool) -> subprocess.CompletedProcess:
    make_model(tmp_path / "affine.onnx")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if require_gpu else ["CPUExecutionProvider"]
    (tmp_path / "models.json").write_text(json.dumps({"models": [
        {"name": "affine", "path": str(tmp_path / "affine.onnx"), "providers": providers,
         "require_gpu": require_gpu}]}))
    return subprocess.run([sys.executable, str(ROLE / "files" / "oip_server.py"), "--config",
                           str(tmp_path / "models.json"), "--port", "0", *extra],
                          capture_output=True, text=True, timeout=120)


def test_the_start_up_check_says_the_model_runs_on_the_cpu(tmp_path):
    proc = _server(tmp_path, "--check", require_gpu=False)
    assert proc.returncode == 0, proc.stderr
    assert "infra-onnx: model affine runs on the CPU (CPUExecutionProvider)" in proc.stderr.splitlines()


@pytest.mark.parametrize("mode", [["--check"], []])
def test_a_model_that_asks_for_a_gpu_stops_the_server_on_a_cpu_only_runtime(tmp_path, mode):
    """This machine's onnxruntime is the CPU wheel: the server refuses to start (exit 3) rather than
    serve a GPU model on the CPU; so does the check the role runs before (re)starting it."""
    proc = _server(tmp_path, *mode, require_gpu=True)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith(
        "infra-onnx: error: model affine asks for a GPU, but ONNX Runtime would run it on the CPU: this ONNX "
        "Runtime (")
    assert "has no CUDAExecutionProvider" in proc.stderr and "install onnxruntime-gpu" in proc.stderr
    assert "serving" not in proc.stderr
