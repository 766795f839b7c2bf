"""Where one environment's working files live, and the run lock that guards them.

Everything machine-specific stays under ``.infra/`` (ignored by git); ``build/`` holds only
the reviewable render. Layout, relative to the project root (the current directory)::

    build/<name>/terraform/            rendered root module (committed in GitOps repos)
    .infra/env/<name>/                 Terraform data dir, local state, saved plan, logs, outputs
    .infra/env/<name>/ansible/         inventory, artifacts, fact cache, hosts.json (last configure)
    .infra/sandbox/<name>/             the same for --sandbox runs (render copy + overrides)
    .infra/records/<name>/             run records (see records.py)
    .infra/locks/<name>.lock           held by a running plan/up/down

Everything under ``.infra/`` is owner-only: folders 0700, files 0600 (``infra`` runs with umask
077, and ``Workspace.secure`` tightens what an older version left wider). ``build/`` keeps
0755/0644: it is meant to be reviewed and committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import LockedError

STATE_DIR_ENV = "INFRA_STATE_DIR"


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Create ``path`` and its missing parents owner-only (0700, whatever the umask); with
    ``tighten``, also narrow ``path`` itself when it exists with a wider mode (an older infra)."""
    target = probe = Path(path)
    missing = []
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)  # mkdir's mode passes through the umask
    if tighten and not missing:
        _narrow(target)
    return target


def _narrow(path: Path | str) -> None:
    """Take every permission away from group and others (0755 -> 0700, 0644 -> 0600); symlinks,
    missing paths and paths owned by someone else are left alone."""
    with contextlib.suppress(OSError):
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & 0o700)


def private_tree(root: Path) -> None:
    """Narrow everything under ``root`` to the owner (folders 0700, files 0600, symlinks not
    followed): for trees another program writes, e.g. one ansible-runner run's artifacts."""
    for folder, _dirs, files in os.walk(root):
        _narrow(folder)
        for name in files:
            _narrow(os.path.join(folder, name))


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` readable by the owner only (0600), atomically: outputs, kubeconfigs, results."""
    private_dir(path.parent)
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
        self.secure()
        return RunLock(self.lock_path, command, self.name)

    def secure(self) -> None:
        """Create this environment's working folders owner-only (0700) and tighten the ones an older
        infra left wider, with the files directly in the environment folder, its logs and the locks.

        Only the folders infra owns, by name, not a walk of the tree: this runs on every locked
        command. Files deeper down are unreachable to others once their folders are 0700.
        """
        state = self.state_dir
        for path in (state, state / "locks", state / "records", self.records_dir, self.env_dir.parent, self.env_dir):
            private_dir(path, tighten=True)
        subdirs = ("logs", "tf-data", "terraform", "ansible", "ansible/artifacts", "ansible/facts", "ansible/inventory")
        for path in (state / "env", state / "sandbox", *(self.env_dir / d for d in subdirs)):
            _narrow(path)
        for folder in (self.env_dir, self.log_dir, state / "locks"):
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        _narrow(entry.path)


class RunLock:
    """An exclusive, non-blocking lock on one environment (flock: released if the holder dies).

    The holder writes who it is next to the lock so a second run can name it. That info outlives
    a holder killed with SIGKILL (no clean exit): the next holder finds it and, when that process
    is gone, exposes it as ``lost`` (``stages.run`` records the lost run).
    """

    def __init__(self, path: Path, command: str, env: str) -> None:
        self.path = path
        self.info_path = path.with_suffix(".json")
        self.command = command
        self.env = env
        self._fd: int | None = None
        self.lost: dict | None = None  # holder info left by a run that died holding the lock
        self._keep_lost = False

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
        self.lost = self._leftover()
        info = {
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "pid_start": proc_start(os.getpid()),
        }
        self.info_path.write_text(json.dumps(info, sort_keys=True) + "\n")
        return self

    def keep_lost(self) -> None:
        """Leave the lost run's holder info behind on exit (instead of removing ours), for the next
        run to record: this run was refused before it could (a terraform of that run still runs)."""
        self._keep_lost = self.lost is not None

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            if self._keep_lost and self.lost is not None:
                self.info_path.write_text(json.dumps(self.lost, sort_keys=True) + "\n")
            else:
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

    def _leftover(self) -> dict | None:
        """Holder info still here once we hold the lock: its writer died without a clean exit.

        None when there is none, or when it names a process of this host that is still running
        (same pid and start time: not a killed run).
        """
        try:
            text = self.info_path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            text = ""
        try:
            info = json.loads(text)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            return {"command": "unknown", "user": "unknown", "host": "unknown"}  # killed while writing it
        pid = info.get("pid")
        running = proc_start(pid) if isinstance(pid, int) and info.get("host") == socket.gethostname() else None
        if running is not None and info.get("pid_start") in (None, running):
            return None  # that process is alive: not a killed run
        return info


def proc_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None if it is not running."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat_line.rsplit(")", 1)[-1].split()
    if not fields or fields[0] in ("Z", "X"):  # a zombie has exited already
        return None
    return fields[19] if len(fields) > 19 else ""
