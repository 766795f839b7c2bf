"""Hostile blueprints: every input a fuzzer found crashing or hanging the loader, one test each.

Each must give exit 2 and one located line per problem (``file:line:col path: message``, or
``error: cannot read blueprint FILE: reason`` for a file that cannot be read at all), within
bounded time and memory, and never run code. Most go through ``infra validate`` in-process
(typer's CliRunner); the ones that hung or ate memory run the installed console script in a
subprocess with a timeout and an address-space limit, so a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.blueprint.loader import load
from orchestrator.cli.main import app
from orchestrator.errors import BlueprintError, UsageError
from tests.blueprints import with_way_in

INFRA = Path(sys.executable).with_name("infra")
VALID = (
    "blueprint: 1\n"
    "name: t-env\n"
    "provider: aws\n"
    "region: us-east-1\n"
    "node_pools:\n"
    "  - name: system\n"
    "    instance_type: m6i.large\n"
    "    min: 1\n"
    "    max: 2\n"
)


@contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def _expired(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def validate(*paths: Path | str) -> tuple[int, str, str]:
    """``infra validate PATH...`` in-process: (exit code, stdout, stderr); a crash fails the test."""
    with time_limit(30):
        result = CliRunner().invoke(app, ["validate", *map(str, paths)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def infra_validate(path: Path | str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, with 1 GiB of address space and 30 s at most."""

    def _limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([str(INFRA), "validate", str(path)], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30, preexec_fn=_limits)


def one_problem(path: Path) -> str:
    """The single problem line ``infra validate`` prints for ``path`` (exit 2, nothing else)."""
    code, out, err = validate(path)
    assert (code, out) == (2, ""), err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[1:] == ["1 problem found"], err
    assert err == "\n".join(lines) + "\n"  # no other line breaks (\r, \x85, \u2028) inside a line
    return lines[0]


def usage_error(path: Path) -> str:
    code, out, err = validate(path)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err[:-1]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(with_way_in(text), encoding="utf-8")
    return path


# --- characters, nesting, sizes -----------------------------------------------------------------


def test_control_character_is_located(tmp_path):
    path = write(tmp_path / "bp.yaml", "blueprint: 1\nname: x\x01y\n")
    assert one_problem(path) == f"{path}:2:8: invalid YAML: character \\x01 (U+0001) is not allowed"


