"""From objects to deterministic YAML, and back.

Manifests are built as data (``manifests.py``) and dumped once, keys sorted, block style: same
input, same bytes. ``dump`` writes what ``yaml.dump`` with libyaml's emitter would
(``render/yamlout.py``, several times faster).
"""

from __future__ import annotations

from typing import Any


def dump(objs: list[dict[str, Any]]) -> str:
    """Multi-document YAML, keys sorted, one ``---`` between documents."""
    from ..yamlout import dump as dump_one

    return "---\n".join(dump_one(o) for o in objs)


def load_all(text: str) -> list[dict[str, Any]]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # same result, libyaml is faster
    return [doc for doc in yaml.load_all(text, Loader=loader) if doc]


def label(objs: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """Add ``labels`` to each object's own metadata (not to pod templates)."""
    for o in objs:
        meta = o.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return objs
