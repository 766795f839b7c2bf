"""Fixtures for the Ansible integration tests: real SSH hosts (debootstrap'd chroots), the local
signed apt repository their apt uses (containerd and the test kubeadm packages), a lab
blueprint for them, the ONNX Runtime wheels the inference role installs offline, the fake
Kubernetes API that the kubeadm test double's admin kubeconfig points at (so `infra up` runs
through to the handoff stage), and a helper that runs the `infra` CLI in-process (exit code,
stdout, stderr).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require
from tests.hosts import aptrepo, rootfs
from tests.hosts.cluster import TestHosts
from tests.kube_fake.fixtures import install_crds
from tests.kube_fake.server import FakeKube

ROLE_PINS = REPO / "ansible" / "roles" / "inference_onnx" / "vars" / "main.yml"  # per Python
HOST_COUNT = 3
# node-1 is the control plane, node-2 a worker, node-3 an inference-only host (no Kubernetes node):
# the host mix of issue 22, which must converge in one `infra up`.
ROLES = {1: ["control_plane"], 2: ["worker"], 3: ["inference"]}
MODEL_W = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]]  # y = x @ W + b, x: [batch, 3]
MODEL_B = [0.5, -2.0]


def _ensure_hosts_supported() -> None:
    missing = rootfs.tools_missing()
    require(not missing, f"{', '.join(missing)} for the SSH test hosts (.ci/run installs debootstrap, openssh-server)")


@pytest.fixture(scope="session")
def test_hosts(tmp_path_factory) -> TestHosts:
    _ensure_hosts_supported()
    base = tmp_path_factory.mktemp("hosts")
    # each xdist worker its own addresses: two labs on one machine share its network, and a service
    # on a host (the model server on node-3's address, port 8000) must not meet the other lab's
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = 20 * int(worker[2:]) if worker[2:].isdigit() else 0
    hosts = TestHosts.start(HOST_COUNT, base, log=lambda msg: print(msg, file=sys.stderr), offset=offset)
    if hosts.build_seconds:
        print(f"\ntest rootfs built in {hosts.build_seconds:.0f}s (cached for later runs)", file=sys.stderr)
    try:
        yield hosts
    finally:
        hosts.destroy()


@pytest.fixture(scope="session")
def apt_repo(tmp_path_factory, test_hosts) -> aptrepo.RepoServer:
    """The local signed apt repository (tests/hosts/aptrepo.py) on loopback, Kubernetes test
    packages of version A published; every test host's apt points at its Debian part."""
    missing = aptrepo.tools_missing()
    require(not missing, f"{', '.join(missing)} for the local apt repository (.ci/run installs gnupg, dpkg-dev)")
    server, cache = aptrepo.serve_for(test_hosts, tmp_path_factory.mktemp("apt"),
                                      log=lambda msg: print(msg, file=sys.stderr))
    server.cache = cache
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def onnx_wheels() -> Path:
    """onnxruntime and numpy wheels at the role's pinned versions for this Python, the test hosts' too
    (downloaded once, cached)."""
    pinned = yaml.safe_load(ROLE_PINS.read_text())["inference_onnx_pins"][f"{sys.version_info.major}."
                                                                         f"{sys.version_info.minor}"]
    pins = [f"onnxruntime=={pinned['onnxruntime']}", f"numpy=={pinned['numpy']}"]
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    key = hashlib.sha256("\n".join([tag, *pins]).encode()).hexdigest()[:12]
    target = rootfs.cache_root() / f"wheels-{tag}-{key}"
    if (target / ".complete").is_file():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                           "--dest", str(tmp), *pins], capture_output=True, text=True)
    require(proc.returncode == 0, f"the ONNX Runtime wheels ({', '.join(pins)}) from the package index: "
                                  f"{proc.stderr.strip()[-300:]}")
    (tmp / ".complete").write_text("\n".join(pins) + "\n")
    if target.exists():
        shutil.rmtree(target)
    os.rename(tmp, target)
    return target


