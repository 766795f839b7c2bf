"""What a rollout's results look like for people and machines: the final table's rows, a
Markdown summary fit for a pull-request comment, and JSON. Pure: strings and dicts only."""

from __future__ import annotations

from typing import Any

from ..blueprint.rollout import Rollout
from .scheduler import EnvResult

_MARK = {"success": "✅", "no-changes": "✅", "drift": "⚠️", "failed": "❌", "skipped": "⏭️", "cancelled": "⏹️",
         "interrupted": "⏹️", "not-started": "⏸️"}


def changes_text(r: EnvResult) -> str:
    """The plan's counts, marked ``(with N placeholders)`` when outputs of an environment not
    applied yet stood in (blueprint/placeholders.py)."""
    marks = r.extra.get("placeholders") or []
    text = _counts(r)
    return f"{text} (with {len(marks)} placeholder{'s' if len(marks) != 1 else ''})" if marks else text


def placeholder_lines(r: EnvResult) -> list[str]:
    """One line per placeholder: ``FIELD = VALUE for REFERENCE (ENV has no outputs yet)``."""
    return [f"{m['field']} = {m['value']} for {m['reference']} ({m['environment']} has no outputs yet)"
            for m in r.extra.get("placeholders") or []]


def _counts(r: EnvResult) -> str:
    c = r.changes or {}
    if "drift" in c:
        return f"drift: {len(c['drift'])}" if c.get("has_changes") else "no drift"
    if not c:
        return "-"
    if not c.get("has_changes"):
        return "no changes"
    text = f"+{c.get('add', 0)} ~{c.get('change', 0)} -{c.get('destroy', 0)}"
    if "applied" not in c:  # a plan, or an apply that finished
        return text
    done = c["applied"]
    if not done:  # failed after planning, before applying
        return f"{text} planned, not applied"
    return f"+{done.get('add', 0)} ~{done.get('change', 0)} -{done.get('destroy', 0)} applied of {text} planned"


def rows(results: list[EnvResult]) -> list[tuple[str, str, str, str, str]]:
    """(environment, provider, result, duration, changes) per environment."""
    out = []
    for r in results:
        d = r.duration
        out.append((r.name, r.provider, r.result, "-" if d is None else f"{d:.1f}s", changes_text(r)))
    return out


def cost_text(r: EnvResult) -> str:
    """``est. monthly at max: $X (was $Y)`` when the plan's estimate has a total (docs/cost.md)."""
    from ..cost import money

    est = r.extra.get("cost") or {}
    now = (est.get("total") or {}).get("configured_max")
    if not est.get("estimate") or now is None:
        return ""
    was = est.get("was_max")
    return f"est. monthly at max: {money(now, est['currency'])}" + (
        f" (was {money(was, est['currency'])})" if was is not None else "")


def markdown(rollout: Rollout, command: str, results: list[EnvResult]) -> str:
    """``infra plan --format markdown``: per environment, the changes by resource type."""
    lines = [f"### infra {command}: {rollout.name} ({len(results)} environment"
             f"{'s' if len(results) != 1 else ''})", "",
             "| environment | provider | result | changes |", "|---|---|---|---|"]
    for name, provider, result, _, changes in rows(results):
        lines.append(f"| `{name}` | {provider} | {_MARK.get(result, '')} {result} | {changes} |")
    for r in results:
        lines += ["", f"<details><summary><code>{r.name}</code>: {changes_text(r)}</summary>", ""]
        if r.error:
            lines += [f"> {_cell(r.error)}", ""]
        if r.extra.get("render"):
            lines += [f"render: {_cell(r.extra['render'])}", ""]
        if cost_text(r):
            lines += [cost_text(r), ""]
        by_type = (r.changes or {}).get("by_type") or {}
        if by_type:
            lines += ["| resource type | add | change | destroy |", "|---|--:|--:|--:|"]
            for rtype, counts in sorted(by_type.items()):
                lines.append(f"| `{rtype}` | " + " | ".join(str(counts.get(k, 0) or "") for k in
                                                          ("add", "change", "destroy")) + " |")
            lines.append("")
        for item in (r.changes or {}).get("drift") or []:
            lines.append(f"- drifted: `{item}`")
        if r.extra.get("placeholders"):
            lines += ["**Placeholders**: outputs of an environment not applied yet; `infra up` uses the real "
                      "values, once it is applied.", ""]
            lines += [f"- placeholder: `{m['field']}` = `{m['value']}` for `{m['reference']}` "
                      f"({m['environment']} has no outputs yet)" for m in r.extra["placeholders"]]
            lines.append("")
        lines.append("</details>")
    return "\n".join(lines) + "\n"


def as_json(rollout: Rollout, command: str, results: list[EnvResult]) -> dict[str, Any]:
    return {"rollout": rollout.name, "command": command,
            "environments": [r.as_json() for r in results]}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
