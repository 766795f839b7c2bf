"""Rollout files: several environments, their order (``after:``), parallelism and failure policy.

A rollout file (BLUEPRINT.md, "A rollout file") is read with the same bounded YAML reader as a
blueprint and checked the same way: every problem located at ``file:line:col`` with its field
path, all problems at once (``BlueprintError``, exit 2). Each environment's blueprint is loaded
and validated too: its ``name`` is what ``after:`` refers to. An unknown ``after:`` name and a
cycle are located at the ``after`` entry and name both environments.

``expand(paths)`` turns command-line arguments (files, folders, a rollout file) into one
:class:`Rollout`; a folder contributes its ``*.yaml``/``*.yml`` files, except rollout files and
files whose name starts with ``_`` (bases for ``extends``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.blueprint.files import FileProblem, read_text
from orchestrator.blueprint.yamlpos import Positions, format_path, parse, printable
from orchestrator.errors import BlueprintError, Problem, UsageError

if TYPE_CHECKING:
    from orchestrator.blueprint.loader import Check

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,38}$")
KEYS = ("rollout", "name", "environments", "max_parallel", "on_failure")
ENV_KEYS = ("path", "after")
ON_FAILURE = ("stop", "continue")
MAX_ENVIRONMENTS = 500


@dataclass
class RolloutEnv:
    """One environment of a rollout: its blueprint file, its name and what must finish first."""

    name: str
    path: Path
    after: tuple[str, ...] = ()
    provider: str = ""
    loaded: Any = field(default=None, repr=False, compare=False)  # the LoadedBlueprint


@dataclass
class Rollout:
    name: str
    environments: list[RolloutEnv]
    max_parallel: int = 4
    on_failure: str = "stop"
    path: Path | None = None  # None: made from files given on the command line

    def env(self, name: str) -> RolloutEnv:
        return next(e for e in self.environments if e.name == name)


def is_rollout(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file whose top-level mapping has a ``rollout`` key."""
    p = Path(path)
    try:  # is_file() raises for EACCES on a parent: the loader reports that in its own words
        if not p.is_file() or p.suffix not in (".yaml", ".yml"):
            return False
    except OSError:
        return False
    try:
        text = read_text(p)
    except FileProblem:
        return False
    return re.search(r"^rollout\s*:", text, re.MULTILINE) is not None


def expand(paths: list[Path], name: str = "files", max_parallel: int = 4, checks: Sequence[Check] = ()) -> Rollout:
    """One rollout from command-line arguments: a single rollout file as it is; otherwise every
    blueprint given or found in a given folder, independent of each other."""
    if len(paths) == 1 and is_rollout(paths[0]):
        return load_rollout(paths[0], checks)
    files: list[Path] = []
    for p in paths:
        if is_folder(p):
            files.extend(folder_files(p))
        elif is_rollout(p):
            raise UsageError(f"{printable(str(p))} is a rollout file: give it alone")
        else:
            files.append(p)
    problems: list[Problem] = []
    envs = [e for e in (_load_env(f, printable(str(f)), None, problems, checks) for f in files) if e is not None]
    _check_unique(envs, problems, None)
    _check_outputs(envs, problems)
    _check_bursting(envs, problems, checks)
    if problems:
        raise BlueprintError(_sorted(problems))
    return Rollout(name, envs, max_parallel=max_parallel)


def is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder of blueprints (False when it cannot even be looked at)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def folder_files(folder: Path) -> list[Path]:
    """The blueprints of a folder: ``*.yaml``/``*.yml``, not rollout files, not ``_*`` bases."""
    found = sorted(q for q in folder.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file()
                   and not q.name.startswith("_") and not is_rollout(q))
    if not found:
        raise UsageError(f"{printable(str(folder))}: no blueprint files (*.yaml) in this folder")
    return found


