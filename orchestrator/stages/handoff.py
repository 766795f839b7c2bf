"""The ``handoff`` stage: read the manifests the render stage wrote, validate them, apply them.

It runs in ``infra up`` after Ansible, and alone as ``infra handoff FILE`` (after the render
stage). It first checks that the API answers at all (``kube.reach``: a private endpoint answers
only inside its network) and stops with one line if not. It applies ``build/<name>/kubernetes/``
as written (``rendered.read_all``), never a second rendering: the vendored installs under
``install/`` (Kueue) first, then the rest (``kube.install``, ``kube.apply``). In the sandbox
there is no Kubernetes API: the stage validates the rendered manifests, and says it did not
apply them, unless ``--kubeconfig`` names a cluster to apply to. A site of inference-only hosts
has no cluster: the stage is skipped and says so (``NO_CLUSTER_DETAIL``).

The cluster credentials: the stage's own ``kubeconfig``/``context`` (``infra handoff``), else
the run's ``--kubeconfig``/``--context``, else the admin kubeconfig kubeadm gave the configure
stage, else one the provider builds from the Terraform outputs (``ops.kubeconfig.resolve``).

Reading and validating the rendered manifests needs nothing from Terraform: ``prepare`` (called
by the pipeline once the render stage is done) starts it in a thread, so in ``infra up`` it
runs while Terraform plans and applies instead of after them.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from ..blueprint.models import Blueprint
from ..errors import KubernetesError
from ..kube import reach
from ..kube.apply import Options, apply_all
from ..kube.bind import bind_outputs
from ..kube.rendered import read_all
from ..kube.rest import RetryPolicy
from ..kube.validate import require_valid
from ..ops import kubeconfig
from ..workspace import read_json
from .context import Context

SANDBOX_DETAIL = "rendered and validated {n} manifests; not applied (the sandbox has no Kubernetes API)"
NO_CLUSTER_DETAIL = ("skipped: no Kubernetes cluster (every host is inference-only: the hosts serve the models "
                     "themselves, nothing to hand off)")


@dataclass
class HandoffStage:
    """Apply build/<name>/kubernetes to the cluster (see ``apply`` for the policies)."""

    kubeconfig: Path | None = None
    context: str | None = None
    force: bool = True
    prune: bool = True
    wait: bool = True
    timeout: float = 300.0
    name: str = "handoff"
    _early: Future | None = field(default=None, init=False, repr=False, compare=False)

    def prepare(self, ctx: Context) -> None:
        """Start reading and validating the rendered manifests in a thread (once)."""
        if self._early is not None or not ctx.bp.has_kubernetes or not (ctx.ws.build_dir / "kubernetes").is_dir():
            return
        future: Future = Future()
        self._early = future

        def read() -> None:
            try:
                future.set_result(_read_valid(ctx, count_only=self._count_only(ctx)))
            except BaseException as exc:  # raised where the stage runs
                future.set_exception(exc)

        threading.Thread(target=read, name="handoff-validate", daemon=True).start()

    def _count_only(self, ctx: Context) -> bool:
        """The sandbox without a cluster given: the manifests are validated, never applied."""
        return ctx.ws.sandbox and (self.kubeconfig or ctx.kube.kubeconfig) is None

    def run(self, ctx: Context) -> str:
        if not ctx.bp.has_kubernetes:
            return NO_CLUSTER_DETAIL
        read = self._early.result() if self._early is not None else _read_valid(ctx, count_only=self._count_only(ctx))
        for line in read.notes:
            ctx.progress.info(line)
        given = self.kubeconfig or ctx.kube.kubeconfig
        if ctx.ws.sandbox and given is None:
            return SANDBOX_DETAIL.format(n=read.count)
        objs, install = read.objs, read.install
        if objs is None or install is None:  # (not read: only where nothing is applied)
            objs, install = read_all(ctx.ws.build_dir / "kubernetes")
        path, context = kubeconfig.resolve(
            ctx.ws, ctx.bp, ctx.provider, ctx.state.outputs,
            given or ctx.state.kubeconfig, self.context or ctx.kube.context,
        )
        _require_reachable(ctx, path, context)
        objs = bind_outputs(objs, ctx.state.outputs or read_json(ctx.ws.outputs_file) or {})
        from ..kube.client import Client

        client = Client.from_kubeconfig(path, context, retry=RetryPolicy())
        try:
            opts = Options(force=self.force, prune=self.prune, wait=self.wait, timeout=self.timeout)
            result = apply_all(client, objs, ctx.bp.name, opts, ctx.progress, install=install)
            if ctx.bp.burst_from:  # a MultiKueue worker (docs/hybrid.md): its token to each manager
                from ..ops.hybrid import hand_tokens

                for line in hand_tokens(ctx, client, reach.server_of(path, context)):
                    ctx.progress.info(line)
        finally:
            client.close()
        ctx.state.record.versions["kubernetes"] = result.server_version
        for ns in result.stale_namespaces:
            ctx.progress.warn(f"namespace {ns} is no longer in the blueprint and was kept")
        return result.summary()


class _Notes:
    """Collects what validation says while it runs beside Terraform; printed when the stage runs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)


