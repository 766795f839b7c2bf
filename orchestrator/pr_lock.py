"""An environment held for the life of a pull request: ``infra lock acquire FILE --holder PR-123``
(docs/gitops.md, "Holding an environment for a pull request").

The hold is one object beside the state, ``infra/<env>/hold.json`` (``{"holder", "user", "host",
"since"}``), created with a conditional write (``If-None-Match: *``: one creator wins, as the run
lock, ``shared_lock``) and removed with ``If-Match`` on the etag read. While it is there, ``up`` and
``down`` of that environment run only for the holder: a run whose ``INFRA_LOCK_HOLDER`` names
another holder (or none) is refused with exit 6 before anything runs, and is not recorded, like a
run refused by the shared run lock. ``plan`` is never held: other pull requests keep planning.
Only an environment whose state is in S3 can be held (every clone and CI runner sees the hold).
"""

from __future__ import annotations

import getpass
import json
import re
import socket
import time
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .shared_store import PreconditionFailed, SharedLocked

if TYPE_CHECKING:
    from .shared_store import SharedEnv

KEY = "hold.json"
HOLDER_ENV = "INFRA_LOCK_HOLDER"
HELD_COMMANDS = ("up", "down")
_HOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._#/:-]{0,63}$")


def check_holder(holder: str) -> str:
    if not _HOLDER.fullmatch(holder):
        raise UsageError(f"--holder {holder!r}: expected a name such as PR-123 (letters, digits, . _ # / : -; "
                         "at most 64 characters)")
    return holder


def read(shared: SharedEnv) -> tuple[dict[str, Any], str] | None:
    """The hold and its etag, or None when the environment is not held."""
    found = shared.objects.get(shared.prefix + KEY)
    if found is None:
        return None
    try:
        data = json.loads(found[0])
    except ValueError:
        data = None
    return (data if isinstance(data, dict) else {"holder": "?"}), found[1]


def describe(hold: dict[str, Any]) -> str:
    return (f"{hold.get('holder', '?')} (taken by {hold.get('user', '?')}@{hold.get('host', '?')} "
            f"since {hold.get('since', '?')})")


def acquire(shared: SharedEnv, holder: str) -> tuple[dict[str, Any], bool]:
    """Hold the environment for ``holder``: (the hold, whether it was taken now). Held already by the
    same holder: kept as it is. Held by another: ``SharedLocked`` (exit 6)."""
    check_holder(holder)
    hold = {"holder": holder, "user": getpass.getuser(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        shared.objects.put(shared.prefix + KEY, (json.dumps(hold, sort_keys=True) + "\n").encode(), if_absent=True)
        return hold, True
    except PreconditionFailed:
        pass
    current = read(shared)
    if current is None:  # released in between
        return acquire(shared, holder)
    if current[0].get("holder") == holder:
        return current[0], False
    raise _held(shared, current[0], f"cannot hold it for {holder}")


def release(shared: SharedEnv, holder: str, force: bool = False) -> dict[str, Any] | None:
    """Release ``holder``'s hold (``force``: whoever holds it); the hold released, or None when there
    was none. Held by another holder without ``force``: ``SharedLocked`` (exit 6)."""
    check_holder(holder)
    current = read(shared)
    if current is None:
        return None
    hold, etag = current
    if hold.get("holder") != holder and not force:
        raise _held(shared, hold, f"{holder} cannot release it (--force releases any hold)")
    try:
        shared.objects.delete(shared.prefix + KEY, if_match=etag)
    except PreconditionFailed:
        raise SharedLocked(f"environment '{shared.env}': the hold {shared.where(KEY)} changed while it was "
                           "being released", hint="run again") from None
    return hold


def check(shared: SharedEnv, command: str, holder: str | None) -> None:
    """Before ``up``/``down`` runs: refuse (``SharedLocked``, exit 6) when another holder holds it."""
    if command not in HELD_COMMANDS:
        return
    current = read(shared)
    if current is None or (holder and current[0].get("holder") == holder):
        return
    theirs = f"{HOLDER_ENV}={holder}" if holder else f"no {HOLDER_ENV}"
    raise _held(shared, current[0], f"`infra {command}` runs only for it ({theirs})")


def _held(shared: SharedEnv, hold: dict[str, Any], what: str) -> SharedLocked:
    return SharedLocked(f"environment '{shared.env}' is held for {describe(hold)}: {what}",
                        hint=f"its pull request releases it (`infra lock release FILE --holder "
                             f"{hold.get('holder', '?')}`); the hold is {shared.where(KEY)}")