def load_rollout(path: str | os.PathLike[str], checks: Sequence[Check] = ()) -> Rollout:
    """Read and check a rollout file and every blueprint it names."""
    path = Path(path)
    display = printable(str(path))
    try:
        text = read_text(path)
    except FileProblem as exc:
        if exc.line is not None and exc.column is not None:
            raise BlueprintError([Problem(display, exc.line, exc.column, "", exc.reason)]) from None
        raise UsageError(f"cannot read rollout {display}: {exc.reason}",
                         hint="check the path given on the command line") from None
    parsed = parse(text, display)
    problems = list(parsed.problems)
    data, pos = parsed.data, parsed.positions
    if not isinstance(data, dict):
        if not problems:
            problems.append(Problem(display, 1, 1, "", "a rollout file must be a mapping of keys to values"))
        raise BlueprintError(_sorted(problems))
    rollout = _check_top(data, pos, display, problems)
    envs = _read_envs(path, data.get("environments"), pos, display, problems, checks)
    _check_unique(envs, problems, pos)
    _check_after(envs, pos, problems)
    _check_outputs(envs, problems)
    _check_bursting(envs, problems, checks)
    if problems:
        raise BlueprintError(_sorted(problems))
    rollout.environments = envs
    rollout.path = path
    return rollout


def _at(pos: Positions, path: tuple[Any, ...], message: str, where: str = "value") -> Problem:
    file, line, col = pos.locate(path, where)
    return Problem(file, line, col, format_path(path), printable(message))


def _check_top(data: dict, pos: Positions, display: str, problems: list[Problem]) -> Rollout:
    for key in data:
        if key not in KEYS:
            problems.append(_at(pos, (key,), f"unknown field; allowed: {', '.join(KEYS)}", "key"))
    if data.get("rollout") != 1 or isinstance(data.get("rollout"), bool):
        problems.append(_at(pos, ("rollout",), "must be 1 (the rollout format version)"))
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        where = ("name",) if "name" in data else ()
        problems.append(_at(pos, where if where else ("name",), "required: [a-z][a-z0-9-]{1,38}",
                            "value" if where else "parent"))
        name = "rollout"
    max_parallel = data.get("max_parallel", 4)
    if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or not 1 <= max_parallel <= 64:
        problems.append(_at(pos, ("max_parallel",), "must be a whole number from 1 to 64"))
        max_parallel = 1
    on_failure = data.get("on_failure", "stop")
    if on_failure not in ON_FAILURE:
        problems.append(_at(pos, ("on_failure",), "must be stop or continue"))
        on_failure = "stop"
    return Rollout(name, [], max_parallel, on_failure)


def _read_envs(path: Path, items: Any, pos: Positions, display: str, problems: list[Problem],
               checks: Sequence[Check] = ()) -> list[RolloutEnv]:
    if not isinstance(items, list) or not items:
        where = "value" if items is not None else "parent"
        problems.append(_at(pos, ("environments",), "required: a list of {path, after}", where))
        return []
    if len(items) > MAX_ENVIRONMENTS:
        problems.append(_at(pos, ("environments",), f"at most {MAX_ENVIRONMENTS} environments"))
        return []
    envs = []
    for i, item in enumerate(items):
        here = ("environments", i)
        if not isinstance(item, dict):
            problems.append(_at(pos, here, "must be a mapping with path (and optionally after)"))
            continue
        for key in item:
            if key not in ENV_KEYS:
                problems.append(_at(pos, (*here, key), "unknown field; allowed: path, after", "key"))
        file, after = item.get("path"), item.get("after", [])
        if not isinstance(file, str) or not file.strip():
            problems.append(_at(pos, (*here, "path"), "required: the blueprint's path, relative to this file",
                                "value" if "path" in item else "parent"))
            continue
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            problems.append(_at(pos, (*here, "after"), "must be a list of environment names"))
            after = []
        env = _load_env(path.parent / file, printable(os.path.join(os.path.dirname(display), file)),
                        pos.locate((*here, "path")), problems, checks)
        if env is not None:
            env.after = tuple(after)
            env.where = here  # type: ignore[attr-defined]
            envs.append(env)
    return envs


def _load_env(file: Path, display: str, origin: tuple[str, int, int] | None,
              problems: list[Problem], checks: Sequence[Check] = ()) -> RolloutEnv | None:
    from orchestrator.blueprint.loader import load

    try:
        loaded = load(file, checks=checks)
    except BlueprintError as exc:
        problems.extend(exc.problems)
        return None
    except UsageError as exc:
        if origin is None:
            raise
        problems.append(Problem(*origin, "path", printable(exc.message)))
        return None
    return RolloutEnv(loaded.model.name, file, (), loaded.model.provider, loaded)


