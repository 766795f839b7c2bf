"""What a cloud's Terraform provider needs to find credentials, as data (docs/providers.md,
"Credentials"). A provider package names its ``Credentials``; the Terraform stage checks them
before ``terraform init``, so a machine without them gets one line naming what is missing, not
a provider's error dump. ``Credentials.missing(env)`` looks them up in the environment it is
given (``stages.terraform`` passes ``os.environ``) and in the files and PATH that names.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CredentialSource:
    """One way to sign in; usable when every variable of ``env`` is set (not empty, not
    ``false``/``0``), ``binary`` (if any) is on PATH, and one of ``files`` (if any) exists (``~`` and
    ``$VAR`` expanded) and, when ``contains`` is given, holds that text."""

    label: str
    env: tuple[str, ...] = ()
    binary: str | None = None
    files: tuple[str, ...] = ()
    contains: str | None = None


@dataclass(frozen=True)
class Credentials:
    """``required``: groups of variables of which one per group must be set (a subscription, a
    project); ``sources``: at least one must be usable. ``summary`` names the sources in the error,
    ``hint`` says how to get them."""

    required: tuple[tuple[str, ...], ...]
    sources: tuple[CredentialSource, ...]
    summary: str
    hint: str

    def usable(self, env: Mapping[str, str]) -> list[CredentialSource]:
        """The sources usable in ``env`` (and the files and PATH it names), in ``sources`` order."""

        def found(path: str, contains: str | None) -> bool:
            expanded = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1)) or "\0", path)  # unset: no such path
            if expanded.startswith("~/"):
                expanded = env.get("HOME", "\0") + expanded[1:]
            file = Path(expanded)
            if "\0" in expanded or not file.is_file():
                return False
            return contains is None or contains in file.read_text(errors="replace")

        def usable(src: CredentialSource) -> bool:
            return (all(is_set(env, v) for v in src.env)
                    and (src.binary is None or shutil.which(src.binary, path=env.get("PATH")) is not None)
                    and (not src.files or any(found(f, src.contains) for f in src.files)))

        return [src for src in self.sources if usable(src)]

    def missing(self, env: Mapping[str, str]) -> list[str]:
        """What is missing in ``env`` (and the files and PATH it names): [] when usable."""
        missing = [f"{' or '.join(group)} is not set" for group in self.required
                   if not any(is_set(env, name) for name in group)]
        if not self.usable(env):
            missing.append(self.summary)
        return missing


def is_set(env: Mapping[str, str], name: str) -> bool:
    """Set, and not empty, ``0`` or ``false`` (how the Terraform providers read their switches)."""
    return env.get(name, "").strip().lower() not in ("", "0", "false")
