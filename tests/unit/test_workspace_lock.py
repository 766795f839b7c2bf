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


# --- runs lost to kill -9 --------------------------------------------------------------------

KILLED = """
import os, sys
from pathlib import Path
from orchestrator.workspace import Workspace

with Workspace(root=Path(sys.argv[1]), name="demo").lock("infra up env.yaml"):
    print(os.getpid(), flush=True)
    os.kill(os.getpid(), 9)  # no clean exit: the holder info stays behind
"""


def _killed_holder(root: Path) -> int:
    """Run a real holder that SIGKILLs itself while holding the lock; return its pid."""
    proc = subprocess.run([sys.executable, "-c", KILLED, str(root)], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != STATE_DIR_ENV})
    assert proc.returncode == -signal.SIGKILL and proc.stdout.strip().isdigit(), proc.stderr
    return int(proc.stdout)


def test_leftover_holder_info_of_a_killed_run_is_exposed(tmp_path: Path) -> None:
    pid = _killed_holder(tmp_path)
    ws = Workspace(root=tmp_path, name="demo")
    with ws.lock("infra plan env.yaml") as lock:
        assert lock.lost is not None
        assert {k: lock.lost[k] for k in ("pid", "command", "user", "host")} == {
            "pid": pid, "command": "infra up env.yaml", "user": getpass.getuser(), "host": socket.gethostname(),
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lock.lost["since"])
    with ws.lock("infra plan env.yaml") as lock:  # the clean exit above removed its info
        assert lock.lost is None


def test_holder_info_of_a_running_process_is_not_a_lost_run(tmp_path: Path) -> None:
    ws = Workspace(root=tmp_path, name="demo")
    ws.lock_path.parent.mkdir(parents=True)
    info = {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(), "command": "x", "since": "-"}
    ws.lock_path.with_suffix(".json").write_text(json.dumps(info))
    with ws.lock("infra up env.yaml") as lock:
        assert lock.lost is None


def test_unreadable_holder_info_is_a_lost_run(tmp_path: Path) -> None:
    ws = Workspace(root=tmp_path, name="demo")
    ws.lock_path.parent.mkdir(parents=True)
    ws.lock_path.with_suffix(".json").write_text("")  # killed while writing it
    with ws.lock("infra up env.yaml") as lock:
        assert lock.lost == {"command": "unknown", "user": "unknown", "host": "unknown"}


class _Noop:
    name = "noop"

    def run(self, ctx) -> str:
        return "nothing to do"


def test_next_run_records_the_lost_run_first_and_the_chain_verifies(tmp_path: Path, monkeypatch) -> None:
    import io

    from orchestrator import records
    from orchestrator.blueprint.loader import load
    from orchestrator.progress import Progress
    from orchestrator.providers.registry import get
    from orchestrator.records_heads import HEAD_DIR_ENV
    from orchestrator.stages.context import Context, RunState
    from orchestrator.stages.pipeline import run

    monkeypatch.delenv(HEAD_DIR_ENV, raising=False)
    monkeypatch.delenv(records.HMAC_KEY_ENV, raising=False)
    blueprint = tmp_path / "env.yaml"
    blueprint.write_text((Path(__file__).parents[2] / "examples" / "sandbox.yaml").read_text())
    pid = _killed_holder(tmp_path)

    def run_once() -> str:
        loaded = load(blueprint)
        err = io.StringIO()
        ctx = Context(
            loaded=loaded, provider=get("aws"), ws=Workspace(root=tmp_path, name="demo"),
            progress=Progress(stream=io.StringIO(), err_stream=err, interactive=False), confirm=lambda plan: True,
            state=RunState(record=records.RunRecord(env="demo", command="plan", blueprint_path=str(blueprint),
                                                    blueprint_sha256=loaded.sha256)),
        )
        run(ctx, "plan", [_Noop()])
        return err.getvalue()

    warned = run_once()
    assert "was killed without a clean exit: recorded as `lost`" in warned and f"(pid {pid})" in warned
    run_once()  # a clean run leaves nothing behind: no second lost record
    lost, first, second = records.list_records(tmp_path / ".infra" / "records" / "demo")
    assert [(r["seq"], r["outcome"]) for r in (lost, first, second)] == [(1, "lost"), (2, "success"), (3, "success")]
    assert (lost["command"], lost["pid"], lost["user"], lost["host"]) == (
        "up", pid, getpass.getuser(), socket.gethostname(),
    )
    assert lost["error"] == (
        "the run was killed (no clean exit); resources created in its last moments may be outside state"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lost["started_at"])
    assert lost["started_at"] <= first["started_at"]
    proc = subprocess.run(
        [sys.executable, "-c", "from orchestrator.cli.main import run; run()", "history", "demo", "--verify"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env={
            k: v for k, v in os.environ.items() if k not in (STATE_DIR_ENV, HEAD_DIR_ENV, records.HMAC_KEY_ENV)
        } | {"COLUMNS": "250"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "verified: 3 records, chain intact, matches repository head .infra-heads/demo.json (#3)" in proc.stdout
    assert "lost" in proc.stdout
