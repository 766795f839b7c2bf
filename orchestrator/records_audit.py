"""Verifying a records chain: every file, every link, every signature, and the tail against each head.

``audit`` returns one line per problem, naming the record (``#seq`` and file) or the head and
what is wrong, plus warnings for what could not be checked. ``infra history`` prints them;
with ``--verify`` any problem is an ``AuditError`` (exit 8).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import records
from .records import Entry
from .records_heads import HeadError, HeadStore, head_problem


@dataclass
class Audit:
    entries: list[Entry]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: "label (#seq)" of every head the chain's tail matched
    heads_matched: list[str] = field(default_factory=list)
    #: False when the records folder itself could not be read (``problems`` says why)
    readable: bool = True


def audit(records_dir: Path, env: str, heads: list[HeadStore], key: bytes | None = None) -> Audit:
    """Check ``env``'s chain in ``records_dir`` and its tail against ``heads``; ``key``: the HMAC key.

    A head with ``past`` set (a head committed at an earlier git revision) may lag the chain: it
    must name a record here, with the same hash and count, but later records are expected."""
    try:
        result = Audit(records.read_chain(records_dir))
    except records.RecordsUnreadable as exc:  # nothing can be compared: say only that
        return Audit([], problems=[exc.message], readable=False)
    _check_files(result, env)
    _check_signatures(result, key)
    for store in heads:
        _check_head(result, store, env, key)
    return result


def _short(sha: Any) -> str:
    return f"{sha[:12]}…" if isinstance(sha, str) else "none"


def _check_files(result: Audit, env: str) -> None:
    problems = result.problems
    counts = Counter(e.seq for e in result.entries if e.seq is not None)
    for seq in sorted(s for s, n in counts.items() if n > 1):
        problems.append(f"record #{seq}: {counts[seq]} files claim this sequence number")
    prev: Entry | None = None
    for entry in result.entries:
        if entry.seq is None:
            problems.append(f"{entry.label}: {entry.problem}")
            continue
        expected = prev.seq + 1 if prev is not None else 1
        gap = entry.seq > expected
        if gap:
            missing = f"#{expected}" if entry.seq == expected + 1 else f"#{expected} to #{entry.seq - 1}"
            after = f"after #{prev.seq}" if prev is not None else "at the start"
            problems.append(f"record {missing} missing {after}: deleted (sequence numbers are never reused)")
        if not entry.ok:
            problems.append(f"{entry.label}: corrupt: {entry.problem}")
        else:
            data = entry.data
            if data["seq"] != entry.seq:
                problems.append(f"{entry.label}: the file name says #{entry.seq} but the record says "
                                f"#{data['seq']} (renamed or moved)")
            if data["env"] != env:
                problems.append(f"{entry.label}: belongs to environment '{data['env']}', not '{env}'")
            if records.body_sha256(data) != data["sha256"]:
                problems.append(f"{entry.label}: modified after it was written (its sha256 does not match "
                                "its content)")
            linkable = not gap and (prev is None or prev.ok) and counts[entry.seq] == 1
            if linkable and data["prev_sha256"] != (prev.sha256 if prev is not None else None):
                before = f"record #{prev.seq}" if prev is not None else "nothing (it is the first record)"
                problems.append(f"{entry.label}: does not follow {before}: prev_sha256 is "
                                f"{_short(data['prev_sha256'])} (a record was replaced or re-hashed)")
        prev = entry


def _check_signatures(result: Audit, key: bytes | None) -> None:
    good = [e for e in result.entries if e.ok]
    if key is None:
        signed = sum(1 for e in good if "hmac" in e.data)
        if signed:
            result.warnings.append(f"{signed} records are signed (hmac) but {records.HMAC_KEY_ENV} is not set: "
                                   "their signatures were not checked")
        return
    for entry in good:
        if "hmac" not in entry.data:
            result.problems.append(f"{entry.label}: has no hmac (written without {records.HMAC_KEY_ENV}, "
                                   "or its hmac was removed)")
        elif not records.signature_ok(entry.data, key):
            result.problems.append(f"{entry.label}: hmac does not match (edited, or signed with another key)")


def _covered(entry: Entry, store: HeadStore) -> bool:
    return records.covers(store, bool(entry.ok and entry.data["sandbox"]))


def _check_head(result: Audit, store: HeadStore, env: str, key: bytes | None) -> None:
    problems, label = result.problems, store.label
    numbered = [e for e in result.entries if e.seq is not None]
    try:
        head = store.read()
    except HeadError as exc:
        problems.append(exc.message)
        return
    if head is None:
        covered = [e for e in numbered if _covered(e, store)]
        if covered and getattr(store, "past", False):  # a fresh clone's: the state-backend head stands in
            result.warnings.append(f"{label}: not here (a fresh clone, or never committed): the state-backend "
                                   "head stands in for it (--verify)")
        elif covered:
            problems.append(f"{label}: missing, but {len(covered)} records here should be covered by it "
                            "(the head was removed, or the records were not written by a run that kept it)")
        return
    shape = head_problem(head, env)
    if shape:
        problems.append(f"{label}: {shape}")
        return
    if key is not None and not records.signature_ok(head, key):
        problems.append(f"{label}: hmac {'does not match' if 'hmac' in head else 'is missing'}")
    elif key is None and "hmac" in head:
        result.warnings.append(f"{label} is signed (hmac) but {records.HMAC_KEY_ENV} is not set: not checked")
    seq, sha = head["seq"], head["sha256"]
    last = max((e.seq for e in numbered), default=0)
    at = [e for e in numbered if e.seq == seq]
    ok = False
    if not at:
        if seq > last:
            where = f"the last record here is #{last}" if last else "there are no records here"
            problems.append(f"{label}: says the chain ends at record #{seq} (sha256 {_short(sha)}), but {where}: "
                            "records were deleted from the end")
        else:
            problems.append(f"{label}: names record #{seq} (sha256 {_short(sha)}), which is missing here")
    elif at[0].ok and at[0].sha256 != sha:
        elsewhere = [e for e in numbered if e.sha256 == sha]
        if elsewhere:
            problems.append(f"{label}: names record #{seq}, but its sha256 {_short(sha)} is {elsewhere[0].label}'s "
                            "here: the records were renumbered")
        else:
            problems.append(f"{label}: record #{seq} has sha256 {_short(at[0].sha256)} here but the head says "
                            f"{_short(sha)}, found in no record here: the record was edited and re-hashed, or "
                            "the chain was rewritten")
    else:
        count = sum(1 for e in numbered if e.seq <= seq)
        ok = at[0].ok and count == head["count"]
        if count != head["count"]:
            problems.append(f"{label}: says {head['count']} records up to #{seq}, but there are {count} here")
    for entry in numbered:
        if entry.seq > seq and _covered(entry, store) and not getattr(store, "past", False):
            problems.append(f"{entry.label}: is newer than the {label} (#{seq}): appended without moving "
                            "the head (a forged record, or a run whose head update failed)")
            ok = False
    if ok:
        result.heads_matched.append(f"{label} (#{seq})")
