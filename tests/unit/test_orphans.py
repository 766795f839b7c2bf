"""No orphans: Terraform (under its keeper) and ansible-playbook die with infra, and the next run
waits for, or refuses to run beside, a Terraform an earlier, killed infra left behind.

"infra" here is a real Python process running the real engine (or holding the real lock) that
the test kills with SIGKILL; Terraform is the test suite's fake binary (a real process that
counts the SIGINTs it gets), Ansible the real ansible-playbook on local connections.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator import records, secrets
from orchestrator.engines.tfprocess import live_terraform, settle_orphans
from orchestrator.errors import LockedError
from orchestrator.workspace import STATE_DIR_ENV, Workspace
from tests.conftest import REPO

FAKE_TF = REPO / "tests" / "fixtures" / "tfengine" / "fake_terraform.py"
SECRET = "orphan-s3cr3t-0123456789"

# A run of infra that holds the environment's lock and applies through the real engine, until killed.
APPLYING = """
import os, sys
from pathlib import Path
from orchestrator.engines.terraform import Terraform
from orchestrator.workspace import Workspace

root, binary = Path(sys.argv[1]), sys.argv[2]
ws = Workspace(root=root, name="demo")
with ws.lock("infra up env.yaml"):
    tf = Terraform(root, binary=binary, log_dir=ws.log_dir)
    (root / "p.tfplan").write_text("")
    tf.apply(root / "p.tfplan")
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (STATE_DIR_ENV, "INFRA_RECORDS_HEAD_DIR", records.HMAC_KEY_ENV, "INFRA_ORPHAN_WAIT"):
        monkeypatch.delenv(name, raising=False)


def _wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout} s")
        time.sleep(0.02)


