"""``infra init DIR``: a GitOps repository to start from (templates/gitops/): blueprints/, a rollout
file, .gitignore for .infra/, a CI workflow and a README. Writes nothing over an existing file."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..paths import templates

#: template name -> name in the repository (dot-files are kept without their dot in the package)
_RENAME = {"gitignore": ".gitignore", "github": ".github"}


def files() -> dict[str, str]:
    """``{relative path in the new repository: text}``."""
    root = templates() / "gitops"
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts = [_RENAME.get(part, part) for part in path.relative_to(root).parts]
        out["/".join(parts)] = path.read_text(encoding="utf-8")
    return out


def scaffold(target: Path) -> list[Path]:
    """Write the repository's files under ``target``; refuses if any of them exists already."""
    wanted = files()
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
