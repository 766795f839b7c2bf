"""The ``up`` pipeline: stages in order, each timed and recorded.

``up`` = render -> terraform (plan, confirm, apply, outputs) -> configure (Ansible) -> handoff
(Kubernetes); ``pipeline`` gives each command's list per provider. ``plan`` and ``down``
reuse the same context with their own stage lists. Every run holds the environment's lock and
writes a run record, whatever the outcome.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import records, records_heads
from .blueprint.loader import LoadedBlueprint
from .engines.terraform import PlanResult, Terraform
from .errors import InfraError, Interrupted, UsageError
from .progress import Progress
from .providers.base import Provider
from .render import render
from .workspace import Workspace, write_private

if TYPE_CHECKING:
    from .sandbox import TerraformOverrides

Confirm = Callable[[PlanResult], bool]


@dataclass
class Context:
    loaded: LoadedBlueprint
    provider: Provider
    ws: Workspace
    progress: Progress
    confirm: Confirm
    record: records.RunRecord
    #: endpoint overrides to apply (``--sandbox``): Terraform then runs in a copy of the render with them
    overrides: TerraformOverrides | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    kubeconfig: Path | None = None
    kube_context: str | None = None
    plan: PlanResult | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    applied: bool = False
    _tf: Terraform | None = None

    @property
    def bp(self):
        return self.loaded.model

    def terraform(self) -> Terraform:
        if self._tf is None:
            self._tf = Terraform(
                self.ws.terraform_dir,
                data_dir=self.ws.tf_data_dir,
                progress=self.progress,
                log_dir=self.ws.log_dir,
                config_dir=self.ws.env_dir,
                lock=self.bp.state.lock,
            )
        return self._tf


class Stage(Protocol):
    name: str

    def run(self, ctx: Context) -> str:
        """Do the work; return a one-line result for the summary and the record."""


class RenderStage:
    name = "render"

    def run(self, ctx: Context) -> str:
        result = render(ctx.bp, ctx.provider, ctx.ws.build_dir.parent)
        if ctx.overrides is not None:  # Terraform runs a copy of the render plus overrides, never build/
            ctx.overrides.write(result.root / "terraform", ctx.ws.terraform_dir)
        c = result.counts()
        return f"{result.root}: {c['written']} written, {c['unchanged']} unchanged, {c['removed']} removed"


def _init(ctx: Context) -> Terraform:
    tf = ctx.terraform()
    backend = ctx.overrides.backend if ctx.overrides is not None else ctx.provider.backend(ctx.bp)[0]
    config = {"path": str(ctx.ws.state_file)} if backend == "local" else None
    ctx.progress.info(f"terraform init ({tf.binary})")
    tf.init(backend_config=config)
    version = tf.version()
    ctx.record.versions["terraform"] = version.get("terraform_version")
    ctx.record.versions["providers"] = version.get("provider_selections", {})
    return tf


def _record_plan(ctx: Context, plan: PlanResult) -> None:
    ctx.plan = plan
    ctx.record.plan = {
        "has_changes": plan.has_changes,
        "add": plan.add,
        "change": plan.change,
        "destroy": plan.destroy,
        "by_type": plan.by_type,
    }


class PlanStage:
    """init + plan; ``destroy`` plans the removal of everything. ``keep=False`` (``infra plan``)
    removes the saved plan once it is summarised: ``up`` plans again, so nothing would read it."""

    def __init__(self, destroy: bool = False, keep: bool = True) -> None:
        self.destroy = destroy
        self.keep = keep
        self.name = "plan-destroy" if destroy else "plan"

    def run(self, ctx: Context) -> str:
        tf = _init(ctx)
        plan = tf.plan(ctx.ws.plan_file, destroy=self.destroy)
        _record_plan(ctx, plan)
        if not self.keep:
            ctx.ws.plan_file.unlink(missing_ok=True)
        if not plan.has_changes:
            return "no changes"
        return f"{plan.add} to add, {plan.change} to change, {plan.destroy} to destroy"


class ApplyStage:
    """Applies the saved plan after confirmation; nothing at all when the plan is empty."""

    name = "apply"

    def run(self, ctx: Context) -> str:
        plan = ctx.plan
        if plan is None or not plan.has_changes:
            return "skipped: the plan has no changes"
        if not ctx.confirm(plan):
            ctx.record.outcome = "cancelled"
            raise Cancelled()
        result = ctx.terraform().apply(ctx.ws.plan_file, total=plan.steps)
        ctx.applied = True
        ctx.ws.plan_file.unlink(missing_ok=True)
        return f"{result.add} added, {result.change} changed, {result.destroy} destroyed"


class OutputsStage:
    """Reads Terraform outputs and keeps them (0600) for the later stages and ``status``."""

    name = "outputs"

    def run(self, ctx: Context) -> str:
        outputs = ctx.terraform().output()
        ctx.outputs = dict(outputs)
        write_private(ctx.ws.outputs_file, json.dumps(ctx.outputs, indent=2, sort_keys=True) + "\n")
        return f"{len(outputs)} outputs"


class Cancelled(InfraError):
    """The user declined the confirmation: nothing was applied."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__("cancelled: nothing was applied")


