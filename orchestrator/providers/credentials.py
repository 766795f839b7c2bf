"""What a cloud's Terraform provider needs to find credentials, as data (docs/providers.md,
"Credentials"). A provider package names its ``Credentials``; the Terraform stage checks them
before ``terraform init``, so a machine without them gets one line naming what is missing, not
a provider's error dump. Nothing here reads the environment: ``stages.terraform`` does.
"""

from __future__ import annotations

from dataclasses import dataclass


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
