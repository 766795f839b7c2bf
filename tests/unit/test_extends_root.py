"""``extends:`` stays in the repository (docs/blueprint.md, docs/security.md).

A relative path only, resolved (symlinks followed) under the root: the folder of the first
blueprint loaded, or a declared one (``$INFRA_BLUEPRINT_ROOT``). Absolute paths, ``~``/``~user``
and paths that lead out of the root are refused at the ``extends`` line, naming the rule, before
anything outside is looked at: the message is the same whether the target exists, is a folder,
a pipe or a huge file. A file that is not a blueprint fragment is named, never quoted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blueprints import LAB

INFRA = Path(sys.executable).with_name("infra")

VALID = LAB
SECRET_LINES = ["password: hunter2-outside", "root:$6$saltsalt$hashhashhash:19000:0:99999:7:::",
                "api_token: tok-5e3f9c", "PRIVATE KEY line:"]
SECRET = "\n".join(SECRET_LINES) + "\n"

ROOT_IS = ("the root (the git work tree of the first blueprint loaded, else its folder); extends stays "
           "inside it")


def validate(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "INFRA_BLUEPRINT_ROOT"}  # the default root unless given
    return subprocess.run([str(INFRA), "validate", str(path)], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, cwd=path.parent, env={**base, **(env or {})})


def refused(path: Path, env: dict[str, str] | None = None) -> str:
    """The one problem line of ``infra validate path`` (exit 2, nothing on stdout)."""
    proc = validate(path, env)
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[1:] == ["1 problem found"], proc.stderr
    return lines[0]


def quoted_nothing(text: str, secret: str = SECRET) -> None:
    """No line of ``secret`` (nor any key or value in it) is in ``text``."""
    for line in secret.splitlines():
        assert line not in text
        for part in line.replace(":", " ").split():
            if len(part) >= 6:
                assert part not in text, part
    assert "unknown field" not in text


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """``tmp/repo`` (the root) beside ``tmp/outside`` holding a secret file."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x").write_text(SECRET)
    (tmp_path / "repo").mkdir()
    return tmp_path / "repo"


def blueprint(repo: Path, target: str, name: str = "bp.yaml") -> Path:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"extends: {target}\n" + VALID)
    return path


def test_an_absolute_path_is_refused_and_nothing_is_read(repo):
    path = blueprint(repo, "/etc/passwd")
    line = refused(path)
    assert line == (f"{path}:1:10 extends: /etc/passwd: absolute paths are not allowed; extends takes a path "
                    f"relative to this file, inside {repo}")
    quoted_nothing(line, Path("/etc/passwd").read_text())


def test_an_absolute_path_to_a_secret_inside_nothing(repo):
    target = repo.parent / "outside" / "x"
    line = refused(blueprint(repo, str(target)))
    assert f"extends: {target}: absolute paths are not allowed" in line
    quoted_nothing(line)


@pytest.mark.parametrize("target", ["~root/x", "~/x", "~nosuchuser/x.yaml", "~root"])
def test_home_directories_are_refused_as_written(repo, target):
    path = blueprint(repo, target)
    assert refused(path) == (f"{path}:1:10 extends: {target}: '~' (a home directory) is not allowed; extends "
                             f"takes a path relative to this file, inside {repo}")


@pytest.mark.parametrize("target", ["../outside/x", "../x", "sub/../../outside/x", "./../outside/x", ".."])
def test_dot_dot_out_of_the_root_is_refused(repo, target):
    (repo / "sub").mkdir()
    path = blueprint(repo, target)
    line = refused(path)
    assert line == (f"{path}:1:10 extends: {target} resolves outside {repo}, {ROOT_IS}")
    quoted_nothing(line)


def test_a_symlink_out_of_the_root_is_refused(repo):
    (repo / "base.yaml").symlink_to(repo.parent / "outside" / "x")
    (repo / "shared").symlink_to(repo.parent / "outside")  # a folder link too
    for target in ("base.yaml", "shared/x"):
        path = blueprint(repo, target)
        line = refused(path)
        assert line == (f"{path}:1:10 extends: {target} resolves outside {repo}, {ROOT_IS}")
        quoted_nothing(line)


def test_what_is_outside_is_not_told(repo):
    """Missing, a file, a folder, a named pipe, a huge file: the same message, only the name differs."""
    outside = repo.parent / "outside"
    (outside / "dir").mkdir()
    os.mkfifo(outside / "fifo")
    with open(outside / "huge", "wb") as fh:
        fh.truncate(2 << 20)
    messages = set()
    for name in ("x", "missing", "dir", "fifo", "huge"):
        line = refused(blueprint(repo, f"../outside/{name}"))
        messages.add(line.replace(f"../outside/{name}", "../outside/NAME"))
    assert len(messages) == 1, messages
    [message] = messages
    for word in ("not found", "directory", "pipe", "regular", "larger", "MiB", "permission"):
        assert word not in message


