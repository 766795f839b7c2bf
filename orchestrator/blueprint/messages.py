"""Friendly messages for pydantic validation errors.

``describe(error)`` turns one entry of ``ValidationError.errors()`` into the data path it is
about, a message that says what is allowed, and where to point: at the value, at the key
(unknown fields) or at the enclosing mapping (missing fields). Input values under ``secrets``
never appear in a message. Keys quoted in a message are escaped and cut (``yamlpos.printable``).
"""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from orchestrator.blueprint.models import Blueprint
from orchestrator.blueprint.yamlpos import printable

Where = Literal["value", "key", "parent"]
TOP_LEVEL_EXTRA = ("extends",)  # removed before validation, but a valid top-level key

PATTERNS = {
    r"^[a-z][a-z0-9-]{1,38}$": "must be 2 to 39 characters: lowercase letters, digits and '-', "
    "starting with a letter",
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$": "must be a Kubernetes name: at most 63 lowercase letters, "
    "digits and '-', starting and ending with a letter or digit",
    r"^[a-z0-9-]{2,40}$": "must be a region name such as us-east-1 (lowercase letters, digits and '-')",
    r"^1\.(2[6-9]|3[0-9])$": 'must be a Kubernetes version from "1.26" to "1.39", quoted (e.g. "1.30")',
    r"^[a-z_][a-z0-9_-]{0,31}$": "must be a Unix user name (lowercase letters, digits, '_' and '-')",
    r"^(all-disabled|all-balanced|all-\d+g\.\d+gb(\+me)?)$": "must be a MIG profile such as all-1g.10gb, "
    "all-balanced or all-disabled",
}

SIMPLE = {
    "missing": "required field is missing",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping (key: value pairs)",
    "model_type": "must be a mapping (key: value pairs)",
    "model_attributes_type": "must be a mapping (key: value pairs)",
    "list_type": "must be a list",
    "none_required": "must be empty",
}

BOUNDS = {
    "greater_than_equal": ("ge", ">="),
    "less_than_equal": ("le", "<="),
    "greater_than": ("gt", ">"),
    "less_than": ("lt", "<"),
}

_INDEXED = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)


def describe(error: dict[str, Any], data: Any) -> tuple[tuple[Any, ...], str, Where]:
    """``(path, message, where)`` for one pydantic error dict validated from ``data``."""
    loc = tuple(error["loc"])
    kind = error["type"]
    where: Where = "value"
    if loc and loc[-1] == "[key]":
        loc, where = loc[:-1], "key"
    if kind == "missing":
        where = "parent"
    if kind == "extra_forbidden":
        return loc, _unknown_field(loc), "key"
    message = _message(kind, error, loc)
    indexed = _INDEXED.match(message)
    if indexed and isinstance(_get(data, loc), list):
        loc, message = (*loc, int(indexed.group(1))), indexed.group(2)
    if loc and loc[0] == "secrets":
        message = _redact(message, error.get("input"))
    return loc, message, where


def _message(kind: str, error: dict[str, Any], loc: tuple[Any, ...]) -> str:
    ctx = error.get("ctx") or {}
    if kind in SIMPLE:
        return SIMPLE[kind]
    if kind in BOUNDS:
        name, op = BOUNDS[kind]
        return f"must be {op} {ctx.get(name)}"
    if kind == "string_type":
        value = error.get("input")
        quoted = isinstance(value, int | float)  # numbers and booleans: YAML read an unquoted scalar
        return "must be a string (put it in quotes)" if quoted else "must be a string"
    if kind == "literal_error":
        options = _options(str(ctx.get("expected", "")))
        return f"must be {options[0]}" if len(options) == 1 else f"must be one of: {', '.join(options)}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return PATTERNS.get(pattern, f"must match the pattern {pattern}")
    if kind == "too_short":
        n = ctx.get("min_length")
        return f"must have at least {n} item{'s' if n != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "string_too_short":
        n = ctx.get("min_length")
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    msg = str(error.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg[:1].lower() + msg[1:]


def _options(expected: str) -> list[str]:
    """``"'t4', 'l4' or 'a10'"`` -> ``["t4", "l4", "a10"]``."""
    parts = re.split(r", | or ", expected)
    return [p[1:-1] if len(p) >= 2 and p[0] == p[-1] == "'" else p for p in parts if p]


def _unknown_field(loc: tuple[Any, ...]) -> str:
    raw = str(loc[-1])
    name = printable(raw, 80)
    allowed = field_names(loc[:-1])
    if len(loc) == 1:
        allowed = [*allowed, *TOP_LEVEL_EXTRA]
    close = difflib.get_close_matches(raw[:100], allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown field '{name}' (did you mean '{close[0]}'?)"
    return f"unknown field '{name}' (allowed: {', '.join(allowed)})" if allowed else f"unknown field '{name}'"


def field_names(path: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at ``path`` (list indexes and dict keys are stepped over)."""
    tp: Any = Blueprint
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            tp = field.annotation
        elif get_origin(tp) in (list, dict):
            tp = get_args(tp)[-1]
        else:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _redact(message: str, value: Any) -> str:
    if isinstance(value, str) and value:
        return message.replace(value, "<redacted>")
    return message
