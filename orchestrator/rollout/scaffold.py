"""``infra init DIR``: a GitOps repository to start from (templates/gitops/): blueprints/, a rollout
file, .gitignore for .infra/, a CI workflow and a README. Writes nothing over an existing file.

The templates hold ``@NAME@`` placeholders and ``uses: OWNER/REPO@pin`` lines, filled in here:
infra's own version (the workflow installs exactly the infra that wrote it), the Terraform and
Python versions and the actions' commit SHAs of ``data/versions/ci.yaml``, and the state buckets.
"""

from __future__ import annotations

import re
import secrets
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..paths import package_data, templates

#: template name -> name in the repository (dot-files are kept without their dot in the package)
_RENAME = {"gitignore": ".gitignore", "github": ".github"}
#: S3 bucket names are 3-63 characters; the prefix leaves room for "-prod"
_BUCKET_PREFIX = re.compile(r"[a-z0-9][a-z0-9-]{1,56}[a-z0-9]")
_PIN = re.compile(r"(?m)^(\s*(?:-\s+)?uses:\s*)([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)@pin\s*$")
_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


@cache
def ci_versions() -> dict[str, Any]:
    """``data/versions/ci.yaml``: the Terraform and Python versions and the actions' pins."""
    import yaml

    return yaml.safe_load((package_data() / "versions" / "ci.yaml").read_text(encoding="utf-8"))


def infra_extras() -> tuple[str, ...]:
    """infra's pip extras the workflow installs (``extras`` in data/versions/ci.yaml)."""
    return tuple(ci_versions()["extras"])


def infra_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("infra-orchestrator")
    except PackageNotFoundError as exc:  # a source tree run without `pip install -e .`
        raise UsageError("infra init: infra-orchestrator is not installed, so its version is unknown",
                         hint="pip install -e . (the workflow installs the version that wrote it)") from exc


def check_bucket_prefix(prefix: str) -> str:
    if not _BUCKET_PREFIX.fullmatch(prefix):
        raise UsageError(f"infra init: --state-bucket {prefix!r}: must be 3 to 58 lowercase letters, digits and "
                         "'-', starting and ending with a letter or digit",
                         hint="the buckets are named PREFIX-dev and PREFIX-prod (S3 bucket names are global)")
    return prefix


def fill(text: str, values: dict[str, str]) -> str:
    """Pin every ``uses: OWNER/REPO@pin`` (``OWNER/REPO@SHA # VERSION``) and replace ``@NAME@``."""
    pins = ci_versions()["actions"]

    def pin(match: re.Match[str]) -> str:
        action = match.group(2)
        if action not in pins:
            raise KeyError(f"{action}: no pin in data/versions/ci.yaml")
        return f"{match.group(1)}{action}@{pins[action]['sha']} # {pins[action]['version']}"

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"@{match.group(1)}@: no value for this placeholder")
        return values[match.group(1)]

    return _PLACEHOLDER.sub(value, _PIN.sub(pin, text))


def files(state_bucket: str = "infra-state") -> dict[str, str]:
    """``{relative path in the new repository: text}``; the state buckets are STATE_BUCKET-ENV."""
    versions = ci_versions()
    values = {"INFRA_VERSION": infra_version(), "INFRA_EXTRAS": ",".join(infra_extras()),
              "TERRAFORM_VERSION": str(versions["terraform"]), "PYTHON_VERSION": str(versions["python"]),
              "STATE_BUCKET": state_bucket}
    root = templates() / "gitops"
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = [_RENAME.get(part, part) for part in path.relative_to(root).parts]
        out["/".join(parts)] = fill(path.read_text(encoding="utf-8"), values)
    return out


def scaffold(target: Path, state_bucket: str | None = None) -> list[Path]:
    """Write the repository's files under ``target``; refuses if any of them exists already.
    ``state_bucket``: the prefix of the S3 state buckets (default ``infra-state-`` and 8 random
    hex digits: bucket names are global, a fixed default would be someone else's already)."""
    prefix = check_bucket_prefix(state_bucket) if state_bucket is not None else f"infra-state-{secrets.token_hex(4)}"
    wanted = files(prefix)
    clash = [name for name in wanted if (target / name).exists()]
    if clash:
        raise UsageError(f"infra init: {target / clash[0]} exists already; nothing written",
                         hint="run it on an empty folder (or one without these files)")
    written = []
    for name, text in wanted.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