def _pids_with_arg(arg: str) -> set[int]:
    """Live (non-zombie) processes with ``arg`` on their command line."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if arg.encode() in argv and state not in ("Z", "X"):
            found.add(int(entry.name))
    return found


class Orphaned:
    """infra killed with SIGKILL while the fake terraform applies; the fake ignores SIGINT (it counts
    them) until ``release()``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fake = root / "fake-terraform"
        self.fake.write_text(f"#!{sys.executable}\n" + FAKE_TF.read_text())
        self.fake.chmod(0o755)
        self.signals, self.release_file = root / "signals", root / "release"
        self.log_dir = Workspace(root=root, name="demo").log_dir
        env = {**os.environ, "FAKE_TF_MODE": "hang", "FAKE_TF_SIGNALS": str(self.signals),
               "FAKE_TF_RELEASE": str(self.release_file)}
        self.infra = subprocess.Popen([sys.executable, "-c", APPLYING, str(root), str(self.fake)], env=env,
                                      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        log = self.log_dir / "apply.jsonl"
        _wait_for(lambda: log.is_file() and "apply_start" in log.read_text(), what="terraform applying")
        self.children = _pids_with_arg(str(self.fake)) - {self.infra.pid}  # the keeper and terraform
        assert self.children, "terraform not found"
        self.infra.send_signal(signal.SIGKILL)
        assert self.infra.wait(timeout=30) == -signal.SIGKILL

    def sigints(self) -> int:
        # read while the fake terraform rewrites it: an empty file is "not yet"
        text = self.signals.read_text().strip() if self.signals.is_file() else ""
        return int(text) if text else 0

    def release(self) -> None:
        self.release_file.write_text("")
        _wait_for(lambda: not _pids_with_arg(str(self.fake)), timeout=10, what="terraform and its keeper gone")


def test_killed_infra_stops_terraform_with_one_sigint_and_never_a_second(tmp_path: Path) -> None:
    orphan = Orphaned(tmp_path)
    try:
        _wait_for(lambda: orphan.sigints() == 1, timeout=5, what="terraform told to stop")
        time.sleep(0.5)  # room for a (wrong) second signal
        assert orphan.sigints() == 1  # a second interrupt makes terraform quit without saving state
        assert _pids_with_arg(str(orphan.fake)) == orphan.children  # still saving: left to finish
        live = live_terraform(orphan.log_dir)
        assert live is not None and live["command"] == "apply" and live["pid"] in orphan.children
    finally:
        orphan.release()
    assert live_terraform(orphan.log_dir) is None
    assert orphan.sigints() == 1


def test_terraform_gone_within_5_s_when_infra_dies(tmp_path: Path) -> None:
    fake = tmp_path / "fake-terraform"  # "wait-int": applies until its first SIGINT, then exits
    fake.write_text(f"#!{sys.executable}\n" + FAKE_TF.read_text())
    fake.chmod(0o755)
    ready = tmp_path / "ready"
    env = {**os.environ, "FAKE_TF_MODE": "wait-int", "FAKE_TF_READY": str(ready)}
    infra = subprocess.Popen([sys.executable, "-c", APPLYING, str(tmp_path), str(fake)], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(ready.exists, what="terraform applying")
    assert _pids_with_arg(str(fake)) - {infra.pid}, "terraform not found"  # it and its keeper
    infra.send_signal(signal.SIGKILL)
    infra.wait(timeout=30)
    deadline = time.monotonic() + 5  # a liveness bound
    while _pids_with_arg(str(fake)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _pids_with_arg(str(fake)), "terraform outlived infra"


def _settle(log_dir: Path, **kw) -> list[str]:
    warnings: list[str] = []
    settle_orphans(log_dir, warnings.append, **kw)
    return warnings


def test_next_run_waits_refuses_while_it_lives_then_redacts_its_log(tmp_path: Path) -> None:
    orphan = Orphaned(tmp_path)
    try:
        _wait_for(lambda: orphan.sigints() == 1, timeout=5, what="terraform told to stop")
        with pytest.raises(LockedError) as info:
            _settle(orphan.log_dir, wait=0.3)
        err = info.value
        assert err.exit_code == 6
        assert err.message.startswith("terraform apply (pid ")
        assert err.message.endswith("is still running and holds the environment's state")
        assert "force-unlock" not in f"{err.message} {err.hint}"
        assert len(err.lines()) == 1
    finally:
        orphan.release()
    log = orphan.log_dir / "apply.jsonl"
    with log.open("a") as fh:  # what terraform wrote after infra died: never redacted by infra
        fh.write(json.dumps({"@message": f"token {SECRET}"}) + "\n")
    secrets.register([SECRET])  # as the next run does when it resolves the blueprint's secrets
    assert _settle(orphan.log_dir) == []
    assert SECRET not in log.read_text() and "[redacted]" in log.read_text()
    assert not list(orphan.log_dir.glob("terraform-*.running"))


class _Noop:
    name = "noop"

    def run(self, ctx) -> str:
        return "nothing to do"


def _pipeline_run(root: Path) -> tuple[str, BaseException | None]:
    from orchestrator.blueprint.loader import load
    from orchestrator.progress import Progress
    from orchestrator.providers.registry import get
    from orchestrator.stages.context import Context, RunState
    from orchestrator.stages.pipeline import run

    blueprint = root / "env.yaml"
    if not blueprint.exists():
        blueprint.write_text((REPO / "examples" / "sandbox.yaml").read_text().replace("name: sandbox", "name: demo"))
    loaded = load(blueprint)
    err = io.StringIO()
    ctx = Context(
        loaded=loaded, provider=get("aws"), ws=Workspace(root=root, name="demo"),
        progress=Progress(stream=io.StringIO(), err_stream=err, interactive=False), confirm=lambda plan: True,
        state=RunState(record=records.RunRecord(env="demo", command="plan", blueprint_path=str(blueprint),
                                                blueprint_sha256=loaded.sha256)),
    )
    try:
        run(ctx, "plan", [_Noop()])
    except LockedError as exc:
        return err.getvalue(), exc
    return err.getvalue(), None


def test_pipeline_records_the_refusal_and_the_lost_run_once_its_terraform_is_gone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INFRA_ORPHAN_WAIT", "0.3")
    orphan = Orphaned(tmp_path)
    rdir = tmp_path / ".infra" / "records" / "demo"
    info_file = tmp_path / ".infra" / "locks" / "demo.json"
    try:
        killed = json.loads(info_file.read_text())
        assert killed["pid"] == orphan.infra.pid
        warned, err = _pipeline_run(tmp_path)
        assert isinstance(err, LockedError), warned
        assert "is still running: waiting up to 0.3 s for it to save state and exit" in warned
        assert "recorded as `lost`" not in warned  # its run is not over while its terraform runs
        [refused] = records.list_records(rdir)
        assert (refused["outcome"], refused["error"], refused["stages"]) == ("locked", err.message, [])
        assert json.loads(info_file.read_text()) == killed  # kept for the run that records it
    finally:
        orphan.release()
    warned, err = _pipeline_run(tmp_path)
    assert err is None, warned
    assert "recorded as `lost`" in warned
    assert [(r["outcome"], r["pid"]) for r in records.list_records(rdir)] == [
        ("locked", os.getpid()), ("lost", orphan.infra.pid), ("success", os.getpid())]
    assert not info_file.exists()
    assert not list(orphan.log_dir.glob("terraform-*.running"))


LOCKED_TF = """
import json, sys
if sys.argv[1] == "version":
    print(json.dumps({"terraform_version": "1.11.4", "provider_selections": {}}))
    sys.exit(0)
detail = "Lock Info:\\n  ID:        4f1c\\n  Path:      s\\n  Operation: OperationTypeApply\\n  Who:       u@h\\n"
print(json.dumps({"type": "diagnostic", "@level": "error", "diagnostic": {
    "severity": "error", "summary": "Error acquiring the state lock", "detail": detail}}))
sys.exit(1)
"""


def test_state_lock_error_never_suggests_force_unlock_while_the_holder_lives(tmp_path: Path) -> None:
    from orchestrator.engines.terraform import Terraform

    fake = tmp_path / "locked-terraform"
    fake.write_text(f"#!{sys.executable}\n{LOCKED_TF}")
    fake.chmod(0o755)
    log_dir = tmp_path / "logs"
    tf = Terraform(tmp_path, binary=str(fake), log_dir=log_dir)
    with pytest.raises(LockedError) as dead:  # nothing of ours runs: the holder may have died
        tf.plan(tmp_path / "p.tfplan")
    assert "terraform force-unlock 4f1c" in dead.value.hint

    holder = subprocess.Popen(["sleep", "30"])  # stands for a terraform left by a killed infra
    try:
        from orchestrator.workspace import proc_start

        (log_dir / f"terraform-{holder.pid}.running").write_text(json.dumps({
            "pid": holder.pid, "pid_start": proc_start(holder.pid), "infra_pid": 1, "command": "apply",
            "log": "apply.jsonl", "since": "2026-12-06T10:00:00Z"}))
        with pytest.raises(LockedError) as alive:
            tf.plan(tmp_path / "p.tfplan")
        assert "force-unlock" not in alive.value.hint
        assert alive.value.hint.startswith(f"terraform apply (pid {holder.pid}), left running by an earlier infra")
    finally:
        holder.kill()
        holder.wait()


# --- ansible-playbook ---------------------------------------------------------------------------

CONFIGURING = """
import sys
from pathlib import Path
from orchestrator.engines.ansible import Ansible

root = Path(sys.argv[1])
Ansible(root / "ansible", project_dir=root / "project").run("sleep.yml", root / "inventory.yml", host_count=1)
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.file: {path: "{{ marker }}", state: touch}
    - ansible.builtin.command: sleep 117.31
"""


def test_ansible_playbook_dies_with_infra(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "project").mkdir()
    (root / "project" / "sleep.yml").write_text(PLAYBOOK)
    marker = root / "started"
    (root / "inventory.yml").write_text(yaml.safe_dump({"all": {
        "hosts": {"a": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "vars": {"marker": str(marker)}}}))
    infra = subprocess.Popen([sys.executable, "-c", CONFIGURING, str(root)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(marker.exists, timeout=120, what="the playbook running")
        _wait_for(lambda: _pids_with_arg("117.31"), timeout=30, what="the long task running")
        playbook = _pids_with_arg(str(root / "inventory.yml")) | _pids_with_arg("117.31")
        assert playbook, "ansible-playbook not found"
        infra.send_signal(signal.SIGKILL)
        infra.wait(timeout=30)
        deadline = time.monotonic() + 10  # a liveness bound: SIGTERM, then SIGKILL after 5 s
        while any(_alive(pid) for pid in playbook) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in playbook if _alive(pid)], "ansible outlived infra"
    finally:
        if infra.poll() is None:
            infra.kill()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
