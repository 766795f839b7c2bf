"""Read what the render stage wrote to ``build/<name>/kubernetes/``: the objects to apply.

The files are read in the order ``kustomization.yaml`` lists them, each file's documents in
order, then sorted for apply (``conventions.KIND_ORDER``; stable, so file order holds within a
kind). That is exactly the order of ``render.kubernetes.render_objects``: ``infra handoff``
applies the reviewed files, not a second rendering. Only plain files inside the folder are
read; a listed path that leaves it, or that is not a regular file, is refused.

Files under ``install/`` (vendored components such as Kueue) are kept apart: ``read_install``
gives their objects in file order, for ``kube.install`` to apply before everything else.
"""

from __future__ import annotations

import stat
from pathlib import Path, PurePosixPath
from typing import Any

from ..conventions import INSTALL_DIR, KUSTOMIZATION, sort_for_apply
from ..errors import KubernetesError

MAX_FILE_BYTES = 16 << 20  # a rendered file holds at most a few MiB (thousands of teams)


def read_rendered(folder: Path) -> list[dict[str, Any]]:
    """Every object of ``folder`` (a ``build/<name>/kubernetes/``) but the installs, in apply order."""
    return read_all(folder)[0]


def read_install(folder: Path) -> list[dict[str, Any]]:
    """The objects of the listed files under ``install/``, in the order written."""
    return read_all(folder)[1]


def read_all(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(read_rendered(folder), read_install(folder))`` from one reading of the folder (the handoff
    needs both: each alone would parse every listed file)."""
    listed = _read_listed(Path(folder))
    return (sort_for_apply([o for installed, objs in listed if not installed for o in objs]),
            [o for installed, objs in listed if installed for o in objs])


def _read_listed(folder: Path) -> list[tuple[bool, list[dict[str, Any]]]]:
    """``(under install/, objects)`` for every file the kustomization lists, in its order."""
    kustomization = _load(folder / KUSTOMIZATION, folder)
    if len(kustomization) != 1 or kustomization[0].get("kind") != "Kustomization":
        raise _problem(folder, f"{KUSTOMIZATION} is not one Kustomization")
    resources = kustomization[0].get("resources") or []
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise _problem(folder, f"{KUSTOMIZATION}: resources must be a list of file paths")
    found: list[tuple[bool, list[dict[str, Any]]]] = []
    for entry in resources:
        rel = PurePosixPath(entry)
        if rel.is_absolute() or ".." in rel.parts:
            raise _problem(folder, f"{KUSTOMIZATION} lists {entry!r}, which is outside the folder")
        found.append((rel.parts[0] == INSTALL_DIR, _load(folder / rel, folder)))
    return found


def _problem(folder: Path, what: str) -> KubernetesError:
    return KubernetesError(
        f"cannot read the rendered manifests in {folder}: {what}",
        hint="`infra render FILE` writes them again (`infra handoff` and `infra up` render first)",
    )


def _load(path: Path, folder: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        mode = path.lstat().st_mode  # a symlink is refused too: render writes plain files
        if not stat.S_ISREG(mode):
            raise _problem(folder, f"{path.name} is not a regular file")
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _problem(folder, f"{path.relative_to(folder)} is missing") from None
    except OSError as exc:
        raise _problem(folder, f"{path.relative_to(folder)}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _problem(folder, f"{path.relative_to(folder)} is larger than {MAX_FILE_BYTES} bytes")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # same result, libyaml is faster
    try:
        docs = [d for d in yaml.load_all(data.decode("utf-8"), Loader=loader) if d]
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _problem(folder, f"{path.relative_to(folder)} is not YAML: {str(exc).splitlines()[0]}") from None
    if not all(isinstance(d, dict) for d in docs):
        raise _problem(folder, f"{path.relative_to(folder)} holds a document that is not an object")
    return docs
