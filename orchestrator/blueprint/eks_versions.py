"""The EKS version table (data/versions/eks.yaml): support dates and the pinned autoscaler.

``support(version, today)`` says ``standard``, ``extended`` or ``ended`` (or ``unknown``);
``default_version()`` is the newest version of the table (in standard support when recorded).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from .. import paths


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    from .. import datafiles

    return datafiles.load(paths.package_data() / "versions" / "eks.yaml")


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def default_version() -> str:
    return max(table()["versions"], key=_key)


def support(version: str, today: dt.date) -> str:
    row = table()["versions"].get(version)
    if row is None:
        return "unknown"
    if today <= dt.date.fromisoformat(row["end_of_standard"]):
        return "standard"
    if today <= dt.date.fromisoformat(row["end_of_extended"]):
        return "extended"
    return "ended"


def cluster_autoscaler(version: str) -> str:
    """The pinned Cluster Autoscaler tag for ``version`` (the newest known for a newer minor)."""
    versions = table()["versions"]
    row = versions.get(version) or versions[default_version()]
    return row["cluster_autoscaler"]


def version_issues(provider: str, version: str, today: dt.date) -> list[tuple[str, str]]:
    """``[(level, message)]`` for ``kubernetes.version`` on EKS: a warning in extended support
    (it costs more), an error past it (EKS no longer runs it). Validate passes ``clock.today()``."""
    if provider != table()["provider"]:
        return []
    row = table()["versions"].get(version)
    state = support(version, today)
    if state == "extended":
        return [("warning", f"{version} is in EKS extended support until {row['end_of_extended']} "
                            f"(standard support ended {row['end_of_standard']}): upgrade to {default_version()}")]
    if state == "ended":
        return [("error", f"{version} reached the end of EKS extended support on {row['end_of_extended']}: "
                          f"use {default_version()}")]
    return []
