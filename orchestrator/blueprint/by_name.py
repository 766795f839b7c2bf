"""The blueprint file of an environment given by name: for ``infra history NAME`` and ``infra rollback
NAME RUN`` in a fresh clone, whose ``.infra/`` is empty while the records are kept beside the state.

Only files the repository tracks are looked at (``git ls-files``), or, outside git, the ``.yaml``/
``.yml`` files at most ``MAX_DEPTH`` folders below the current one (``.infra/``, ``build/`` and
hidden folders left out). A file is a candidate when its own top-level ``name:`` line is the name;
nothing is loaded here.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

MAX_DEPTH = 3
MAX_FILES = 2000  # files looked at, at most (a huge repository: pass the blueprint file)
MAX_BYTES = 256 * 1024
_SKIP = {".infra", "build", "node_modules", "__pycache__"}


def candidates(name: str, root: Path) -> list[Path]:
    """Blueprint files under ``root`` whose top-level ``name:`` is ``name`` (relative to ``root``, sorted)."""
    line = re.compile(rf"^name:[ \t]*(['\"]?){re.escape(name)}\1[ \t]*(#.*)?$", re.MULTILINE)
    found = []
    for path in _files(root)[:MAX_FILES]:
        try:
            if (root / path).stat().st_size > MAX_BYTES:
                continue
            text = (root / path).read_text(errors="replace")
        except OSError:
            continue
        if re.search(r"^blueprint:", text, re.MULTILINE) and line.search(text):
            found.append(path)
    return sorted(found)


def _files(root: Path) -> list[Path]:
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", "*.yaml", "*.yml"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        listed = None
    if listed is not None and listed.returncode == 0:
        return [Path(p) for p in listed.stdout.split("\0") if p]
    out: list[Path] = []
    for here, dirs, files in os.walk(root):
        rel = Path(here).relative_to(root)
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith(".")
                         and len(rel.parts) < MAX_DEPTH)
        out += [rel / f for f in sorted(files) if f.endswith((".yaml", ".yml"))]
        if len(out) >= MAX_FILES:
            break
    return out
