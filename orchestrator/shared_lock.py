"""The run lock beside a remote state: ``s3://BUCKET/infra/<name>/run.lock`` (docs/records.md,
"Shared where the state is"). Taken after the local lock (``workspace.RunLock``), so two runs of
one environment exclude each other across every clone and CI runner, not only on one machine."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from .shared_store import PreconditionFailed, SharedLocked, SharedStoreError, Warn

if TYPE_CHECKING:
    from .shared_store import SharedEnv


class SharedLock:
    """``run.lock`` beside the state, created with ``If-None-Match: *`` (one creator wins) and deleted
    with ``If-Match`` on the etag we wrote. A lock left by a killed run of this host whose process is
    gone is taken over (``If-Match`` on its etag), with a warning; one of another host is never
    guessed dead: the message names it and the object to remove once that run is known to be gone."""

    def __init__(self, shared: SharedEnv, command: str, warn: Warn) -> None:
        self.shared, self.command, self.warn = shared, command, warn
        self.key = shared.prefix + "run.lock"
        self.etag: str | None = None
        self.token = uuid.uuid4().hex

    def __enter__(self) -> SharedLock:
        from .workspace import proc_start

        info = {"user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(),
                "pid_start": proc_start(os.getpid()), "command": self.command, "token": self.token,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        body = (json.dumps(info, sort_keys=True) + "\n").encode()
        objects = self.shared.objects
        for _attempt in range(3):
            try:
                self.etag = objects.put(self.key, body, if_absent=True)
                return self
            except PreconditionFailed:
                pass
            current = objects.get(self.key)
            if current is None:
                continue  # released in between: try again
            holder = _holder(current[0])
            if not _gone(holder):
                raise SharedLocked(
                    f"environment '{self.shared.env}' is locked by {_who(holder)} "
                    f"(shared lock {self.shared.where('run.lock')})",
                    hint="wait for that run to finish; if it is known to be gone (a machine that died), "
                         f"delete {self.shared.where('run.lock')} and run again (docs/records.md)")
            try:
                self.etag = objects.put(self.key, body, if_match=current[1])
            except PreconditionFailed:
                continue  # someone else took it over first
            self.warn(f"the shared lock {self.shared.where('run.lock')} of {_who(holder)} was left by a run "
                      "that is gone (killed): taken over")
            return self
        raise SharedLocked(f"environment '{self.shared.env}': the shared lock {self.shared.where('run.lock')} "
                           "changed hands three times while it was being taken", hint="run again")

    def __exit__(self, *exc: object) -> None:
        if self.etag is None:
            return
        try:
            self.shared.objects.delete(self.key, if_match=self.etag)
        except PreconditionFailed:
            self.warn(f"the shared lock {self.shared.where('run.lock')} was taken over by another run while "
                      "this one held it")
        except SharedStoreError as exc:
            self.warn(f"the shared lock was not released: {exc.message}; delete {self.shared.where('run.lock')} "
                      "once this run has ended")
        self.etag = None


def _holder(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def _who(info: dict[str, Any]) -> str:
    return (f"{info.get('user', '?')}@{info.get('host', '?')} (pid {info.get('pid', '?')}, "
            f"`{info.get('command', '?')}`, since {info.get('since', '?')})")


def _gone(info: dict[str, Any]) -> bool:
    """The holder ran on this host and its process is no longer there (or is another process now)."""
    from .workspace import proc_start

    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int) or isinstance(pid, bool):
        return False
    running = proc_start(pid)
    return running is None or info.get("pid_start") not in (None, running)
