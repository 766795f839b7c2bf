"""The CLI's contract, through the real ``infra`` console script: every command group answers, and
every exit code of docs/exit-codes.md is produced by a real failure, printed as ``error:``
(and ``hint:``) lines without a traceback.

Real components stand in where they are cheap: a stand-in terraform (tests/fixtures/tfengine/
fake_terraform.py, chosen with ``INFRA_TERRAFORM``) that fails or waits for Ctrl-C; the real
ansible-runner against ``127.0.0.1`` port 1 (nothing listens); an HTTP server in this process that
answers every Kubernetes request 401; the environment lock held with ``flock`` by this process.
"""

from __future__ import annotations

import fcntl
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blueprints import with_way_in

REPO = Path(__file__).resolve().parents[2]
INFRA = Path(sys.executable).with_name("infra")
FAKE_TF = REPO / "tests" / "fixtures" / "tfengine" / "fake_terraform.py"
GROUPS = ("validate", "render", "plan", "up", "down", "status", "history", "handoff", "configure",
          "job", "model", "sandbox", "drift", "graph", "init", "rollback", "state", "lock", "report")

CLOUD = """blueprint: 1
name: demo
provider: aws
region: us-east-1
network: {cidr: 10.20.0.0/16, zones: 2}
node_pools:
  - {name: system, instance_type: m6i.large, min: 1, max: 2}
"""
# One host on loopback port 1, where nothing listens: ssh is refused at once.
LAB = """blueprint: 1
name: lab
provider: baremetal
hosts:
  - name: node-1
    address: 127.0.0.1
    port: 1
    roles: [control_plane, worker]
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INFRA_", "FAKE_TF_", "KUBECONFIG"))}
    fake = tmp_path / "fake-terraform"
    if not fake.exists():
        fake.write_text(f"#!{sys.executable}\n" + FAKE_TF.read_text())
        fake.chmod(0o755)
    env.update(INFRA_TERRAFORM=str(fake), COLUMNS="200", **extra)
    return env


def infra(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INFRA), *args], cwd=tmp_path, env=_env(tmp_path, **env), capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60)


def _errors(proc: subprocess.CompletedProcess[str], code: int) -> list[str]:
    """The ``error:`` lines, once the exit code and the absence of a traceback are checked."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(with_way_in(text))
    return name


