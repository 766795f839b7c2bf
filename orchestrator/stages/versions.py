"""The Kubernetes version step a blueprint asks for, against the version its hosts run.

kubeadm upgrades a cluster one minor version at a time and never downgrades it. The
kubernetes_node role reports the version each node runs; the configure stage keeps it per host in
``.infra/env/<name>/ansible/hosts.json`` (``kubernetes_version``). Before anything runs (``infra
validate``, and ``plan``, ``up``, ``configure``, ``drift``, a rollback, a rollout), a blueprint
whose ``kubernetes.version`` is older than the newest version recorded there, or more than one
minor above it, is bad input: one located line (exit 2). An environment with no recorded version
(a first ``up``, a cloud: its provider enforces its own rules) is not checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BlueprintError, Problem

if TYPE_CHECKING:
    from ..blueprint.loader import LoadedBlueprint

Version = tuple[int, ...]


def parse(text: str) -> Version | None:
    """``(1, 30, 2)`` for "1.30.2", "v1.30.2" or "1.30.2-1.1"; ``(1, 30)`` for "1.30"; None otherwise."""
    core = str(text).strip().removeprefix("v").split("-")[0].split("+")[0]
    parts = core.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def recorded(env_dir: Path) -> dict[str, str]:
    """Per host, the Kubernetes version it last reported (hosts.json); {} when none is recorded."""
    try:
        data = json.loads((Path(env_dir) / "ansible" / "hosts.json").read_text())
    except (OSError, ValueError):
        return {}
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, dict):
        return {}
    return {str(h): str(v["kubernetes_version"]) for h, v in sorted(hosts.items())
            if isinstance(v, dict) and v.get("kubernetes_version") and parse(str(v["kubernetes_version"]))}


def step_problem(wanted: str, running: dict[str, str]) -> str | None:
    """Why moving hosts that run ``running`` (host -> version) to ``wanted`` is refused, or None."""
    target = parse(wanted)
    if target is None or not running:
        return None
    host, newest = max(running.items(), key=lambda item: (parse(item[1]) or (0,), item[0]))
    have = parse(newest) or (0, 0)
    where = f"{host} runs {'.'.join(map(str, have))}"
    minor_have, minor_want = have[:2], target[:2]
    if minor_want < minor_have or (len(target) == 3 and minor_want == minor_have and target < have[:3]):
        return (f"{wanted} is older than the version the hosts run ({where}): kubeadm never downgrades a cluster; "
                f"give {'.'.join(map(str, have))} or newer")
    if minor_want[0] != minor_have[0] or minor_want[1] - minor_have[1] > 1:
        step = f"{have[0]}.{have[1] + 1}"
        return (f"{wanted} skips a minor version ({where}): kubeadm upgrades one minor version at a time; "
                f"give {step} first, run `infra up`, then {wanted}")
    return None


def check_version_step(loaded: LoadedBlueprint, env_dir: Path) -> None:
    """Raise a located :class:`BlueprintError` (exit 2) when the blueprint's ``kubernetes.version``
    would downgrade the hosts recorded under ``env_dir`` or skip a minor version."""
    bp = loaded.model
    why = step_problem(bp.kubernetes.version, recorded(env_dir))
    if why is None:
        return
    file, line, column = loaded.locate(("kubernetes", "version"))
    default = "" if _given(loaded) else " (the default: the blueprint gives no kubernetes.version)"
    raise BlueprintError([Problem(file, line, column, "kubernetes.version", why + default)],
                         hint="hosts.json under .infra/env/<name>/ansible/ keeps the version each host last reported "
                              "(docs/ansible.md, \"Upgrading Kubernetes\")")


def _given(loaded: LoadedBlueprint) -> bool:
    kubernetes = loaded.data.get("kubernetes") if isinstance(loaded.data, dict) else None
    return isinstance(kubernetes, dict) and "version" in kubernetes
