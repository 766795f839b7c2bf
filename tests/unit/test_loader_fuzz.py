"""Fuzzing ``infra validate``: whatever the bytes, exit 0 or 2, never a traceback, never a hang,
and every problem is exactly one line that names its file (``file:line:col ...``).

Inputs are the example blueprints mutated byte- and line-wise (with fragments that once crashed
the loader spliced in: control characters, deep nesting, huge numbers, impossible dates, bad
tags, hostile ``extends``), YAML-ish token soup, and generated mappings dumped as YAML. The seed
is fixed (``derandomize``): a failure reproduces on every run. Most inputs go through the
``validate`` command in-process (the click command typer builds from the ``infra`` app, built
once: rebuilding it per call, as typer's CliRunner does, costs 40 ms); a batch also goes through
the installed console script.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import typer.main
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli.main import app

REPO = Path(__file__).resolve().parents[2]
INFRA = Path(sys.executable).with_name("infra")
SOURCES = [p.read_bytes() for p in sorted((REPO / "examples").glob("*.yaml"))] + [
    (REPO / "tests" / "fixtures" / "blueprints" / "extends" / "prod.yaml").read_bytes(),
    (REPO / "tests" / "fixtures" / "cli" / "broken.yaml").read_bytes(),
]
FRAGMENTS = [
    b"\x01", b"\x00", b"\x7f", b"\x85", b"\x1b[31m", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf",
    "\u202e".encode(), "\u2028".encode(), b"\r", b"\t", b"\n", b": ", b"- ", b"? ", b"{", b"}", b"[", b"]",
    b"'", b'"', b"&a ", b"*a", b"<<: *a\n", b"!!int x", b"!!bool maybe", b"!!float nope", b"!!timestamp nope",
    b"!!binary aGk=", b"!!python/object/apply:os.system [true]", b"!local x", b"%YAML 1.1\n---\n", b"---\n",
    b"...\n", b"2001-02-30", b"2001-13-01", b"0000-01-01", b"9" * 5000, b"0x" + b"f" * 200, b"[" * 300,
    b"{a: " * 100, b"x" * 70_000, b'"a\\nerror: forged"', b'"\\u202e\\x01"', b"\\", b"%", b"@", b"`", b"|\n", b">-\n",
    b"extends: /dev/zero\n", b"extends: fifo\n", b"extends: loop1\n", b"extends: ~nosuchuser/x.yaml\n",
    b'extends: "a\\0b"\n', b"extends: sub\n", b"extends: base.yaml\n", b"extends: bp.yaml\n",
    b"extends: bad-utf8.yaml\n", b"extends: deep.yaml\n", b"extends: /dev/stdin\n", b"extends: [x]\n",
]
TOKENS = [
    " ", "  ", "\n", "\t", ":", ": ", "-", "- ", "[", "]", "{", "}", ",", "&a", "*a", "!", "!!", "|", ">", "'", '"',
    "#", "?", "%", "@", "`", "\\", "~", "<<", "---", "...", "blueprint", "name", "provider", "aws", "extends",
    "node_pools", "gpu", "count", "1", "-1", "0o7", "1e999", ".nan", "2001-02-30", "x", "é", "\x01", "\x85", "\u202e",
    "\u2028", "\ufeff", "\x00", "!!int", "!!str", "!!bool", "!!timestamp", "!!python/name:os.system", "base.yaml",
]
KEYS = ["blueprint", "name", "provider", "region", "tags", "node_pools", "hosts", "teams", "inference", "state",
        "secrets", "network", "kubernetes", "extends", "gpu", "count", "min", "max", "labels", "a\nb", "\u202e"]
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>[0-9]+):(?P<col>[0-9]+)[ :]")
SUMMARY = re.compile(r"^([0-9]+) problems? found$")
COMMAND = typer.main.get_command(app)


@pytest.fixture(scope="module")
def playground(tmp_path_factory) -> Path:
    """A folder with the special files the fragments' ``extends`` point at."""
    root = tmp_path_factory.mktemp("fuzz")
    os.mkfifo(root / "fifo")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "sub").mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "blueprints" / "extends" / "base.yaml", root / "base.yaml")
    (root / "bad-utf8.yaml").write_bytes(b"tags: {a: \xe9}\n")
    (root / "deep.yaml").write_text("a: " + "[" * 500 + "]" * 500 + "\n")
    return root


