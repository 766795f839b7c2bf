"""The ``handoff`` stage: render the Kubernetes manifests, validate them, apply them.

It runs in ``infra up`` after Ansible, and alone as ``infra handoff FILE``. In the sandbox
there is no Kubernetes API: the stage renders and validates, and says it did not apply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import kubeconfig
from .apply import Options, apply_all
from .manifests import render_and_validate
from .rest import RetryPolicy

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
        objs = render_and_validate(ctx.bp, ctx.provider, ctx.progress)
        if ctx.ws.sandbox:
            return SANDBOX_DETAIL.format(n=len(objs))
        path, context = kubeconfig.resolve(ctx.ws, ctx.bp, ctx.provider, ctx.outputs, self.kubeconfig, self.context)
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


class RenderBuildStage:
    """Writes build/<name>/ (every part the render has); needs no sandbox server."""

    name = "render"

    def run(self, ctx: Any) -> str:
        from ..render import render

        result = render(ctx.bp, ctx.provider, ctx.ws.build_dir.parent)
        c = result.counts()
        return f"{result.root}: {c['written']} written, {c['unchanged']} unchanged, {c['removed']} removed"


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]


def run_handoff(ctx: Any, stage: HandoffStage) -> Any:
    """``infra handoff``: render, then the handoff stage, under the lock, recorded like ``up``.

    Equivalent to ``stages.run(ctx, "handoff")`` once the pipeline has a handoff entry that
    can take a configured stage; kept here so that the command works on its own.
    """
    from .. import records

    with ctx.ws.lock(f"infra handoff {ctx.loaded.path.name}"):
        try:
            for st in (RenderBuildStage(), stage):
                ctx.progress.stage(st.name)
                started = time.monotonic()
                try:
                    detail = st.run(ctx)
                except BaseException as exc:
                    ctx.record.stage(st.name, "failed", time.monotonic() - started, _one_line(exc))
                    raise
                ctx.record.stage(st.name, "ok", time.monotonic() - started, detail)
                ctx.progress.info(f"    {detail}")
            ctx.record.outcome = "success"
        except BaseException as exc:
            ctx.record.outcome = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            ctx.record.error = _one_line(exc)
            raise
        finally:
            records.write(ctx.ws.records_dir, ctx.record)
    return ctx
