"""Write a rendered tree to disk: only changed files are rewritten, stale files removed.

Rendering is pure (``dict[relative path, text]``); this is the only place that touches the
output folder. Files named in ``keep`` (e.g. Terraform's lock file, written by ``init``) are
never removed, so a GitOps repo can commit them beside the render.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class WriteResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


def write_tree(target: Path, files: dict[str, str], keep: frozenset[str] = frozenset()) -> WriteResult:
    result = WriteResult()
    target.mkdir(parents=True, exist_ok=True)
    for rel in sorted(files):
        path = target / rel
        data = files[rel].encode()
        if path.is_file() and path.read_bytes() == data:
            result.unchanged.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        result.written.append(rel)
    for path in sorted(target.rglob("*")):
        rel = path.relative_to(target).as_posix()
        if not path.is_file() or rel in files or path.name in keep or ".terraform" in path.parts:
            continue
        path.unlink()
        result.removed.append(rel)
    _remove_empty_dirs(target)
    return result


def _remove_empty_dirs(target: Path) -> None:
    for path in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if ".terraform" not in path.parts and not any(path.iterdir()):
            path.rmdir()