def _mutate(draw, data: bytearray) -> None:
    op = draw(st.sampled_from(["insert", "delete", "replace", "fragment", "fragment", "line", "truncate"]))
    at = draw(st.integers(0, len(data)))
    if op == "insert":
        data[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif op == "delete":
        del data[at:at + draw(st.integers(1, 40))]
    elif op == "replace" and at < len(data):
        data[at] = draw(st.integers(0, 255))
    elif op == "fragment":
        data[at:at] = draw(st.sampled_from(FRAGMENTS))
    elif op == "line":
        lines = bytes(data).split(b"\n")
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        if draw(st.booleans()):
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines.insert(j, lines[i])
        data[:] = b"\n".join(lines)
    elif op == "truncate":
        del data[at:]


@st.composite
def mutated_examples(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 4))):
        _mutate(draw, data)
    return bytes(data)


token_soup = st.lists(st.sampled_from(TOKENS), max_size=120).map(lambda parts: "".join(parts).encode("utf-8",
                                                                                                       "surrogatepass"))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(), st.text(max_size=12),
                    st.sampled_from(["aws", "baremetal", "a100", "10.0.0.0/16", "1.30", "x" * 70]))
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner,
                                                                max_size=5),
    max_leaves=25,
).map(lambda doc: yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass"))


def _alarm(signum, frame):
    raise TimeoutError("infra validate took longer than 30 s")


def check_validate(folder: Path, content: bytes) -> None:
    """Run ``infra validate`` on ``content`` in-process and check the user contract."""
    path = folder / "bp.yaml"
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(30)
    try:
        with redirect_stdout(out), redirect_stderr(err):  # any exception but Exit fails the test
            code = COMMAND.main(["validate", str(path)], prog_name="infra", standalone_mode=False)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    check_output(code or 0, out.getvalue(), err.getvalue(), folder)


def check_output(code: int, out: str, err: str, folder: Path) -> None:
    assert "Traceback" not in out + err
    assert code in (0, 2), (code, err)
    if code == 0:  # warnings (e.g. a team without groups) are located single lines
        assert all(line.startswith("ok: ") for line in out.splitlines()), (out, err)
        assert all(line.startswith(f"warning: {folder}/") and line.isprintable()
                   for line in err.splitlines()), err
        return
    assert err.endswith("\n"), err
    lines = err[:-1].split("\n")
    for line in lines:
        assert line.isprintable(), f"not one printable line: {line!r}"  # no \r, \x85, \u2028, controls
    unreadable = [line for line in lines if line.startswith(f"error: cannot read blueprint {folder}/")]
    located = [line for line in lines if LOCATED.match(line)]
    summaries = [int(m.group(1)) for m in map(SUMMARY.match, lines) if m]
    assert len(unreadable) + len(located) + len(summaries) == len(lines), err
    assert summaries == ([len(located)] if located else []), err  # one problem, one line
    for line in located:
        file = LOCATED.match(line)["file"]
        assert file.startswith(f"{folder}/") or file in ("/dev/stdin",), line


SETTINGS = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


@settings(SETTINGS, max_examples=2000)
@given(content=mutated_examples())
def test_mutated_examples(playground, content):
    check_validate(playground, content)


@settings(SETTINGS, max_examples=1000)
@given(content=token_soup)
def test_yaml_token_soup(playground, content):
    check_validate(playground, content)


@settings(SETTINGS, max_examples=500)
@given(content=documents)
def test_generated_documents(playground, content):
    check_validate(playground, content)


def test_hostile_batch_through_the_console_script(playground):
    """A few fixed hostile files through the real entry point, one process for all of them."""
    contents = {
        "control.yaml": b"blueprint: 1\nname: a\x1b[2Jb\n",
        "deep.yaml": b"a: " + b"[" * 600 + b"]" * 600 + b"\n",
        "bigint.yaml": b"blueprint: " + b"9" * 5000 + b"\n",
        "date.yaml": b"blueprint: 1\nname: 2001-02-30\n",
        "tag.yaml": b"blueprint: !!bool maybe\n",
        "forged.yaml": b'"a\\nerror: forged": 1\n',
        "latin1.yaml": b"name: caf\xe9\n",
        "zero.yaml": b"extends: /dev/zero\n",
        "fifo.yaml": b"extends: fifo\n",
        "loop.yaml": b"extends: loop1\n",
        "tilde.yaml": b"extends: ~nosuchuser/x.yaml\n",
    }
    batch = playground / "batch"
    batch.mkdir()
    for name, data in contents.items():
        (batch / name).write_bytes(data)
    os.mkfifo(batch / "fifo")
    (batch / "loop1").symlink_to("loop1")
    proc = subprocess.run([str(INFRA), "validate", *(str(batch / n) for n in contents)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60)
    check_output(proc.returncode, proc.stdout, proc.stderr, batch)
    assert proc.returncode == 2
    files = {LOCATED.match(line)["file"] for line in proc.stderr.splitlines() if LOCATED.match(line)}
    assert files == {str(batch / n) for n in contents}  # every file reported, each located
