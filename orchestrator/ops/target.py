"""Which cluster and which namespace a ``job`` or ``model`` command acts on.

Every such command takes the same options: ``--blueprint`` (team namespaces, GPU pool
taints, and the kubeconfig ``infra up`` saved), ``--team``, ``--namespace``, ``--kubeconfig``
and ``--context``. They arrive here once, as :class:`TargetOptions`; :func:`target` turns them
into a :class:`Target`: the loaded blueprint, the namespace, and a client on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from ..blueprint.loader import LoadedBlueprint
    from ..blueprint.models import Blueprint, Team
    from ..kube.client import Client


@dataclass(frozen=True)
class TargetOptions:
    """The shared options, as given on the command line (``None``: not given)."""

    blueprint: Path | None = None
    team: str | None = None
    namespace: str | None = None
    kubeconfig: Path | None = None
    context: str | None = None


@dataclass(frozen=True)
class Target:
    options: TargetOptions
    loaded: LoadedBlueprint | None
    namespace: str | None

    @property
    def bp(self) -> Blueprint | None:
        return self.loaded.model if self.loaded is not None else None

    def team(self) -> Team | None:
        """The blueprint's team that ``--team`` names (None without a blueprint or a team);
        a team the blueprint lacks is bad input."""
        name = self.options.team
        if self.loaded is None or name is None:
            return None
        bp = self.loaded.model
        found = next((t for t in bp.teams if t.name == name), None)
        if found is None:
            names = ", ".join(t.name for t in bp.teams) or "none"
            raise UsageError(f"no team {name!r} in blueprint {bp.name} (teams: {names})")
        return found

    def client(self) -> Client:
        """A client for the cluster: ``--kubeconfig``; else, with a blueprint deployed from this
        folder, the kubeconfig built from its saved Terraform outputs; else the default one
        ($KUBECONFIG or ~/.kube/config)."""
        from ..kube.client import Client

        kubeconfig, context = self.options.kubeconfig, self.options.context
        if kubeconfig is None and self.loaded is not None:
            from ..providers.registry import get
            from ..workspace import Workspace
            from .kubeconfig import resolve

            bp = self.loaded.model
            ws = Workspace(root=Path.cwd(), name=bp.name)
            provider = get(bp.provider)
            if ws.outputs_file.is_file() and provider.terraform_module is not None:  # bare metal: no kubeconfig in them
                kubeconfig, context = resolve(ws, bp, provider, None, None, context)
        return Client.from_kubeconfig(kubeconfig, context)


def load(opts: TargetOptions) -> Target:
    """The blueprint loaded (if given), and ``--namespace`` as given."""
    loaded = None
    if opts.blueprint is not None:
        from ..blueprint.loader import load as load_blueprint
        from ..render.kubernetes.placement import CHECKS

        loaded = load_blueprint(opts.blueprint, checks=CHECKS)
    return Target(opts, loaded, opts.namespace or None)


def target(opts: TargetOptions, *, required: bool = True) -> Target:
    """Load the blueprint (if given) and pick the namespace: ``--namespace``, else the team's
    (the blueprint's namespace for it, or the team's name); ``required``: one must be given."""
    base = load(opts)
    if base.namespace:
        return base
    team = base.team()
    if team is not None:
        return Target(opts, base.loaded, team.effective_namespace)
    if opts.team:
        return Target(opts, base.loaded, opts.team)
    if required:
        raise UsageError("say which team (--team) or namespace (--namespace)")
    return base
