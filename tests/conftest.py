"""Shared fixtures. Real components (terraform, moto, sshd) are started by the tests.

A test that needs a component the machine lacks skips with a reason naming it, except in CI
(``CI=true``), where .ci/run installs everything and a missing component is a failure. Every
skip in the suite goes through :func:`require` (or :func:`require_module`):
``tests/unit/test_ci_honesty.py`` fails on a bare ``pytest.skip``, ``importorskip`` or
``skipif``.

Dates: validation judges ``kubernetes.version`` against dated support windows
(``orchestrator/data/versions/eks.yaml``), reading "today" from ``orchestrator.clock``. Every
test runs on :data:`SUITE_TODAY` (``INFRA_TODAY``, set for the test and inherited by the
processes it starts), so no result depends on the day the suite runs; a test about a date sets
its own. The one exception reads the real date on purpose: the example-freshness check in
``tests/unit/test_version_dates.py``. See docs/testing.md, "Dates".
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
# The day every test runs on unless it sets its own (a fixed date, never the wall clock).
SUITE_TODAY = "2026-12-06"


def require(ok: bool, what: str) -> None:
    """Skip (or, in CI, fail) when a real component is missing. The same for a condition of
    the platform (e.g. the main thread): CI must provide it too, so there it is a failure."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {what}")
    pytest.skip(f"needs {what}")


def require_module(name: str, what: str) -> ModuleType:
    """Import ``name``, or :func:`require` ``what`` (the package to install, in words)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        require(False, what)
        raise  # not reached: require skipped or failed


def _mirror() -> str | None:
    value = os.environ.get("INFRA_TF_PLUGIN_MIRROR")
    if not value:
        out = subprocess.run([str(REPO / "scripts" / "find-tf-mirror")], capture_output=True, text=True)
        value = out.stdout.strip()
    if value and any(Path(value).glob("registry.terraform.io/hashicorp/aws/*")):
        return value
    return None


@pytest.fixture(scope="session")
def tf_mirror() -> str:
    mirror = _mirror()
    require(mirror is not None, "a Terraform provider mirror with hashicorp/aws (INFRA_TF_PLUGIN_MIRROR)")
    require(shutil.which("terraform") is not None or shutil.which("tofu") is not None, "terraform on PATH")
    return mirror


def pytest_configure(config):
    """Pin "today" for validation before any fixture starts a process (session and module
    fixtures run ``infra`` too): the suite must give the same result on any day. Set in this
    process's environment, it is inherited by every ``infra`` the tests start; a test about a
    date sets its own with ``monkeypatch.setenv("INFRA_TODAY", ...)``."""
    os.environ["INFRA_TODAY"] = SUITE_TODAY


@pytest.fixture(autouse=True)
def _isolated_terraform_config(tmp_path_factory, monkeypatch):
    """Never read the user's (or the image's) CLI config; never phone home."""
    cfg = tmp_path_factory.getbasetemp() / "empty.tfrc"
    if not cfg.exists():
        cfg.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Locally, say which components were missing and the one command that installs them
    (in CI nothing skips: :func:`require` fails there instead). A wrapper, so that it prints
    after the short test summary, just above the final counts."""
    result = yield
    _missing_components(terminalreporter)
    return result


def _missing_components(terminalreporter) -> None:
    needs: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith("needs "):
            needs[reason.removeprefix("needs ")] = needs.get(reason.removeprefix("needs "), 0) + 1
    if not needs:
        return
    write = terminalreporter.write_line
    terminalreporter.section("components missing on this machine", sep="-", yellow=True)
    for what, count in sorted(needs.items(), key=lambda kv: (-kv[1], kv[0])):
        write(f"  {count:4d} test{'s' if count != 1 else ''} skipped: needs {what}")
    write("install them and run everything: `make test-deps && make test` "
          "(system packages via apt, sudo when not root; `bash .ci/run` does all of it as CI does)")
