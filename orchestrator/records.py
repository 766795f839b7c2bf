"""Run records: one JSON file per plan/up/down, append-only, hash-chained and verifiable.

``.infra/records/<env>/<seq>-<UTC timestamp>-<id>.json`` holds who ran what, on which blueprint
(path, sha256 of the merged blueprint, git commit), with which versions, the plan summary,
per-stage durations and the outcome. Each record carries its sequence number (``seq``, never
reused) and the sha256 of the previous record, both inside the hashed body; the chain's head
(last seq, last sha256, count) is also kept outside ``.infra/`` (``records_heads``), so that
deleting, editing, forging or rewriting records is detected (``records_audit``). With
``INFRA_RECORDS_HMAC_KEY`` set, records and heads also carry an HMAC-SHA256 (the key is never
written anywhere). Records never hold secret values: they are built from the blueprint's
structure, counts and versions only, and ``secrets.redact`` scrubs every known secret value
(and the HMAC key) from the whole record (error messages, stage details) as it is written.
"""

from __future__ import annotations

import calendar
import errno
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import InfraError
from .secrets import redact

if TYPE_CHECKING:
    from .records_heads import HeadStore
    from .shared_store import SharedEnv

HMAC_KEY_ENV = "INFRA_RECORDS_HMAC_KEY"
LOST_ERROR = "the run was killed (no clean exit); resources created in its last moments may be outside state"
_FILE_RE = re.compile(r"^(\d{6,})-.+\.json$")
_UNSIGNED = ("sha256", "hmac")


def canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def body_sha256(data: dict) -> str:
    """The sha256 of a record: its canonical body, ``sha256`` and ``hmac`` left out."""
    return hashlib.sha256(canonical({k: v for k, v in data.items() if k not in _UNSIGNED})).hexdigest()


def hmac_key() -> bytes | None:
    """The signing key from ``INFRA_RECORDS_HMAC_KEY`` (None when unset or empty)."""
    value = os.environ.get(HMAC_KEY_ENV, "")
    return value.encode() if value else None


def sign(data: dict, key: bytes) -> str:
    """HMAC-SHA256 over the canonical body (everything but ``hmac``, so ``sha256`` included)."""
    return hmac.new(key, canonical({k: v for k, v in data.items() if k != "hmac"}), hashlib.sha256).hexdigest()


def signature_ok(data: dict, key: bytes) -> bool:
    value = data.get("hmac")
    return isinstance(value, str) and hmac.compare_digest(value, sign(data, key))


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
    blueprint_path: str | None
    blueprint_sha256: str | None
    sandbox: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: float = field(default_factory=time.time)
    stages: list[dict[str, Any]] = field(default_factory=list)
    plan: dict[str, Any] | None = None
    versions: dict[str, Any] = field(default_factory=lambda: {"infra": __version__})
    git: dict[str, Any] | None = None
    outcome: str = "running"
    error: str | None = None
    user: str | None = None  # default: who runs this process (a `lost` record names the killed run's)
    host: str | None = None
    pid: int | None = None
    #: ``up``: the merged blueprint it applied (secret references, never values), for ``infra rollback``
    merged: dict[str, Any] | None = None
    rollback_of: str | None = None  # ``infra rollback``: the id of the run whose blueprint was re-applied

    def stage(self, name: str, status: str, seconds: float, detail: str | None = None) -> None:
        entry = {"name": name, "status": status, "seconds": round(seconds, 3)}
        if detail:
            entry["detail"] = detail
        self.stages.append(entry)

    def to_dict(self, finished: float) -> dict[str, Any]:
        data = self._body(finished)
        if self.merged is not None:
            data["blueprint"]["merged"] = self.merged
        if self.rollback_of is not None:
            data["rollback_of"] = self.rollback_of
        return data

    def _body(self, finished: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "env": self.env,
            "command": self.command,
            "user": self.user or getpass.getuser(),
            "host": self.host or socket.gethostname(),
            "pid": self.pid if self.pid is not None else os.getpid(),
            "started_at": _iso(self.started),
            "finished_at": _iso(finished),
            "duration_s": round(max(finished - self.started, 0.0), 3),
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


# --- reading ---------------------------------------------------------------------------------

_NONE = type(None)
_FIELDS: dict[str, tuple[type, ...]] = {
    "seq": (int,), "id": (str,), "env": (str,), "command": (str,), "user": (str,), "host": (str,),
    "started_at": (str,), "finished_at": (str,), "duration_s": (int, float), "sandbox": (bool,),
    "blueprint": (dict,), "versions": (dict,), "plan": (dict, _NONE), "stages": (list,),
    "outcome": (str,), "error": (str, _NONE), "prev_sha256": (str, _NONE), "sha256": (str,),
}
_OPTIONAL: dict[str, tuple[type, ...]] = {"pid": (int, _NONE), "hmac": (str,), "rollback_of": (str,)}
#: every outcome a run can end with (``running``: a record written before its run set one)
OUTCOMES = ("success", "no-changes", "drift", "failed", "cancelled", "interrupted", "lost", "locked", "running")
_JSON_NAMES = {str: "a string", int: "a number", float: "a number", bool: "true/false", dict: "an object",
               list: "an array", _NONE: "null"}


def _json_type(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true/false is not a number
    return isinstance(value, types)


def shape_problem(data: Any) -> str | None:
    """Why ``data`` is not a well-formed record (None when it is)."""
    if not isinstance(data, dict):
        return f"not a JSON object ({_json_type(data)})"
    for name in _FIELDS:
        if name not in data:
            return f"field `{name}` is missing"
    for name, types in {**_FIELDS, **_OPTIONAL}.items():
        if name in data and not _type_ok(data[name], types):
            allowed = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in types))
            return f"field `{name}` is {_json_type(data[name])}, expected {allowed}"
    for i, stage in enumerate(data["stages"]):
        if not isinstance(stage, dict):
            return f"field `stages[{i}]` is {_json_type(stage)}, expected an object"
    if data["outcome"] not in OUTCOMES:
        return f"field `outcome` is {json.dumps(data['outcome'])}, expected one of {', '.join(OUTCOMES)}"
    return None


