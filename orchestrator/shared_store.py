"""Shared by default where the state is: run records, the chain's head, environment outputs and the
run lock of an environment whose Terraform state is remote live beside that state (docs/records.md,
"Shared where the state is"; docs/state.md).

With ``state.backend: s3`` the folder of the state key, ``s3://BUCKET/infra/<name>/``, holds::

    terraform.tfstate                     Terraform's state (and its .tflock while Terraform runs)
    terraform.tfstate.records-head.json   the records chain's head (records_heads.S3Head)
    records/<seq>-<UTC>-<id>.json         every run record, byte for byte as written here
    outputs.json                          the outputs of the last up: ${output:<name>.X} elsewhere
    run.lock                              held by a running plan/up/down/drift (a conditional write)

Objects are written with SSE-S3 (``AES256``) into the bucket ``infra state bootstrap`` made
(versioned, encrypted by default, every public access block on). ``--sandbox`` runs keep the same
layout in the emulator's bucket of that name (created there on first use), never in the real one.

``.infra/`` stays the working copy: a record is written there first (hash chain, head, HMAC as
before), then uploaded; records missing here are downloaded first (``pull``), so a fresh clone
with credentials has the whole chain and ``infra history --verify`` checks it exactly as before,
plus every copy here against the bucket's. The run lock is ``PutObject`` with ``If-None-Match: *``:
exactly one writer creates it; it is deleted with ``If-Match`` on its ETag when the run ends
(``shared_lock``). Outputs: ``shared_outputs``.

Only S3 is built. ``ObjectStore`` is the whole interface a backend needs (get, conditional put,
conditional delete, list): GCS has it with ``ifGenerationMatch=0`` / ``ifGenerationMatch=<gen>``,
Azure blob with ``If-None-Match: *`` / ``If-Match: <etag>``. Neither can be tested offline, so
neither is claimed: with gcs or azurerm everything stays in ``.infra/`` (docs/state.md).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import LockedError, TerraformError

if TYPE_CHECKING:
    from .blueprint.models import Blueprint
    from .blueprint.outputs import EnvOutputs
    from .records_heads import HeadStore, S3Head
    from .shared_lock import SharedLock
    from .stages.context import Context

Warn = Callable[[str], None]
_NAME = re.compile(r"^(\d{6,})-[A-Za-z0-9._-]+\.json$")  # a record file name (no folder, no leading dot)
_MAX_OBJECT = 16 * 1024 * 1024  # a record or outputs document is far smaller: refuse anything bigger


class SharedStoreError(TerraformError):
    """The bucket beside the state cannot be read or written (exit 3, as Terraform's own backend)."""


class PreconditionFailed(Exception):
    """A conditional write or delete found the object there (``if_absent``) or changed (``if_match``)."""


class ObjectStore(Protocol):
    """What a backend must offer. Keys are relative to the bucket (or container)."""

    url: str  # "s3://BUCKET", for messages

    def get(self, key: str) -> tuple[bytes, str] | None:
        """(body, etag), or None when there is no such object."""

    def put(self, key: str, body: bytes, *, if_absent: bool = False, if_match: str | None = None) -> str:
        """Write the object (server-side encrypted); returns its etag. Raises ``PreconditionFailed``."""

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove the object. Raises ``PreconditionFailed`` when ``if_match`` is not its etag."""

    def list(self, prefix: str) -> dict[str, str]:
        """``{key: etag}`` of every object under ``prefix``."""

    def head_store(self, key: str) -> HeadStore:
        """The records head kept at ``key`` (records_heads)."""


def s3_client(region: str | None, endpoint: str | None = None) -> Any:
    """A boto3 S3 client: the AWS SDK's credential chain (and ``AWS_ENDPOINT_URL_S3``), or the sandbox
    emulator at ``endpoint`` with its dummy credentials (never your AWS configuration)."""
    import boto3.session
    from botocore.config import Config

    kw: dict[str, Any] = {"region_name": region or "us-east-1",
                          "config": Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})}
    if endpoint is not None:
        kw.update(endpoint_url=endpoint, aws_access_key_id="sandbox", aws_secret_access_key="sandbox")
    return boto3.session.Session().client("s3", **kw)  # a session of its own: rollouts run in threads


class S3Objects:
    """``ObjectStore`` on an S3 bucket (or the sandbox emulator's bucket of that name)."""

    def __init__(self, bucket: str, region: str | None, endpoint: str | None = None) -> None:
        self.bucket, self.region, self.endpoint = bucket, region, endpoint
        self.url = f"s3://{bucket}" + (" (sandbox)" if endpoint else "")
        self._s3: Any = None

    def _client(self) -> Any:
        if self._s3 is None:
            try:
                self._s3 = s3_client(self.region, self.endpoint)
            except ImportError:
                raise SharedStoreError(f"{self.url}: boto3 is not installed",
                                       hint="pip install 'infra-orchestrator[sandbox]'") from None
        return self._s3

    @contextlib.contextmanager
    def _errors(self, key: str, what: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise PreconditionFailed(code) from None
            raise SharedStoreError(f"{self.url}/{key}: cannot be {what} ({code or exc})") from None
        except BotoCoreError as exc:
            raise SharedStoreError(f"{self.url}/{key}: cannot be {what} ({exc})") from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        with self._errors(key, "read"):
            try:
                got = self._client().get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            if got.get("ContentLength", 0) > _MAX_OBJECT:
                raise SharedStoreError(f"{self.url}/{key}: larger than {_MAX_OBJECT} bytes: not read")
            found = got["Body"].read(), got["ETag"]
        return found

    def put(self, key: str, body: bytes, *, if_absent: bool = False, if_match: str | None = None) -> str:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body,
                                "ContentType": "application/json", "ServerSideEncryption": "AES256"}
        if if_absent:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = if_match
        with self._errors(key, "written"):
            etag = self._client().put_object(**args)["ETag"]
        return etag

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if if_match is not None:
            args["IfMatch"] = if_match
        with self._errors(key, "deleted"):
            self._client().delete_object(**args)

    def list(self, prefix: str) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._errors(prefix, "listed"):
            for page in self._client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found[item["Key"]] = item["ETag"]
        return found

    def head_store(self, key: str) -> S3Head:
        from .records_heads import S3Head

        return S3Head(self.bucket, key, self.region, endpoint=self.endpoint)


# --- where an environment's shared things are -------------------------------------------------


def for_blueprint(bp: Blueprint, *, sandbox: bool = False, endpoint: str | None = None) -> SharedEnv | None:
    """The shared store of ``bp``'s environment: its S3 state bucket (``sandbox``: the emulator's
    bucket of that name at ``endpoint``), or None when the state is not in S3 (or, for a sandbox run,
    no emulator is given)."""
    st = bp.state
    if st.backend != "s3" or not st.bucket or (sandbox and endpoint is None):
        return None
    return SharedEnv(S3Objects(st.bucket, bp.region, endpoint if sandbox else None), bp.name, sandbox)


def for_context(ctx: Context) -> SharedEnv | None:
    """The store of a run (None: everything stays in ``.infra/``, as for a local backend)."""
    if ctx.provider.terraform_module is None or ctx.bp.state.backend != "s3":
        return None
    endpoint = ctx.overrides.session.endpoint if ctx.overrides is not None else None
    if ctx.ws.sandbox and endpoint is None:  # a sandbox handoff: the emulator, if it runs
        endpoint = running_endpoint(ctx.ws.state_dir)
    return for_blueprint(ctx.bp, sandbox=ctx.ws.sandbox, endpoint=endpoint)


def running_endpoint(state_dir: Path) -> str | None:
    """The emulator a ``--sandbox`` read can use without starting one (``INFRA_SANDBOX_ENDPOINT`` or
    the project's running emulator), else None."""
    from . import sandbox

    info = sandbox.status(state_dir)
    return info.endpoint if info is not None else None


@dataclass
class Pulled:
    """What ``pull`` found in the store: record file name -> etag, and the sequence numbers at which
    a record here and a different one there claim the same place (a forked chain)."""

    remote: dict[str, str]
    forks: set[int]


@dataclass
class SharedEnv:
    objects: ObjectStore
    env: str
    sandbox: bool

    @property
    def prefix(self) -> str:
        return f"infra/{self.env}/"  # the folder of the state key (providers.base.STATE_KEY)

    def where(self, name: str = "") -> str:
        return f"{self.objects.url}/{self.prefix}{name}"

    def head(self) -> HeadStore:
        from .providers.base import STATE_KEY
        from .records_heads import S3_SUFFIX

        return self.objects.head_store(STATE_KEY.format(name=self.env) + S3_SUFFIX)

    def of(self, env: str) -> SharedEnv:
        """Another environment's folder in the same bucket."""
        return SharedEnv(self.objects, env, self.sandbox)

    # --- records ---------------------------------------------------------------------------

    def pull(self, records_dir: Path, warn: Warn) -> Pulled | None:
        """Copy every record of the store that is missing here into ``records_dir`` (byte for byte,
        0600, never replacing a file). None, with a warning, when the store cannot be read.
        The caller holds the records folder's lock (``records.write``, ``locked_pull``)."""
        try:
            listed = self.objects.list(self.prefix + "records/")
        except SharedStoreError as exc:
            warn(f"the shared records were not read: {exc.message}")
            return None
        remote = {k.rsplit("/", 1)[-1]: etag for k, etag in listed.items()
                  if _NAME.match(k.rsplit("/", 1)[-1]) and k.count("/") == self.prefix.count("/") + 1}
        local = _local_names(records_dir)
        for name in sorted(set(remote) - local):
            try:
                got = self.objects.get(self.prefix + "records/" + name)
            except SharedStoreError as exc:
                warn(f"record {name} was not read from the shared records: {exc.message}")
                continue
            if got is not None:
                _link_bytes(records_dir, name, got[0])
        remote_seqs = {_seq(n) for n in remote}
        forks = {_seq(n) for n in local - set(remote) if _seq(n) in remote_seqs}
        for seq in sorted(forks):
            warn(f"record #{seq} here is not the record #{seq} of {self.where('records/')}: this chain forked "
                 "from the shared one (a run that did not use the bucket); `infra history FILE --verify` shows it")
        return Pulled(remote, forks)

    def push(self, records_dir: Path, pulled: Pulled | None, warn: Warn) -> None:
        """Upload every record here that the store lacks (the new one, and any an earlier run could
        not upload), never over an object; a forked sequence number is left here only."""
        if pulled is None:
            warn(f"run record kept in {records_dir} only: the shared records could not be read "
                 "(the next run uploads it)")
            return
        for name in sorted(_local_names(records_dir) - set(pulled.remote)):
            if _seq(name) in pulled.forks:
                continue
            try:
                self.objects.put(self.prefix + "records/" + name, (records_dir / name).read_bytes(), if_absent=True)
            except PreconditionFailed:
                continue  # uploaded meanwhile (names carry a random id: it is this very record)
            except (SharedStoreError, OSError) as exc:
                warn(f"run record {name} kept in {records_dir} but not uploaded to {self.where('records/')} "
                     f"({getattr(exc, 'message', None) or exc}); the next run uploads it")
                return

    def compare(self, records_dir: Path, pulled: Pulled | None) -> tuple[list[str], list[str]]:
        """``infra history --verify``: (problems, warnings) of the copies here against the store's.
        A copy that differs, or one the store lost while it holds later records, is a problem."""
        if pulled is None:
            return [], []
        problems: list[str] = []
        local = _local_names(records_dir)
        for name in sorted(local & set(pulled.remote)):
            data = (records_dir / name).read_bytes()
            if f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"' == pulled.remote[name]:
                continue  # SSE-S3: the ETag is the MD5 of the body
            got = self.objects.get(self.prefix + "records/" + name)
            if got is not None and got[0] != data:
                problems.append(f"record #{_seq(name)} ({name}): differs from its copy in {self.where('records/')}: "
                                "one of them was changed after it was written")
        last = max((_seq(n) for n in pulled.remote), default=0)
        missing = sorted(n for n in local - set(pulled.remote) if _seq(n) not in pulled.forks)
        for name in (n for n in missing if _seq(n) < last):
            problems.append(f"record #{_seq(name)} ({name}): not in {self.where('records/')}, which holds later "
                            "records: removed there")
        late = [n for n in missing if _seq(n) > last]
        warnings = [f"{len(late)} records here are not in {self.where('records/')} yet (the next run against it "
                    "uploads them)"] if late and pulled.remote else []
        return problems, warnings

    # --- outputs ---------------------------------------------------------------------------

    def put_outputs(self, values: dict[str, Any], sensitive: list[str]) -> None:
        body = {"env": self.env, "values": values, "sensitive": sorted(sensitive),
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.objects.put(self.prefix + "outputs.json", (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())

    def get_outputs(self) -> EnvOutputs | None:
        from .blueprint.outputs import EnvOutputs

        got = self.objects.get(self.prefix + "outputs.json")
        if got is None:
            return None
        try:
            data = json.loads(got[0])
        except ValueError:
            return None
        values, sensitive = (data.get("values"), data.get("sensitive")) if isinstance(data, dict) else (None, None)
        if not isinstance(values, dict):
            return None
        return EnvOutputs(values, frozenset(sensitive) if isinstance(sensitive, list) else frozenset(values))

    def drop_outputs(self) -> None:
        self.objects.delete(self.prefix + "outputs.json")

    # --- the run lock ----------------------------------------------------------------------

    def lock(self, command: str, warn: Warn) -> SharedLock:
        from .shared_lock import SharedLock

        return SharedLock(self, command, warn)

    def prepare(self) -> str | None:
        """Sandbox only: create the bucket in the emulator as ``infra state bootstrap`` would (versioned,
        encrypted, private); a message when it was created."""
        if not self.sandbox or not isinstance(self.objects, S3Objects):
            return None
        from botocore.exceptions import BotoCoreError, ClientError

        from .state_bootstrap import Bootstrap, _s3_apply

        result = Bootstrap("s3", self.objects.url)
        for attempt in (1, 2):  # two environments of one rollout may create their shared bucket at once
            try:
                _s3_apply(self.objects._client(), self.objects.bucket, self.objects.region or "us-east-1", result,
                          ClientError)
                break
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if attempt == 2 or code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists", "OperationAborted"):
                    raise SharedStoreError(f"{self.objects.url}: the state bucket cannot be made ({code})") from None
            except BotoCoreError as exc:
                raise SharedStoreError(f"{self.objects.url}: the state bucket cannot be made ({exc})") from None
        return f"sandbox: state bucket {self.objects.url} created in the emulator" if result.created else None


class SharedLocked(LockedError):
    """Another run holds the environment's shared lock (``shared_lock``). Not recorded: the chain is
    the holder's to append to, and a record written beside it would fork it."""


# --- helpers for the commands -----------------------------------------------------------------


def _seq(name: str) -> int:
    match = _NAME.match(name)
    return int(match.group(1)) if match else -1


def _local_names(records_dir: Path) -> set[str]:
    try:
        return {n for n in os.listdir(records_dir) if _NAME.match(n)}
    except OSError:
        return set()


def _link_bytes(records_dir: Path, name: str, data: bytes) -> None:
    """Write ``data`` to a temporary file, then link it to ``name`` (0600; an existing file wins)."""
    from .workspace import private_dir

    private_dir(records_dir)
    tmp = records_dir / f".{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, records_dir / name)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def records_lock(records_dir: Path) -> Iterator[None]:
    """The records folder's lock (the one ``records.write`` takes)."""
    from .workspace import private_dir

    private_dir(records_dir)
    fd = os.open(records_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def locked_pull(shared: SharedEnv, records_dir: Path, warn: Warn) -> Pulled | None:
    """``pull`` under the records folder's lock: for ``history``, ``status`` and ``rollback``."""
    with records_lock(records_dir):
        return shared.pull(records_dir, warn)


def for_reading(bp: Blueprint | None, sandbox: bool, state_dir: Path, warn: Warn) -> SharedEnv | None:
    """The store ``history``, ``status`` and ``rollback`` read (None: ``.infra/`` only). A ``--sandbox``
    read uses a running emulator and never starts one."""
    if bp is None or bp.state.backend != "s3" or not bp.state.bucket:
        return None
    endpoint = None
    if sandbox:
        endpoint = running_endpoint(state_dir)
        if endpoint is None:
            warn("the sandbox emulator is not running (nor named by INFRA_SANDBOX_ENDPOINT): only the records "
                 "and outputs kept here were read")
            return None
    return for_blueprint(bp, sandbox=sandbox, endpoint=endpoint)
