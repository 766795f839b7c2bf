"""Rollback that fits git: the blueprint change to commit after ``infra rollback``, and the warning
``plan``/``up`` give when the live environment was rolled back from the blueprint they are about to apply.

A rollback re-applies the merged blueprint an earlier ``up`` kept in its record; the blueprint in git
still says what was rolled back from, so the next merge would undo the rollback. ``change`` works
out the edit of the blueprint file that makes it say what the rollback applied:

- the differences are taken value by value between the blueprint as it loads now and what the
  rollback applied (mappings key by key, lists of the same length item by item, other lists whole);
- a value written as ``${output:ENV.NAME}`` is left as it is (it is read from ENV at run time);
- a changed scalar written in the blueprint file itself is replaced in place, so comments and layout
  are kept; anything else (a key added or removed, a list of another length, a value that comes from
  a file ``extends`` names) rewrites the file from its data, and the notes say its comments are lost;
- a value that comes from a file ``extends`` names is overridden in the blueprint file, never edited
  there; a key only such a file sets cannot be removed from the blueprint file: a note says so;
- the edited text is loaded and compared again before anything is shown or written.

``rolled_back_warning`` is the one line ``plan``/``up`` print when the environment's last applying
run was a rollback and the blueprint differs from what it applied (docs/rollouts.md, "Rollback").
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import InfraError

if TYPE_CHECKING:
    from .blueprint.loader import LoadedBlueprint
    from .blueprint.outputs import Lookup
    from .stages.context import Context

Path_ = tuple[Any, ...]
_ABSENT = object()
_SCALARS = (str, int, float, bool, type(None))


def differences(current: Any, target: Any, path: Path_ = ()) -> list[Path_]:
    """The paths where ``target`` differs from ``current``: mappings key by key, lists of the same
    length item by item, anything else (a list of another length included) as a whole value."""
    if isinstance(current, dict) and isinstance(target, dict):
        found: list[Path_] = []
        for key in list(current) + [k for k in target if k not in current]:
            found += differences(current.get(key, _ABSENT), target.get(key, _ABSENT), (*path, key))
        return found
    if isinstance(current, list) and isinstance(target, list) and len(current) == len(target):
        return [p for i, (a, b) in enumerate(zip(current, target, strict=True)) for p in differences(a, b, (*path, i))]
    same = type(current) is type(target) and current == target
    return [] if same or current is target else [path]


def dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(the whole blueprint)"


def _overlaps(a: Path_, b: Path_) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _get(data: Any, path: Path_) -> Any:
    for part in path:
        found = (isinstance(data, dict) and part in data
                 or isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))
        if not found:
            return _ABSENT
        data = data[part]
    return data


def owned_differences(current: LoadedBlueprint, target: dict[str, Any]) -> tuple[list[Path_], list[str]]:
    """(the paths to change, notes on those left as written: ``${output:}`` references)."""
    paths, notes = [], []
    for path in differences(current.data, target):
        refs = [r for r in current.references if _overlaps(r.path, path)]
        if refs:
            had = _get(target, path)
            notes.append(f"{dotted(path)} kept as written ({', '.join(sorted({r.text for r in refs}))}: read at "
                         "run time); the rolled-back run had "
                         f"{'none' if had is _ABSENT else json.dumps(had, default=str)}")
        else:
            paths.append(path)
    return paths, notes


@dataclass
class Change:
    """The edit of ``file`` that makes it say what the rollback applied (``new`` is None: nothing to do
    or nothing that can be written)."""

    file: Path
    old: str
    new: str | None
    notes: list[str] = field(default_factory=list)
    kept_layout: bool = True
    refused: bool = False  # the edited text would not load: nothing is shown or written
    how: str = "comments and layout kept"  # how the file was edited, for the message of --write

    @property
    def empty(self) -> bool:
        return self.new is None or self.new == self.old

    def diff(self, label: str | None = None) -> str:
        name = label or self.file.name
        lines = difflib.unified_diff(self.old.splitlines(keepends=True), (self.new or "").splitlines(keepends=True),
                                     f"a/{name}", f"b/{name}")
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def change(file: Path, current: LoadedBlueprint, target: dict[str, Any], outputs_of: Lookup | None = None) -> Change:
    """The edit of blueprint ``file`` (``current``: it loaded) after which it loads to ``target``."""
    old = file.read_text()
    paths, notes = owned_differences(current, target)
    if not paths:
        return Change(file, old, None, notes)
    new, kept, more = _in_place(old, paths, target)
    how = "comments and layout kept"
    if new is None:
        own, more = _edited_data(old, paths, current, target)
        new, lost, blocks = _by_block(old, paths, own, target)
        kept = new is not None and not lost
        if new is None:
            new = _dump(own)
            lost = ["#"] if "#" in old else []
            what = "its comments and layout"
            how = "rewritten from its data" + (", comments lost" if lost else "")
        else:
            what = f"the comments inside {', '.join(lost)}"
            dropped = f" (comments inside {', '.join(lost)} lost)" if lost else ""
            how = f"{', '.join(blocks)} rewritten from the data{dropped}; the rest kept as it was"
        if lost:
            more.append(f"{file.name}: {what} could not be kept (rewritten from the data: a key added or removed, "
                        "or a list of another length); check the diff before committing")
    notes += more
    left, loads = _left_over(file, new, target, outputs_of)
    notes += [left] if left else []
    return Change(file, old, new if loads else None, notes, kept, refused=not loads, how=how)


# --- in place: scalars written in the file itself --------------------------------------------


def _nodes(text: str) -> tuple[dict[Path_, Node], bool]:
    """Every node of the file by path, and whether it is plain (no anchors, aliases or merge keys)."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    found: dict[Path_, Node] = {}
    seen: set[int] = set()
    plain = True

    def walk(node: Node, path: Path_) -> None:
        nonlocal plain
        if id(node) in seen or getattr(node, "anchor", None):
            plain = False
        seen.add(id(node))
        found[path] = node
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    plain = False
                    continue
                walk(value, (*path, key.value))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return found, plain


