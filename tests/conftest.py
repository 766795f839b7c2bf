"""Shared fixtures. Real components (terraform, moto, sshd) are started by the tests.

A test that needs a component the machine lacks skips with a reason naming it, except in CI
(``CI=true``), where .ci/run installs everything and a missing component is a failure. Every
skip in the suite goes through :func:`require` (or :func:`require_module`):
``tests/unit/test_ci_honesty.py`` fails on a bare ``pytest.skip``, ``importorskip`` or
``skipif``.
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


@pytest.fixture(autouse=True)
def _isolated_terraform_config(tmp_path_factory, monkeypatch):
    """Never read the user's (or the image's) CLI config; never phone home."""
    cfg = tmp_path_factory.getbasetemp() / "empty.tfrc"
    if not cfg.exists():
        cfg.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
