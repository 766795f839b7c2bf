"""The order of a rollout: waves of environments that may run together, as text or Mermaid."""

from __future__ import annotations

from ..blueprint.rollout import Rollout


def deps(rollout: Rollout, reverse: bool = False) -> dict[str, set[str]]:
    """name -> names that must finish first (``reverse``: for ``down``, dependents go first)."""
    out: dict[str, set[str]] = {e.name: set() for e in rollout.environments}
    for env in rollout.environments:
        for dep in env.after:
            if reverse:
                out[dep].add(env.name)
            else:
                out[env.name].add(dep)
    return out


def waves(rollout: Rollout, reverse: bool = False) -> list[list[str]]:
    """Environments grouped by how soon they can start (each wave after the one before)."""
    left = deps(rollout, reverse)
    done: set[str] = set()
    result = []
    while left:
        ready = sorted(n for n, d in left.items() if d <= done)
        if not ready:  # the loader refuses cycles; never loop forever
            raise ValueError("dependency cycle")
        result.append(ready)
        done.update(ready)
        for n in ready:
            del left[n]
    return result


def text(rollout: Rollout, reverse: bool = False) -> str:
    lines = [f"rollout {rollout.name} (max_parallel {rollout.max_parallel}, on_failure {rollout.on_failure})"]
    by_name = {e.name: e for e in rollout.environments}
    for i, wave in enumerate(waves(rollout, reverse), 1):
        for name in wave:
            env = by_name[name]
            after = f"  after {', '.join(sorted(env.after))}" if env.after else ""
            lines.append(f"  {i}. {name} ({env.provider}){after}")
    return "\n".join(lines)


def mermaid(rollout: Rollout) -> str:
    lines = ["flowchart LR"]
    for env in rollout.environments:
        lines.append(f"  {_id(env.name)}[\"{env.name} ({env.provider})\"]")
    for env in rollout.environments:
        for dep in sorted(env.after):
            lines.append(f"  {_id(dep)} --> {_id(env.name)}")
    return "\n".join(lines)


def _id(name: str) -> str:
    return name.replace("-", "_")
