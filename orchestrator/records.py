"""Run records: one JSON file per plan/up/down, append-only and hash-chained.

``.infra/records/<env>/<sequence>-<UTC timestamp>-<id>.json`` holds who ran what, on which blueprint
(path, sha256 of the merged blueprint, git commit), with which versions, the plan summary,
per-stage durations and the outcome. Each record carries the sha256 of the previous one, so
a deleted or edited record breaks the chain (``verify``). Records never hold secret values:
they are built from the blueprint's structure, counts and versions only, and ``redact``
scrubs any known secret value from free text (error messages) before it is stored.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__

REDACTED = "[redacted]"


def redact(text: str, secrets: list[str]) -> str:
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def git_info(path: Path) -> dict[str, Any] | None:
    """Commit and dirtiness of the repository holding ``path``, or None outside git."""
    try:
        top = subprocess.run(
            ["git", "-C", str(path.parent), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if top.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(path.parent), "status", "--porcelain", "--", str(path)],
            capture_output=True, text=True, timeout=5,
        )
        return {"commit": top.stdout.strip(), "blueprint_modified": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class RunRecord:
    env: str
    command: str
    blueprint_path: str
    blueprint_sha256: str
    sandbox: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: float = field(default_factory=time.time)
    stages: list[dict[str, Any]] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    versions: dict[str, Any] = field(default_factory=lambda: {"infra": __version__})
    git: dict[str, Any] | None = None
    outcome: str = "running"
    error: str | None = None

    def stage(self, name: str, status: str, seconds: float, detail: str | None = None) -> None:
        entry = {"name": name, "status": status, "seconds": round(seconds, 3)}
        if detail:
            entry["detail"] = detail
        self.stages.append(entry)

    def to_dict(self, finished: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "env": self.env,
            "command": self.command,
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "started_at": _iso(self.started),
            "finished_at": _iso(finished),
            "duration_s": round(finished - self.started, 3),
            "sandbox": self.sandbox,
            "blueprint": {"path": self.blueprint_path, "sha256": self.blueprint_sha256, "git": self.git},
            "versions": self.versions,
            "plan": self.plan,
            "stages": self.stages,
            "outcome": self.outcome,
            "error": self.error,
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def list_records(records_dir: Path) -> list[dict[str, Any]]:
    if not records_dir.is_dir():
        return []
    out = []
    for path in sorted(records_dir.glob("*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def write(records_dir: Path, record: RunRecord) -> Path:
    """Append ``record`` to the environment's chain (never rewrites an existing file).

    A lock on the folder serialises writers (sandbox and real runs of one environment take
    different run locks but share this chain); the sequence number in the file name keeps
    the order of writing, even for runs started in the same second.
    """
    records_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(records_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        finished = time.time()
        data = record.to_dict(finished)
        previous = list_records(records_dir)
        data["prev_sha256"] = previous[-1]["sha256"] if previous else None
        data["sha256"] = hashlib.sha256(_canonical(data)).hexdigest()
        seq = _next_sequence(records_dir)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(record.started))
        path = records_dir / f"{seq:06d}-{stamp}-{record.id}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)


def _next_sequence(records_dir: Path) -> int:
    numbers = [int(p.name.split("-", 1)[0]) for p in records_dir.glob("*.json") if p.name.split("-", 1)[0].isdigit()]
    return max(numbers, default=0) + 1


def verify(records: list[dict[str, Any]]) -> list[str]:
    """Problems in the hash chain (empty when intact)."""
    problems = []
    prev = None
    for rec in records:
        body = {k: v for k, v in rec.items() if k != "sha256"}
        if hashlib.sha256(_canonical(body)).hexdigest() != rec.get("sha256"):
            problems.append(f"record {rec.get('id')} was modified after it was written")
        if rec.get("prev_sha256") != prev:
            problems.append(f"record {rec.get('id')} does not follow the previous record (one is missing)")
        prev = rec.get("sha256")
    return problems
