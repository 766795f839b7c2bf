"""Google Cloud: blueprints validate (region, node pools, the instance types in data/catalog/gcp.yaml);
rendering and applying are not built yet (``renderable = False``: the registry refuses it)."""

from __future__ import annotations

from typing import Any, ClassVar

from ...blueprint.models import Blueprint
from ..base import Provider


class GcpProvider(Provider):
    name: ClassVar[str] = "gcp"
    renderable: ClassVar[bool] = False

    def terraform_variables(self, bp: Blueprint) -> dict[str, Any]:
        raise NotImplementedError("provider gcp cannot be rendered yet")
