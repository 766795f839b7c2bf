"""One function per pipeline command (``plan``, ``up``, ``down``, ``configure``, ``handoff``):
load and check the blueprint, resolve its secrets, start the sandbox if asked, run the stages.

The CLI parses options, calls one of these and prints the returned context's record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .context import Confirm, Context, KubeTarget, RunState, approves_any, new_record
from .pipeline import pipeline, run

if TYPE_CHECKING:
    from ..blueprint.loader import LoadedBlueprint
    from ..blueprint.models import Blueprint
    from ..blueprint.outputs import Lookup
    from ..progress import Progress
    from ..providers.base import Provider
    from ..workspace import Workspace


class Environment(NamedTuple):
    loaded: LoadedBlueprint
    provider: Provider
    ws: Workspace


def open_environment(file: Path, sandbox: bool = False, root: Path | None = None,
                     outputs_of: Lookup | None = None) -> Environment:
    """Load and check the blueprint, pick its provider and workspace (``root``: the project folder,
    ``.infra/`` and ``build/``; the current directory by default). Starts and changes nothing.
    ``outputs_of``: how ``${output:ENV.NAME}`` resolves (default: ``outputs_lookup``)."""
    from ..blueprint.loader import load
    from ..errors import UsageError
    from ..providers.registry import get
    from ..render.kubernetes.placement import CHECKS
    from ..workspace import Workspace

    root = root if root is not None else Path.cwd()
    loaded = load(file, outputs_of=outputs_of or outputs_lookup(root, sandbox, file), checks=CHECKS)
    provider = get(loaded.model.provider)
    if sandbox and not provider.sandbox:
        raise UsageError(f"--sandbox emulates AWS only; this blueprint's provider is {provider.name}")
    ws = Workspace(root=root, name=loaded.model.name, sandbox=sandbox)
    return Environment(loaded, provider, ws)


def outputs_lookup(root: Path, sandbox: bool, file: Path | None = None):
    """For ``${output:ENV.NAME}``: the outputs ENV's last successful ``up`` left in this project (the
    sandbox's for ``--sandbox``), with the names Terraform marks sensitive (all of them when that
    list is missing: an ``up`` of ENV writes it). An environment without Terraform (bare metal)
    runs without the sandbox even in a ``--sandbox`` rollout: its outputs are read there too.
    Given the referring blueprint ``file``, the copy beside ENV's state comes first, when there is
    one (``shared_outputs.outputs_source``): a fresh clone has no ``.infra/``."""
    import json

    from ..blueprint.outputs import EnvOutputs
    from ..workspace import Workspace
    from .terraform import SENSITIVE_OUTPUTS

    shared = None
    if file is not None:
        from ..shared_outputs import outputs_source

        shared = outputs_source(Path(file), sandbox, root)

    def lookup(env: str) -> EnvOutputs | None:
        found = shared(env) if shared is not None else None
        if found is not None:
            return found
        ws = Workspace(root=root, name=env, sandbox=sandbox)
        plain = Workspace(root=root, name=env)
        if sandbox and not ws.outputs_file.is_file() and not plain.tf_data_dir.is_dir():
            ws = plain  # saved by a configure (bare metal), never by Terraform
        try:
            values = json.loads(ws.outputs_file.read_text())
        except (OSError, ValueError):
            return None
        try:
            sensitive = frozenset(json.loads((ws.env_dir / SENSITIVE_OUTPUTS).read_text()))
        except (OSError, ValueError, TypeError):
            sensitive = frozenset(values)
        return EnvOutputs(values, sensitive) if isinstance(values, dict) else None

    return lookup


# The commands that move hosts to the blueprint's kubernetes.version (or show what that would do):
# a downgrade or a skipped minor of what the hosts run is bad input for them (stages/versions.py).
VERSION_STEP_COMMANDS = ("plan", "up", "configure", "drift")


def build_context(
    file: Path,
    command: str,
    confirm: Confirm,
    *,
    sandbox: bool = False,
    start_sandbox: bool = True,
    kube: KubeTarget | None = None,
    root: Path | None = None,
    progress: Progress | None = None,
    outputs_of: Lookup | None = None,
) -> Context:
    """Load, check, resolve secrets and (for ``--sandbox``) start the emulator: a ready Context.
    ``outputs_of``: how ``${output:ENV.NAME}`` resolves; placeholders (a rollout's ``plan`` of an
    environment whose dependency is not applied yet) only for ``plan``."""
    from ..blueprint.placeholders import Placeholders
    from ..errors import UsageError
    from ..progress import Progress
    from ..sandbox import Sandbox
    from ..secrets import resolve

    if isinstance(outputs_of, Placeholders) and command != "plan":
        raise UsageError(f"infra {command} never uses placeholder outputs: only a plan does",
                         hint="apply the environments it reads first (after: in the rollout file)")
    loaded, provider, ws = open_environment(file, sandbox, root, outputs_of)
    if command in VERSION_STEP_COMMANDS:  # a downgrade or a skipped minor: refused before anything runs
        from .versions import check_version_step

        check_version_step(loaded, ws.env_dir)
    secrets = resolve(loaded)  # before anything runs: an unresolvable reference changes nothing
    progress = progress if progress is not None else Progress()
    overrides = None
    if sandbox and start_sandbox:
        session = Sandbox.start(ws.state_dir)
        progress.info(f"sandbox: AWS emulator at {session.endpoint} (stop it with `infra sandbox stop`)")
        overrides = session.overrides(provider, loaded.model)
    return Context(
        loaded=loaded,
        provider=provider,
        ws=ws,
        progress=progress,
        confirm=confirm,
        approves_any=approves_any(confirm),
        state=RunState(record=new_record(loaded, command, sandbox)),
        overrides=overrides,
        secrets=secrets,
        kube=kube if kube is not None else KubeTarget(),
    )


def _approved(plan: object) -> bool:
    return True  # configure and handoff apply no Terraform plan: nothing to confirm


def plan(file: Path, confirm: Confirm, *, sandbox: bool = False, root: Path | None = None,
         progress: Progress | None = None) -> Context:
    """Render, then plan (bare metal: list the hosts); applies nothing."""
    return run(build_context(file, "plan", confirm, sandbox=sandbox, root=root, progress=progress), "plan")


def up(file: Path, confirm: Confirm, *, sandbox: bool = False, kube: KubeTarget | None = None,
       root: Path | None = None, progress: Progress | None = None) -> Context:
    """Render, plan, confirm, apply, read outputs, configure the hosts, hand off to Kubernetes."""
    return run(build_context(file, "up", confirm, sandbox=sandbox, kube=kube, root=root, progress=progress), "up")


def down(file: Path, confirm: Confirm, *, sandbox: bool = False, root: Path | None = None,
         progress: Progress | None = None) -> Context:
    """Plan the destruction of everything and apply it after confirmation."""
    ctx = build_context(file, "down", confirm, sandbox=sandbox, root=root, progress=progress)
    # bare metal or a deletion-protected cluster: a usage error before anything is locked or recorded
    return run(ctx, "down", stages_for(ctx, "down"))


def _require_unprotected(ctx: Context) -> None:
    """A deletion-protected cluster is refused before Terraform plans anything: GKE's own check
    fails only when the cluster's turn comes, after node pools and other resources are gone."""
    from ..errors import UsageError

    if not ctx.bp.deletion_protected:
        return
    file, line, column = ctx.loaded.locate(("kubernetes", "deletion_protection"))
    given = ctx.bp.kubernetes.deletion_protection is not None
    raise UsageError(
        f"{file}:{line}:{column} kubernetes.deletion_protection: the cluster is deletion-protected"
        f"{'' if given else f' (the {ctx.bp.provider} default)'}; nothing was destroyed",
        hint=f"set kubernetes.deletion_protection: false, run `infra up {ctx.loaded.path}` (it lifts the "
             f"protection), then `infra down {ctx.loaded.path}`")


