"""Which environments of a rollout a command runs: ``--include``/``--exclude`` name patterns and
``--changed-since REV`` (docs/rollouts.md, "Selecting environments").

``--changed-since REV`` selects the environments touched since REV: the files changed between the
merge base of REV and HEAD (``git diff REV...HEAD``), plus every uncommitted change and untracked
file, are matched against each environment's sources:

- its blueprint file and every file of its ``extends`` chain;
- the files its provider renders from, where they are in the repository: the Terraform module and
  templates (``terraform/modules/<module>/``, ``templates/terraform/<provider>/`` and
  ``templates/terraform/common/``; bare metal: ``ansible/``), and ``templates/kubernetes/``;
- its entry in the rollout file: an environment added to it, or whose ``after:`` changed (a
  rollout file that is new since REV, or that REV's version cannot be read, selects them all);

then every environment that depends on a selected one (``after:``, ``${output:}``), transitively.
``--include`` keeps the environments whose name matches one of its patterns (``fnmatch``), and
``--exclude`` drops those matching one of its patterns; a pattern that matches no environment is
an error (a typo would otherwise select nothing, or everything, silently). What is left keeps its
order: an environment that came after a left-out one comes after what that one came after.

Errors (a revision git does not know, no git work tree, a pattern matching nothing) are usage
errors: one line, exit 2.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ..blueprint.rollout import Rollout, RolloutEnv
from ..blueprint.yamlpos import parse, printable
from ..errors import UsageError


@dataclass(frozen=True)
class Selection:
    """What was asked on the command line; empty: every environment."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    changed_since: str | None = None

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude or self.changed_since)

    def describe(self) -> str:
        parts = [f"changed since {self.changed_since}"] if self.changed_since else []
        parts += [f"--include {p}" for p in self.include] + [f"--exclude {p}" for p in self.exclude]
        return ", ".join(parts)


@dataclass
class Selected:
    """The rollout cut down to the selected environments, and why each is in it."""

    rollout: Rollout
    reasons: dict[str, str]  # name -> why it was selected, in the rollout's order
    left_out: list[str]
    selection: Selection
    total: int
    base: str | None = None  # --changed-since: the merge base the diff starts from
    providers: dict[str, str] = field(default_factory=dict)  # every environment of the whole rollout

    def lines(self) -> list[str]:
        """What a person reads before the run: one line per selected environment, then the others."""
        base = f", from {self.base[:12]}" if self.base else ""
        head = (f"selected {len(self.reasons)} of {self.total} environment{'s' if self.total != 1 else ''} "
                f"({printable(self.selection.describe())}{base})" + (":" if self.reasons else ": none"))
        out = [head] + [f"  {name}: {why}" for name, why in self.reasons.items()]
        if self.left_out:
            out.append(f"not selected: {', '.join(self.left_out)}")
        return out

    def markdown(self) -> str:
        """The same, under the pull-request comment's table."""
        lines = ["", f"**Selected** {len(self.reasons)} of {self.total} environments "
                     f"({_md(self.selection.describe())}"
                     + (f", from `{self.base[:12]}`" if self.base else "") + "):", ""]
        lines += [f"- `{name}`: {_md(why)}" for name, why in self.reasons.items()] or ["- none"]
        if self.left_out:
            lines += ["", "Not selected: " + ", ".join(f"`{n}`" for n in self.left_out) + "."]
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {"include": list(self.selection.include), "exclude": list(self.selection.exclude),
                "changed_since": self.selection.changed_since, "base": self.base,
                "selected": dict(self.reasons), "not_selected": list(self.left_out)}