@pytest.fixture
def api_401() -> Iterator[str]:
    """A loopback HTTP server answering every request ``401 Unauthorized`` (not retried)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _deny(self) -> None:
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "message": "Unauthorized", "reason": "Unauthorized", "code": 401}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PATCH = do_POST = do_DELETE = do_PUT = _deny

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _kubeconfig(tmp_path: Path, server: str) -> str:
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "c", "cluster": {"server": server}}],
           "users": [{"name": "u", "user": {"token": "t"}}],
           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    return _write(tmp_path, "kubeconfig.yaml", json.dumps(cfg))


# --- every group answers ----------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
def test_every_command_group_has_help(group: str, tmp_path: Path) -> None:
    proc = infra(tmp_path, group, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: infra {group} ")
    assert proc.stderr == ""


def test_top_level_help_lists_exactly_the_groups(tmp_path: Path) -> None:
    proc = infra(tmp_path, "--help")
    assert proc.returncode == 0
    listed = [line.split()[0] for line in proc.stdout.split("Commands:", 1)[1].splitlines() if line.strip()]
    assert sorted(listed) == sorted(GROUPS)


def test_status_and_history_of_a_new_environment_exit_0(tmp_path: Path) -> None:
    _write(tmp_path, "demo.yaml", CLOUD)
    assert infra(tmp_path, "status", "demo.yaml").returncode == 0
    proc = infra(tmp_path, "history", "demo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("no runs recorded for 'demo'")


# --- each exit code -----------------------------------------------------------------------------


def test_exit_2_bad_input_names_file_line_column_and_field(tmp_path: Path) -> None:
    _write(tmp_path, "bad.yaml", CLOUD.replace("min: 1", "min: -1"))
    proc = infra(tmp_path, "validate", "bad.yaml")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[:2] == [
        "bad.yaml:7:51 node_pools[0].min: must be >= 0",
        "1 problem found",
    ]


def test_exit_2_down_on_bare_metal(tmp_path: Path) -> None:
    _write(tmp_path, "lab.yaml", LAB)
    assert _errors(infra(tmp_path, "down", "lab.yaml", "--auto-approve"), 2) == [
        "error: infra down: provider baremetal has no cloud resources to destroy (its hosts are configured, "
        "not created)"
    ]


def test_exit_3_terraform_failed(tmp_path: Path) -> None:
    _write(tmp_path, "demo.yaml", CLOUD)
    proc = infra(tmp_path, "up", "demo.yaml", FAKE_TF_MODE="fail-echo", FAKE_TF_ECHO="WORD", WORD="xyz")
    assert _errors(proc, 3) == ["error: Invalid token xyz"]
    assert "hint: The API refused token xyz." in proc.stderr.splitlines()


def test_exit_4_ansible_host_unreachable(tmp_path: Path) -> None:
    _write(tmp_path, "lab.yaml", LAB)
    errors = _errors(infra(tmp_path, "configure", "lab.yaml"), 4)
    assert len(errors) == 1
    assert errors[0].startswith("error: ansible: 1 of 1 host failed: node-1 unreachable at task 'Gathering Facts'")
    assert errors[0].endswith("ssh: connect to host 127.0.0.1 port 1: Connection refused")


def test_exit_5_kubernetes_api_refused(tmp_path: Path, api_401: str) -> None:
    kubeconfig = _kubeconfig(tmp_path, api_401)
    proc = infra(tmp_path, "job", "list", "--namespace", "default", "--kubeconfig", kubeconfig)
    assert _errors(proc, 5) == ["error: GET /apis/batch/v1/namespaces/default/jobs: HTTP 401: Unauthorized"]
    proc = infra(tmp_path, "model", "list", "--namespace", "default", "--kubeconfig", kubeconfig)
    assert len(_errors(proc, 5)) == 1


def test_exit_6_environment_locked(tmp_path: Path) -> None:
    _write(tmp_path, "lab.yaml", LAB)
    lock = tmp_path / ".infra" / "locks" / "lab.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc = infra(tmp_path, "configure", "lab.yaml")
    errors = _errors(proc, 6)
    assert len(errors) == 1 and errors[0].startswith("error: environment 'lab' is locked by ")
    assert not (tmp_path / "build").exists()  # nothing ran


def test_exit_7_sandbox_emulator_does_not_start(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "moto"  # a moto whose server exits at once
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    (shadow / "server.py").write_text("def main():\n    raise SystemExit(3)\n")
    proc = infra(tmp_path, "sandbox", "start", PYTHONPATH=str(shadow.parent))
    errors = _errors(proc, 7)
    assert len(errors) == 1
    assert errors[0].startswith("error: the AWS emulator did not start on 127.0.0.1:")


def test_exit_8_tampered_record(tmp_path: Path) -> None:
    _write(tmp_path, "lab.yaml", LAB)
    _errors(infra(tmp_path, "configure", "lab.yaml"), 4)  # a failed run is recorded too
    (record,) = (tmp_path / ".infra" / "records" / "lab").glob("*.json")
    record.chmod(0o600)
    record.write_text(record.read_text().replace('"outcome": "failed"', '"outcome": "success"'))
    errors = _errors(infra(tmp_path, "history", "lab", "--verify"), 8)
    assert len(errors) == 1 and record.name in errors[0]


def test_exit_130_interrupted(tmp_path: Path) -> None:
    _write(tmp_path, "demo.yaml", CLOUD)
    ready = tmp_path / "terraform-ready"
    proc = subprocess.Popen([str(INFRA), "plan", "demo.yaml"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(tmp_path, FAKE_TF_MODE="wait-int", FAKE_TF_READY=str(ready)))
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "terraform plan never started"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    errors = _errors(done, 130)
    assert len(errors) == 1 and errors[0].startswith("error: interrupted: ")
    (record,) = (tmp_path / ".infra" / "records" / "demo").glob("*.json")
    assert json.loads(record.read_text())["outcome"] == "interrupted"