def test_the_root_stays_the_first_blueprints_folder_down_the_chain(repo):
    """A base in a subfolder may reach back up to the root, not above it."""
    (repo / "common.yaml").write_text("tags: {team: ml}\n")
    (repo / "envs").mkdir()
    (repo / "envs" / "base.yaml").write_text("extends: ../common.yaml\n")
    top = blueprint(repo, "envs/base.yaml")
    proc = validate(top)
    assert (proc.returncode, proc.stdout) == (0, "ok: lab\n"), proc.stderr
    (repo / "envs" / "base.yaml").write_text("tags: {a: b}\nextends: ../../outside/x\n")
    assert refused(top) == (f"{repo}/envs/base.yaml:2:10 extends: ../../outside/x resolves outside {repo}, "
                            f"{ROOT_IS}")


def test_paths_that_stay_inside_are_read(repo):
    (repo / "bases").mkdir()
    (repo / "bases" / "common.yaml").write_text("tags: {team: ml}\n")
    (repo / "link.yaml").symlink_to(repo / "bases" / "common.yaml")  # a link inside the root
    for target in ("bases/common.yaml", "bases/../bases/common.yaml", "./link.yaml", "link.yaml"):
        proc = validate(blueprint(repo, target))
        assert (proc.returncode, proc.stdout) == (0, "ok: lab\n"), (target, proc.stderr)


def test_a_declared_root_admits_a_base_above_the_blueprint(repo):
    (repo / "common.yaml").write_text("tags: {team: ml}\n")
    child = blueprint(repo / "envs", "../common.yaml", "prod.yaml")
    assert "resolves outside" in refused(child)
    proc = validate(child, env={"INFRA_BLUEPRINT_ROOT": str(repo)})
    assert (proc.returncode, proc.stdout) == (0, "ok: lab\n"), proc.stderr
    assert f"resolves outside {repo}," in refused(blueprint(repo / "envs", "../../outside/x", "prod.yaml"),
                                                  env={"INFRA_BLUEPRINT_ROOT": str(repo)})


# --- inside the root, a file that is not a blueprint fragment: named, never quoted --------------


@pytest.mark.parametrize(("content", "why"), [
    (SECRET, "it has top-level keys that are not blueprint fields"),
    ("name: lab\n" + SECRET, "it has top-level keys that are not blueprint fields"),
    ("password: [hunter2-outside, {\n", "not valid YAML at line 2, column 1"),
    ("- hunter2-outside\n- tok-5e3f9c\n", "not a mapping of blueprint fields"),
    ("hunter2-outside tok-5e3f9c\n", "not a mapping of blueprint fields"),
    ("\t- hunter2-outside: tok-5e3f9c\n", "not valid YAML at line 1, column 1"),
    ("!!python/object:os.system hunter2-outside\n", "not valid YAML at line 1, column 1"),
    ("", "not a mapping of blueprint fields"),
])
def test_a_file_that_is_not_a_blueprint_is_named_not_quoted(repo, content, why):
    (repo / "notes.txt").write_text(content)
    path = blueprint(repo, "notes.txt")
    line = refused(path)
    assert line == f"{path}:1:10 extends: cannot use {repo}/notes.txt: not a blueprint fragment ({why})"
    quoted_nothing(line)


def test_a_blueprint_fragment_keeps_its_located_errors(repo):
    """A base of blueprint fields is a blueprint: its own mistakes point into it, as before."""
    (repo / "base.yaml").write_text("tags: {team: ml}\nnetwork:\n  cidr: not-a-cidr\n")
    line = refused(blueprint(repo, "base.yaml"))
    assert line.startswith(f"{repo}/base.yaml:3:9 network.cidr: ")


def test_the_default_root_is_the_git_work_tree_of_the_blueprint(repo):
    """In a repository, envs/prod.yaml may extend ../base.yaml (every file there is reviewed);
    the same layout outside any work tree is refused, and the work tree still ends the reach."""
    (repo / "base.yaml").write_text(VALID)
    (repo / "envs").mkdir()
    top = repo / "envs" / "prod.yaml"
    top.write_text("extends: ../base.yaml\n")
    assert validate(top).returncode == 2  # no work tree: the root is envs/
    (repo / ".git").mkdir()
    proc = validate(top)
    assert (proc.returncode, proc.stdout) == (0, "ok: lab\n"), proc.stderr
    top.write_text("extends: ../../outside/x\n")
    assert refused(top) == f"{top}:1:10 extends: ../../outside/x resolves outside {repo}, {ROOT_IS}"