def select(rollout: Rollout, selection: Selection) -> Selected:
    """The environments of ``rollout`` that ``selection`` asks for (all when it is empty)."""
    names = [e.name for e in rollout.environments]
    providers = {e.name: e.provider for e in rollout.environments}
    base = None
    if selection.changed_since:
        reasons, base = changed(rollout, selection.changed_since)
    elif selection.include:
        reasons = {}
        for name in names:
            pattern = next((p for p in selection.include if fnmatchcase(name, p)), None)
            if pattern is not None:
                reasons[name] = f"matches --include {pattern}"
    else:
        reasons = {name: "not excluded" if selection.exclude else "every environment" for name in names}
    for option, patterns in (("--include", selection.include), ("--exclude", selection.exclude)):
        for pattern in patterns:
            if not any(fnmatchcase(name, pattern) for name in names):
                raise UsageError(f"{option} {printable(pattern)!r} matches no environment of rollout "
                                 f"{rollout.name} (environments: {', '.join(names)})",
                                 hint="patterns are shell-style (fnmatch) and match whole names: dev-*, *-eu")
    keep = {n for n in reasons
            if (not selection.include or any(fnmatchcase(n, p) for p in selection.include))
            and not any(fnmatchcase(n, p) for p in selection.exclude)}
    reasons = {n: reasons[n] for n in names if n in keep}
    return Selected(_cut(rollout, keep), reasons, [n for n in names if n not in keep], selection,
                    len(names), base, providers)


def _cut(rollout: Rollout, keep: set[str]) -> Rollout:
    """The rollout with only ``keep``; an ``after:`` on a left-out environment becomes an ``after:``
    on the kept ones that environment came after (so the order still holds)."""
    by_name = {e.name: e for e in rollout.environments}
    order = [e.name for e in rollout.environments]

    def kept_before(env: RolloutEnv) -> tuple[str, ...]:
        found, seen, stack = set(), set(), list(env.after)
        while stack:
            dep = stack.pop()
            if dep in seen or dep not in by_name:
                continue
            seen.add(dep)
            if dep in keep:
                found.add(dep)
            else:
                stack.extend(by_name[dep].after)
        return tuple(n for n in order if n in found)

    envs = [dataclasses.replace(e, after=kept_before(e)) for e in rollout.environments if e.name in keep]
    return dataclasses.replace(rollout, environments=envs)


# --- --changed-since -------------------------------------------------------------------------------

