"""Values only Terraform knows, written onto rendered objects at the handoff (pure).

The render is reviewed before anything exists, so a value the cloud invents (an AKS managed
identity's client ID) cannot be in it. Such an object carries ``infra.dev/bind-annotations``:
JSON mapping an annotation to the Terraform output that fills it (``name`` or ``name.key``). The
handoff fills them from the environment's outputs before it applies; the reviewed render says
exactly which annotation comes from which output.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..conventions import BIND_ANNOTATIONS
from ..errors import KubernetesError


def _lookup(outputs: dict[str, Any], ref: str) -> str | None:
    name, _, key = ref.partition(".")
    value = outputs.get(name)
    if key:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value else None


def bind_outputs(objs: list[dict[str, Any]], outputs: dict[str, Any]) -> list[dict[str, Any]]:
    """``objs`` with every bound annotation filled from ``outputs`` (the input is not changed)."""
    bound = []
    for obj in objs:
        meta = obj.get("metadata") or {}
        wanted = (meta.get("annotations") or {}).get(BIND_ANNOTATIONS)
        if not wanted:
            bound.append(obj)
            continue
        obj = copy.deepcopy(obj)
        where = f"{obj['kind']} {meta.get('namespace', '')}/{meta.get('name')}".replace(" /", " ")
        for annotation, ref in json.loads(wanted).items():
            value = _lookup(outputs, ref)
            if value is None:
                raise KubernetesError(f"{where}: annotation {annotation} comes from the Terraform output {ref}, "
                                      "which this environment's outputs lack",
                                      hint="run `infra up` (it applies Terraform and saves its outputs) first")
            obj["metadata"]["annotations"][annotation] = value
        bound.append(obj)
    return bound
