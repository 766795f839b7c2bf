"""Load a blueprint: YAML with positions, ``extends`` overlays, model validation, semantics.

``load(path)`` returns a :class:`LoadedBlueprint` or raises :class:`BlueprintError` carrying
every problem found, each located at the file, line and column where the value was written
(an inherited value points into the base file). Each problem is one line: file names, keys and
messages are escaped with :func:`yamlpos.printable`. Files are read within the bounds of
``files.py`` (regular files, 1 MiB); an ``extends`` chain holds at most ``MAX_EXTENDS`` files.

``extends`` stays in the repository: a relative path, resolved (symlinks too) under the *root*,
the git work tree holding the first blueprint loaded, else its folder (or ``root=``, or
``$INFRA_BLUEPRINT_ROOT``); absolute
paths and ``~`` are refused, and a path that leads out of the root is refused before anything
there is looked at, so the error tells nothing of what is outside. A file it names that is not a
blueprint fragment (not YAML, not a mapping, keys that are not blueprint fields) is reported by
name only: its content is never quoted. ``${file:}`` secrets whose file is here but cannot be
one (``secrets.file_problems``) are reported too, at their reference.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.blueprint import outputs, semantics
from orchestrator.blueprint.files import FileProblem, path_problem, read_text
from orchestrator.blueprint.messages import describe
from orchestrator.blueprint.models import Blueprint
from orchestrator.blueprint.yamlpos import Loc, Positions, format_path, parse, printable
from orchestrator.errors import BlueprintError, Problem, UsageError
from orchestrator.secrets import file_problems

# A rule from a layer above the model: the blueprint -> ``(field path, message)`` per problem.
Check = Callable[[Blueprint], Iterable[tuple[tuple[Any, ...], str]]]

Path_ = tuple[Any, ...]
MAX_EXTENDS = 16  # files in one extends chain, the blueprint itself included
ROOT_ENV = "INFRA_BLUEPRINT_ROOT"  # a declared root for extends (the operator's, not the blueprint's)
_RELATIVE = "extends takes a path relative to this file, inside {root}"


@dataclass
class LoadedBlueprint:
    """A validated blueprint with the merged data it came from and where each value was written."""

    model: Blueprint
    path: Path
    files: list[Path]
    data: dict[str, Any]
    sha256: str
    positions: Positions = field(repr=False, compare=False, default_factory=Positions)
    references: list[outputs.Ref] = field(default_factory=list)  # ${output:ENV.NAME} (outputs.py)

    def locate(self, path_tuple: Path_) -> tuple[str, int, int]:
        """``(file, line, column)`` of the value at ``path_tuple`` (or its nearest ancestor)."""
        return self.positions.locate(tuple(path_tuple))


def default_root(blueprint: Path) -> str:
    """Where ``extends`` may reach from ``blueprint``: the git work tree holding it (the repository
    whose pull requests review every file in it), else the blueprint's own folder."""
    folder = os.path.realpath(os.path.dirname(blueprint) or ".")
    here = folder
    while True:
        if os.path.lexists(os.path.join(here, ".git")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return folder
        here = parent


def load(path: str | Path, outputs_of: outputs.Lookup | None = None, checks: Sequence[Check] = (),
         root: str | Path | None = None) -> LoadedBlueprint:
    """Load, merge, validate and check the blueprint at ``path``. ``${output:ENV.NAME}`` references
    are resolved with ``outputs_of`` when it is given, else left out of the model (outputs.py).
    ``checks``: rules from layers above the model (the placement proof, which renders), run once
    every other rule has passed and reported located like them. ``root``: the folder every file
    ``extends`` names must be in (default ``$INFRA_BLUEPRINT_ROOT``, else ``default_root``)."""
    top = Path(path)
    declared = root if root is not None else os.environ.get(ROOT_ENV) or None
    reader = _Reader(_real(declared if declared is not None else default_root(top)))
    merged = reader.read(top, printable(str(path)), (), None)
    problems = reader.problems
    model = None
    refs: list[outputs.Ref] = []
    if merged is not None:
        data, positions = merged
        refs, found = outputs.find(data)
        moved: dict[Path_, Path_] = {}
        if outputs_of is not None:
            data, more_found, moved = outputs.resolve(data, refs, outputs_of)
            found += more_found
        else:
            data = outputs.without(data, refs)
        problems = problems + [_problem(positions, p, m) for p, m in found]
        pending = frozenset(r.path[:-1] for r in refs) if outputs_of is None else frozenset()
        model, more = _validate(data, outputs.relocated(positions, moved), pending, checks)
        reported = reader.invalid | {format_path(p) for p, _ in found}
        problems = problems + [p for p in more if not _under(p.path, reported)]
        if model is not None:
            base = Path(_real(top)).parent
            problems += [_problem(positions, ("secrets", name), why)
                         for name, why in file_problems(model.secrets, base)]
    if problems or model is None:
        raise BlueprintError(_sorted([_one_line(p) for p in problems]))
    return LoadedBlueprint(model, Path(_real(top)), reader.files, data, data_sha256(data), positions, refs)


def data_sha256(data: dict[str, Any]) -> str:
    """Hex sha256 of the canonical JSON form of ``data`` (independent of key order)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _validate(data: dict[str, Any], positions: Positions, pending: frozenset[tuple[Any, ...]] = frozenset(),
              checks: Sequence[Check] = ()) -> tuple[Blueprint | None, list[Problem]]:
    """Model validation, then (only if that passed) the semantic rules; ``pending``: the
    containers that references left out of this load fill at run time."""
    try:
        # The provider lets field validators check provider-specific forms (principals, zone names).
        model = Blueprint.model_validate(data, context={"provider": data.get("provider")})
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where_path, message, where = describe(error, data)
            problems.append(_problem(positions, where_path, message, where))
        return None, problems
    issues = semantics.check(model, pending)
    if not issues:
        issues = [issue for check in checks for issue in check(model)]
    return model, [_problem(positions, p, m) for p, m in issues]


def _problem(positions: Positions, path: Path_, message: str, where: str = "value") -> Problem:
    file, line, column = positions.locate(path, where)
    return Problem(file, line, column, format_path(path), message)


def _under(path: str, invalid: set[str]) -> bool:
    """Whether ``path`` is (inside) a value already reported as unreadable: one problem is enough."""
    return any(bad and (path == bad or path.startswith((bad + ".", bad + "["))) for bad in invalid)


def _one_line(problem: Problem) -> Problem:
    """The problem with every part escaped (messages may quote values): always exactly one line."""
    file, path, message = (printable(problem.file), printable(problem.path), printable(problem.message))
    return Problem(file, problem.line, problem.column, path, message)


def _real(path: str | Path) -> str:
    """The canonical path, or the absolute one when it has none (a symlink loop, a NUL byte)."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError, RuntimeError):
        return os.path.abspath(path)


def _sorted(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file, p.line, p.column))