def scalar_text(value: Any, style: str | None) -> str | None:
    """``value`` as one YAML scalar on one line, in the original quoting where it can (None: it cannot)."""
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            return None
        if style == '"':
            return json.dumps(value, ensure_ascii=False)
        if style == "'":
            return "'" + value.replace("'", "''") + "'"
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    dumped = dumped.removesuffix("\n").removesuffix("\n...").strip()
    return None if "\n" in dumped else dumped


def _in_place(text: str, paths: list[Path_], target: dict[str, Any]) -> tuple[str | None, bool, list[str]]:
    """``text`` with each changed scalar replaced where it is written; None when one of the changes is
    not a scalar written in this file (then the file is rewritten)."""
    try:
        nodes, plain = _nodes(text)
    except yaml.YAMLError:
        return None, False, []
    if not plain:
        return None, False, []
    edits = []
    for path in paths:
        node, value = nodes.get(path), _get(target, path)
        if (not isinstance(node, ScalarNode) or not isinstance(value, _SCALARS) or value is _ABSENT
                or node.style not in (None, '"', "'") or node.start_mark.line != node.end_mark.line):
            return None, False, []
        new = scalar_text(value, node.style)
        if new is None:
            return None, False, []
        edits.append((node.start_mark.index, node.end_mark.index, new))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text, True, []


# --- rewritten: the file's data, changed ----------------------------------------------------


