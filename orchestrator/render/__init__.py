"""Render a blueprint into build/<name>/: pure functions producing files, one writer.

``render(loaded, out_root)`` writes ``<out_root>/<name>/terraform/``, ``kubernetes/``
(manifests + kustomization.yaml, appliable by Argo CD or Flux instead of us) and, where the
hosts are known before any apply (bare metal), ``ansible/`` (inventory + group_vars). Same input, same
bytes: keys are sorted, templates hold no logic, nothing depends on the time, the machine or
secret values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..blueprint.models import Blueprint
from ..providers.base import Provider
from .ansible import render_ansible
from .kubernetes import render_kubernetes
from .terraform import render_terraform
from .writer import WriteResult, write_tree

# Files that tools write beside the render and that must survive a re-render.
KEEP = frozenset({".terraform.lock.hcl"})


@dataclass
class RenderResult:
    root: Path
    parts: dict[str, WriteResult]

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.parts.values())

    def counts(self) -> dict[str, int]:
        return {
            "written": sum(len(r.written) for r in self.parts.values()),
            "unchanged": sum(len(r.unchanged) for r in self.parts.values()),
            "removed": sum(len(r.removed) for r in self.parts.values()),
        }


def render_files(bp: Blueprint, provider: Provider) -> dict[str, dict[str, str]]:
    """All rendered files, by part (``terraform``, ``kubernetes``, ``ansible``), without touching the
    disk. A part the provider has nothing for is left out (no Terraform on bare metal, no
    inventory where every pool is a managed node group, no Kubernetes for inference-only hosts)."""
    parts = {
        "terraform": render_terraform(bp, provider),
        "kubernetes": render_kubernetes(bp) if bp.has_kubernetes else {},  # inference-only hosts: no cluster
        "ansible": render_ansible(bp, provider),
    }
    return {part: files for part, files in parts.items() if files}


def render(bp: Blueprint, provider: Provider, out_root: Path) -> RenderResult:
    root = out_root / bp.name
    parts = {  # build/ is reviewed and committed: 0644/0755, not the owner-only modes of .infra/
        part: write_tree(root / part, files, KEEP, public=True) for part, files in render_files(bp, provider).items()
    }
    return RenderResult(root=root, parts=parts)