# Beside the state: the digest of the rendered manifests the last run validated, what validation
# said and how many objects there were. The same files checked by the same validator pass again:
# they are not checked twice, and in the sandbox (which applies nothing) not even read again
# (about 0.4 s of CPU that a no-op `up` spent beside Terraform's plan, issue 24).
VALIDATED = "manifests-validated.json"


@dataclass
class _Manifests:
    objs: list | None  # None: not read (the sandbox only counts them, and they passed before)
    install: list | None
    count: int
    notes: list[str]


def _read_valid(ctx: Context, *, count_only: bool = False) -> _Manifests:
    import json

    from ..workspace import write_private

    folder = ctx.ws.build_dir / "kubernetes"
    key = _validation_key(folder, ctx.bp.kubernetes.minor)
    stamp = ctx.ws.env_dir / VALIDATED
    known = read_json(stamp) if stamp.is_file() else None
    passed = (isinstance(known, dict) and known.get("key") == key and isinstance(known.get("notes"), list)
              and isinstance(known.get("objects"), int))
    if passed and count_only:
        return _Manifests(None, None, known["objects"], [str(n) for n in known["notes"]])
    objs, install = read_all(folder)  # install: vendored and checksummed, not schema-checked (docs/kubernetes.md)
    if passed:
        return _Manifests(objs, install, len(objs), [str(n) for n in known["notes"]])
    notes = _Notes()
    require_valid(objs, ctx.bp.kubernetes.minor, notes)  # raises when a problem is found: nothing kept
    write_private(stamp, json.dumps({"key": key, "notes": notes.lines, "objects": len(objs)}) + "\n")
    return _Manifests(objs, install, len(objs), notes.lines)


def _validation_key(folder: Path, minor: str) -> str:
    """Every rendered file (path and bytes), the Kubernetes minor and the validator: its code, the
    CRD schemas infra ships and the schema packages' versions."""
    import hashlib
    from importlib import metadata

    from .. import __version__, paths
    from ..kube import validate

    digest = hashlib.sha256(f"{minor}\0{__version__}\0".encode())
    for name in ("kubernetes-validate", "jsonschema"):
        try:
            digest.update(f"{name}={metadata.version(name)}\0".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=none\0".encode())
    digest.update(hashlib.sha256(Path(validate.__file__).read_bytes()).digest())
    for schema in sorted((paths.templates() / "kubernetes" / "schemas").glob("*.json")):
        digest.update(schema.name.encode() + hashlib.sha256(schema.read_bytes()).digest())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def way_in(bp: Blueprint) -> str:
    """Where the blueprint says the API may be reached from: its field and what it admits."""
    k8s, access = bp.kubernetes, bp.kubernetes.private_access
    if not bp.is_cloud:
        return "the control plane host must be reachable from this machine (hosts[].address)"
    if k8s.public_endpoint:
        return f"kubernetes.authorized_networks admits {', '.join(k8s.authorized_networks) or 'nobody'}"
    if access is None:
        return "kubernetes.private_access declares no way in"
    if access.via == "inside_network":
        return f"kubernetes.private_access is inside_network: run from {bp.network.cidr}"
    return f"kubernetes.private_access.networks admits {', '.join(access.networks)}"


def _require_reachable(ctx: Context, path: Path, context: str | None) -> None:
    """Name resolution and TCP to the API within ``reach.REACH_WITHIN`` seconds, or one line
    (exit 5) naming the endpoint and the blueprint field, before any credential plugin runs."""
    server = reach.server_of(path, context)
    reason = reach.probe(server) if server else None
    if reason:
        raise KubernetesError(
            f"cannot reach the Kubernetes API at {server} from this machine ({reason}); {way_in(ctx.bp)}",
            hint=f"what Terraform applied stays; finish with `infra handoff {ctx.loaded.path}` "
                 "from a machine that can reach it (docs/security.md, \"Who can reach what\")",
        )
