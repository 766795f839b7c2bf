"""The ``render`` stage: write ``build/<name>/`` (and, with ``--sandbox``, Terraform's copy of it
with the endpoint overrides)."""

from __future__ import annotations

from ..render import render
from .context import Context


class RenderStage:
    name = "render"

    def run(self, ctx: Context) -> str:
        result = render(ctx.bp, ctx.provider, ctx.ws.build_dir.parent)
        if ctx.overrides is not None:  # Terraform runs a copy of the render plus overrides, never build/
            ctx.overrides.write(result.root / "terraform", ctx.ws.terraform_dir)
        c = result.counts()
        return f"{result.root}: {c['written']} written, {c['unchanged']} unchanged, {c['removed']} removed"
