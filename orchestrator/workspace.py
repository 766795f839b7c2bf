"""Where one environment's working files live, and the run lock that guards them.

Everything machine-specific stays under ``.infra/`` (ignored by git); ``build/`` holds only
the reviewable render. Layout, relative to the project root (the current directory)::

    build/<name>/terraform/            rendered root module (committed in GitOps repos)
    .infra/env/<name>/                 Terraform data dir, local state, saved plan, logs, outputs
    .infra/env/<name>/ansible/         inventory, artifacts, fact cache, hosts.json (last configure)
    .infra/sandbox/<name>/             the same for --sandbox runs (render copy + overrides)
    .infra/records/<name>/             run records (see records.py)
    .infra/locks/<name>.lock           held by a running plan/up/down
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import LockedError

STATE_DIR_ENV = "INFRA_STATE_DIR"


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` readable by the owner only (0600), atomically: outputs, kubeconfigs, results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_json(path: Path) -> dict:
    """A JSON object written by ``write_private``; ``{}`` when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Workspace:
    root: Path
    name: str
    sandbox: bool = False
    build_root: Path | None = None

    @property
    def state_dir(self) -> Path:
        override = os.environ.get(STATE_DIR_ENV)
        return Path(override) if override else self.root / ".infra"

    @property
    def build_dir(self) -> Path:
        return (self.build_root or self.root / "build") / self.name

    @property
    def env_dir(self) -> Path:
        return self.state_dir / ("sandbox" if self.sandbox else "env") / self.name

    @property
    def terraform_dir(self) -> Path:
        """Where terraform runs: the render itself, or a sandbox copy that carries overrides."""
        return self.env_dir / "terraform" if self.sandbox else self.build_dir / "terraform"

    @property
    def tf_data_dir(self) -> Path:
        return self.env_dir / "tf-data"

    @property
    def state_file(self) -> Path:
        return self.env_dir / "terraform.tfstate"

    @property
    def plan_file(self) -> Path:
        return self.env_dir / "plan.tfplan"

    @property
    def log_dir(self) -> Path:
        return self.env_dir / "logs"

    @property
    def outputs_file(self) -> Path:
        return self.env_dir / "outputs.json"

    @property
    def records_dir(self) -> Path:
        return self.state_dir / "records" / self.name

    @property
    def lock_path(self) -> Path:
        suffix = "-sandbox" if self.sandbox else ""
        return self.state_dir / "locks" / f"{self.name}{suffix}.lock"

    def lock(self, command: str) -> RunLock:
        return RunLock(self.lock_path, command, self.name)


class RunLock:
    """An exclusive, non-blocking lock on one environment (flock: released if the holder dies).

    The holder writes who it is next to the lock so a second run can name it.
    """

    def __init__(self, path: Path, command: str, env: str) -> None:
        self.path = path
        self.info_path = path.with_suffix(".json")
        self.command = command
        self.env = env
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"environment '{self.env}' is locked by {self._holder()}",
                hint="wait for that run to finish (the lock is released when its process exits)",
            ) from None
        self._fd = fd
        info = {
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.info_path.write_text(json.dumps(info, sort_keys=True) + "\n")
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.info_path.unlink()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _holder(self) -> str:
        try:
            info = json.loads(self.info_path.read_text())
        except (OSError, ValueError):
            return "another process (holder unknown)"
        return f"{info['user']}@{info['host']} (pid {info['pid']}, `{info['command']}`, since {info['since']})"
