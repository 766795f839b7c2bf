"""YAML data shipped with infra (catalogs, version tables, node facts): ``yaml.safe_load``'s result,
parsed by libyaml where PyYAML has it (``CSafeLoader``: the same constructor, the same values,
dates included, about ten times faster). ``infra validate`` reads several of these files; with the
pure-Python parser they cost more than the validation itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load(path: Path) -> Any:
    import yaml

    return yaml.load(Path(path).read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
