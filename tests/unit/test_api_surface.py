"""The public surface of ``orchestrator.api`` is a promise (docs/api.md, "Stability"): the names in
``__all__``, each function's parameters (name, kind, annotation, default) and return annotation,
each result type's fields, and each error's exit code are compared with a checked-in snapshot,
tests/unit/data/api_surface.json. A change there is a change for every caller.

To change the API on purpose: update docs/api.md, then rewrite the snapshot with

    INFRA_UPDATE_API_SURFACE=1 .venv/bin/python -m pytest tests/unit/test_api_surface.py

and commit the snapshot with the change (the diff is what a reviewer checks).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from orchestrator import api
from orchestrator.errors import InfraError

SNAPSHOT = Path(__file__).parent / "data" / "api_surface.json"
HOW = ("the public API of orchestrator.api changed. If that is on purpose, update docs/api.md and run "
       "`INFRA_UPDATE_API_SURFACE=1 .venv/bin/python -m pytest tests/unit/test_api_surface.py` to rewrite "
       f"{SNAPSHOT.relative_to(Path(__file__).parents[2])}; commit both. Otherwise put back what changed")


def _annotation(value: Any) -> str | None:
    if value is inspect.Parameter.empty:
        return None
    return value if isinstance(value, str) else inspect.formatannotation(value)


def _signature(fn: Any) -> dict[str, Any]:
    sig = inspect.signature(fn)
    return {
        "parameters": [
            {"name": p.name, "kind": p.kind.name, "annotation": _annotation(p.annotation),
             "default": None if p.default is inspect.Parameter.empty else repr(p.default)}
            for p in sig.parameters.values()
        ],
        "returns": _annotation(sig.return_annotation),
    }


def _describe(name: str, obj: Any) -> dict[str, Any]:
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return {"kind": "error", "bases": [b.__name__ for b in obj.__mro__[1:] if b not in (BaseException, object)],
                "exit_code": getattr(obj, "exit_code", None)}
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        return {"kind": "dataclass", "frozen": obj.__dataclass_params__.frozen,  # type: ignore[attr-defined]
                "fields": [{"name": f.name, "type": _annotation(f.type)} for f in dataclasses.fields(obj)],
                "methods": {m: _signature(getattr(obj, m)) for m in sorted(vars(obj))
                            if not m.startswith("_") and inspect.isfunction(getattr(obj, m))},
                "properties": sorted(m for m in vars(obj) if isinstance(vars(obj)[m], property))}
    if inspect.isfunction(obj):
        return {"kind": "function", **_signature(obj)}
    raise AssertionError(f"orchestrator.api.{name}: {type(obj).__name__} is not a function, dataclass or error")


def surface() -> dict[str, Any]:
    return {"__all__": list(api.__all__), "names": {n: _describe(n, getattr(api, n)) for n in sorted(api.__all__)}}


def test_the_public_surface_matches_the_snapshot() -> None:
    now = surface()
    if os.environ.get("INFRA_UPDATE_API_SURFACE"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
    saved = json.loads(SNAPSHOT.read_text())
    assert now["__all__"] == saved["__all__"], f"__all__ differs: {HOW}"
    for name in sorted(set(now["names"]) | set(saved["names"])):
        assert now["names"].get(name) == saved["names"].get(name), f"orchestrator.api.{name} differs: {HOW}"


def test_every_public_name_exists_and_is_documented() -> None:
    assert len(set(api.__all__)) == len(api.__all__)
    docs = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    for name in api.__all__:
        obj = getattr(api, name)  # AttributeError: a name in __all__ that is not defined
        assert not inspect.isfunction(obj) or obj.__doc__, f"orchestrator.api.{name} has no docstring"
        assert f"`{name}" in docs, f"orchestrator.api.{name} is not in docs/api.md"


def test_every_public_error_carries_a_documented_exit_code() -> None:
    documented = (Path(__file__).parents[2] / "docs" / "exit-codes.md").read_text()
    for name in api.__all__:
        obj = getattr(api, name)
        if inspect.isclass(obj) and issubclass(obj, InfraError):
            assert f"| {obj.exit_code} |" in documented, f"{name}: exit code {obj.exit_code} is not documented"


def test_the_snapshot_check_fails_on_a_changed_signature(monkeypatch) -> None:
    """The guard can fail: a parameter renamed in a function is caught."""
    saved = json.loads(SNAPSHOT.read_text())

    def plan(path, *, sandbox: bool = False):  # noqa: ANN001, ANN202 - a stand-in with a renamed parameter
        """A changed plan."""

    monkeypatch.setattr(api, "plan", plan)
    assert surface()["names"]["plan"] != saved["names"]["plan"]


def test_importing_the_api_stays_light() -> None:
    """``import orchestrator.api`` loads no Typer, click, rich, pydantic, YAML or boto3 (they load in the calls)."""
    heavy = ("typer", "click", "rich", "pydantic", "yaml", "boto3", "jinja2", "moto")
    code = ("import sys; import orchestrator.api; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
