"""YAML with positions: plain data plus the file, line and column of every key and value.

Paths are tuples of mapping keys and list indexes, e.g. ``("node_pools", 1, "gpu", "count")``.
Lines and columns are 1-based. Mapping keys are always strings (their text as written), so
``on:`` stays ``"on"`` rather than becoming ``True``. Duplicate keys are reported.

Hostile input is bounded (docs/blueprint.md, "Limits"): at most ``MAX_DEPTH`` levels of nested
mappings and lists, ``MAX_VALUES`` values (aliases expanded), ``MAX_SCALAR`` characters in a key
or value, ``MAX_INT_CHARS`` characters in a whole number. Dates are not resolved (a blueprint has
no date fields: ``2001-02-30`` is a string), and only the plain YAML tags are accepted (no
``!!timestamp``, ``!!binary``, ``!!python/...``, local tags). Every text taken from the file that
goes into a message passes through :func:`printable`, so one problem is always one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orchestrator.errors import Problem

Path_ = tuple[Any, ...]
Loc = tuple[str, int, int]
MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_VALUES = 100_000  # nodes composed and values after alias expansion (alias bombs)
MAX_DEPTH = 64  # levels of nested mappings and lists
MAX_SCALAR = 64 * 1024  # characters in one key or value
MAX_INT_CHARS = 100  # characters in a whole number (Python refuses str(int) beyond 4300 digits)
_CORE = "tag:yaml.org,2002:"
INT_TAG = _CORE + "int"
TIMESTAMP_TAG = _CORE + "timestamp"
ALLOWED_TAGS = {
    ScalarNode: {_CORE + name for name in ("str", "int", "float", "bool", "null", "merge")},
    SequenceNode: {_CORE + "seq"},
    MappingNode: {_CORE + "map"},
}
_BREAKS = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # what PyYAML counts as a line break
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with every non-printable character escaped as ``repr`` would (``\\n``, ``\\x01``,
    ``\\u202e``): control characters, line and paragraph separators, bidirectional and other
    format characters. Backslashes are kept, so escaping twice changes nothing. With ``limit``,
    longer text is cut to ``limit`` characters and ``...`` is appended.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, counting line breaks as PyYAML does."""
    line, start = 1, 0
    for match in _BREAKS.finditer(text, 0, index):
        line, start = line + 1, match.end()
    return line, index - start + 1


