"""``${file:}`` secrets are read like blueprints (docs/security.md, docs/blueprint.md).

Regular files only (the type is checked before opening, and the open cannot block, so a device
or a named pipe is never read), at most 64 KiB, UTF-8 text without NUL bytes. Each failure is one
located line at the reference (``file:line:col secrets.NAME``), exit 2, at ``infra validate``
already; a file that is missing on this machine is left to plan/up/down, which say so. The
content is never printed. Every subprocess has a timeout: a hang fails the test instead of
stalling the suite (a guard, not a measure of speed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrator.blueprint.loader import load
from orchestrator.errors import BlueprintError
from orchestrator.secrets import MAX_FILE_BYTES, resolve
from tests.blueprints import LAB

INFRA = Path(sys.executable).with_name("infra")

BLUEPRINT = LAB + """\
secrets:
  ssh_key: "${{file:{ref}}}"
"""
WHERE = "16:12 secrets.ssh_key"  # where the reference is written
CONTENT = "s3cr3t-token-5e3f9c"


def infra(tmp_path: Path, command: str, ref: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bp.yaml").write_text(BLUEPRINT.format(ref=ref))
    return subprocess.run([str(INFRA), command, "bp.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)  # a hang guard only (a loaded CI machine)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith(("warning:", "hint:"))]
    assert lines[1:] == ["1 problem found"], proc.stderr
    return lines[0]


def special(tmp_path: Path, kind: str) -> str:
    """A file of ``kind`` in tmp_path; returns the reference to it."""
    if kind == "dev-zero":
        return "/dev/zero"
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "sparse":
        with open(path, "wb") as fh:
            fh.truncate(10 << 30)  # 10 GiB, no blocks
    elif kind == "binary":
        path.write_bytes(CONTENT.encode() + b"\n\xff\xfe\x00\x81" + bytes(range(256)))
    elif kind == "nul":
        path.write_bytes(CONTENT.encode() + b"\x00" + CONTENT.encode())  # valid UTF-8, still not text
    elif kind == "folder":
        path.mkdir()
    elif kind == "just-over":
        path.write_text(CONTENT + "x" * (MAX_FILE_BYTES + 1 - len(CONTENT)))
    return kind


CASES = [
    ("dev-zero", "cannot read /dev/zero: not a regular file (a character device)"),
    ("fifo", "cannot read {tmp}/fifo: not a regular file (a named pipe)"),
    ("sparse", "cannot read {tmp}/sparse: larger than 64 KiB (65536 bytes)"),
    ("binary", "cannot read {tmp}/binary: not UTF-8 text (a binary file?)"),
    ("nul", "cannot read {tmp}/nul: not text (it holds NUL bytes)"),
    ("folder", "cannot read {tmp}/folder: not a regular file (a directory)"),
    ("just-over", "cannot read {tmp}/just-over: larger than 64 KiB (65536 bytes)"),
]


@pytest.mark.parametrize(("kind", "why"), CASES, ids=[k for k, _ in CASES])
@pytest.mark.parametrize("command", ["validate", "render", "plan"])
def test_a_file_that_cannot_be_a_secret_is_one_located_line(tmp_path, kind, why, command):
    proc = infra(tmp_path, command, special(tmp_path, kind))
    assert one_line(proc) == f"bp.yaml:{WHERE}: " + why.format(tmp=tmp_path)
    assert CONTENT not in proc.stderr
    assert not (tmp_path / "build").exists() and not (tmp_path / ".infra").exists()  # nothing written


def test_a_missing_file_passes_validate_and_stops_plan(tmp_path):
    """validate may run where the secrets are not (CI); plan/up/down run where they must be."""
    proc = infra(tmp_path, "validate", "keys/missing.pem")
    assert (proc.returncode, proc.stdout) == (0, "ok: lab\n"), proc.stderr
    proc = infra(tmp_path, "plan", "keys/missing.pem")
    assert one_line(proc) == f"bp.yaml:{WHERE}: cannot read {tmp_path}/keys/missing.pem: file not found"


def test_an_unknown_user_is_left_to_plan(tmp_path):
    proc = infra(tmp_path, "validate", "~nosuchuser/id")
    assert proc.returncode == 0, proc.stderr
    assert one_line(infra(tmp_path, "plan", "~nosuchuser/id")) == (
        f"bp.yaml:{WHERE}: cannot read ~nosuchuser/id: cannot expand ~nosuchuser")


def test_a_text_file_up_to_the_cap_is_the_secret(tmp_path):
    key = tmp_path / "id"
    key.write_text(CONTENT + "é" + "x" * (MAX_FILE_BYTES - len(CONTENT) - 3) + "\n")  # é: 2 bytes
    assert key.stat().st_size == MAX_FILE_BYTES
    (tmp_path / "bp.yaml").write_text(BLUEPRINT.format(ref="id"))
    assert resolve(load(tmp_path / "bp.yaml")) == {"ssh_key": key.read_text().rstrip("\n")}


def test_resolve_does_not_hang_on_a_fifo_swapped_in_after_validation(tmp_path):
    """plan/up/down read the file again: a named pipe put there after the load is not read either."""
    key = tmp_path / "id"
    key.write_text(CONTENT + "\n")
    (tmp_path / "bp.yaml").write_text(BLUEPRINT.format(ref="id"))
    loaded = load(tmp_path / "bp.yaml")
    key.unlink()
    os.mkfifo(key)
    outcome: list[BaseException | dict] = []

    def attempt() -> None:
        try:
            outcome.append(resolve(loaded))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(30)  # a hang guard only
    if worker.is_alive():  # unblock the reader so the thread can end, then fail
        with open(key, "wb"):
            pass
        pytest.fail("resolve blocked on a named pipe")
    [error] = outcome
    assert isinstance(error, BlueprintError)
    assert [str(p) for p in error.problems] == [
        f"{tmp_path}/bp.yaml:{WHERE}: cannot read {tmp_path}/id: not a regular file (a named pipe)"]
