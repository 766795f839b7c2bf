"""Write a rendered tree to disk: only changed files are rewritten, stale files removed.

Rendering is pure (``dict[relative path, text]``); this is the only place that touches the
output folder. Files named in ``keep`` (e.g. Terraform's lock file, written by ``init``) are
never removed, so a GitOps repo can commit them beside the render.

Modes are set explicitly, whatever the umask (``infra`` runs with 077): ``public`` trees (the
reviewable ``build/``) get 0644 files and 0755 folders, as before; every other tree (working
copies under ``.infra/``: the sandbox module, the Ansible inventory) gets 0600 and 0700.
"""

from __future__ import annotations

import os
import stat
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


def write_tree(
    target: Path, files: dict[str, str], keep: frozenset[str] = frozenset(), *, public: bool = False
) -> WriteResult:
    result = WriteResult()
    file_mode, dir_mode = (0o644, 0o755) if public else (0o600, 0o700)
    _make_dirs(target, dir_mode)
    if not public:
        _private(target)
    for rel in sorted(files):
        path = target / rel
        data = files[rel].encode()
        if path.is_file() and path.read_bytes() == data:
            if not public:
                _private(path)  # written wider by an older infra
            result.unchanged.append(rel)
            continue
        _make_dirs(path.parent, dir_mode)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, file_mode)  # open's mode passes through the umask
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


def _make_dirs(path: Path, mode: int) -> None:
    """Create ``path`` and its missing parents with exactly ``mode``; existing folders are kept as they are."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        os.chmod(folder, mode)


def _private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & 0o077:
        os.chmod(path, stat.S_IMODE(mode) & 0o700)


def _remove_empty_dirs(target: Path) -> None:
    for path in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if ".terraform" not in path.parts and not any(path.iterdir()):
            path.rmdir()
