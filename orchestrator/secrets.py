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

import os
from collections.abc import Iterable
from pathlib import Path

from . import secret_forms

REDACTED = "[redacted]"
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


def _lookup(kind: str, arg: str, base: Path) -> tuple[str | None, str]:
    if kind == "env":
        value = os.environ.get(arg)
        return (value, "") if value is not None else (None, f"environment variable {arg} is not set")
    path = Path(arg).expanduser()
    if not path.is_absolute():
        path = base / path
    try:
        return path.read_text().rstrip("\n"), ""
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
