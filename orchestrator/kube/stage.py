"""The ``handoff`` stage: read the manifests the render stage wrote, validate them, apply them.

It runs in ``infra up`` after Ansible, and alone as ``infra handoff FILE`` (after the render
stage). It applies ``build/<name>/kubernetes/`` as written (``rendered.read_rendered``), never a
second rendering. In the sandbox there is no Kubernetes API: the stage validates the rendered
manifests, and says it did not apply them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..ops import kubeconfig
from .apply import Options, apply_all
from .rendered import read_rendered
from .rest import RetryPolicy
from .validate import require_valid

SANDBOX_DETAIL = "rendered and validated {n} manifests; not applied (the sandbox has no Kubernetes API)"


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

    def run(self, ctx: Any) -> str:
        objs = require_valid(read_rendered(ctx.ws.build_dir / "kubernetes"), ctx.bp.kubernetes.version, ctx.progress)
        if ctx.ws.sandbox:
            return SANDBOX_DETAIL.format(n=len(objs))
        path, context = kubeconfig.resolve(
            ctx.ws, ctx.bp, ctx.provider, ctx.outputs,
            self.kubeconfig or getattr(ctx, "kubeconfig", None), self.context or getattr(ctx, "kube_context", None),
        )
        from .client import Client

        client = Client.from_kubeconfig(path, context, retry=RetryPolicy())
        try:
            opts = Options(force=self.force, prune=self.prune, wait=self.wait, timeout=self.timeout)
            result = apply_all(client, objs, ctx.bp.name, opts, ctx.progress)
        finally:
            client.close()
        record = getattr(ctx, "record", None)
        if record is not None and hasattr(record, "versions"):
            record.versions["kubernetes"] = result.server_version
        for ns in result.stale_namespaces:
            ctx.progress.warn(f"namespace {ns} is no longer in the blueprint and was kept")
        return result.summary()
