"""``${output:ENV.NAME}``: one environment's Terraform output as a value of another's blueprint.

A reference is a whole string value (nothing around it) and only a lookup: never evaluated. It is
allowed where a value from another environment makes sense and the blueprint stays valid without
it: ``tags.<key>``, ``node_pools[].labels.<key>`` and ``kubernetes.authorized_networks[]``
(e.g. the on-prem site's egress CIDR allowed to reach the cloud cluster's API).

``find`` lists the references of merged blueprint data (and the misplaced or malformed ones as
problems); ``resolve`` replaces each by the value a lookup gives (``plan``/``up``/``down``/
``drift`` do so, from the outputs ENV's last successful run left in the project); ``without``
drops them, for loads that only need the rest (``validate``, a rollout's order). An output
Terraform marks sensitive is never copied into another blueprint: that is an error.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
            ) -> tuple[dict[str, Any], list[tuple[tuple[Any, ...], str]]]:
    """A copy of ``data`` with each reference replaced by its value (left out when it has none, so
    that it is reported once), and the problems."""
    out = copy.deepcopy(data)
    problems: list[tuple[tuple[Any, ...], str]] = []
    failed: list[Ref] = []
    for ref in refs:
        before = len(problems)
        found = lookup(ref.env)
        if found is None:
            problems.append((ref.path, f"{ref.text}: environment {ref.env} has no outputs here yet "
                                       f"(run `infra up` on it first; in a rollout, list it in after:)"))
        elif ref.name not in found.values:
            known = ", ".join(sorted(found.values)) or "none"
            problems.append((ref.path, f"{ref.text}: environment {ref.env} has no output {ref.name} "
                                       f"(it has: {known})"))
        elif ref.name in found.sensitive:
            problems.append((ref.path, f"{ref.text} is sensitive (or of unknown sensitivity): it is never "
                                       "copied into another blueprint"))
        else:
            value = found.values[ref.name]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                problems.append((ref.path, f"{ref.text} is a {type(value).__name__}, not a single value"))
            else:
                _set(out, ref.path, str(value))
        if len(problems) > before:
            failed.append(ref)
    return without(out, failed), problems


def without(data: dict[str, Any], refs: list[Ref]) -> dict[str, Any]:
    """A copy of ``data`` without the referenced values (list items last first, so indexes hold)."""
    out = copy.deepcopy(data) if refs else data
    for ref in sorted(refs, key=lambda r: [str(p).zfill(8) for p in r.path], reverse=True):
        parent = out
        for key in ref.path[:-1]:
            parent = parent[key]
        del parent[ref.path[-1]]
    return out


def _set(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value
