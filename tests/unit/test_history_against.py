"""History you can hold to git: ``--verify --against REV``, strict JSON, a record for runs refused by
the lock, and one ``error:`` line for files infra cannot read.

Chains are written through the real ``records.write`` with the real repository head, committed
with real git, tampered with in the working tree, and checked by the real CLI in a subprocess.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import records
from tests.conftest import REPO, require
from tests.unit.test_records_tamper import (
    CLEAN_ENV,
    HEAD,
    NAMES,
    _record,
    _sha,
    errors,
    infra,
    rdir,
    rechain,
    write_chain,
)

SHORT = r"[0-9a-f]{12}…"


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def committed_chain(root: Path, n: int = 3) -> list[Path]:
    """A project whose records and head are committed (as the GitOps job that runs `infra up` does)."""
    paths = write_chain(root, n)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-f", ".infra/records", ".infra-heads")
    git(root, "commit", "-q", "-m", "runs")
    return paths


def rewrite_consistently(root: Path, paths: list[Path]) -> None:
    """Edit every record, re-link and re-hash the chain, and move the working-tree head to match."""
    rechain(paths, lambda d: d.update(user="mallory"))
    head_file = root / ".infra-heads" / "demo.json"
    head = json.loads(head_file.read_text())
    head["sha256"] = json.loads(paths[-1].read_text())["sha256"]
    head_file.write_text(json.dumps(head, indent=2, sort_keys=True) + "\n")


def test_consistent_rewrite_of_records_and_head_exits_8_against_head(tmp_path: Path) -> None:
    paths = committed_chain(tmp_path)
    commit = git(tmp_path, "rev-parse", "HEAD")
    rewrite_consistently(tmp_path, paths)
    plain = infra(tmp_path, "history", "demo", "--verify")
    assert plain.returncode == 0, plain.stderr  # the working tree alone agrees with itself

    proc = infra(tmp_path, "history", "demo", "--verify", "--against", "HEAD")
    assert proc.returncode == 8, proc.stdout + proc.stderr
    (line,) = errors(proc)
    assert re.fullmatch(
        rf"error: repository head \.infra-heads/demo\.json at HEAD \({commit[:12]}\): record #3 has sha256 {SHORT} "
        rf"here but the head says {SHORT}, found in no record here: the record was edited and re-hashed, or the "
        r"chain was rewritten", line), line
    assert "Usage:" not in proc.stderr and "Traceback" not in proc.stderr


def test_against_passes_on_an_intact_chain_with_runs_after_the_commit(tmp_path: Path) -> None:
    committed_chain(tmp_path)
    from orchestrator import records_heads

    records.write(rdir(tmp_path), _record(3), heads=records_heads.heads_for(tmp_path, "demo"))  # a later run
    proc = infra(tmp_path, "history", "demo", "--verify", "--against", "main")
    assert proc.returncode == 0, proc.stderr
    assert errors(proc) == []
    assert re.search(rf"verified: 4 records, chain intact, matches {HEAD} \(#4\), repository head "
                     r"\.infra-heads/demo\.json at main \([0-9a-f]{12}\) \(#3\)", proc.stdout), proc.stdout


def test_against_a_commit_that_lacks_the_head_says_so(tmp_path: Path) -> None:
    write_chain(tmp_path)
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README").write_text("x\n")
    git(tmp_path, "add", "README")
    git(tmp_path, "commit", "-q", "-m", "no head yet")
    proc = infra(tmp_path, "history", "demo", "--verify", "--against", "HEAD")
    assert proc.returncode == 8, proc.stderr
    assert errors(proc) == [
        rf"error: repository head .infra-heads/demo.json at HEAD ({git(tmp_path, 'rev-parse', 'HEAD')[:12]}): "
        "not committed there (the head file is not in that commit)"]


@pytest.mark.parametrize(("rev", "repo", "expected"), [
    ("v9", True, r"error: --against v9: no such commit in the git repository .*"),
    ("--output=/tmp/x", True, r"error: --against '--output=/tmp/x': not a git revision"),
    ("HEAD", False, r"error: --against HEAD: \.infra-heads/demo\.json is not in a git repository \(.*\)"),
])
def test_against_an_unusable_revision_is_bad_input(tmp_path: Path, rev: str, repo: bool, expected: str) -> None:
    (committed_chain if repo else write_chain)(tmp_path)
    env = {"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}  # never the repository around the temp folder
    proc = infra(tmp_path, "history", "demo", "--verify", f"--against={rev}", **env)
    assert proc.returncode == 2, proc.stderr
    (line,) = errors(proc)
    assert re.fullmatch(expected, line), line


# --- strict JSON ----------------------------------------------------------------------------------


def test_a_duplicate_outcome_key_is_a_corrupt_record(tmp_path: Path) -> None:
    paths = write_chain(tmp_path)
    text = paths[1].read_text()
    assert text.startswith("{\n") and '"outcome": "success"' in text
    # a lenient reader keeps the last "outcome", so the hash still matches; a reviewer may read the first
    paths[1].write_text('{\n  "outcome": "failed",\n' + text[2:])
    assert json.loads(paths[1].read_text())["sha256"] == _sha(json.loads(paths[1].read_text()))
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8, proc.stderr
    assert errors(proc) == [f'error: record #2 ({NAMES[1]}): corrupt: not valid JSON (duplicate key "outcome")']
    listed = infra(tmp_path, "history", "demo")
    assert listed.returncode == 0 and "corrupt" in listed.stdout


def test_a_duplicate_key_in_the_head_is_reported(tmp_path: Path) -> None:
    write_chain(tmp_path)
    head_file = tmp_path / ".infra-heads" / "demo.json"
    text = head_file.read_text()
    head_file.write_text('{\n  "seq": 2,\n' + text[2:])
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8, proc.stderr
    assert errors(proc) == [f'error: {HEAD}: not valid JSON (duplicate key "seq")']


def test_an_unknown_outcome_is_a_corrupt_record(tmp_path: Path) -> None:
    paths = write_chain(tmp_path)
    rechain(paths, lambda d: d.update(outcome="ok") if d["seq"] == 3 else None)
    proc = infra(tmp_path, "history", "demo", "--verify")
    assert proc.returncode == 8
    assert errors(proc)[0].startswith(f'error: record #3 ({NAMES[2]}): corrupt: field `outcome` is "ok", expected '
                                      "one of success, no-changes, drift, failed, cancelled, interrupted, lost, locked")


# --- a run refused by the lock is recorded -----------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from orchestrator.workspace import Workspace

with Workspace(root=Path(sys.argv[1]), name="demo").lock("infra up env.yaml"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_run_refused_by_the_lock_writes_a_locked_record(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text((REPO / "examples" / "sandbox.yaml").read_text())
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        proc = infra(tmp_path, "plan", "env.yaml")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    (line,) = errors(proc)
    assert line.startswith("error: environment 'demo' is locked by ") and f"(pid {holder.pid}," in line
    [rec] = records.list_records(rdir(tmp_path))
    assert (rec["outcome"], rec["command"], rec["stages"]) == ("locked", "plan", [])
    assert rec["error"] == line.removeprefix("error: ")
    verified = infra(tmp_path, "history", "demo", "--verify")
    assert verified.returncode == 0, verified.stderr
    assert "locked" in verified.stdout


# --- files infra cannot read -------------------------------------------------------------------------

_PR_CAPBSET_DROP = 24
_DAC_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _as_a_plain_user() -> None:
    """In the child, before exec: even as root, take away the capabilities that bypass file modes."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)


