"""Reading a blueprint file within bounds: regular files only, at most ``MAX_BYTES``, UTF-8.

A blueprint (or a file it ``extends``) is never a device, a named pipe, a socket or a
directory: the type is checked with ``os.stat`` before opening (opening some devices has side
effects), the file is opened with ``O_NONBLOCK`` (a named pipe swapped in after the check cannot
block) and checked again on the open descriptor. At most ``MAX_BYTES`` + 1 bytes are read (a caller
may ask for a lower cap: ``${file:}`` secrets are read with 64 KiB, ``secrets.py``).
"""

from __future__ import annotations

import errno
import os
import stat

from orchestrator.blueprint.yamlpos import line_col

MAX_BYTES = 1 << 20  # 1 MiB: a blueprint is a few KiB; this bounds memory and parse time

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_REASONS = {
    errno.ENOENT: "file not found",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ELOOP: "symlink loop (too many levels of symbolic links)",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.ENAMETOOLONG: "the path is too long",
}
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


class FileProblem(Exception):
    """Why a file cannot be used; ``line``/``column`` are set when the problem is in its text."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None,
                 code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column
        self.code = code  # the OSError's errno, when the file system refused (ENOENT, EACCES, ...)


def read_text(path: str | os.PathLike[str], limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of the regular file at ``path`` (at most ``limit`` bytes), or :class:`FileProblem`."""
    try:
        _check_regular(os.stat(path).st_mode)
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise _os_problem(exc) from None
    except ValueError as exc:  # a NUL byte, or a character the file system encoding cannot hold
        raise FileProblem(path_problem(str(exc))) from None
    try:
        _check_regular(os.fstat(fd).st_mode)  # what was opened, not what was checked
        data = _read_capped(fd, limit)
    except OSError as exc:
        raise _os_problem(exc) from None
    finally:
        os.close(fd)
    return decode(data)


def decode(data: bytes) -> str:
    """``data`` as UTF-8, or a :class:`FileProblem` at the line and column of the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8")
        line, column = line_col(before, len(before))
        raise FileProblem(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", line, column) from None


def _os_problem(exc: OSError) -> FileProblem:
    return FileProblem(_REASONS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower(), code=exc.errno)


def path_problem(detail: str) -> str:
    return "the path contains a NUL byte" if "null" in detail.lower() else "the path cannot be used here"


def _check_regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    raise FileProblem(f"not a regular file ({kind})")


def size_text(limit: int) -> str:
    """``limit`` bytes as people write it: ``1 MiB (1048576 bytes)``, ``64 KiB (65536 bytes)``."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit} ({limit} bytes)"
    return f"{limit} bytes"


def _read_capped(fd: int, limit: int) -> bytes:
    if os.fstat(fd).st_size > limit:  # a huge (or sparse) file: refused without reading it
        raise FileProblem(f"larger than {size_text(limit)}")
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 16, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise FileProblem(f"larger than {size_text(limit)}")