class _Reader:
    """Reads a file and, recursively, the files it extends; collects problems."""

    def __init__(self, root: str) -> None:
        self.root = root  # canonical: every file extends names must resolve under it
        self.files: list[Path] = []
        self.problems: list[Problem] = []
        self.invalid: set[str] = set()  # formatted paths of values that could not be read

    def read(
        self, path: Path, display: str, chain: tuple[tuple[str, str], ...], origin: Loc | None
    ) -> tuple[dict[str, Any], Positions] | None:
        """Merged data and positions of ``path``, or None when it cannot be used."""
        text = self._text(path, display, origin)
        if text is None:
            return None
        self.files.append(Path(_real(path)))
        parsed = parse(text, display)
        data, positions = parsed.data, parsed.positions
        if origin is not None:  # a file extends names: a blueprint fragment, or reported by name only
            why = _not_a_fragment(parsed)
            if why:
                self._add(Problem(*origin, "extends", f"cannot use {display}: not a blueprint fragment ({why})"))
                return None
        self.problems.extend(parsed.problems)
        self.invalid.update(format_path(p) for p in parsed.invalid)
        if not isinstance(data, dict):
            if not parsed.problems:
                self._add(Problem(display, 1, 1, "", "a blueprint must be a mapping of keys to values"))
            return None
        if "rollout" in data:
            line, col = positions.keys[("rollout",)][1:]
            self._add(Problem(display, line, col, "rollout",
                              "this is a rollout file (several environments), not a blueprint"))
            return None
        if "extends" not in data:
            return data, positions
        return self._extend(path, display, chain, data, positions)

    def _extend(
        self, path: Path, display: str, chain: tuple[tuple[str, str], ...],
        data: dict[str, Any], positions: Positions,
    ) -> tuple[dict[str, Any], Positions] | None:
        origin = positions.locate(("extends",))
        target = data.pop("extends")
        for table in (positions.values, positions.keys):
            table.pop(("extends",), None)
        positions.collections.discard(("extends",))
        if not isinstance(target, str) or not target.strip():
            message = "must be the path of a blueprint file, relative to this one"
            self._add(Problem(*origin, "extends", message))
            return None
        here = (*chain, (_real(path), display))
        if len(here) >= MAX_EXTENDS:
            self._add(Problem(*origin, "extends", f"extends chain longer than {MAX_EXTENDS} files"))
            return None
        refused = _outside(path, target, self.root)
        if refused:
            self._add(Problem(*origin, "extends", refused))
            return None
        base_path, base_display, reason = _base(path, display, target)
        if reason:
            self._add(Problem(*origin, "extends", f"cannot read {base_display}: {reason}"))
            return None
        if _real(base_path) in [p for p, _ in here]:
            names = " -> ".join([d for _, d in here] + [base_display])
            self._add(Problem(*origin, "extends", f"extends cycle: {names}"))
            return None
        base = self.read(base_path, base_display, here, origin)
        if base is None:
            return None
        out = Positions()
        merged = _merge(base[0], data, (), base[1], positions, out)
        return merged, out

    def _text(self, path: Path, display: str, origin: Loc | None) -> str | None:
        try:
            return read_text(path)
        except FileProblem as exc:
            if exc.line is not None and exc.column is not None:  # in the text: point at it
                self._add(Problem(display, exc.line, exc.column, "", exc.reason))
            elif origin is None:
                raise UsageError(f"cannot read blueprint {display}: {exc.reason}",
                                 hint="check the path given on the command line") from None
            else:
                self._add(Problem(*origin, "extends", f"cannot read {display}: {exc.reason}"))
            return None

    def _add(self, problem: Problem) -> None:
        self.problems.append(problem)