def tag_name(tag: str) -> str:
    """``tag:yaml.org,2002:int`` -> ``!!int``."""
    return printable("!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag, 80)


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
    invalid: set[Path_] = field(default_factory=set)  # paths whose value could not be read


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that never resolves dates and bounds nesting and the number of nodes."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != TIMESTAMP_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._nodes += 1
        if self._nodes > MAX_VALUES:
            raise ComposerError(None, None, f"more than {MAX_VALUES} values", self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def compose_sequence_node(self, anchor: str | None) -> Node:
        self._enter()
        try:
            return super().compose_sequence_node(anchor)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> Node:
        self._enter()
        try:
            return super().compose_mapping_node(anchor)
        finally:
            self._depth -= 1

    def _enter(self) -> None:
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
        self._depth += 1


def parse(text: str, file: str) -> Parsed:
    """Parse one YAML document; syntax errors, duplicate keys and exceeded limits become problems."""
    try:
        loader = _Loader(text)  # checks every character first
    except yaml.reader.ReaderError as exc:
        return Parsed(None, Positions(), [_reader_problem(exc, text, file)])
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        return Parsed(None, Positions(), [_syntax_problem(exc, file)])
    except yaml.reader.ReaderError as exc:
        return Parsed(None, Positions(), [_reader_problem(exc, text, file)])
    finally:
        loader.dispose()
    walker = _Walker(loader, file)
    data = walker.value(node, ()) if node is not None else None
    if node is None:
        walker.positions.values[()] = (file, 1, 1)
    if walker.stopped:  # a limit was hit: what was read is incomplete, validating it would mislead
        data = None
    return Parsed(data, walker.positions, walker.problems, walker.invalid)


def _mark(node_or_mark: Any, file: str) -> Loc:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return (file, mark.line + 1, mark.column + 1)


def _reader_problem(exc: yaml.reader.ReaderError, text: str, file: str) -> Problem:
    """A character YAML does not allow (C0/C1 controls, DEL, surrogates, U+FFFE/U+FFFF)."""
    char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)[:1] or "?"
    line, column = line_col(text, exc.position)
    return Problem(file, line, column, "",
                   f"invalid YAML: character {printable(char)} (U+{ord(char):04X}) is not allowed")


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
        self.invalid: set[Path_] = set()
        self.stopped = False  # a limit was hit; nothing more is read
        self._open: set[int] = set()
        self._count = 0

    def value(self, node: Node, path: Path_) -> Any:
        if self.stopped:
            return None
        self.positions.values[path] = _mark(node, self.file)
        self._count += 1
        if self._count > MAX_VALUES:
            return self._stop(node, path, f"more than {MAX_VALUES} values")
        if id(node) in self._open:
            self.problems.append(Problem(*_mark(node, self.file), _fmt(path), "invalid YAML: recursive alias"))
            return None
        if node.tag not in ALLOWED_TAGS.get(type(node), ()):
            return self._invalid(node, path, f"tag {tag_name(node.tag)} is not allowed in a blueprint")
        if isinstance(node, (MappingNode, SequenceNode)):
            if len(path) >= MAX_DEPTH:  # reached through aliases: each anchor alone was shallow enough
                return self._stop(node, path, f"nesting deeper than {MAX_DEPTH} levels")
            self.positions.collections.add(path)
            self._open.add(id(node))
            try:
                if isinstance(node, MappingNode):
                    return self._mapping(node, path)
                return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self._open.discard(id(node))
        return self._scalar(node, path)

    def _scalar(self, node: Node, path: Path_) -> Any:
        if len(node.value) > MAX_SCALAR:
            return self._invalid(node, path, f"value longer than {MAX_SCALAR} characters")
        if node.tag == INT_TAG and len(node.value) > MAX_INT_CHARS:
            return self._invalid(node, path, f"number too long (more than {MAX_INT_CHARS} digits)")
        if node.tag == MERGE_TAG:  # `<<` written as a value, not as a key
            return str(node.value)
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.problems.append(_syntax_problem(exc, self.file))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError):
            # an explicit tag with a value it cannot hold: `!!bool maybe`, `!!int x` (never echoed:
            # the value may be a secret written in the wrong place)
            return self._invalid(node, path, f"not a valid {tag_name(node.tag)}")
        self.invalid.add(path)
        return None

    def _invalid(self, node: Node, path: Path_, message: str) -> None:
        self.problems.append(Problem(*_mark(node, self.file), _fmt(path), message))
        self.invalid.add(path)
        return None

    def _stop(self, node: Node, path: Path_, why: str) -> None:
        self.problems.append(Problem(*_mark(node, self.file), _fmt(path), f"invalid YAML: {why}"))
        self.stopped = True
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
                            f"duplicate key '{printable(key, 80)}' (first given on line {first[1]})")
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
        if isinstance(node, ScalarNode) and len(node.value) > MAX_SCALAR:
            self.problems.append(Problem(*_mark(node, self.file), _fmt(path),
                                         f"key longer than {MAX_SCALAR} characters"))
            return None
        if isinstance(node, ScalarNode):
            return str(node.value)
        self.problems.append(Problem(*_mark(node, self.file), _fmt(path),
                                     "mapping keys must be plain strings"))
        return None


def _fmt(path: Path_) -> str:
    return format_path(path)


def format_path(path: Path_) -> str:
    """``("node_pools", 1, "gpu", "count")`` -> ``node_pools[1].gpu.count`` (keys escaped, cut at 80)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = printable(str(part), 80)
            out += f".{text}" if out else text
    return out