def changed(rollout: Rollout, rev: str) -> tuple[dict[str, str], str]:
    """``({environment: why}, merge base)``: what changed since ``rev``, and what depends on it."""
    if not rollout.environments:
        return {}, ""
    folder = Path(os.path.abspath(rollout.path.parent if rollout.path is not None
                                  else rollout.environments[0].path.parent))
    top = _top(folder)
    if not rev or rev.startswith("-"):
        raise UsageError(f"--changed-since {printable(rev)!r}: not a revision", hint="name a commit, branch or tag")
    if _git(top, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode != 0:
        raise UsageError(f"--changed-since {printable(rev)!r}: no such revision in {printable(str(top))}",
                         hint="name a commit, branch or tag git knows here (CI: fetch the base branch, "
                              "with enough history for the merge base)")
    found = _git(top, "merge-base", rev, "HEAD")
    base = found.stdout.strip() if found.returncode == 0 else _git(top, "rev-parse", f"{rev}^{{commit}}").stdout.strip()
    files = set(_names(top, "diff", "--name-only", "--no-renames", "-z", base, "HEAD"))
    files |= set(_names(top, "diff", "--name-only", "--no-renames", "-z", "HEAD"))
    files |= set(_names(top, "ls-files", "--others", "--exclude-standard", "-z"))
    reasons: dict[str, str] = {}
    for env in rollout.environments:
        why = touched(env, files, top)
        if why:
            reasons[env.name] = why
    if rollout.path is not None and _rel(rollout.path, top) in files:
        for name, why in _entries_changed(rollout, top, base).items():
            reasons.setdefault(name, why)
    return _with_dependents(rollout, reasons), base


def touched(env: RolloutEnv, files: set[str], top: Path) -> str | None:
    """Why ``env`` is touched by ``files`` (paths relative to the work tree ``top``), or None."""
    sources = list(getattr(env.loaded, "files", None) or [env.path])
    for i, path in enumerate(sources):
        rel = _rel(path, top)
        if rel in files:
            return f"{'blueprint' if i == 0 else 'extends'} {rel} changed"
    folders = [rel for rel in (_rel(p, top) for p in provider_sources(env.provider)) if rel is not None]
    hits = sorted(f for f in files if any(f.startswith(folder + "/") for folder in folders))
    if hits:
        more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
        return f"{env.provider} templates changed: {hits[0]}{more}"
    return None


def provider_sources(provider: str) -> list[Path]:
    """The folders ``provider``'s environments are rendered from (see the module's docstring)."""
    from .. import paths
    from ..providers.registry import provider_class

    module = provider_class(provider).terraform_module if provider in paths.provider_names() else None
    templates = paths.templates()
    own = ([paths.terraform_modules() / module, templates / "terraform" / provider, templates / "terraform" / "common"]
           if module else [paths.ansible()])
    return [*own, templates / "kubernetes"]


def _entries_changed(rollout: Rollout, top: Path, base: str) -> dict[str, str]:
    """Environments added to the rollout file since ``base``, or whose ``after:`` changed."""
    assert rollout.path is not None
    rel = _rel(rollout.path, top)
    everyone = {e.name: "the rollout file is new" for e in rollout.environments}
    shown = _git(top, "show", f"{base}:{rel}")
    if shown.returncode != 0:
        return everyone
    data = parse(shown.stdout, rel or "rollout").data
    items = data.get("environments") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return {name: "the rollout file changed" for name in everyone}
    folder = os.path.dirname(rel or "")
    before: dict[str, tuple[str, ...]] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            after = item.get("after") if isinstance(item.get("after"), list) else []
            where = _rel(top / os.path.normpath(os.path.join(folder, item["path"])), top)
            before[where or ""] = tuple(sorted(str(a) for a in after))
    out = {}
    for env in rollout.environments:
        where = _rel(env.path, top)
        if where not in before:
            out[env.name] = "added to the rollout file"
        elif before[where] != tuple(sorted(env.after)):
            out[env.name] = "its after: changed in the rollout file"
    return out


def _with_dependents(rollout: Rollout, reasons: dict[str, str]) -> dict[str, str]:
    """``reasons`` and every environment that depends on one of them, in the rollout's order."""
    names = {e.name for e in rollout.environments}
    edges: dict[str, list[tuple[str, str]]] = {}  # dependency -> [(dependent, how)]
    for env in rollout.environments:
        for dep in env.after:
            edges.setdefault(dep, []).append((env.name, f"after {dep}"))
        for ref in getattr(env.loaded, "references", ()) or ():
            if ref.env in names and ref.env != env.name:
                edges.setdefault(ref.env, []).append((env.name, f"reads {ref.text}"))
    out = dict(reasons)
    queue = list(reasons)
    while queue:
        dep = queue.pop(0)
        for name, how in edges.get(dep, []):
            if name not in out:
                out[name] = f"depends on {dep} ({how})"
                queue.append(name)
    return {e.name: out[e.name] for e in rollout.environments if e.name in out}


def _top(folder: Path) -> Path:
    found = _git(folder, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        raise UsageError(f"--changed-since needs a git work tree: {printable(str(folder))} is not in one",
                         hint="run it in a clone of the repository")
    return Path(os.path.realpath(found.stdout.strip()))


def _git(where: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except FileNotFoundError:
        raise UsageError("--changed-since needs git on PATH") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"--changed-since: git {args[0]} took longer than 60 s in {printable(str(where))}") from None


def _names(top: Path, *args: str) -> list[str]:
    found = _git(top, *args)
    if found.returncode != 0:
        first = (found.stderr.strip().splitlines() or ["failed"])[0]
        raise UsageError(f"--changed-since: git {args[0]} failed in {printable(str(top))}: {printable(first)}")
    return [n for n in found.stdout.split("\0") if n]


def _rel(path: Path | str, top: Path) -> str | None:
    """``path`` relative to the work tree (as git names it), or None when it is outside."""
    rel = os.path.relpath(os.path.realpath(path), top)
    return None if rel == ".." or rel.startswith("../") else rel


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