def infra_unprivileged(root: Path, *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV} | {"COLUMNS": "250"}
    return subprocess.run([sys.executable, "-c", "from orchestrator.cli.main import run; run()", *args],
                          cwd=root, env=full, capture_output=True, text=True, timeout=120,
                          preexec_fn=_as_a_plain_user)


def _modes_apply(root: Path) -> bool:
    probe = root / "probe"
    probe.write_text("x")
    probe.chmod(0)
    proc = subprocess.run(["cat", str(probe)], capture_output=True, preexec_fn=_as_a_plain_user)
    probe.unlink()
    return proc.returncode != 0


@pytest.mark.parametrize("what", ["record", "head", "records folder", "state folder"])
def test_a_file_infra_cannot_read_is_one_error_line(tmp_path: Path, what: str) -> None:
    require(_modes_apply(tmp_path), "file modes that apply to this user (not root with CAP_DAC_OVERRIDE kept)")
    write_chain(tmp_path)
    target = {"record": rdir(tmp_path) / NAMES[1], "head": tmp_path / ".infra-heads" / "demo.json",
              "records folder": rdir(tmp_path), "state folder": tmp_path / ".infra"}[what]
    mode = target.stat().st_mode
    target.chmod(0)
    try:
        proc = infra_unprivileged(tmp_path, "history", "demo", "--verify")
    finally:
        target.chmod(mode)
    assert proc.returncode == 8, proc.stdout + proc.stderr
    assert "Usage:" not in proc.stderr and "Traceback" not in proc.stderr
    expected = {
        "record": f"error: record #2 ({NAMES[1]}): corrupt: cannot be read (Permission denied)",
        "head": f"error: {HEAD}: cannot be read (Permission denied)",
        "records folder": f"error: records folder {rdir(tmp_path)}: cannot be read (Permission denied)",
        "state folder": f"error: records folder {rdir(tmp_path)}: cannot be read (Permission denied)",
    }[what]
    assert errors(proc) == [expected]


def test_unreadable_records_folder_is_an_error_without_verify_too(tmp_path: Path) -> None:
    require(_modes_apply(tmp_path), "file modes that apply to this user (not root with CAP_DAC_OVERRIDE kept)")
    write_chain(tmp_path)
    rdir(tmp_path).chmod(0)
    try:
        proc = infra_unprivileged(tmp_path, "history", "demo")
    finally:
        rdir(tmp_path).chmod(0o700)
    assert proc.returncode == 8, proc.stdout + proc.stderr
    assert errors(proc) == [f"error: records folder {rdir(tmp_path)}: cannot be read (Permission denied)"]
    assert "no runs recorded" not in proc.stdout
