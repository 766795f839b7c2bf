"""YAML with positions: plain data plus the file, line and column of every key and value.

Paths are tuples of mapping keys and list indexes, e.g. ``("node_pools", 1, "gpu", "count")``.
Lines and columns are 1-based. Mapping keys are always strings (their text as written), so
``on:`` stays ``"on"`` rather than becoming ``True``. Duplicate keys are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import Problem

Path_ = tuple[Any, ...]
Loc = tuple[str, int, int]
MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_VALUES = 100_000  # guards against alias bombs


@dataclass
class Positions:
    """Where each value (``values``) and each mapping key (``keys``) was written.

    ``collections`` holds the paths whose value is a mapping or a list: those are located at
    their key (``gpu:``), scalars at their value.
    """

    values: dict[Path_, Loc] = field(default_factory=dict)
    keys: dict[Path_, Loc] = field(default_factory=dict)
    collections: set[Path_] = field(default_factory=set)

    def locate(self, path: Path_, where: str = "value") -> Loc:
        """Where ``path`` was written; an absent path falls back to its nearest present ancestor.

        ``where`` is ``"value"``, ``"key"`` (the key itself, for unknown fields) or ``"parent"``
        (the enclosing mapping, for missing fields).
        """
        path = tuple(path)
        if where == "key" and path in self.keys:
            return self.keys[path]
        if where == "parent":
            path = path[:-1]
        while path and path not in self.values:
            path = path[:-1]
        if path in self.collections and path in self.keys:
            return self.keys[path]
        return self.values[path]


@dataclass
class Parsed:
    """One parsed YAML document: its data, positions and the problems found while reading it."""

    data: Any
    positions: Positions
    problems: list[Problem]


def parse(text: str, file: str) -> Parsed:
    """Parse one YAML document; syntax errors and duplicate keys become problems."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        return Parsed(None, Positions(), [_syntax_problem(exc, file)])
    except yaml.YAMLError as exc:  # e.g. a ReaderError for a control character
        return Parsed(None, Positions(), [Problem(file, 1, 1, "", f"invalid YAML: {exc}")])
    finally:
        loader.dispose()
    walker = _Walker(loader, file)
    data = walker.value(node, ()) if node is not None else None
    if node is None:
        walker.positions.values[()] = (file, 1, 1)
    return Parsed(data, walker.positions, walker.problems)


def _mark(node_or_mark: Any, file: str) -> Loc:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return (file, mark.line + 1, mark.column + 1)


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "invalid YAML: " + ("; ".join(parts) if parts else "cannot parse")
    return Problem(file, line, col, "", message)


class _Walker:
    """Turns a composed node tree into plain data, recording positions on the way."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions = Positions()
        self.problems: list[Problem] = []
        self._open: set[int] = set()
        self._count = 0

    def value(self, node: Node, path: Path_) -> Any:
        self.positions.values[path] = _mark(node, self.file)
        self._count += 1
        if id(node) in self._open or self._count > MAX_VALUES:
            why = "recursive alias" if id(node) in self._open else f"more than {MAX_VALUES} values"
            self.problems.append(Problem(*_mark(node, self.file), _fmt(path), f"invalid YAML: {why}"))
            return None
        if isinstance(node, (MappingNode, SequenceNode)):
            self.positions.collections.add(path)
            self._open.add(id(node))
            try:
                if isinstance(node, MappingNode):
                    return self._mapping(node, path)
                return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self._open.discard(id(node))
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.problems.append(_syntax_problem(exc, self.file))
            return None

    def _mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merges.append(value_node)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            if key in result:
                first = self.positions.keys[child]
                self.problems.append(
                    Problem(*_mark(key_node, self.file), _fmt(child),
                            f"duplicate key '{key}' (first given on line {first[1]})")
                )
                continue
            self.positions.keys[child] = _mark(key_node, self.file)
            result[key] = self.value(value_node, child)
        for merged in merges:
            self._merge_into(result, merged, path)
        return result

    def _merge_into(self, result: dict[str, Any], node: Node, path: Path_) -> None:
        """YAML merge keys (``<<: *anchor``): keys given explicitly win."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problems.append(Problem(*_mark(source, self.file), _fmt(path),
                                             "'<<' must merge a mapping"))
                continue
            for key_node, value_node in source.value:
                key = self._key(key_node, path)
                if key is not None and key not in result:
                    self.positions.keys[(*path, key)] = _mark(key_node, self.file)
                    result[key] = self.value(value_node, (*path, key))

    def _key(self, node: Node, path: Path_) -> str | None:
        if isinstance(node, ScalarNode):
            return str(node.value)
        self.problems.append(Problem(*_mark(node, self.file), _fmt(path),
                                     "mapping keys must be plain strings"))
        return None


def _fmt(path: Path_) -> str:
    return format_path(path)


def format_path(path: Path_) -> str:
    """``("node_pools", 1, "gpu", "count")`` -> ``node_pools[1].gpu.count``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