class ConfirmationRequired(UsageError):
    """Changes need a confirmation that cannot be asked for (no terminal): nothing was applied."""


def pipeline(command: str, provider: Provider) -> list[Stage]:
    """The stages ``command`` runs for ``provider``.

    Cloud: render -> plan -> apply -> outputs -> configure (Ansible; skipped, and says so, when
    every pool is a managed node group) -> handoff (Kubernetes). Bare metal has no Terraform
    (docs/decisions/0004-baremetal-state.md): ``plan`` lists the hosts, ``up`` configures them and
    hands off to the cluster kubeadm made; there is nothing to ``down``.
    """
    from .configure import ConfigureStage, HostsStage
    from .kube.stage import HandoffStage

    if provider.terraform_module is None:
        if command == "plan":
            return [RenderStage(), HostsStage()]
        if command == "down":
            raise UsageError(
                f"infra down: provider {provider.name} has no cloud resources to destroy "
                "(its hosts are configured, not created)",
                hint="remove the hosts from the blueprint and run `infra up` to drop them from the inventory",
            )
        return [RenderStage(), ConfigureStage(), HandoffStage()]
    if command == "plan":
        return [RenderStage(), PlanStage(keep=False)]
    if command == "down":
        return [RenderStage(), PlanStage(destroy=True), ApplyStage()]
    return [RenderStage(), PlanStage(), ApplyStage(), OutputsStage(), ConfigureStage(), HandoffStage()]


def run(ctx: Context, command: str, stages: list[Stage] | None = None) -> Context:
    """Run ``command``'s stages (or the given ones) under the environment lock, recording the run
    whatever happens."""
    with ctx.ws.lock(f"infra {command} {ctx.loaded.path.name}") as lock:
        heads = records_heads.heads_for(ctx.ws.root, ctx.bp.name, ctx.bp)
        if lock.lost is not None:  # the previous run was killed holding the lock: record it first
            lost = records.lost_record(ctx.bp.name, lock.lost, ctx.record.sandbox)
            records.write(ctx.ws.records_dir, lost, heads=heads, warn=ctx.progress.warn)
            ctx.progress.warn(records.lost_message(lock.lost))
        warning = ctx.overrides.attach(ctx.ws.env_dir) if ctx.overrides is not None else None
        if warning:
            ctx.progress.warn(warning)
        try:
            for stage in stages if stages is not None else pipeline(command, ctx.provider):
                ctx.progress.stage(stage.name)
                started = time.monotonic()
                try:
                    detail = stage.run(ctx)
                except BaseException as exc:
                    ctx.record.stage(stage.name, "failed", time.monotonic() - started, _one_line(exc, ctx))
                    raise
                ctx.record.stage(stage.name, "ok", time.monotonic() - started, detail)
                ctx.progress.info(f"    {detail}")
            ctx.record.outcome = "no-changes" if ctx.plan is not None and not ctx.plan.has_changes else "success"
        except (Cancelled, ConfirmationRequired):
            ctx.record.outcome = "cancelled"
            raise
        except (Interrupted, KeyboardInterrupt):
            ctx.record.outcome = "interrupted"
            raise
        except BaseException as exc:
            ctx.record.outcome = "failed"
            ctx.record.error = _one_line(exc, ctx)
            raise
        finally:
            records.write(ctx.ws.records_dir, ctx.record, heads=heads, warn=ctx.progress.warn)
        if command == "down" and ctx.applied and ctx.overrides is not None:
            ctx.overrides.forget(ctx.ws.env_dir)
    return ctx


def _one_line(exc: BaseException, ctx: Context) -> str:
    """The error as recorded: first line only, secret values removed."""
    text = exc.message if isinstance(exc, InfraError) else (str(exc) or type(exc).__name__)
    text = text.splitlines()[0] if text else type(exc).__name__
    return records.redact(text, list(ctx.secrets.values()))
