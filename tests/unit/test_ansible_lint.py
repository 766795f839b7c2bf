"""ansible-lint's `production` profile over ansible/ finds nothing (issue 12).

ansible-lint lives in its own virtualenv (``make ansible-lint``; ``INFRA_ANSIBLE_LINT`` names its
binary), outside the app's dependencies, like checkov.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.conftest import REPO, require

DEFAULT = "/var/cache/infra-tests/ansible-lint-venv/bin/ansible-lint"


def _ansible_lint() -> str:
    path = os.environ.get("INFRA_ANSIBLE_LINT") or DEFAULT
    found = shutil.which(path)
    require(found is not None, "ansible-lint (make ansible-lint)")
    return str(found)


def test_ansible_lint_production_profile_is_clean(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "ANSIBLE_HOME": str(tmp_path / "ansible"),
           "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles")}
    proc = subprocess.run([_ansible_lint(), "--offline", "--nocolor", "--profile", "production", "ansible/"],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