def _edited_data(text: str, paths: list[Path_], current: LoadedBlueprint,
                 target: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The file's own data with every change made (an ``extends`` base's value overridden here)."""
    from .blueprint.yamlpos import parse

    own = parse(text, str(current.path)).data
    own = own if isinstance(own, dict) else {}
    notes = []
    for path in paths:
        value = _get(target, path)
        if value is _ABSENT:
            if not _delete(own, path):
                where = current.locate(path)[0]
                rel = os.path.relpath(where, current.path.parent) if os.path.isabs(where) else where
                where = where if rel.startswith("..") else rel
                notes.append(f"{dotted(path)} is set in {where} (extends), not in {current.path.name}: remove it "
                             "there, or the blueprint will not say what the rollback applied")
        else:
            _set(own, path, target)
    return own, notes


class _Dumper(yaml.SafeDumper):
    """Block YAML with list items indented under their key, as blueprints are written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _dump(data: dict[str, Any]) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def _by_block(text: str, paths: list[Path_], own: dict[str, Any],
              target: dict[str, Any]) -> tuple[str | None, list[str], list[str]]:
    """``text`` with each top-level key whose changes are not all in-place scalars rewritten as a
    block (the rest of the file, comments included, as it was); None when the file is not a plain
    block mapping. Also the keys whose own comments were lost, and the keys rewritten."""
    try:
        nodes, plain = _nodes(text)
    except yaml.YAMLError:
        return None, [], []
    root = nodes.get(())
    if not plain or not isinstance(root, MappingNode) or root.flow_style:
        return None, [], []
    keys = [k.value for k, _ in root.value]
    groups: dict[str, list[Path_]] = {}
    for path in paths:
        groups.setdefault(path[0], []).append(path)
    edits, lost, added, blocks = [], [], [], []
    for key, group in groups.items():
        scalars, _, _ = _in_place(text, group, target)
        if scalars is not None:
            edits += _scalar_edits(nodes, group, target)
            continue
        if key not in keys:
            if key in own:
                added.append(_dump({key: own[key]}))
                blocks.append(key)
            continue
        blocks.append(key)
        start, end = _block_span(text, root, keys.index(key))
        if "#" in text[start:end]:
            lost.append(key)
        edits.append((start, end, _dump({key: own[key]}) if key in own else ""))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    if added:
        text = (text if text.endswith("\n") or not text else text + "\n") + "".join(added)
    return text, lost, blocks


def _scalar_edits(nodes: dict[Path_, Node], paths: list[Path_], target: dict[str, Any]) -> list[tuple[int, int, str]]:
    out = []
    for path in paths:
        node = nodes[path]
        out.append((node.start_mark.index, node.end_mark.index, scalar_text(_get(target, path), node.style)))
    return out


def _block_span(text: str, root: MappingNode, i: int) -> tuple[int, int]:
    """The text of top-level key ``i`` and its value: whole lines, up to the next key, less the blank
    and comment lines just before that key (they stay with it)."""
    key = root.value[i][0]
    start = key.start_mark.index - key.start_mark.column
    if i + 1 < len(root.value):
        nxt = root.value[i + 1][0]
        end = nxt.start_mark.index - nxt.start_mark.column
    else:
        end = len(text)
    lines = text[start:end].splitlines(keepends=True)
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
        lines.pop()
    return start, start + len("".join(lines))


def _delete(data: Any, path: Path_) -> bool:
    parent = _get(data, path[:-1])
    key = path[-1]
    if isinstance(parent, dict) and key in parent:
        del parent[key]
        return True
    return False


def _set(own: dict[str, Any], path: Path_, target: dict[str, Any]) -> None:
    """Set ``path`` in the file's own data to the target's value; a list the file does not hold is
    taken whole (an ``extends`` base's list is replaced, never merged)."""
    import copy

    here: Any = own
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(here, dict):
            if last or part not in here or not isinstance(here[part], (dict, list)):
                nxt = _get(target, path[: i + 1])
                if not last and isinstance(nxt, dict) and (part not in here or not isinstance(here.get(part), dict)):
                    here[part] = {}
                else:
                    here[part] = copy.deepcopy(nxt)
                    return
            here = here[part]
        elif isinstance(here, list) and isinstance(part, int) and part < len(here):
            if last:
                here[part] = copy.deepcopy(_get(target, path))
                return
            here = here[part]
        else:
            return


# --- checked: the edited text loads to what the rollback applied -------------------------------