class StrictJSONError(ValueError):
    """Valid JSON to a lenient parser, but not a record or head as infra writes them."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise StrictJSONError(f"duplicate key {json.dumps(key)}")
        data[key] = value
    return data


def _no_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses what infra never writes and a lenient reader would take: a key twice
    in one object (the last one would win, so an edit could hide behind the first) and NaN/Infinity.
    Raises ``ValueError`` (``json.JSONDecodeError`` or ``StrictJSONError``)."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def json_problem(exc: ValueError) -> str:
    """Why text is not (strict) JSON, for a one-line message."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}"
    return str(exc)


class RecordsUnreadable(InfraError):
    """The records folder itself cannot be listed (permissions): nothing in it can be checked."""


@dataclass(frozen=True)
class Entry:
    """One file of a chain: its sequence number (from the file name) and content, or why it is corrupt."""

    path: Path
    seq: int | None
    data: Any = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def sha256(self) -> str | None:
        return self.data["sha256"] if self.ok else None

    @property
    def label(self) -> str:
        return f"record #{self.seq} ({self.path.name})" if self.seq is not None else f"file {self.path.name}"


def read_chain(records_dir: Path) -> list[Entry]:
    """Every record file of the chain in sequence order; corrupt ones included (``problem`` says why).
    A folder that exists but cannot be listed raises ``RecordsUnreadable``."""
    try:
        names = sorted(os.listdir(records_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise RecordsUnreadable(f"records folder {records_dir}: cannot be read ({exc.strerror or exc})") from None
    entries = []
    for path in (records_dir / name for name in names if name.endswith(".json")):
        if path.name.startswith("."):  # a temporary file of a writer
            continue
        match = _FILE_RE.match(path.name)
        seq = int(match.group(1)) if match else None
        entries.append(_read_entry(path, seq))
    return sorted(entries, key=lambda e: (e.seq is None, e.seq or 0, e.path.name))


def _read_entry(path: Path, seq: int | None) -> Entry:
    if seq is None:
        return Entry(path, None, problem="not a record file name (expected <seq>-<UTC time>-<id>.json)")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return Entry(path, seq, problem=f"cannot be read ({getattr(exc, 'strerror', None) or exc})")
    try:
        data = loads_strict(text)
    except ValueError as exc:
        return Entry(path, seq, problem=f"not valid JSON ({json_problem(exc)})")
    return Entry(path, seq, data, shape_problem(data))


def list_records(records_dir: Path) -> list[dict[str, Any]]:
    """The well-formed records, oldest first (corrupt ones are left out: ``read_chain`` has them)."""
    return [e.data for e in read_chain(records_dir) if e.ok]


# --- writing ---------------------------------------------------------------------------------

Warn = Callable[[str], None]


def write(records_dir: Path, record: RunRecord, heads: Iterable[HeadStore] = (), warn: Warn | None = None,
          shared: SharedEnv | None = None) -> Path:
    """Append ``record`` to the environment's chain, then move the chain's head(s) to it.

    A lock on the folder serialises writers (sandbox and real runs of one environment take
    different run locks but share this chain). The record is written to a temporary file and
    linked into place, so a reader never sees a partial record and no file is ever replaced.
    Its ``seq`` is one more than the highest of the files here and of every stored head, so a
    deleted last record's number is never given out again. A head that cannot be read or
    written is reported through ``warn`` (``infra history --verify`` then reports the gap).

    With ``shared`` (the state is in a bucket: ``shared_store``), the records there that are missing
    here are copied in first, so the new record continues the shared chain, and after it is linked
    here every record the bucket lacks is uploaded, before the heads move.
    """
    warn = warn or (lambda _msg: None)
    heads = [h for h in heads if covers(h, record.sandbox)]  # a sandbox run never touches the real backend
    try:
        records_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(records_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise InfraError(f"run record not written: records folder {records_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        pulled = shared.pull(records_dir, warn) if shared is not None else None
        entries = read_chain(records_dir)
        key = hmac_key()
        data = record.to_dict(time.time())
        data = json.loads(redact(json.dumps(data), [key.decode()] if key is not None else []))  # every field
        data["seq"] = max([e.seq for e in entries if e.seq is not None] + _head_seqs(heads, warn), default=0) + 1
        data["prev_sha256"] = _last_sha(entries)
        data["sha256"] = body_sha256(data)
        if key is not None:
            data["hmac"] = sign(data, key)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(record.started))
        path = _link_new(records_dir, data, f"{stamp}-{record.id}")
        if shared is not None:
            shared.push(records_dir, pulled, warn)
        head = {"env": record.env, "seq": data["seq"], "sha256": data["sha256"], "count": len(entries) + 1,
                "host": socket.gethostname(), "updated_at": data["finished_at"]}
        if key is not None:
            head["hmac"] = sign(head, key)
        for store in heads:
            try:
                store.write(head)
            except InfraError as exc:
                warn(f"run record #{data['seq']} written, but {exc.message}")
        return path
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)


def covers(head: HeadStore, sandbox: bool) -> bool:
    """Whether a run (``sandbox`` or not) moves ``head``, and its record is covered by it."""
    return head.covers_sandbox if sandbox else getattr(head, "covers_real", True)


def _head_seqs(heads: list[HeadStore], warn: Warn) -> list[int]:
    seqs = []
    for store in heads:
        try:
            head = store.read()
        except InfraError as exc:
            warn(exc.message)
            continue
        if isinstance(head, dict) and isinstance(head.get("seq"), int) and not isinstance(head["seq"], bool):
            seqs.append(head["seq"])
    return seqs


def _last_sha(entries: list[Entry]) -> str | None:
    """The hash of the newest record that has one (a corrupt newest record is linked past)."""
    for entry in reversed(entries):
        if entry.seq is not None and isinstance(entry.data, dict) and isinstance(entry.data.get("sha256"), str):
            return entry.data["sha256"]
    return None


def _link_new(records_dir: Path, data: dict, suffix: str) -> Path:
    """Write to a temporary file, then hard-link it to its final name (never replacing a file)."""
    tmp = records_dir / f".{uuid.uuid4().hex}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InfraError(f"run record not written: records folder {records_dir}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        path = records_dir / f"{data['seq']:06d}-{suffix}.json"
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            raise InfraError(f"run record {path} already exists; refusing to replace it") from None
        return path
    finally:
        tmp.unlink(missing_ok=True)


# --- runs lost to kill -9 ---------------------------------------------------------------------


def lost_record(env: str, info: dict[str, Any], sandbox: bool) -> RunRecord:
    """The record of a run that was killed holding the lock, from the holder info it left behind."""
    words = str(info.get("command") or "").split()
    command = words[1] if len(words) > 1 and words[0] == "infra" else (" ".join(words) or "unknown")
    pid = info.get("pid")
    return RunRecord(
        env=env, command=command, blueprint_path=None, blueprint_sha256=None, sandbox=sandbox,
        started=_parse_iso(info.get("since")) or time.time(), versions={}, outcome="lost", error=LOST_ERROR,
        user=str(info.get("user") or "unknown"), host=str(info.get("host") or "unknown"),
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
    )


def lost_message(info: dict[str, Any]) -> str:
    who = f"{info.get('user', '?')}@{info.get('host', '?')} (pid {info.get('pid', '?')})"
    return (f"the previous run `{info.get('command', '?')}` by {who}, since {info.get('since', '?')}, was killed "
            "without a clean exit: recorded as `lost`; resources created in its last moments may be outside "
            "state (docs/records.md)")


def _parse_iso(value: Any) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None
