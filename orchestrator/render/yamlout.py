"""Deterministic block YAML for manifests: byte for byte what PyYAML writes, several times faster.

``dump(obj)`` returns exactly ``yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=True,
default_flow_style=False, allow_unicode=True, width=1000)`` (the format of every manifest infra
renders; golden files hold it). PyYAML spends most of that call in its Python representer and
resolver, node by node; manifests are JSON-shaped data (dicts with string keys, lists, strings,
numbers, booleans, null) whose keys and values repeat across objects and environments. So
this walks the data once and writes each scalar as PyYAML would write it there, which is
decided once per distinct value and remembered:

* a string made of name characters that resolves to a string (not ``true``, ``1.5``, ``null``,
  ``2024-01-01`` ...) is written plain, as PyYAML does;
* any other string, and any float, is written by PyYAML itself once (a one-entry mapping) and
  the result reused; a value PyYAML writes over several lines, or as a complex key, or on a
  line near the width where PyYAML would fold it, makes the whole object go through PyYAML.

Anything else (another type, an empty document, a top level that is not a mapping) goes
through PyYAML too, so the result is always PyYAML's. ``tests/unit/test_yamlout.py`` holds it
to that on hostile input.
"""

from __future__ import annotations

import re
from typing import Any

WIDTH = 1000
# Leaves room under WIDTH: PyYAML folds a scalar only once a line runs past the width.
_MAX_LINE = WIDTH - 10
_NAME = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./=+@-]*(?::[A-Za-z0-9_./=+@-]+)*\Z")
_STR_TAG = "tag:yaml.org,2002:str"
_MAX_MEMO = 200_000
_BREAKS = re.compile("[\r\n\x85\u2028\u2029]")  # line breaks to YAML: text after one is indented


def _one_line(text: str, prefix: str, suffix: str) -> str | None:
    """``text`` less ``prefix`` and ``suffix`` when PyYAML wrote it on one line, else None."""
    if not text.startswith(prefix) or not text.endswith(suffix) or text.startswith("? "):
        return None
    body = text[len(prefix):len(text) - len(suffix)]
    return None if _BREAKS.search(body) else body

_values: dict[str, str | None] = {}   # string -> how PyYAML writes it as a value (None: not on one line)
_keys: dict[str, str | None] = {}     # string -> how PyYAML writes it as a mapping key
_floats: dict[float, str | None] = {}


class _Fallback(Exception):
    """This object needs PyYAML itself."""


def _yaml():
    import yaml

    return yaml


def _pyyaml(obj: Any) -> str:
    yaml = _yaml()
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(obj, Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=WIDTH)


_resolver = None


def _resolves_to_str(value: str) -> bool:
    global _resolver
    if _resolver is None:
        _resolver = _yaml().resolver.Resolver()
    return _resolver.resolve(_yaml().ScalarNode, value, (True, False)) == _STR_TAG


def _memo(table: dict, key: Any, compute) -> str | None:
    try:
        return table[key]
    except KeyError:
        pass
    if len(table) > _MAX_MEMO:
        table.clear()
    table[key] = found = compute(key)
    return found


def _value_text(value: str) -> str | None:
    if _NAME.match(value) and _resolves_to_str(value):
        return value
    return _one_line(_pyyaml({"k": value}), "k: ", "\n")  # None: several lines, PyYAML writes the object


def _key_text(key: str) -> str | None:
    if len(key) < 100 and _NAME.match(key) and _resolves_to_str(key):  # longer: maybe a complex key
        return key
    return _one_line(_pyyaml({key: 0}), "", ": 0\n")


def _float_text(value: float) -> str | None:
    return _one_line(_pyyaml({"k": value}), "k: ", "\n")


def _scalar(value: Any) -> str:
    kind = type(value)
    if kind is str:
        text = _memo(_values, value, _value_text)
    elif kind is bool:
        return "true" if value else "false"
    elif kind is int:
        return str(value)
    elif value is None:
        return "null"
    elif kind is float:
        text = _memo(_floats, value, _float_text)
    else:
        raise _Fallback
    if text is None:
        raise _Fallback
    return text


def _key(key: Any) -> str:
    if type(key) is not str:
        raise _Fallback
    text = _memo(_keys, key, _key_text)
    if text is None:
        raise _Fallback
    return text


def _mapping(data: dict, indent: int, out: list[str], inline: bool) -> None:
    """``inline``: the first key continues the current line (after ``- ``)."""
    pad = " " * indent
    first = inline
    for k in sorted(data):
        value = data[k]
        lead = "" if first else pad
        first = False
        key = _key(k)
        kind = type(value)
        if kind is dict:
            if value:
                out.append(f"{lead}{key}:\n")
                _mapping(value, indent + 2, out, False)
            else:
                out.append(f"{lead}{key}: {{}}\n")
        elif kind is list:
            if value:
                out.append(f"{lead}{key}:\n")
                _sequence(value, indent, out, False)  # PyYAML does not indent a list under its key
            else:
                out.append(f"{lead}{key}: []\n")
        else:
            out.append(f"{lead}{key}: {_scalar(value)}\n")


def _sequence(items: list, indent: int, out: list[str], inline: bool) -> None:
    pad = " " * indent
    first = inline
    for value in items:
        lead = "" if first else pad
        first = False
        kind = type(value)
        if kind is dict:
            if value:
                out.append(f"{lead}- ")
                _mapping(value, indent + 2, out, True)
            else:
                out.append(f"{lead}- {{}}\n")
        elif kind is list:
            if value:
                out.append(f"{lead}- ")
                _sequence(value, indent + 2, out, True)
            else:
                out.append(f"{lead}- []\n")
        else:
            out.append(f"{lead}- {_scalar(value)}\n")


def dump(obj: Any) -> str:
    """``obj`` as PyYAML's block YAML (see the module docstring), keys sorted."""
    if type(obj) is not dict or not obj:
        return _pyyaml(obj)
    out: list[str] = []
    try:
        _mapping(obj, 0, out, False)
    except (_Fallback, RecursionError):
        return _pyyaml(obj)
    text = "".join(out)
    if len(text) > _MAX_LINE and max(map(len, text.split("\n"))) > _MAX_LINE:  # PyYAML might fold it
        return _pyyaml(obj)
    return text
