"""Azure: blueprints validate (region, node pools, the instance types in data/catalog/azure.yaml);
rendering and applying are not built yet (``renderable = False``: the registry refuses it)."""

from __future__ import annotations

from typing import Any, ClassVar

from ...blueprint.models import Blueprint
from ..base import Provider


class AzureProvider(Provider):
    name: ClassVar[str] = "azure"
    renderable: ClassVar[bool] = False

    def terraform_variables(self, bp: Blueprint) -> dict[str, Any]:
        raise NotImplementedError("provider azure cannot be rendered yet")