def _left_over(file: Path, new: str, target: dict[str, Any], outputs_of: Lookup | None) -> tuple[str | None, bool]:
    """Load the edited text (beside the file, so ``extends`` resolves the same): what still differs, and
    whether it loads at all."""
    from .blueprint.loader import load
    from .errors import BlueprintError

    tmp = file.with_name(f".{file.stem}.{uuid.uuid4().hex[:8]}.rollback.yaml")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        return f"the changed blueprint was not checked ({tmp.parent}: {exc.strerror or exc})", True
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(new)
        try:
            loaded = load(tmp, outputs_of=outputs_of)
        except BlueprintError as exc:
            why = exc.message.replace(str(tmp), str(file))
            return f"no change is shown: the changed blueprint would not load ({why})", False
        paths, _ = owned_differences(loaded, target)
        if paths:
            return ("after this change the blueprint still differs from what the rollback applied at "
                    + ", ".join(dotted(p) for p in paths[:5]) + (", ..." if len(paths) > 5 else "")), True
        return None, True
    finally:
        tmp.unlink(missing_ok=True)


def write(ch: Change) -> None:
    """Replace the blueprint file with ``ch.new``, atomically (same folder, same mode)."""
    if ch.new is None:
        return
    real = Path(os.path.realpath(ch.file))  # a symlinked blueprint: its target is written, the link kept
    mode = real.stat().st_mode & 0o7777
    tmp = real.with_name(f".{real.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(ch.new)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except OSError as exc:
        raise InfraError(f"{ch.file}: not written ({exc.strerror or exc}); nothing changed") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


# --- the next plan/up ---------------------------------------------------------------------------

_APPLYING = ("success", "no-changes", "failed", "interrupted", "lost")


def last_applying(entries: list[dict[str, Any]], sandbox: bool) -> dict[str, Any] | None:
    """The newest record of an ``up``/``down`` that may have changed the environment (this sandbox-ness)."""
    for record in reversed(entries):
        if bool(record.get("sandbox")) != sandbox:
            continue
        if record.get("command") in ("up", "down") and record.get("outcome") in _APPLYING:
            return record
    return None


def rolled_back_warning(loaded: LoadedBlueprint, entries: list[dict[str, Any]], sandbox: bool,
                        command: str) -> str | None:
    """One line when the environment's last applying run was a rollback and ``loaded`` differs from
    what it applied; None otherwise."""
    last = last_applying(entries, sandbox)
    if last is None or not last.get("rollback_of") or last.get("outcome") not in ("success", "no-changes"):
        return None
    merged = last.get("blueprint", {}).get("merged")
    if isinstance(merged, dict):
        paths, _ = owned_differences(loaded, merged)
        if not paths:
            return None
        what = ", ".join(dotted(p) for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
    elif last.get("blueprint", {}).get("sha256") == loaded.sha256:
        return None
    else:
        what = "its digest"
    verb = "applying" if command == "up" else "an `up` of"
    return (f"{loaded.model.name} was rolled back to run {last['rollback_of']} (run {last['id']}, "
            f"{last.get('finished_at', '?')}) and this blueprint differs from what that applied ({what}): "
            f"{verb} it undoes the rollback; commit the change `infra rollback` printed if the rollback is to stay")


def warn_if_rolled_back(ctx: Context, command: str, shared: Any) -> None:
    """``plan``/``up`` (not a rollback's own ``up``): print ``rolled_back_warning`` if there is one.
    With the records beside the state (``shared``), those are read first (a fresh CI runner)."""
    from . import records, shared_store

    if command not in ("plan", "up") or ctx.state.record.rollback_of is not None:
        return
    try:
        if shared is not None:
            shared_store.locked_pull(shared, ctx.ws.records_dir, ctx.progress.warn)
        entries = records.list_records(ctx.ws.records_dir)
    except (InfraError, OSError):
        return  # unreadable records are `infra history --verify`'s to report
    note = rolled_back_warning(ctx.loaded, entries, ctx.ws.sandbox, command)
    if note:
        ctx.progress.warn(note)
