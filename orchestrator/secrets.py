"""Secret values: resolved from the blueprint's references, and scrubbed wherever text leaves us.

``resolve`` reads ``${env:NAME}`` and ``${file:path}`` at plan/up/down time (render never needs
them, so rendered files only ever carry references). Values live in memory only, and every value
resolved is *registered* here, process-wide: ``redact`` replaces each registered value (and each
line of 16 characters or more of a multi-line one, such as an SSH key, and each as JSON escapes
it) with ``[redacted]``.

``redact`` is the one redaction function, called at every boundary where text leaves the
process: each line ``progress`` prints, each error the CLI prints, the ``--output json`` documents,
the error stored in a run record, and the Terraform logs kept under ``.infra/`` (docs/security.md).
A registry rather than a value passed along means no boundary can be handed the wrong list.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from . import secret_forms

REDACTED = "[redacted]"
MAX_FILE_BYTES = 64 << 10  # 64 KiB: a ${file:} secret (an SSH key, a token) is a few KiB (docs/security.md)
# Why a ${file:} secret may be unreadable on this machine and fine on the one that runs plan/up/down.
_ELSEWHERE = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR})
_MIN_LINE = 16  # a line of a multi-line secret shorter than this is too common to scrub alone
_known: set[str] = set()


def _forms(values: Iterable[str]) -> set[str]:
    """Each value in every encoding a tool may print it in (``secret_forms``: JSON as Python and
    Go write it, URL, shell, base64), and each long line of a multi-line one; empty values are
    ignored."""
    forms: set[str] = set()
    for value in values:
        if value:
            forms.update(secret_forms.forms(value))  # raw, JSON (Python, Go), URL, shell, base64
            forms.update(line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_LINE)
    return forms


def register(values: Iterable[str]) -> None:
    """Scrub these values from everything printed or stored from now on (empty ones are ignored)."""
    _known.update(_forms(values))


def forget() -> None:
    """Drop every registered value (for callers that run several blueprints in one process)."""
    _known.clear()


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered value and every one of ``extra`` replaced by ``[redacted]``,
    the longest first (so a secret containing another leaves nothing of itself behind)."""
    values = _known | _forms(extra)
    if not values or not text:
        return text
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def redact_file(path: Path) -> None:
    """``redact`` a log file in place (rewritten only when it held a secret value)."""
    if not _known:
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    scrubbed = redact(text)
    if scrubbed != text:
        path.write_text(scrubbed, encoding="utf-8")


def resolve(loaded) -> dict[str, str]:
    """``{secret name: value}``, every value registered for ``redact``; every unresolvable reference
    is reported, located, at once."""
    from .blueprint.models import SECRET_REF
    from .errors import BlueprintError, Problem

    values: dict[str, str] = {}
    problems: list[Problem] = []
    for name, ref in loaded.model.secrets.items():
        match = SECRET_REF.match(ref)
        assert match is not None  # the model validated the form
        kind, arg = match.groups()
        value, why = _lookup(kind, arg, loaded.path.parent)
        if value is None:
            file, line, col = loaded.locate(("secrets", name))
            problems.append(Problem(file, line, col, f"secrets.{name}", why))
        else:
            values[name] = value
    register(values.values())
    if problems:
        raise BlueprintError(problems, hint="secret references are resolved by plan/up/down (render never needs them)")
    return values


def file_problems(secrets: dict[str, str], base: Path) -> list[tuple[str, str]]:
    """``(secret name, why)`` for each ``${file:...}`` reference whose file is here but cannot be a
    secret: not a regular file, larger than ``MAX_FILE_BYTES``, not UTF-8 text. ``infra validate``
    (the loader) reports them; a file missing or unreadable on this machine is left to plan/up/down,
    which resolve on the machine that holds the secrets. Nothing read is kept or printed."""
    from .blueprint.models import SECRET_REF

    found = []
    for name, ref in secrets.items():
        match = SECRET_REF.match(ref) if isinstance(ref, str) else None
        if match is None or match.group(1) != "file":
            continue
        value, why, here = _read_file_secret(match.group(2), base)
        if value is None and here:
            found.append((name, why))
    return found


def _lookup(kind: str, arg: str, base: Path) -> tuple[str | None, str]:
    if kind == "env":
        value = os.environ.get(arg)
        return (value, "") if value is not None else (None, f"environment variable {arg} is not set")
    value, why, _ = _read_file_secret(arg, base)
    return value, why


def _read_file_secret(arg: str, base: Path) -> tuple[str | None, str, bool]:
    """``(value, why not, whether the problem is the file's own)`` for ``${file:arg}``: read like a
    blueprint (``blueprint/files.py``: the type checked before opening, ``O_NONBLOCK``, so a FIFO or a
    device is never read and nothing can hang), at most ``MAX_FILE_BYTES``, UTF-8 text without NUL
    bytes. A reason never quotes the content (not even the byte that is not UTF-8)."""
    from .blueprint.files import FileProblem, read_text
    from .blueprint.yamlpos import printable

    try:
        path = Path(arg).expanduser()
    except RuntimeError:  # ~user: no such user, or no home directory
        return None, f"cannot read {printable(arg, 200)}: cannot expand {printable(arg.split('/', 1)[0], 80)}", False
    if not path.is_absolute():
        path = base / path
    try:
        text = read_text(path, limit=MAX_FILE_BYTES)
    except FileProblem as exc:
        if exc.line is not None:  # not UTF-8: its position or byte would tell something of the secret
            return None, f"cannot read {printable(str(path), 200)}: not UTF-8 text (a binary file?)", True
        return None, f"cannot read {printable(str(path), 200)}: {exc.reason}", exc.code not in _ELSEWHERE
    if "\0" in text:
        return None, f"cannot read {printable(str(path), 200)}: not text (it holds NUL bytes)", True
    return text.rstrip("\n"), "", True
