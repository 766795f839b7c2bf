"""What ``${output:ENV.NAME}`` may name, known before ENV is applied, and the placeholders ``plan``
uses for an environment of a rollout that has no outputs yet.

Each provider declares its outputs in its catalog file (``outputs:``, blueprint/catalog.py): the
root module's Terraform outputs, or what a bare-metal configure saves, each with its kind:
``name`` (a value fit for a Kubernetes label), ``text`` (any other single value: a URL, an ARN),
``list``, ``cidrs`` or ``map``. ``problem`` checks one reference against them: a name the provider
does not declare (with the closest declared name), a sensitive output, and a kind that cannot fit
where it is written (only ``cidrs`` in ``kubernetes.authorized_networks``, no ``text`` in a node
label, no list or map elsewhere). The rollout loader reports it located at the reference
(``infra validate ROLLOUT``, exit 2).

``Placeholders`` wraps the lookup ``plan`` uses: an environment with outputs gives them as usual;
an environment of the rollout that has none yet (a pull request adds it, or it was never applied)
gives a placeholder for each reference instead, typed by the field it fills, so the blueprint
still validates and renders: a CIDR of the documentation range 192.0.2.0/24 (RFC 5737) in
``kubernetes.authorized_networks``, ``known-after-ENV-applies`` (a valid tag and Kubernetes label
value) elsewhere. ``marks`` lists them for the plan's report. ``up`` never uses placeholders
(stages.commands refuses them for any command but ``plan``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from orchestrator.blueprint import catalog
from orchestrator.blueprint.outputs import EnvOutputs, Lookup, Ref
from orchestrator.blueprint.yamlpos import format_path

NETWORKS = ("kubernetes", "authorized_networks")
LISTS = ("list", "cidrs")


def declared(provider: str) -> dict[str, dict[str, Any]] | None:
    """``{output: {"kind", "sensitive"}}`` for ``provider``; None: it declares none (nothing checked)."""
    return catalog.outputs(provider)


def problem(ref: Ref, provider: str) -> str | None:
    """Why ``ref`` cannot name an output of an environment of ``provider`` (one line), or None."""
    outputs = declared(provider)
    if outputs is None:
        return None
    spec = outputs.get(ref.name)
    if spec is None:
        close = difflib.get_close_matches(ref.name, list(outputs), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        return (f"{ref.text}: environment {ref.env} ({provider}) declares no output {ref.name}{hint} "
                f"(its outputs: {', '.join(sorted(outputs))})")
    if spec["sensitive"]:
        return (f"{ref.text}: {provider} marks {ref.name} sensitive: it is never copied into another blueprint")
    kind = spec["kind"]
    if ref.path[:2] == NETWORKS:
        if kind != "cidrs":
            fits = ", ".join(sorted(n for n, s in outputs.items() if s["kind"] == "cidrs")) or "none"
            return (f"{ref.text} is not a list of CIDR blocks (declared {kind}): kubernetes.authorized_networks[] "
                    f"takes one (of environment {ref.env}: {fits})")
        return None
    if kind == "map":
        return f"{ref.text} is a map, not a single value"
    if kind in LISTS:
        return f"{ref.text} is a list, not a single value (a list fits only in kubernetes.authorized_networks[])"
    if kind == "text" and ref.path[0] == "node_pools":
        return (f"{ref.text} is not a Kubernetes label value (declared text: a URL, an ARN or a path); "
                f"put it in tags instead")
    return None


def value(ref: Ref, index: int) -> str:
    """The placeholder for ``ref``, the ``index``-th reference of its blueprint: valid where it is written."""
    if ref.path[:2] == NETWORKS:
        return f"192.0.2.{index % 254 + 1}/32"
    return f"known-after-{ref.env}-applies"  # at most 63 characters: environment names have at most 39


class Placeholders:
    """A lookup for ``plan``: ``lookup``'s outputs, else placeholders for an environment named in
    ``providers`` (the rollout's environments and their providers) that declares its outputs.
    ``used``: the environments it made placeholders for. One per environment's run."""

    def __init__(self, lookup: Lookup, providers: Mapping[str, str]) -> None:
        self.lookup = lookup
        self.providers = dict(providers)
        self.used: set[str] = set()

    def __call__(self, env: str) -> EnvOutputs | None:
        found = self.lookup(env)
        if found is not None or env not in self.providers:
            return found
        outputs = declared(self.providers[env])
        if outputs is None:
            return None
        self.used.add(env)
        return EnvOutputs({name: f"(known after {env} applies)" for name in outputs},
                          frozenset(name for name, spec in outputs.items() if spec["sensitive"]),
                          placeholder=value)


def marks(references: list[Ref], used: set[str]) -> list[dict[str, str]]:
    """The placeholders a load with ``Placeholders`` put in place: field, reference, value, environment."""
    return [{"field": format_path(ref.path), "reference": ref.text, "value": value(ref, i), "environment": ref.env}
            for i, ref in enumerate(references) if ref.env in used]
