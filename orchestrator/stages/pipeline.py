"""Which stages each command runs, and ``run``: the stages in order, each timed and recorded.

``up`` = render -> plan -> apply (after confirmation) -> outputs -> configure (Ansible) ->
handoff (Kubernetes); ``plan`` and ``down`` run their own lists (``pipeline``). Every run holds
the environment's lock and writes a run record, whatever the outcome: ``success``,
``no-changes`` (the plan was empty: nothing applied), ``failed``, ``cancelled``,
``interrupted``, or ``locked`` (refused: another run, or a terraform an earlier run left
running, holds the environment; exit 6).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import pr_lock, records, records_heads, shared_store
from ..errors import Cancelled, ConfirmationRequired, InfraError, Interrupted, LockedError, UsageError
from ..rollback_change import warn_if_rolled_back
from .context import Context, Stage

if TYPE_CHECKING:
    from ..providers.base import Provider


def pipeline(command: str, provider: Provider) -> list[Stage]:
    """The stages ``command`` runs for ``provider``.

    Cloud: render -> plan -> apply -> outputs -> configure (Ansible; skipped, and says so, when
    every pool is a managed node group) -> handoff (Kubernetes). Bare metal has no Terraform
    (docs/decisions/0004-baremetal-state.md): ``plan`` lists the hosts, ``up`` configures them and
    hands off to the cluster kubeadm made; there is nothing to ``down``.
    """
    from .configure import ConfigureStage, HostsStage
    from .handoff import HandoffStage
    from .render import RenderStage
    from .terraform import ApplyStage, OutputsStage, PlanStage

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
        return [RenderStage(), PlanStage(destroy=True, then_apply=True), ApplyStage()]
    return [RenderStage(), PlanStage(then_apply=True), ApplyStage(), OutputsStage(), ConfigureStage(),
            HandoffStage()]


def run(ctx: Context, command: str, stages: Sequence[Stage] | None = None) -> Context:
    """Run ``command``'s stages (or the given ones) under the environment lock, recording the run
    whatever happens."""
    from ..engines.tfprocess import settle_orphans

    record = ctx.state.record
    shared = shared_store.for_context(ctx)  # the state is in a bucket: records, outputs and lock too
    heads = records_heads.heads_for(ctx.ws.root, ctx.bp.name, ctx.bp, shared=shared, sandbox=ctx.ws.sandbox)
    lock = ctx.ws.lock(f"infra {command} {ctx.loaded.path.name}")
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(lock)
            if shared is not None:  # beside the state: one run per environment across every clone
                created = shared.prepare()
                if created:
                    ctx.progress.info(created)
                stack.enter_context(shared.lock(lock.command, ctx.progress.warn))
                pr_lock.check(shared, command, os.environ.get(pr_lock.HOLDER_ENV))  # held for a pull request
            # a terraform an earlier infra left running (killed, or stopped waiting) holds the state:
            # wait for it to stop, or refuse; then redact the logs it left
            settle_orphans(ctx.ws.log_dir, ctx.progress.warn, lost=lock.lost is not None)
        except (LockedError, shared_store.SharedStoreError) as exc:  # refused: recorded too (not when the
            lock.keep_lost()  # shared lock or its bucket refused: the chain is not ours to append to then)
            if isinstance(exc, (shared_store.SharedLocked, shared_store.SharedStoreError)):
                raise
            record.outcome, record.error = "locked", _one_line(exc, ctx)
            records.write(ctx.ws.records_dir, record, heads=heads, warn=ctx.progress.warn, shared=shared)
            raise
        if lock.lost is not None:  # the previous run was killed holding the lock: record it first
            lost = records.lost_record(ctx.bp.name, lock.lost, record.sandbox)
            records.write(ctx.ws.records_dir, lost, heads=heads, warn=ctx.progress.warn, shared=shared)
            ctx.progress.warn(records.lost_message(lock.lost))
        warning = ctx.overrides.attach(ctx.ws.env_dir) if ctx.overrides is not None else None
        if warning:
            ctx.progress.warn(warning)
        warn_if_rolled_back(ctx, command, shared)  # plan/up of a blueprint a rollback went back from
        try:
            _run_stages(ctx, list(stages if stages is not None else pipeline(command, ctx.provider)))
            plan = ctx.state.plan
            if command == "drift":  # drift found is what the run is about, not a success (exit 2 too)
                record.outcome = "drift" if plan is not None and plan.has_changes else "no-changes"
            else:
                record.outcome = "no-changes" if plan is not None and not plan.has_changes else "success"
        except (Cancelled, ConfirmationRequired):
            record.outcome = "cancelled"
            raise
        except (Interrupted, KeyboardInterrupt):
            record.outcome = "interrupted"
            raise
        except LockedError as exc:  # a Terraform state lock held elsewhere
            record.outcome, record.error = "locked", _one_line(exc, ctx)
            raise
        except BaseException as exc:
            record.outcome = "failed"
            record.error = _one_line(exc, ctx)
            raise
        finally:
            records.write(ctx.ws.records_dir, record, heads=heads, warn=ctx.progress.warn, shared=shared)
        if command == "down" and ctx.state.applied and shared is not None:
            from ..shared_outputs import forget_outputs

            forget_outputs(shared, ctx.ws, ctx.progress.warn)
        if command == "down" and ctx.state.applied and ctx.overrides is not None:
            ctx.overrides.forget(ctx.ws.env_dir)
    return ctx


def _run_stages(ctx: Context, chosen: list[Stage]) -> None:
    """Each stage in order, announced, timed and recorded; after each, ``prepare`` of the later ones
    (work they can start now: the handoff validates its manifests while Terraform runs). A stage
    may hand over to the next one while it runs (``RunState.handover``: plan and apply in one
    Terraform call): the next stage is then announced and timed from that moment, its outcome is
    the running stage's, and its own ``run`` is skipped."""
    record = ctx.state.record
    index = 0
    while index < len(chosen):
        current = {"index": index, "started": time.monotonic()}

        def done(detail: str, current: dict = current) -> None:
            record.stage(chosen[current["index"]].name, "ok", time.monotonic() - current["started"], detail)
            ctx.progress.info(f"    {detail}")
            for later in chosen[current["index"] + 1:]:
                prepare = getattr(later, "prepare", None)
                if prepare is not None:
                    prepare(ctx)

        def handover(detail: str, current: dict = current) -> None:
            if current["index"] + 1 >= len(chosen):
                raise RuntimeError(f"stage {chosen[current['index']].name} handed over, but it is the last")
            done(detail)
            current["index"] += 1
            current["started"] = time.monotonic()
            ctx.progress.stage(chosen[current["index"]].name)

        ctx.progress.stage(chosen[index].name)
        ctx.state.handover = handover
        try:
            detail = chosen[index].run(ctx)
        except BaseException as exc:
            record.stage(chosen[current["index"]].name, "failed", time.monotonic() - current["started"],
                         _one_line(exc, ctx))
            raise
        finally:
            ctx.state.handover = None
        done(detail)
        index = current["index"] + 1


def _one_line(exc: BaseException, ctx: Context) -> str:
    """The error as recorded: first line only (``records.write`` is where secret values are removed)."""
    text = exc.message if isinstance(exc, InfraError) else (str(exc) or type(exc).__name__)
    return text.splitlines()[0] if text else type(exc).__name__
