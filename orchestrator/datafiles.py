"""YAML data shipped with infra (catalogs, version tables, node facts): ``yaml.safe_load``'s result,
parsed by libyaml where PyYAML has it (``CSafeLoader``: the same constructor, the same values,
dates included, about ten times faster). ``infra validate`` reads several of these files; with the
pure-Python parser they cost more than the validation itself.

A parsed file is also kept in a per-user cache (``cached``): JSON, which Python's C decoder reads
several times faster than libyaml parses YAML, keyed by the source files' path, size and
modification time, so an edited or upgraded file is parsed again. The cache is a speed-up only:
a cache that cannot be read or written is ignored. It lives in ``$INFRA_CACHE_DIR`` (empty: no
cache), else ``$XDG_CACHE_HOME/infra``, else ``~/.cache/infra``; folders 0700, files 0600, and only
files the user owns are read. It holds JSON data, never code (no pickle)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

_FORMAT = "1"  # bump when the encoding below changes
_DATE = "__infra_date__"


def load(path: Path) -> Any:
    """The parsed YAML of one of infra's data files (cached, see the module's docstring)."""
    path = Path(path)
    return cached("yaml", (path,), lambda: _parse(path))


def _parse(path: Path) -> Any:
    import yaml

    return yaml.load(path.read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def cache_dir() -> Path | None:
    """Where parsed data files are kept, or None when caching is off (``INFRA_CACHE_DIR=``)."""
    explicit = os.environ.get("INFRA_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) if explicit else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "infra"


def cached(kind: str, sources: tuple[Path, ...], produce: Callable[[], Any]) -> Any:
    """``produce()``, or its value from an earlier process when none of ``sources`` (the data
    files it reads and the code that transforms them) changed since. The value must be JSON data
    (dates allowed)."""
    folder = cache_dir()
    if folder is None:
        return produce()
    try:
        key = _key(kind, sources)
    except OSError:
        return produce()
    entry = folder / "data" / f"{kind}-{key}.json"
    hit = _read(entry)
    if hit is not None:
        return hit[0]
    value = produce()
    _write(entry, value)
    return value


def _key(kind: str, sources: tuple[Path, ...]) -> str:
    digest = hashlib.sha256(f"{_FORMAT}\0{kind}".encode())
    for source in sources:
        st = os.stat(source)
        digest.update(f"\0{os.path.abspath(source)}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _read(entry: Path) -> tuple[Any] | None:
    import json

    try:
        with open(entry, "rb") as fh:
            if os.fstat(fh.fileno()).st_uid != os.getuid():
                return None
            return (json.loads(fh.read(), object_hook=_decode),)
    except (OSError, ValueError):
        return None


def _write(entry: Path, value: Any) -> None:
    import json

    try:
        text = json.dumps(value, default=_encode, separators=(",", ":"))
        if json.loads(text, object_hook=_decode) != value:
            return  # JSON would change it (tuples, non-string keys): never cached
    except (TypeError, ValueError):
        return  # not JSON data: never cached
    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = entry.with_name(f".{entry.name}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temp, entry)  # atomic: a concurrent reader sees the old entry or the whole new one
    except OSError:
        return


def _encode(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return {_DATE: value.isoformat()}
    raise TypeError(f"not JSON data: {type(value).__name__}")


def _decode(obj: dict) -> Any:
    if len(obj) == 1 and _DATE in obj:
        return dt.date.fromisoformat(obj[_DATE])
    return obj