def drift(file: Path, *, sandbox: bool = False, root: Path | None = None,
          progress: Progress | None = None) -> Context:
    """Render, then a refresh-only plan (bare metal: Ansible check mode): does the environment still
    match the last apply? Changes nothing."""
    ctx = build_context(file, "drift", _approved, sandbox=sandbox, root=root, progress=progress)
    return run(ctx, "drift", stages_for(ctx, "drift"))


def stages_for(ctx: Context, command: str) -> list:
    """The stages of ``plan``, ``up``, ``down`` or ``drift`` (a rollout runs each environment so).
    ``down``: refused for a deletion-protected cluster. ``drift``: a refresh-only plan; on bare
    metal (no Terraform state), Ansible in check mode."""
    if command == "down":
        stages = pipeline(command, ctx.provider)
        _require_unprotected(ctx)  # here, so a rollout's down refuses it too
        return stages
    if command != "drift":
        return pipeline(command, ctx.provider)
    from .configure import HostsDriftStage
    from .render import RenderStage
    from .terraform import DriftStage

    if ctx.provider.terraform_module is None:
        return [RenderStage(), HostsDriftStage()]
    return [RenderStage(), DriftStage()]


def rollback(env: str, run_id: str, confirm: Confirm, *, sandbox: bool = False,
             root: Path | None = None, bp: Blueprint | None = None, progress: Progress | None = None) -> Context:
    """Re-apply the merged blueprint that run ``run_id`` of ``env`` applied, through the normal
    plan / confirm / apply path; the new record says it is a rollback of ``run_id``. Given ``env``'s
    blueprint ``bp`` whose state is in a bucket, the records there are read first (a fresh clone)."""
    import json

    from .. import records, shared_store
    from ..errors import UsageError
    from ..progress import Progress
    from ..workspace import Workspace, write_private

    ws = Workspace(root=root if root is not None else Path.cwd(), name=env, sandbox=sandbox)
    progress = progress if progress is not None else Progress()
    shared = shared_store.for_reading(bp, sandbox, ws.state_dir, progress.warn)
    if shared is not None:
        shared_store.locked_pull(shared, ws.records_dir, progress.warn)
    found = [r for r in records.list_records(ws.records_dir) if r["id"] == run_id]
    if not found:
        raise UsageError(f"infra rollback: no run {run_id!r} recorded for {env} in {ws.records_dir}"
                         + (f" or {shared.where('records/')}" if shared is not None else ""),
                         hint=f"`infra history {env}` lists the runs that can be rolled back to (give the "
                              "blueprint file instead of the name to read the records kept beside the state)")
    merged = restorable(found[0])
    if merged is None:
        raise UsageError(f"infra rollback: run {run_id} of {env} cannot be rolled back to "
                         f"({found[0]['command']}, {found[0]['outcome']}, blueprint kept: "
                         f"{'yes' if found[0]['blueprint'].get('merged') else 'no'})",
                         hint="only a successful `infra up` keeps the blueprint it applied")
    if bool(found[0]["sandbox"]) != sandbox:
        where = "with" if found[0]["sandbox"] else "without"
        raise UsageError(f"infra rollback: run {run_id} ran {where} --sandbox; roll back the same way")
    file = write_private(ws.env_dir / f"rollback-{run_id}.yaml", json.dumps(merged, indent=2, sort_keys=True) + "\n")
    ctx = build_context(file, "up", confirm, sandbox=sandbox, root=ws.root, progress=progress)
    ctx.state.record.rollback_of = run_id
    return run(ctx, "up")