def _check_unique(envs: list[RolloutEnv], problems: list[Problem], pos: Positions | None) -> None:
    seen: dict[str, RolloutEnv] = {}
    for env in envs:
        if env.name in seen:
            where = getattr(env, "where", None)
            file, line, col = pos.locate((*where, "path")) if pos is not None and where else (str(env.path), 1, 1)
            problems.append(Problem(file, line, col, "name", printable(
                f"environment {env.name} appears twice ({seen[env.name].path} and {env.path})")))
        seen[env.name] = env


def _check_after(envs: list[RolloutEnv], pos: Positions, problems: list[Problem]) -> None:
    names = {e.name for e in envs}
    for env in envs:
        for j, dep in enumerate(env.after):
            if dep not in names:
                known = ", ".join(sorted(names))
                problems.append(_at(pos, (*env.where, "after", j),  # type: ignore[attr-defined]
                                    f"environment {env.name}: after names {dep}, which is not in this rollout "
                                    f"(environments: {known})"))
            elif dep == env.name:
                problems.append(_at(pos, (*env.where, "after", j),  # type: ignore[attr-defined]
                                    f"environment {env.name} cannot come after itself"))
    cycle = find_cycle({e.name: tuple(d for d in e.after if d in names and d != e.name) for e in envs})
    if cycle:
        env = next(e for e in envs if e.name == cycle[0])
        j = env.after.index(cycle[1]) if cycle[1] in env.after else 0
        problems.append(_at(pos, (*env.where, "after", j),  # type: ignore[attr-defined]
                            f"dependency cycle: {' after '.join(cycle)} (environment {cycle[0]} "
                            f"and environment {cycle[1]} each wait for the other)"))


def _check_outputs(envs: list[RolloutEnv], problems: list[Problem]) -> None:
    """An environment that reads ``${output:OTHER.NAME}`` of another environment of the rollout
    must come after it (directly or through others), or it would read stale or missing outputs,
    and name an output that environment's provider declares (blueprint/placeholders.py). An
    environment outside the rollout is read from its last run. Located at the reference."""
    from orchestrator.blueprint import placeholders

    after = {e.name: set(e.after) for e in envs}
    providers = {e.name: e.provider for e in envs}

    def before(name: str, seen: set[str]) -> set[str]:
        for dep in after.get(name, set()) - seen:
            seen.add(dep)
            before(dep, seen)
        return seen

    for env in envs:
        for ref in getattr(env.loaded, "references", ()):
            if ref.env in after and ref.env not in before(env.name, set()):
                file, line, col = env.loaded.locate(ref.path)
                problems.append(Problem(file, line, col, format_path(ref.path), printable(
                    f"environment {env.name} reads {ref.text} but does not come after {ref.env}: "
                    f"add {ref.env} to its after: in the rollout file")))
            why = placeholders.problem(ref, providers[ref.env]) if ref.env in providers else None
            if why is not None:
                file, line, col = env.loaded.locate(ref.path)
                problems.append(Problem(file, line, col, format_path(ref.path), printable(why)))


def _check_bursting(envs: list[RolloutEnv], problems: list[Problem], checks: Sequence[Check] = ()) -> None:
    """Teams that burst to other environments of the rollout, and the workers that take them,
    agree (``blueprint/hybrid.py``, docs/hybrid.md); located at the ``burst``/``burst_from`` entry.
    A check that carries ``burst_placement`` (the render's placement proof) is asked too."""
    from orchestrator.blueprint.hybrid import rollout_problems

    if any(e.loaded.model.burst_from or any(t.burst for t in e.loaded.model.teams) for e in envs):
        placement = next((c.burst_placement for c in checks if hasattr(c, "burst_placement")), None)  # type: ignore
        problems.extend(rollout_problems(envs, placement))


def find_cycle(deps: dict[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle in ``deps`` (name -> names it comes after) as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in deps.get(n, ()):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in deps:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line, p.column))
