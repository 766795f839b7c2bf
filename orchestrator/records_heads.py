"""Where the head of a records chain is kept outside ``.infra/``: the repository, the state backend.

A head is ``{"env", "seq", "sha256", "count", "host", "updated_at"}`` (plus ``hmac`` when
``INFRA_RECORDS_HMAC_KEY`` is set): the newest record's sequence number and hash and how many
records the chain had. ``records.write`` moves every head after each record;
``records_audit`` compares the local chain's tail with each head. Someone who can edit
``.infra/`` can rewrite the chain consistently, but not a head that is committed and reviewed
(repository) or kept beside the Terraform state (S3).

- ``RepoHead``: ``<project root>/.infra-heads/<env>.json`` (``INFRA_RECORDS_HEAD_DIR`` moves
  the folder), meant to be committed. Covers every record, sandbox runs included.
- ``S3Head``: ``<state key>.records-head.json`` in the state bucket, written with boto3 (its
  usual credential chain and ``AWS_ENDPOINT_URL_S3``). Sandbox runs never touch it: they move
  the head of the same name in the emulator's bucket (``shared_store``), which covers them only.
- azurerm and gcs backends have no head store (not testable offline): the repository head
  stands in, and ``infra history --verify`` says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import AuditError

if TYPE_CHECKING:
    from .blueprint.models import Blueprint
    from .shared_store import SharedEnv

HEAD_DIR_ENV = "INFRA_RECORDS_HEAD_DIR"
HEAD_DIR = ".infra-heads"
S3_SUFFIX = ".records-head.json"


class HeadError(AuditError):
    """A head could not be read or written (unreachable backend, unreadable file)."""

    def __init__(self, message: str) -> None:
        super().__init__([message])


class HeadStore(Protocol):
    #: how the head is named in messages
    label: str
    #: whether sandbox runs' records move (and are covered by) this head; real runs' do unless the
    #: head has ``covers_real = False`` (the sandbox emulator's copy of an S3 head)
    covers_sandbox: bool
    #: whether reading it is a local file read (``infra history`` without --verify checks only these)
    local: bool

    def read(self) -> Any:
        """The stored head (parsed JSON, checked by the caller), or None when there is none yet."""

    def write(self, head: dict[str, Any]) -> None:
        """Replace the stored head, atomically."""


def _dumps(head: dict[str, Any]) -> str:
    return json.dumps(head, indent=2, sort_keys=True) + "\n"


def _parse(label: str, text: str | bytes) -> Any:
    from .records import json_problem, loads_strict

    try:
        return loads_strict(text)
    except ValueError as exc:
        raise HeadError(f"{label}: not valid JSON ({json_problem(exc)})") from None


class RepoHead:
    """A JSON file in the repository (commit it: a rewrite of ``.infra/`` cannot change it unseen).

    ``past``: the chain is shared beside the state, so this clone's head may lag it (runs from other
    clones) or be absent (a fresh clone): it must still name a record of the chain, unchanged."""

    covers_sandbox = True
    local = True

    def __init__(self, path: Path, past: bool = False) -> None:
        self.path = path
        self.past = past
        self.label = f"repository head {_shown(path)}"

    def read(self) -> Any:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise HeadError(f"{self.label}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
        return _parse(self.label, text)

    def write(self, head: dict[str, Any]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(_dumps(head))
            os.chmod(tmp, 0o644)  # committed and reviewed: not a private file
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise HeadError(f"{self.label} could not be written ({exc.strerror or exc})") from None


class GitHead:
    """The repository head as committed at a git revision (``infra history --verify --against REV``),
    read with ``git cat-file`` from the repository that holds the head file. Someone who rewrites
    the records and the head in the working tree cannot rewrite what was committed (without
    rewriting the history, which every clone would see). The commit may be older than the chain:
    records after it are expected (``past``); the committed one must still be here, unchanged."""

    covers_sandbox = True
    local = True
    past = True

    def __init__(self, path: Path, rev: str) -> None:
        from .errors import UsageError

        if not rev or rev.startswith("-") or any(c in rev for c in "\0\n"):
            raise UsageError(f"--against {rev!r}: not a git revision")
        self.path, self.rev = path, rev
        self.label = f"repository head {_shown(path)} at {rev}"
        folder = path.parent
        while not folder.is_dir() and folder != folder.parent:  # the head folder may have been removed
            folder = folder.parent
        top = self._git(folder, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            raise UsageError(f"--against {rev}: {_shown(path)} is not in a git repository "
                             f"({_first_line(top.stderr) or 'git rev-parse failed'})")
        self.top = Path(top.stdout.strip())
        commit = self._git(self.top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        if commit.returncode != 0:
            raise UsageError(f"--against {rev}: no such commit in the git repository {self.top}")
        self.commit = commit.stdout.strip()
        try:
            self.rel = path.resolve().relative_to(self.top.resolve()).as_posix()
        except ValueError:
            raise UsageError(f"--against {rev}: {_shown(path)} is outside the git repository {self.top}") from None
        self.label = f"repository head {self.rel} at {rev} ({self.commit[:12]})"

    @staticmethod
    def _git(cwd: Path, *args: str):
        import subprocess

        from .errors import UsageError

        try:
            return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, encoding="utf-8",
                                  errors="replace", timeout=30,
                                  env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
        except (OSError, subprocess.SubprocessError) as exc:
            raise UsageError(f"--against: git cannot be run ({getattr(exc, 'strerror', None) or exc})") from None

    def read(self) -> Any:
        spec = f"{self.commit}:{self.rel}"
        if self._git(self.top, "cat-file", "-e", spec).returncode != 0:
            raise HeadError(f"{self.label}: not committed there (the head file is not in that commit)")
        blob = self._git(self.top, "cat-file", "blob", spec)
        if blob.returncode != 0:
            raise HeadError(f"{self.label}: cannot be read ({_first_line(blob.stderr) or 'git cat-file failed'})")
        return _parse(self.label, blob.stdout)

    def write(self, head: dict[str, Any]) -> None:  # pragma: no cover - a committed head is never written
        raise HeadError(f"{self.label} is read-only")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


class S3Head:
    """An object beside the Terraform state in the S3 state bucket. With ``endpoint`` (the sandbox
    emulator), the emulator's bucket of that name: moved by, and covering, sandbox runs only."""

    local = False

    def __init__(self, bucket: str, key: str, region: str | None, endpoint: str | None = None) -> None:
        self.bucket, self.key, self.region, self.endpoint = bucket, key, region, endpoint
        self.covers_sandbox = endpoint is not None
        self.covers_real = endpoint is None
        self.label = f"{'sandbox ' if endpoint else ''}state-backend head s3://{bucket}/{key}"

    def _client(self) -> Any:
        from .shared_store import s3_client

        try:
            return s3_client(self.region, self.endpoint)
        except ImportError:
            raise HeadError(f"{self.label}: boto3 is not installed (install infra-orchestrator[sandbox])") from None

    def read(self) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client()
        try:
            body = client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return None
            raise HeadError(f"{self.label}: cannot be read ({code or exc})") from None
        except BotoCoreError as exc:
            raise HeadError(f"{self.label}: cannot be read ({exc})") from None
        return _parse(self.label, body)

    def write(self, head: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client()
        try:
            client.put_object(Bucket=self.bucket, Key=self.key, Body=_dumps(head).encode(),
                              ContentType="application/json", ServerSideEncryption="AES256")
        except (BotoCoreError, ClientError) as exc:
            raise HeadError(f"{self.label} could not be written ({exc})") from None


def head_dir(root: Path) -> Path:
    override = os.environ.get(HEAD_DIR_ENV)
    return Path(override) if override else root / HEAD_DIR


def heads_for(root: Path, env: str, bp: Blueprint | None = None, shared: SharedEnv | None = None,
              sandbox: bool = False) -> list[HeadStore]:
    """The heads of ``env``'s chain: the repository head, and the state backend's when it has one
    (``shared``'s: the emulator's for a sandbox run; none for a sandbox run without a store)."""
    remote = bp is not None and bp.state.backend == "s3" and bool(bp.state.bucket)
    stores: list[HeadStore] = [RepoHead(head_dir(root) / f"{env}.json", past=remote)]
    if shared is not None:
        stores.append(shared.head())
    elif bp is not None and remote and not sandbox:
        from .providers.base import STATE_KEY

        stores.append(S3Head(str(bp.state.bucket), STATE_KEY.format(name=env) + S3_SUFFIX, bp.region))
    return stores


def unchecked_backend(bp: Blueprint | None) -> str | None:
    """A warning when the blueprint's state backend keeps no head (azurerm, gcs)."""
    if bp is None or bp.state.backend not in ("azurerm", "gcs"):
        return None
    return (f"the {bp.state.backend} state backend keeps no records head (not supported: it cannot be tested "
            "offline); only the repository head was checked")


def head_problem(head: Any, env: str) -> str | None:
    """Why a stored head is malformed (None when it is well-formed)."""
    if not isinstance(head, dict):
        return "not a JSON object"
    for name, kind in (("seq", int), ("count", int), ("sha256", str), ("env", str)):
        value = head.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field `{name}` is missing or of the wrong type"
    if head["env"] != env:
        return f"is the head of environment '{head['env']}', not '{env}'"
    if head["seq"] < 1 or head["count"] < 1:
        return "field `seq` or `count` is below 1"
    return None


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)
