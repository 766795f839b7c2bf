"""Provider registry: blueprint ``provider:`` name -> Provider, imported lazily.

The names are the packages under ``orchestrator/providers/`` (``paths.provider_names``): adding
a cloud means adding ``providers/<name>/`` (whose ``__init__`` defines the ``Provider`` subclass
with that ``name``), ``terraform/modules/<name>_gpu_cluster/``, ``templates/terraform/<name>/``
and ``data/catalog/<name>.yaml``; nothing here or in core code changes (docs/providers.md).
"""

from __future__ import annotations

from importlib import import_module

from .. import paths
from ..errors import UsageError
from .base import Provider


def names() -> list[str]:
    """Every provider name, renderable or not."""
    return list(paths.provider_names())


def provider_class(name: str) -> type[Provider]:
    """The ``Provider`` subclass that ``providers/<name>/__init__.py`` defines for ``name``."""
    if name not in paths.provider_names():
        raise UsageError(f"unknown provider '{name}' (known: {', '.join(names())})")
    module = import_module(f"{__package__}.{name}")
    found = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Provider) and obj.__module__ == module.__name__
        and getattr(obj, "name", None) == name
    ]
    if len(found) != 1:
        raise RuntimeError(f"{module.__name__} must define exactly one Provider subclass named '{name}'")
    return found[0]


def renderable() -> list[str]:
    return [name for name in names() if provider_class(name).renderable]


def get(name: str) -> Provider:
    cls = provider_class(name)
    if not cls.renderable:
        raise UsageError(
            f"provider '{name}' cannot be rendered or applied yet (available: {', '.join(renderable())})",
            hint="the blueprint is valid; support for this provider is on the roadmap (docs/providers.md)",
        )
    return cls()