def _outside(path: Path, target: str, root: str) -> str | None:
    """Why ``target`` (written in ``path``) may not be read, or None: ``~`` and absolute paths are
    refused as written, and a path that resolves (symlinks followed) out of ``root`` is refused
    whether or not it exists: the message says nothing of what is there."""
    if "\0" in target:
        return None  # reported by _base, as a path that cannot be used
    shown, where = printable(target, 200), printable(root, 400)
    if target.startswith("~"):
        return f"{shown}: '~' (a home directory) is not allowed; {_RELATIVE.format(root=where)}"
    if os.path.isabs(target):
        return f"{shown}: absolute paths are not allowed; {_RELATIVE.format(root=where)}"
    real = _real(path.parent / target)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        return (f"{shown} resolves outside {where}, the root (the git work tree of the first blueprint "
                "loaded, else its folder); extends stays inside it")
    return None


def _not_a_fragment(parsed: Any) -> str | None:
    """Why a file ``extends`` names is no blueprint fragment, in words that quote none of its content."""
    data = parsed.data
    if not isinstance(data, dict):
        if parsed.problems:
            first = min(parsed.problems, key=lambda p: (p.line, p.column))
            return f"not valid YAML at line {first.line}, column {first.column}"
        return "not a mapping of blueprint fields"
    if set(data) - _FIELDS:
        return "it has top-level keys that are not blueprint fields"
    return None


_FIELDS = frozenset(Blueprint.model_fields) | {"extends"}


def _base(path: Path, display: str, target: str) -> tuple[Path, str, str | None]:
    """``(path, display, reason it cannot be read or None)`` of the file ``target`` names (a relative
    path inside the root: ``_outside`` has refused the others)."""
    if "\0" in target:
        return path.parent, printable(os.path.join(os.path.dirname(display), target)), path_problem("null")
    joined = os.path.normpath(os.path.join(os.path.dirname(display), target))
    return path.parent / target, printable(joined), None


def _merge(base: Any, over: Any, path: Path_, bpos: Positions, opos: Positions, out: Positions) -> Any:
    """Deep merge (maps merge, lists replace, ``over`` wins), carrying each value's position."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        _copy(opos, over, path, out)
        return over
    _copy_here(opos, path, out)
    result: dict[str, Any] = {}
    for key, value in base.items():
        if key not in over:
            _copy(bpos, value, (*path, key), out)
            result[key] = value
    for key, value in over.items():
        child = (*path, key)
        if key in base:
            result[key] = _merge(base[key], value, child, bpos, opos, out)
        else:
            _copy(opos, value, child, out)
            result[key] = value
    return result


def _copy_here(src: Positions, path: Path_, out: Positions) -> None:
    for table, target in ((src.values, out.values), (src.keys, out.keys)):
        if path in table:
            target[path] = table[path]
    if path in src.collections:
        out.collections.add(path)


def _copy(src: Positions, value: Any, path: Path_, out: Positions) -> None:
    """Copy the positions of ``value`` and everything under it."""
    _copy_here(src, path, out)
    if isinstance(value, dict):
        for key, child in value.items():
            _copy(src, child, (*path, key), out)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _copy(src, child, (*path, i), out)
