"""Workspace.lock: one run per environment, across processes, released when the holder dies.

The holder is a real second process (``python -c``) that takes the lock and waits; the test
process then tries to take the same lock.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import LockedError
from orchestrator.workspace import STATE_DIR_ENV, Workspace

HOLDER = """
import sys
from pathlib import Path
from orchestrator.workspace import Workspace

ws = Workspace(root=Path(sys.argv[1]), name=sys.argv[2], sandbox=sys.argv[3] == "sandbox")
with ws.lock(sys.argv[4]):
    print("held", flush=True)
    sys.stdin.readline()  # hold until the test closes our stdin (or kills us)
print("released", flush=True)
"""


@pytest.fixture(autouse=True)
def _no_state_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)


class Holder:
    def __init__(self, root: Path, name: str, command: str, sandbox: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(root), name, "sandbox" if sandbox else "-", command],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={k: v for k, v in os.environ.items() if k != STATE_DIR_ENV},
        )
        line = self.proc.stdout.readline()
        assert line == "held\n", line + self.proc.stderr.read()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        out, err = self.proc.communicate("\n", timeout=30)
        assert (self.proc.returncode, out) == (0, "released\n"), err

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Holder]:
    started: list[Holder] = []

    def start(name: str = "lab", command: str = "infra up lab.yaml", sandbox: bool = False) -> Holder:
        h = Holder(tmp_path, name, command, sandbox)
        started.append(h)
        return h

    yield start
    for h in started:
        h.cleanup()


def _assert_locked(ws: Workspace, pid: int, command: str) -> LockedError:
    with pytest.raises(LockedError) as info, ws.lock("infra plan lab.yaml"):
        pytest.fail("the lock was taken while another process holds it")
    err = info.value
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    pattern = (
        rf"environment '{re.escape(ws.name)}' is locked by {re.escape(who)} "
        rf"\(pid {pid}, `{re.escape(command)}`, since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)"
    )
    assert re.fullmatch(pattern, err.message), err.message
    assert err.exit_code == 6
    assert err.hint and "wait" in err.hint
    return err


def test_second_process_is_refused_with_holder_details(tmp_path: Path, holder) -> None:
    h = holder()
    ws = Workspace(root=tmp_path, name="lab")
    _assert_locked(ws, h.pid, "infra up lab.yaml")
    info = json.loads(ws.lock_path.with_suffix(".json").read_text())
    assert (info["pid"], info["command"], info["user"]) == (h.pid, "infra up lab.yaml", getpass.getuser())
    assert ws.lock_path == tmp_path / ".infra" / "locks" / "lab.lock"


def test_lock_is_free_after_the_holder_exits(tmp_path: Path, holder) -> None:
    h = holder()
    ws = Workspace(root=tmp_path, name="lab")
    _assert_locked(ws, h.pid, "infra up lab.yaml")
    h.release()
    assert not ws.lock_path.with_suffix(".json").exists()  # the holder cleaned up
    with ws.lock("infra plan lab.yaml"):
        info = json.loads(ws.lock_path.with_suffix(".json").read_text())
        assert (info["pid"], info["command"]) == (os.getpid(), "infra plan lab.yaml")
    assert not ws.lock_path.with_suffix(".json").exists()


def test_lock_is_free_after_the_holder_is_killed(tmp_path: Path, holder) -> None:
    h = holder(command="infra down lab.yaml")
    ws = Workspace(root=tmp_path, name="lab")
    _assert_locked(ws, h.pid, "infra down lab.yaml")
    h.kill()  # SIGKILL: no cleanup ran, the holder file is stale, but flock went with the process
    stale = json.loads(ws.lock_path.with_suffix(".json").read_text())
    assert stale["pid"] == h.pid
    with ws.lock("infra up lab.yaml"):
        info = json.loads(ws.lock_path.with_suffix(".json").read_text())
        assert (info["pid"], info["command"]) == (os.getpid(), "infra up lab.yaml")


def test_lock_is_per_environment_and_per_mode(tmp_path: Path, holder) -> None:
    h = holder()
    with Workspace(root=tmp_path, name="other").lock("infra up other.yaml"):
        pass
    with Workspace(root=tmp_path, name="lab", sandbox=True).lock("infra up --sandbox lab.yaml"):
        pass
    _assert_locked(Workspace(root=tmp_path, name="lab"), h.pid, "infra up lab.yaml")


def test_sandbox_lock_held_by_another_process(tmp_path: Path, holder) -> None:
    h = holder(command="infra up --sandbox lab.yaml", sandbox=True)
    ws = Workspace(root=tmp_path, name="lab", sandbox=True)
    assert ws.lock_path.name == "lab-sandbox.lock"
    _assert_locked(ws, h.pid, "infra up --sandbox lab.yaml")


def test_lock_is_not_reentrant_within_a_process(tmp_path: Path) -> None:
    """A second lock on the same environment in the same process is refused too (own file description)."""
    ws = Workspace(root=tmp_path, name="lab")
    with ws.lock("infra up lab.yaml"):
        _assert_locked(ws, os.getpid(), "infra up lab.yaml")
    with ws.lock("infra up lab.yaml"):
        pass


def test_state_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    ws = Workspace(root=tmp_path / "project", name="lab")
    with ws.lock("infra up lab.yaml"):
        assert (tmp_path / "state" / "locks" / "lab.lock").is_file()