def make_model(path: Path, weights=MODEL_W, bias=MODEL_B) -> None:
    """A small ONNX model: y = x @ W + b (MatMul + Add), made with the onnx package."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array(weights, dtype=np.float32), name="W")
    b = numpy_helper.from_array(np.array(bias, dtype=np.float32), name="B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime the role may pin
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@dataclass
class Lab:
    dir: Path
    blueprint: Path
    extra_vars: Path
    hosts: TestHosts
    model: Path
    kube: FakeKube
    apt: aptrepo.RepoServer

    def pin(self, version: str) -> None:
        """Rewrite the lab blueprint with ``kubernetes.version: version`` (e.g. "1.30.2")."""
        write_blueprint(self.blueprint, self.hosts, self.model, version=version)

    def site_vars(self, **extra) -> None:
        """(Re)write the site variables file: the lab's values plus ``extra``."""
        self.extra_vars.write_text(yaml.safe_dump({**self.base_vars, **extra}))

    @property
    def base_vars(self) -> dict:
        return yaml.safe_load(self.extra_vars.with_suffix(".base.yml").read_text())

    @property
    def env_dir(self) -> Path:
        return self.dir / ".infra" / "env" / "lab"

    def artifacts(self) -> Path:
        return self.env_dir / "ansible" / "artifacts"


def write_blueprint(path: Path, hosts: TestHosts, model: Path, gpu_host: str | None = None,
                    version: str = aptrepo.VERSIONS[0].split("-")[0]) -> None:
    """The lab blueprint; ``version`` pins the Kubernetes patch release (default: version A)."""
    bp = {
        "blueprint": 1,
        "name": "lab",
        "provider": "baremetal",
        "kubernetes": {"version": version},
        "node_pools": [{"name": "general", "labels": {"workload": "general"}}],
        "hosts": [],
        "teams": [{"name": "ml"}],
        "inference": {"runtime": "onnx", "models": [{"name": "affine", "uri": f"file://{model}", "team": "ml"}]},
        "secrets": {"ssh_key": f"${{file:{hosts.private_key}}}"},
    }
    for i, host in enumerate(hosts.hosts, start=1):
        entry = {"name": host.name, "address": host.address, "port": host.port, "roles": ROLES[i]}
        if "worker" in ROLES[i]:  # a pool gives Kubernetes nodes labels and taints: none for node-3
            entry["pool"] = "general"
        if host.name == gpu_host:
            entry["gpu"] = {"type": "l4", "count": 1}
        bp["hosts"].append(entry)
    path.write_text(yaml.safe_dump(bp, sort_keys=False))


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory, test_hosts) -> FakeKube:
    """The lab cluster's API: the fake kubeadm on the control plane hands out its kubeconfig."""
    fake = FakeKube().start()
    install_crds(fake)
    try:
        for i, host in enumerate(test_hosts.hosts, start=1):
            if "control_plane" in ROLES[i]:
                target = host.path("/etc/fake-kubeadm/admin.conf")
                target.parent.mkdir(parents=True, exist_ok=True)
                fake.write_kubeconfig(target, context="kubernetes-admin@lab")
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def lab(tmp_path_factory, test_hosts, onnx_wheels, kube_api, apt_repo) -> Lab:
    root = tmp_path_factory.mktemp("lab")
    model = root / "affine.onnx"
    make_model(model)
    blueprint = root / "lab.yaml"
    write_blueprint(blueprint, test_hosts, model)
    extra = root / "site-vars.yml"
    base = {
        # kubeadm/kubelet/kubectl: test-built packages (test doubles) from the local apt repository
        "kubernetes_node_repo_base": f"{apt_repo.url}/kubernetes",
        # the CNI: a small test manifest in Calico's shape (tests/fixtures/ansible/calico-test.yaml)
        "kubernetes_node_cni_manifest_url": f"{apt_repo.url}{aptrepo.CNI_PATH}",
        "kubernetes_node_cni_manifest_sha256": hashlib.sha256(aptrepo.CNI_MANIFEST.read_bytes()).hexdigest(),
        "inference_onnx_listen_on_host_address": True,  # every test host shares the machine's network
        "inference_onnx_wheel_dir": str(onnx_wheels),
    }
    extra.with_suffix(".base.yml").write_text(yaml.safe_dump(base))
    extra.write_text(yaml.safe_dump(base))
    (root / ".infra").mkdir()
    return Lab(dir=root, blueprint=blueprint, extra_vars=extra, hosts=test_hosts, model=model, kube=kube_api,
               apt=apt_repo)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_infra(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """``infra ARGS`` in-process, through the CLI's error boundary (exit codes as users see them)."""
    from orchestrator.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_cwd, old_env = sys.argv, Path.cwd(), dict(os.environ)
    sys.argv = ["infra", *args]
    os.chdir(cwd)
    os.environ.update(env or {})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main.run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return CliResult(code, out.getvalue(), err.getvalue())
