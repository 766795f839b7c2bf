"""Where the shipped assets live: terraform modules, ansible roles, Jinja2 templates.

In a source checkout (or an editable install) they sit at the repository's top level, where
operators expect them. A wheel carries copies under ``orchestrator/_shipped/`` (see setup.py).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def asset_root() -> Path:
    shipped = _PACKAGE / "_shipped"
    if (shipped / "templates").is_dir():
        return shipped
    return _PACKAGE.parent


def terraform_modules() -> Path:
    return asset_root() / "terraform" / "modules"


def templates() -> Path:
    return asset_root() / "templates"


def ansible() -> Path:
    return asset_root() / "ansible"


def package_data() -> Path:
    return _PACKAGE / "data"


def providers() -> Path:
    return _PACKAGE / "providers"


@cache
def provider_names() -> tuple[str, ...]:
    """Every ``provider:`` a blueprint may name: the packages under ``orchestrator/providers/``,
    sorted. The folder is listed, not imported, so the blueprint layer can use it without
    knowing provider code; ``providers.registry`` imports the one a command needs."""
    return tuple(sorted(
        entry.name for entry in providers().iterdir()
        if entry.is_dir() and (entry / "__init__.py").is_file() and entry.name.isidentifier()
        and not entry.name.startswith("_")
    ))