def test_control_character_at_the_boundary(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID + "tags: {a: \"\x7f\"}\n")
    proc = infra_validate(path, tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"{path}:10:12: invalid YAML: character \\x7f (U+007F) is not allowed\n1 problem found\n"


def test_deep_flow_nesting_is_capped(tmp_path):
    path = write(tmp_path / "bp.yaml", "[" * 600 + "]" * 600 + "\n")
    assert one_problem(path) == f"{path}:1:65: invalid YAML: nesting deeper than 64 levels"


def test_deep_block_nesting_is_capped_at_the_boundary(tmp_path):
    text = "".join(" " * i + f"k{i}:\n" for i in range(1000))
    path = write(tmp_path / "bp.yaml", text)
    proc = infra_validate(path, tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"{path}:65:65: invalid YAML: nesting deeper than 64 levels\n1 problem found\n"


def test_nesting_built_from_aliases_is_capped(tmp_path):
    # each anchor is shallow, but expanding them nests 40 x 30 levels
    lines = ["a0: &a0 " + "[" * 30 + "]" * 30]
    lines += [f"a{i}: &a{i} " + "[" * 30 + f"*a{i - 1}" + "]" * 30 for i in range(1, 40)]
    path = write(tmp_path / "bp.yaml", "\n".join(lines) + "\n")
    assert one_problem(path) == f"{path}:1:12 a2" + "[0]" * 63 + ": invalid YAML: nesting deeper than 64 levels"


def test_integer_over_4300_digits(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID.replace("blueprint: 1", "blueprint: " + "9" * 5000))
    assert one_problem(path) == f"{path}:1:12 blueprint: number too long (more than 100 digits)"


def test_hex_integer_too_long(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID.replace("max: 2", "max: 0x" + "f" * 4000))
    assert one_problem(path) == f"{path}:9:10 node_pools[0].max: number too long (more than 100 digits)"


def test_scalar_over_64_kib_is_located(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID + "tags: {big: " + "x" * 100_000 + "}\n")
    assert one_problem(path) == f"{path}:10:13 tags.big: value longer than 65536 characters"


def test_key_over_64_kib_is_located(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID + "tags:\n  ? " + "k" * 70_000 + "\n  : v\n")
    assert one_problem(path) == f"{path}:11:5 tags: key longer than 65536 characters"


def test_two_million_character_scalar_is_refused_unparsed(tmp_path):
    path = write(tmp_path / "bp.yaml", "blueprint: 1\nname: " + "x" * 2_000_000 + "\n")
    with time_limit(5):
        line = usage_error(path)
    assert line == f"error: cannot read blueprint {path}: larger than 1 MiB (1048576 bytes)"


def test_alias_bomb_is_one_problem(tmp_path):
    text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    text += "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10))
    path = write(tmp_path / "bp.yaml", text)
    with time_limit(10):
        line = one_problem(path)
    assert line.endswith(": invalid YAML: more than 100000 values")


def test_too_many_nodes_stops_parsing_early(tmp_path):
    path = write(tmp_path / "bp.yaml", "a: [" + "1," * 300_000 + "]\n")
    with time_limit(15):
        line = one_problem(path)
    assert line == f"{path}:1:199999: invalid YAML: more than 100000 values"


# --- dates and explicit tags --------------------------------------------------------------------


@pytest.mark.parametrize("date", ["2001-02-30", "2001-13-01", "0000-01-01", "2024-01-01", "2001-02-03 25:61:61"])
def test_dates_are_plain_strings(tmp_path, date):
    path = write(tmp_path / "bp.yaml", VALID + f"tags:\n  created: {date}\n")
    assert validate(path) == (0, "ok: t-env\n", "")
    assert load(path).data["tags"] == {"created": date}


@pytest.mark.parametrize(("value", "message"), [
    ("!!bool maybe", "not a valid !!bool"),
    ("!!int x", "not a valid !!int"),
    ("!!float x", "not a valid !!float"),
    ("!!timestamp nope", "tag !!timestamp is not allowed in a blueprint"),
    ("!!timestamp 2024-01-01", "tag !!timestamp is not allowed in a blueprint"),
    ("!!binary aGk=", "tag !!binary is not allowed in a blueprint"),
    ("!local x", "tag !local is not allowed in a blueprint"),
])
def test_bad_explicit_tags_are_located(tmp_path, value, message):
    path = write(tmp_path / "bp.yaml", VALID.replace("blueprint: 1", f"blueprint: {value}"))
    assert one_problem(path) == f"{path}:1:12 blueprint: {message}"


def test_a_blueprint_never_runs_code(tmp_path):
    marker = tmp_path / "ran"
    text = VALID + f"tags: !!python/object/apply:os.system [\"touch {marker}\"]\n"
    path = write(tmp_path / "bp.yaml", text)
    line = one_problem(path)
    assert line == f"{path}:10:7 tags: tag !!python/object/apply:os.system is not allowed in a blueprint"
    assert not marker.exists()


# --- keys and values are printed escaped: one problem, one line ---------------------------------


def test_newline_in_a_key_cannot_forge_error_lines(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID + '"a\\nerror: forged\\r\\u2028\\u202e": 1\n')
    line = one_problem(path)
    assert line.startswith(f"{path}:10:1 a\\nerror: forged\\r\\u2028\\u202e: unknown field "
                           "'a\\nerror: forged\\r\\u2028\\u202e' (allowed: ")


def test_newline_key_at_the_boundary(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID + '"x\\nerror: forged": 1\n')
    proc = infra_validate(path, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[1] == "1 problem found", proc.stderr
    assert lines[0].startswith(f"{path}:10:1 x\\nerror: forged: unknown field 'x\\nerror: forged'")


def test_duplicate_key_with_control_characters_is_escaped(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID + '"a\\tb": 1\n"a\\tb": 2\n')
    code, out, err = validate(path)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:10:1 a\\tb: unknown field 'a\\tb' (allowed: ")
    assert lines[1:] == [f"{path}:11:1 a\\tb: duplicate key 'a\\tb' (first given on line 10)", "2 problems found"]


def test_file_name_with_a_newline_is_escaped(tmp_path):
    path = write(tmp_path / "bad\nname.yaml", VALID + "surprise: 1\n")
    line = one_problem(path)
    assert line.startswith(f"{tmp_path}/bad\\nname.yaml:10:1 surprise: unknown field 'surprise'")


# --- encodings and unreadable files -------------------------------------------------------------


def test_non_utf8_file_is_located(tmp_path):
    path = write(tmp_path / "bp.yaml", b"blueprint: 1\nname: \xff\xfe\n")
    assert one_problem(path) == f"{path}:2:7: not UTF-8 text (byte 0xff)"


def test_non_utf8_after_multibyte_characters(tmp_path):
    path = write(tmp_path / "bp.yaml", "blueprint: 1\ntags: {é: ü".encode() + b"\xc3(}\n")
    assert one_problem(path) == f"{path}:2:12: not UTF-8 text (byte 0xc3)"


def test_directory_without_blueprints_is_refused_in_our_format(tmp_path):
    """A folder is a set of blueprints to `infra validate` (docs/rollouts.md); an empty one is bad input."""
    assert usage_error(tmp_path) == f"error: {tmp_path}: no blueprint files (*.yaml) in this folder"


def test_directory_named_as_an_extends_target_is_refused(tmp_path):
    (tmp_path / "base").mkdir()
    write(tmp_path / "bp.yaml", "extends: base\n" + VALID)
    code, out, err = validate(tmp_path / "bp.yaml")
    assert (code, out) == (2, ""), err
    assert "not a regular file (a directory)" in err and err.startswith(f"{tmp_path / 'bp.yaml'}:1:"), err


def test_path_through_a_file_is_refused(tmp_path):
    write(tmp_path / "bp.yaml", VALID)
    line = usage_error(tmp_path / "bp.yaml" / "x.yaml")
    assert line == f"error: cannot read blueprint {tmp_path}/bp.yaml/x.yaml: a part of the path is not a directory"


def test_unreadable_file_is_refused_in_our_format(tmp_path):
    path = write(tmp_path / "bp.yaml", VALID)
    path.chmod(0)
    # tests run as root, which reads any file: drop to nobody's effective uid for the call
    as_root = os.geteuid() == 0
    if as_root:
        os.seteuid(65534)
    try:
        line = usage_error(path)
    finally:
        if as_root:
            os.seteuid(0)
    assert line == f"error: cannot read blueprint {path}: permission denied"


def test_fifo_given_on_the_command_line_does_not_hang(tmp_path):
    fifo = tmp_path / "bp.yaml"
    os.mkfifo(fifo)
    proc = infra_validate(fifo, tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"error: cannot read blueprint {fifo}: not a regular file (a named pipe)\n"


def test_fifo_swapped_in_after_the_check_does_not_hang(tmp_path, monkeypatch):
    fifo = tmp_path / "bp.yaml"
    os.mkfifo(fifo)
    from orchestrator.blueprint import files as bp_files

    regular = os.stat(write(tmp_path / "real.yaml", VALID))
    monkeypatch.setattr(bp_files.os, "stat", lambda *args, **kwargs: regular)  # the check sees a regular file
    with time_limit(5), pytest.raises(UsageError) as info:
        load(fifo)
    assert info.value.message == f"cannot read blueprint {fifo}: not a regular file (a named pipe)"


# --- hostile extends ----------------------------------------------------------------------------


def extends_problem(tmp_path: Path, target: str) -> str:
    path = write(tmp_path / "bp.yaml", f"extends: {target}\n" + VALID)
    line = one_problem(path)
    assert line.startswith(f"{path}:1:10 extends: cannot read ")
    return line[len(f"{path}:1:10 extends: cannot read "):]


def test_extends_with_a_nul_byte(tmp_path):
    assert extends_problem(tmp_path, '"a\\0b.yaml"') == f"{tmp_path}/a\\x00b.yaml: the path contains a NUL byte"


def test_extends_to_an_unknown_user(tmp_path):  # refused as written: no user is looked up
    path = write(tmp_path / "bp.yaml", "extends: ~nosuchuser/x.yaml\n" + VALID)
    assert one_problem(path) == (
        f"{path}:1:10 extends: ~nosuchuser/x.yaml: '~' (a home directory) is not allowed; "
        f"extends takes a path relative to this file, inside {tmp_path}"
    )


def test_extends_through_a_symlink_loop(tmp_path):
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    assert extends_problem(tmp_path, "loop1") == (
        f"{tmp_path}/loop1: symlink loop (too many levels of symbolic links)"
    )


def test_extends_to_a_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    assert extends_problem(tmp_path, "sub") == f"{tmp_path}/sub: not a regular file (a directory)"


def test_extends_to_dev_zero_reads_nothing(tmp_path):
    path = write(tmp_path / "bp.yaml", "extends: /dev/zero\n" + VALID)
    proc = infra_validate(path, tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"{path}:1:10 extends: /dev/zero: absolute paths are not allowed; extends takes a path relative to "
        f"this file, inside {tmp_path}\n1 problem found\n"
    )


def test_extends_to_a_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "base.yaml")
    path = write(tmp_path / "bp.yaml", "extends: base.yaml\n" + VALID)
    proc = infra_validate(path, tmp_path)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"{path}:1:10 extends: cannot read {tmp_path}/base.yaml: not a regular file (a named pipe)\n"
        "1 problem found\n"
    )


def test_extends_to_a_non_utf8_base_points_into_the_base(tmp_path):
    write(tmp_path / "base.yaml", b"tags: {a: \"\xe9\"}\n")
    path = write(tmp_path / "bp.yaml", "extends: base.yaml\n" + VALID)
    assert one_problem(path) == f"{tmp_path}/base.yaml:1:12: not UTF-8 text (byte 0xe9)"


def test_extends_chain_depth_is_capped(tmp_path):
    write(tmp_path / "f20.yaml", VALID)
    for i in range(20):
        write(tmp_path / f"f{i}.yaml", f"extends: f{i + 1}.yaml\n")
    with pytest.raises(BlueprintError) as info:
        load(tmp_path / "f0.yaml")
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path}/f15.yaml:1:10 extends: extends chain longer than 16 files",
    ]
