"""The ``x-kubernetes-validations`` (CEL) rules of a CRD's schema, evaluated like the
apiextensions server does on every write of a custom resource; a failed rule is a 422.

Every rule of the stored CRDs is evaluated with ``cel-python`` (a general CEL interpreter, in
the ``test`` extra), none is translated by hand:

* a rule is checked where its schema node has a value (``self``), after the schema's
  ``default``s are filled in as the server's defaulting would;
* a transition rule (one that reads ``oldSelf``) only on an update, and only where the old
  object has a value at the same place: objects by field name, maps by key, lists only if
  ``x-kubernetes-list-type: map`` (by their ``x-kubernetes-list-map-keys``);
* at the root ``self.metadata`` holds only ``name`` and ``generateName``;
* a rule that fails to evaluate (a field it reads is missing) is an error too, as on a server.

Kubernetes' own CEL libraries (``quantity()``, ``isSorted()``, ``format.*``, ``optional``) are not
provided: no rule of the stored CRDs uses them (``tests/unit/test_kube_strict.py`` checks that
every one compiles). Never imports ``orchestrator``.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

try:
    import celpy
    from celpy import celtypes
except ImportError as exc:  # pragma: no cover - the test extra installs it
    raise ImportError("the Kubernetes test double needs cel-python (pip install -e '.[test]')") from exc

_OLD_SELF = re.compile(r"\boldSelf\b")


@functools.cache
def _env() -> Any:
    return celpy.Environment()


@functools.lru_cache(maxsize=512)
def program(rule: str) -> Any:
    env = _env()
    return env.program(env.compile(rule))


def rules(schema: Any) -> list[str]:
    """Every rule in a schema (for checks that they all compile)."""
    found: list[str] = []
    if isinstance(schema, dict):
        found += [r["rule"] for r in schema.get("x-kubernetes-validations") or []]
        for value in schema.values():
            found += rules(value)
    elif isinstance(schema, list):
        for value in schema:
            found += rules(value)
    return found


def _defaulted(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        out = dict(value)
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = _defaulted(out[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in out:
                if name not in props:
                    out[name] = _defaulted(out[name], extra)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_defaulted(v, schema["items"]) for v in value]
    return value


def _type(schema: dict[str, Any]) -> str:
    return schema.get("type") or ("object" if "properties" in schema else "")


def _check(value: Any, old: Any, correlated: bool, schema: dict[str, Any], path: str) -> list[str]:
    errors = []
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule["rule"]
        transition = bool(_OLD_SELF.search(text))
        if transition and not correlated:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        where = f'{path or "<root>"}: Invalid value: "{_type(schema)}"'
        try:
            result = program(text).evaluate(activation)
        except celpy.CELEvalError as exc:
            errors.append(f"{where}: {exc.args[0] if exc.args else exc} evaluating rule: {text}")
            continue
        if isinstance(result, celpy.CELEvalError):
            errors.append(f"{where}: {result.args[0] if result.args else result} evaluating rule: {text}")
        elif not (isinstance(result, celtypes.BoolType) and bool(result)):
            errors.append(f"{where}: {rule.get('message') or 'failed rule: ' + text}")
    return errors


def _walk(value: Any, old: Any, correlated: bool, schema: dict[str, Any], path: str) -> list[str]:
    if value is None:
        return []
    errors = _check(value, old, correlated, schema, path)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name, child in value.items():
            sub = props.get(name) if name in props else (extra if isinstance(extra, dict) else None)
            if not isinstance(sub, dict) or (not path and name == "metadata"):
                continue
            has_old = correlated and isinstance(old, dict) and name in old
            where = f"{path}.{name}" if name in props else f"{path}[{name}]"
            errors += _walk(child, old[name] if has_old else None, has_old, sub, where.lstrip("."))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        keys = schema.get("x-kubernetes-list-map-keys") or []
        is_map = schema.get("x-kubernetes-list-type") == "map" and keys
        for i, child in enumerate(value):
            match = None
            if correlated and is_map and isinstance(old, list) and isinstance(child, dict):
                match = next((o for o in old if isinstance(o, dict)
                              and all(o.get(k) == child.get(k) for k in keys)), None)
            errors += _walk(child, match, match is not None, schema["items"], f"{path}[{i}]")
    return errors


def _for_cel(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    return {**obj, "metadata": {k: meta[k] for k in ("name", "generateName") if k in meta}}


def cel_errors(obj: dict[str, Any], old: dict[str, Any] | None, schema: dict[str, Any]) -> list[str]:
    """The messages of the rules ``obj`` (an update of ``old`` when given) breaks."""
    new = _defaulted(_for_cel(obj), schema)
    before = _defaulted(_for_cel(old), schema) if old is not None else None
    return _walk(new, before, before is not None, schema, "")