def restorable(record: dict) -> dict | None:
    """The merged blueprint of a run that can be rolled back to (a successful ``up``), else None."""
    merged = record.get("blueprint", {}).get("merged")
    ok = record.get("command") == "up" and record.get("outcome") in ("success", "no-changes")
    return merged if ok and isinstance(merged, dict) else None


def configure(file: Path, *, limit: str | None = None, check: bool = False,
              extra_vars: tuple[Path, ...] = (), root: Path | None = None, progress: Progress | None = None) -> Context:
    """Render, then the Ansible stage alone (with the Terraform outputs the last ``up`` saved)."""
    from .configure import ConfigureStage
    from .render import RenderStage

    ctx = build_context(file, "configure", _approved, start_sandbox=False, root=root, progress=progress)
    return run(ctx, "configure", [RenderStage(), ConfigureStage(limit=limit, check=check, extra_vars=extra_vars)])


def handoff(file: Path, *, sandbox: bool = False, kube: KubeTarget | None = None, force: bool = True,
            prune: bool = True, wait: bool = True, timeout: float = 300.0, root: Path | None = None,
            progress: Progress | None = None) -> Context:
    """Render, then apply ``build/<name>/kubernetes/`` (sandbox: validate only)."""
    from .handoff import HandoffStage
    from .render import RenderStage

    ctx = build_context(file, "handoff", _approved, sandbox=sandbox, start_sandbox=False, kube=kube, root=root,
                        progress=progress)
    stage = HandoffStage(force=force, prune=prune, wait=wait, timeout=timeout)
    return run(ctx, "handoff", [RenderStage(), stage])
