"""The import guard: every module of ``orchestrator`` imports, and no layer imports one it must not know.

The rules live in ``RULES`` below and nowhere else (docs/architecture.md draws them). Imports are
read with ``ast`` from the source, so an import inside a function or under ``TYPE_CHECKING``
counts as much as one at the top; relative imports are resolved against the module's package.
Rules are written by package prefix, so ``orchestrator.stages`` covers a module and a package.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import orchestrator

#: importer prefix -> (prefixes it must not import, why). The one rule table.
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "orchestrator.blueprint": (
        ("orchestrator.providers", "orchestrator.render", "orchestrator.kube", "orchestrator.engines",
         "orchestrator.stages", "orchestrator.cli", "orchestrator.ops", "orchestrator.sandbox",
         "orchestrator.records", "orchestrator.workspace"),
        "the blueprint model knows nothing of ours but errors and paths",
    ),
    "orchestrator.render": (
        ("orchestrator.kube", "orchestrator.engines", "orchestrator.stages", "orchestrator.cli",
         "orchestrator.ops"),
        "render is pure: it builds files from the blueprint and never talks to a cluster or runs a process",
    ),
    "orchestrator.kube": (
        ("orchestrator.render", "orchestrator.providers", "orchestrator.engines", "orchestrator.stages",
         "orchestrator.cli", "orchestrator.ops"),
        "kube is the API client: it reads rendered files, never the renderer or a provider",
    ),
    "orchestrator.rollout": (
        ("orchestrator.cli",),
        "a rollout runs environments through the stages; printing is the CLI's",
    ),
    "orchestrator.providers": (
        ("orchestrator.engines", "orchestrator.stages", "orchestrator.cli", "orchestrator.render",
         "orchestrator.kube"),
        "providers return data: they never render, run processes or know the pipeline",
    ),
    "orchestrator.engines": (
        ("orchestrator.cli", "orchestrator.stages"),
        "engines run one tool; the pipeline and the CLI sit above them",
    ),
    "orchestrator.stages": (
        ("orchestrator.cli",),
        "stages are library code; only the CLI parses options and prints",
    ),
}

ROOT = Path(orchestrator.__file__).parent


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, imported name)`` for every ``orchestrator`` import in the file, relative ones resolved;
    ``from a import b`` yields ``a.b`` (``b`` may be a module or a name in ``a``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if _under(name, "orchestrator")]


def violations(module: str, path: Path) -> list[str]:
    out = []
    for importer, (forbidden, why) in RULES.items():
        if not _under(module, importer):
            continue
        for line, name in imports_of(module, path):
            for target in forbidden:
                if _under(name, target):
                    rel = path.relative_to(ROOT.parent)
                    out.append(f"{rel}:{line}: {module} imports {name}: {importer} must not import {target} ({why})")
    return out


def test_every_module_imports() -> None:
    names = [m.name for m in pkgutil.walk_packages(orchestrator.__path__, "orchestrator.")]
    assert "orchestrator.cli.main" in names and "orchestrator.render.kubernetes.tenancy" in names
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure to import is the finding
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    assert failed == []


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_layer_rules(module: str, path: Path) -> None:
    problems = violations(module, path)
    assert not problems, "forbidden import(s):\n" + "\n".join(problems)


def test_guard_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from .. import paths\n"
        "def f():\n"
        "    from ...kube import client\n"
        "    import orchestrator.cli.main\n"
    )
    assert imports_of("orchestrator.render.kubernetes.sample", source) == [
        (1, "orchestrator.render.paths"),
        (3, "orchestrator.kube.client"),
        (4, "orchestrator.cli.main"),
    ]
