"""``${output:ENV.NAME}``: one environment's output (Terraform's, or what a bare-metal environment
exports: providers' ``exported_outputs``) as a value of another's blueprint.

A reference is a whole string value (nothing around it) and only a lookup: never evaluated. It is
allowed where a value from another environment makes sense and the blueprint stays valid without
it: ``tags.<key>``, ``node_pools[].labels.<key>`` and ``kubernetes.authorized_networks[]``
(e.g. the on-prem site's egress CIDR allowed to reach the cloud cluster's API).

``find`` lists the references of merged blueprint data (and the misplaced or malformed ones as
problems); ``resolve`` replaces each by the value a lookup gives (``plan``/``up``/``down``/
``drift`` do so, from the outputs ENV's last successful run left in the project); ``without``
drops them, for loads that only need the rest (``validate``, a rollout's order). An output
Terraform marks sensitive is never copied into another blueprint: that is an error.

A value is a string or a number; a list of them only as an item of ``authorized_networks``, whose
place it takes item by item (a bare-metal environment's ``egress_cidrs``: one /32 per host).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .yamlpos import Positions

OUTPUT_REF = re.compile(r"^\$\{output:([a-z][a-z0-9-]{1,38})\.([A-Za-z_][A-Za-z0-9_]{0,63})\}$")
ALLOWED = "tags.<key>, node_pools[].labels.<key> and kubernetes.authorized_networks[]"
_MARK = "${output:"


@dataclass(frozen=True)
class Ref:
    path: tuple[Any, ...]
    env: str
    name: str

    @property
    def text(self) -> str:
        return f"${{output:{self.env}.{self.name}}}"


@dataclass(frozen=True)
class EnvOutputs:
    """What a lookup knows of one environment: its outputs and which of them are sensitive."""

    values: Mapping[str, Any]
    sensitive: frozenset[str]
    #: ``plan`` of an environment of a rollout not applied yet: each reference (and its index among
    #: the blueprint's references) -> the placeholder that takes its place (blueprint/placeholders.py)
    placeholder: Callable[[Ref, int], str] | None = None


Lookup = Callable[[str], "EnvOutputs | None"]  # environment name -> its outputs, None: none yet


def _allowed(path: tuple[Any, ...]) -> bool:
    return ((len(path) == 2 and path[0] == "tags")
            or (len(path) == 4 and path[0] == "node_pools" and path[2] == "labels")
            or (len(path) == 3 and path[:2] == ("kubernetes", "authorized_networks")))


def find(data: Any) -> tuple[list[Ref], list[tuple[tuple[Any, ...], str]]]:
    """``(references, problems)``; a problem is ``(path, message)``."""
    refs: list[Ref] = []
    problems: list[tuple[tuple[Any, ...], str]] = []

    def walk(value: Any, path: tuple[Any, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*path, i))
        elif isinstance(value, str) and _MARK in value:
            match = OUTPUT_REF.match(value)
            if match is None:
                problems.append((path, "an output reference is a whole value: ${output:ENVIRONMENT.OUTPUT}"))
            elif not _allowed(path):
                problems.append((path, f"an output reference is allowed only in {ALLOWED}"))
            else:
                refs.append(Ref(path, *match.groups()))

    walk(data, ())
    return refs, problems


def resolve(data: dict[str, Any], refs: list[Ref], lookup: Lookup,
            ) -> tuple[dict[str, Any], list[tuple[tuple[Any, ...], str]], dict[tuple[Any, ...], tuple[Any, ...]]]:
    """A copy of ``data`` with each reference replaced by its value (left out when it has none, so
    that it is reported once), the problems, and where list items moved: ``{new path: path as
    written}`` for each item whose index changed (a list output takes several places)."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    values: dict[tuple[Any, ...], list[str] | None] = {}
    for index, ref in enumerate(refs):
        found = lookup(ref.env)
        problem, value = None, None
        if found is None:
            problem = (f"{ref.text}: environment {ref.env} has no outputs here yet "
                       f"(run `infra up` on it first; in a rollout, list it in after:)")
        elif ref.name not in found.values:
            known = ", ".join(sorted(found.values)) or "none"
            problem = f"{ref.text}: environment {ref.env} has no output {ref.name} (it has: {known})"
        elif ref.name in found.sensitive:
            problem = (f"{ref.text} is sensitive (or of unknown sensitivity): it is never "
                       "copied into another blueprint")
        elif found.placeholder is not None:
            value = [found.placeholder(ref, index)]
        else:
            problem, value = _value(ref, found.values[ref.name])
        if problem is not None:
            problems.append((ref.path, problem))
        values[ref.path] = value
    out, moved = _replaced(data, values)
    return out, problems, moved


def _value(ref: Ref, value: Any) -> tuple[str | None, list[str] | None]:
    """``(problem, the items that take the reference's place)``."""
    if _single(value):
        return None, [str(value)]
    if isinstance(value, list) and ref.path[:2] == ("kubernetes", "authorized_networks"):
        if all(_single(item) for item in value):
            return None, [str(item) for item in value]
        return f"{ref.text} is a list of other things than single values", None
    where = " (a list fits only in kubernetes.authorized_networks[])" if isinstance(value, list) else ""
    return f"{ref.text} is a {type(value).__name__}, not a single value{where}", None


def _single(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _replaced(data: dict[str, Any], values: dict[tuple[Any, ...], list[str] | None],
              ) -> tuple[dict[str, Any], dict[tuple[Any, ...], tuple[Any, ...]]]:
    """A copy of ``data`` with the value at each path replaced by its items (None: removed)."""
    out = copy.deepcopy(data)
    in_lists: dict[tuple[Any, ...], dict[int, list[str] | None]] = {}
    for path, items in values.items():
        parent = _get(out, path[:-1])
        if isinstance(parent, list):
            in_lists.setdefault(path[:-1], {})[path[-1]] = items
        elif items is None:
            del parent[path[-1]]
        else:
            parent[path[-1]] = items[0]
    moved: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for where, replaced in in_lists.items():
        parent = _get(out, where)
        new: list[Any] = []
        for i, item in enumerate(parent):
            for each in (replaced[i] or []) if i in replaced else [item]:
                if len(new) != i:
                    moved[(*where, len(new))] = (*where, i)
                new.append(each)
        parent[:] = new
    return out, moved


def relocated(positions: Positions, moved: dict[tuple[Any, ...], tuple[Any, ...]]) -> Positions:
    """``positions`` with each moved item located where it was written: the resolved blueprint's
    errors point at the reference (or the item) in the file."""
    if not moved:
        return positions
    values = dict(positions.values)
    for new, old in moved.items():
        values.pop(new, None)
        values.update({(*new, *p[len(old):]): loc for p, loc in positions.values.items() if p[:len(old)] == old})
    return Positions(values=values, keys=dict(positions.keys), collections=set(positions.collections))


def without(data: dict[str, Any], refs: list[Ref]) -> dict[str, Any]:
    """A copy of ``data`` without the referenced values (list items last first, so indexes hold)."""
    out = copy.deepcopy(data) if refs else data
    for ref in sorted(refs, key=lambda r: [str(p).zfill(8) for p in r.path], reverse=True):
        parent = out
        for key in ref.path[:-1]:
            parent = parent[key]
        del parent[ref.path[-1]]
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data
