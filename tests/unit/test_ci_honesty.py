"""CI cannot pass by not testing: no bare skips, no golden rewrite, no shrinking suite."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

from tests.conftest import REPO

TESTS = REPO / "tests"
SKIPPERS = {"skip", "skipif", "importorskip"}


def bare_skips(source: str, filename: str = "<test>") -> list[str]:
    """``file:line`` of every skip that does not go through ``tests.conftest.require``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Attribute) and node.attr in SKIPPERS:
            base = node.value
            if (isinstance(base, ast.Name) and base.id in ("pytest", "unittest")) or (
                    isinstance(base, ast.Attribute) and base.attr == "mark"):
                found.append(f"{filename}:{node.lineno}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("pytest", "unittest"):
            found += [f"{filename}:{node.lineno}" for a in node.names if a.name in SKIPPERS]
    return sorted(found, key=lambda s: int(s.rsplit(":", 1)[1]))


def test_the_skip_scanner_sees_every_form():
    source = ("import pytest\nfrom pytest import skip\nboto3 = pytest.importorskip('boto3')\n"
              "pytest.skip('x')\n@pytest.mark.skipif(True, reason='x')\ndef f(): pass\n"
              "@pytest.mark.skip\ndef g(): pass\nrequire(ok, 'x')\n")
    assert bare_skips(source) == ["<test>:2", "<test>:3", "<test>:4", "<test>:5", "<test>:7"]


def test_every_skip_goes_through_require():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == TESTS / "conftest.py":  # where require() lives
            continue
        offenders += bare_skips(path.read_text(), str(path.relative_to(REPO)))
    assert offenders == [], "skip through tests.conftest.require (fails in CI) instead: " + ", ".join(offenders)


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_golden_update_is_refused_in_ci():
    before = _snapshot(TESTS / "golden" / "demo")
    env = {**os.environ, "INFRA_UPDATE_GOLDEN": "1", "CI": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit/test_render_golden.py",
         "-k", "test_render_files_matches_golden and demo"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refusing to rewrite golden files in CI (CI is set); run `make golden` locally" in proc.stdout
    assert "1 failed" in proc.stdout
    assert _snapshot(TESTS / "golden" / "demo") == before


def test_ci_checks_the_collected_count_before_make_test():
    script = (REPO / ".ci" / "run").read_text()
    minimum = re.search(r"^MIN_TESTS=(\d+)$", script, re.MULTILINE)
    assert minimum and int(minimum.group(1)) >= 600
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "make test"
    assert script.index("--collect-only") < script.rindex("make test")


def test_a_local_run_ends_by_naming_what_is_missing_and_the_command(tmp_path):
    """Outside CI a missing component skips; the end of the run names it and `make test-deps`."""
    (tmp_path / "test_needs.py").write_text(
        "from tests.conftest import require\n"
        "def test_a():\n    require(False, 'a widget (apt install widget)')\n"
        "def test_b():\n    require(False, 'a widget (apt install widget)')\n"
        "def test_c():\n    require(True, 'present')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-n", "0",
         "--rootdir", str(tmp_path), str(tmp_path / "test_needs.py")],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "components missing on this machine" in line)
    tail = [line.strip() for line in lines[start + 1:] if line.strip()]  # the section ends the run
    assert tail[0] == "2 tests skipped: needs a widget (apt install widget)"
    assert tail[1].startswith("install them and run everything: `make test-deps && make test`")
    assert re.fullmatch(r"=+ 1 passed, 2 skipped in .* =+", tail[2]) and len(tail) == 3

    ci = subprocess.run(  # in CI the same test fails instead: nothing to summarise
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-n", "0",
         "--rootdir", str(tmp_path), str(tmp_path / "test_needs.py")],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO), "CI": "true"}, capture_output=True, text=True, timeout=120,
    )
    assert ci.returncode == 1 and "CI must provide a widget" in ci.stdout
    assert "components missing on this machine" not in ci.stdout
