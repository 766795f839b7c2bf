"""The embedded AWS emulator behind ``--sandbox``: a moto server on a loopback port.

It emulates the AWS *API* only: EKS reports clusters and node groups ACTIVE but runs no
nodes, so nothing can be scheduled there. One server serves every sandbox environment of a
project; it is started on first use and keeps running between commands (``infra sandbox
stop`` ends it) so that ``up``, ``status`` and ``down`` can be separate commands.

The server has a *generation* (a random id). Each sandbox environment remembers the
generation its Terraform state was applied against; if the server was restarted since, the
emulated resources are gone, so that state is discarded rather than trusted.

``Sandbox`` is the one object a ``--sandbox`` command carries: it starts or attaches to the
server and hands the stages a ``TerraformOverrides``, all they ever see of the sandbox: the
override files to add to a private copy of the rendered root module, the local backend, and
the environment's binding to the server (attached before a run, forgotten after ``down``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SandboxError
from .workspace import private_dir, write_private

if TYPE_CHECKING:
    from .blueprint.models import Blueprint
    from .providers.base import Provider
    from .render.writer import WriteResult

_START_TIMEOUT_S = 60.0
_ANSWER_TIMEOUT_S = 30.0  # how long a running server may take to answer before it is reported stuck


#: the address of an emulator started elsewhere (another clone, a CI service): used, never started or stopped
ENDPOINT_ENV = "INFRA_SANDBOX_ENDPOINT"


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    port: int
    generation: str
    started_at: str
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"


def _external() -> ServerInfo | None:
    """The emulator ``INFRA_SANDBOX_ENDPOINT`` names (``http://HOST:PORT``), when it is set. Its
    generation is its address: local sandbox state is discarded when the address changes."""
    import hashlib
    import urllib.parse

    value = os.environ.get(ENDPOINT_ENV, "").strip()
    if not value:
        return None
    try:
        url = urllib.parse.urlsplit(value)
        port = url.port
    except ValueError:
        port, url = None, None
    if url is None or url.scheme != "http" or not url.hostname or port is None or url.path not in ("", "/") \
            or url.query or url.fragment or url.username:
        raise SandboxError(f"{ENDPOINT_ENV}={value!r}: not an emulator address (http://HOST:PORT)")
    info = ServerInfo(0, port, "ext-" + hashlib.sha256(value.encode()).hexdigest()[:12], "", host=url.hostname)
    if not _ready(info.endpoint):
        raise SandboxError(f"{ENDPOINT_ENV}: the AWS emulator at {info.endpoint} does not answer",
                           hint=f"start it where it runs (`infra sandbox start`), or unset {ENDPOINT_ENV}")
    return info


def _info_path(state_dir: Path) -> Path:
    return state_dir / "sandbox" / "server.json"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"moto" in cmdline


def _ready(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _read_info(state_dir: Path) -> ServerInfo | None:
    try:
        return ServerInfo(**json.loads(_info_path(state_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def status(state_dir: Path, wait_s: float = _ANSWER_TIMEOUT_S) -> ServerInfo | None:
    """The running server, or None when there is none (a stale server.json is removed).

    A server whose process is alive is waited for (up to ``wait_s``) rather than replaced: on a
    busy machine it may answer late, and a new server would be a new generation, so every sandbox
    environment's state would be discarded and its resources created again. One alive that never
    answers is an error (``infra sandbox stop`` ends it), never silently left running beside a
    new one. ``INFRA_SANDBOX_ENDPOINT`` names the emulator instead of ``server.json``."""
    external = _external()
    if external is not None:
        return external
    info = _read_info(state_dir)
    if info is None:
        return None
    deadline = time.monotonic() + wait_s
    while _is_ours(info.pid):
        if _ready(info.endpoint):
            return info
        if time.monotonic() > deadline:
            raise SandboxError(
                f"the AWS emulator (pid {info.pid}) on 127.0.0.1:{info.port} does not answer",
                hint="stop it with `infra sandbox stop` and run the command again (its resources are lost)",
            )
        time.sleep(0.5)
    _info_path(state_dir).unlink(missing_ok=True)
    return None


def start(state_dir: Path) -> ServerInfo:
    """Start the server if it is not running; return it either way. Two commands starting at
    once (two shells, two CI jobs in one project) take a lock: the second attaches to the first's
    server instead of starting another (which would orphan one and discard state)."""
    running = status(state_dir)
    if running:
        return running
    folder = private_dir(_info_path(state_dir).parent, tighten=True)
    fd = os.open(folder / "start.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return status(state_dir) or _start_locked(state_dir, folder)
    finally:
        os.close(fd)  # releases the lock


def _start_locked(state_dir: Path, folder: Path) -> ServerInfo:
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        raise SandboxError(
            "the sandbox needs the AWS emulator, which is not installed",
            hint="pip install 'infra-orchestrator[sandbox]' (or run `make setup`)",
        ) from exc
    port = _free_port()
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    fd = os.open(folder / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # the log of requests (and their bodies): owner-only, like everything in .infra/
    log = os.fdopen(fd, "ab")
    proc = subprocess.Popen(
        # moto's server with what we add to its EKS (orchestrator/sandbox_moto.py, docs/sandbox.md)
        [sys.executable, "-m", "orchestrator.sandbox_moto", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True, umask=0o077,
    )
    log.close()
    info = ServerInfo(proc.pid, port, uuid.uuid4().hex[:12], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not _ready(info.endpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            _terminate(proc.pid)
            raise SandboxError(
                f"the AWS emulator did not start on 127.0.0.1:{port}",
                hint=f"see {folder / 'server.log'}",
            )
        time.sleep(0.2)
    write_private(_info_path(state_dir), json.dumps(info.__dict__, sort_keys=True) + "\n")
    return info


def stop(state_dir: Path) -> ServerInfo | None:
    """Ends the server whether or not it answers; None when none was running (one that
    ``INFRA_SANDBOX_ENDPOINT`` names is not this project's to stop)."""
    info = _read_info(state_dir)
    if info is not None and _is_ours(info.pid):
        _terminate(info.pid)
    else:
        info = None
    _info_path(state_dir).unlink(missing_ok=True)
    return info


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class Sandbox:
    """The emulator session of one ``--sandbox`` command: from the CLI flag to the stages."""

    server: ServerInfo

    @classmethod
    def start(cls, state_dir: Path) -> Sandbox:
        """Attach to the project's running emulator, or start it."""
        return cls(start(state_dir))

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def overrides(self, provider: Provider, bp: Blueprint | None = None) -> TerraformOverrides:
        """What ``provider``'s Terraform needs to run against this emulator (its sandbox templates).
        A blueprint whose state is in S3 keeps its sandbox state in the emulator's bucket of that
        name (``shared_store``); any other, locally under ``.infra/sandbox/<name>/``."""
        from .render.terraform import render_sandbox_backend, render_sandbox_overrides

        files = render_sandbox_overrides(provider, self.endpoint)
        if bp is None or bp.state.backend != "s3" or not bp.state.bucket:
            return TerraformOverrides(files, self)
        files["backend_override.tf"] = render_sandbox_backend(provider.backend(bp)[1], self.endpoint)
        return TerraformOverrides(files, self, backend="s3")

    def attach(self, env_dir: Path) -> bool:
        """Bind a sandbox environment to this server generation.

        Returns True when earlier state was discarded because the server was restarted (the
        emulated resources it described no longer exist).
        """
        marker = env_dir / "generation"
        previous = marker.read_text().strip() if marker.is_file() else None
        discarded = False
        if previous and previous != self.server.generation:  # (the backend's settings name the old emulator)
            for name in ("terraform.tfstate", "terraform.tfstate.backup", "plan.tfplan", "outputs.json",
                         "tf-data/terraform.tfstate"):
                (env_dir / name).unlink(missing_ok=True)
            discarded = True
        write_private(marker, self.server.generation + "\n")
        return discarded

    def forget(self, env_dir: Path) -> None:
        """Remove a destroyed sandbox environment's working files."""
        shutil.rmtree(env_dir, ignore_errors=True)


@dataclass(frozen=True)
class TerraformOverrides:
    """How a run's Terraform differs from the plain render; what the stages see of ``--sandbox``.

    Terraform runs in a private copy of ``build/<name>/terraform/`` with ``files`` added (paths
    relative to the root module), initialised with the ``backend`` named here.
    """

    files: Mapping[str, str]
    session: Sandbox = field(repr=False)
    backend: str = "local"  # or "s3": the emulator's bucket (Sandbox.overrides)

    def write(self, rendered: Path, target: Path) -> WriteResult:
        """Copy the rendered root module from ``rendered`` to ``target`` (owner-only), adding ``files``.

        Files Terraform writes beside a render (its lock file, ``.terraform/``) are not copied:
        the copy keeps its own.
        """
        from .render import KEEP
        from .render.writer import write_tree

        files = {
            path.relative_to(rendered).as_posix(): path.read_text()
            for path in sorted(rendered.rglob("*"))
            if path.is_file() and path.name not in KEEP and ".terraform" not in path.relative_to(rendered).parts
        }
        files.update(self.files)
        return write_tree(target, files, KEEP)

    def attach(self, env_dir: Path) -> str | None:
        """Before a run, under the environment's lock: a warning when earlier state was discarded."""
        if self.session.attach(env_dir):
            return "the sandbox server was restarted: earlier sandbox state was discarded"
        return None

    def forget(self, env_dir: Path) -> None:
        """After everything was destroyed: the environment's working files go."""
        self.session.forget(env_dir)
