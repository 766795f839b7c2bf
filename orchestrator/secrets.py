"""Resolve the blueprint's secret references (``${env:NAME}``, ``${file:path}``) at plan/up time.

Rendering never resolves them, so rendered files only ever carry references. Values live in
memory only; ``records.redact`` removes them from any text that is stored or printed.
"""

from __future__ import annotations

import os
from pathlib import Path

from .blueprint.models import SECRET_REF
from .errors import BlueprintError, Problem


def resolve(loaded) -> dict[str, str]:
    """``{secret name: value}``; every unresolvable reference is reported, located, at once."""
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for name, ref in loaded.model.secrets.items():
        match = SECRET_REF.match(ref)
        assert match is not None  # the model validated the form
        kind, arg = match.groups()
        value, why = _lookup(kind, arg, loaded.path.parent)
        if value is None:
            file, line, col = loaded.locate(("secrets", name))
            problems.append(Problem(file, line, col, f"secrets.{name}", why))
        else:
            values[name] = value
    if problems:
        raise BlueprintError(problems, hint="secret references are resolved by plan/up/down (render never needs them)")
    return values


def _lookup(kind: str, arg: str, base: Path) -> tuple[str | None, str]:
    if kind == "env":
        value = os.environ.get(arg)
        return (value, "") if value is not None else (None, f"environment variable {arg} is not set")
    path = Path(arg).expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_text().rstrip("\n"), ""
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
