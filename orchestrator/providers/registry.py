"""Provider registry: blueprint ``provider:`` name -> Provider class, imported lazily.

Adding a cloud means adding ``providers/<name>.py``, ``terraform/modules/<name>_gpu_cluster/``
and ``templates/terraform/<name>/``, then one line here. Core code never branches on the name.
"""

from __future__ import annotations

from importlib import import_module

from ..errors import UsageError
from .base import Provider

_PROVIDERS: dict[str, str] = {
    "aws": "orchestrator.providers.aws:AwsProvider",
    "baremetal": "orchestrator.providers.baremetal:BaremetalProvider",
}


def names() -> list[str]:
    return sorted(_PROVIDERS)


def get(name: str) -> Provider:
    target = _PROVIDERS.get(name)
    if target is None:
        raise UsageError(
            f"provider '{name}' cannot be rendered or applied yet (available: {', '.join(names())})",
            hint="the blueprint is valid; support for this provider is on the roadmap (docs/providers.md)",
        )
    module_name, _, cls_name = target.partition(":")
    cls = getattr(import_module(module_name), cls_name)
    return cls()
