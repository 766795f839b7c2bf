"""The Terraform stages: ``plan`` (init + plan; ``plan-destroy`` for ``down``), ``apply`` (after
confirmation; never for a plan without changes) and ``outputs`` (kept 0600 for the later stages
and ``infra status``)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import Cancelled, TerraformError
from ..workspace import write_private
from .context import Context, TerraformEngine

if TYPE_CHECKING:
    from concurrent.futures import Future

    from ..engines.tfjson import ApplyResult, PlanResult


def check_credentials(ctx: Context) -> None:
    """Before ``terraform init``: the provider's credentials are there (not for ``--sandbox``;
    ``INFRA_SKIP_CREDENTIALS_CHECK=1`` skips it), else one line naming what is missing (exit 3)."""
    import os

    spec = ctx.provider.credentials
    if spec is None or ctx.overrides is not None or os.environ.get("INFRA_SKIP_CREDENTIALS_CHECK") == "1":
        return
    missing = spec.missing(os.environ)
    if missing:
        raise TerraformError(f"{ctx.provider.name}: no credentials for Terraform: {'; '.join(missing)}", spec.hint)


@contextmanager
def provider_hints(ctx: Context) -> Iterator[None]:
    """A Terraform error the provider knows (``Provider.error_hints``: a feature or an API a fresh
    account lacks) gets the provider's hint, which says what to do."""
    try:
        yield
    except TerraformError as exc:
        for pattern, hint in ctx.provider.error_hints:
            if re.search(pattern, exc.message):
                exc.hint = hint
                break
        raise


def _init(ctx: Context) -> TerraformEngine:
    check_credentials(ctx)
    tf = ctx.terraform()
    backend = ctx.overrides.backend if ctx.overrides is not None else ctx.provider.backend(ctx.bp)[0]
    config = {"path": str(ctx.ws.state_file)} if backend == "local" else None
    ctx.progress.info(f"terraform init ({tf.binary})")
    tf.init(backend_config=config)
    version = tf.version()
    record = ctx.state.record
    record.versions["terraform"] = version.get("terraform_version")
    record.versions["providers"] = version.get("provider_selections", {})
    return tf


class PlanStage:
    """init + plan; ``destroy`` plans the removal of everything. ``keep=False`` (``infra plan``)
    removes the saved plan once it is summarised: ``up`` plans again, so nothing would read it.

    ``then_apply`` (``up``, ``down``: an ApplyStage follows): when the run approves every plan
    (``--auto-approve``), plan and apply are one ``terraform apply`` call; the plan is recorded and
    shown as soon as Terraform has made it, and this stage hands over to ``apply`` then."""

    def __init__(self, destroy: bool = False, keep: bool = True, then_apply: bool = False) -> None:
        self.destroy = destroy
        self.keep = keep
        self.then_apply = then_apply
        self.name = "plan-destroy" if destroy else "plan"

    def run(self, ctx: Context) -> str:
        tf = _init(ctx)
        if self.keep and not self.destroy and ctx.state.record.command == "up":
            ctx.state.early_outputs = _read_outputs_meanwhile(tf)
        if self.then_apply and ctx.approves_any and ctx.state.handover is not None and (
                self.destroy or not _inputs_applied(ctx)):
            return self._plan_and_apply(ctx, tf)
        with provider_hints(ctx):
            plan = tf.plan(ctx.ws.plan_file, destroy=self.destroy)
        _planned(ctx, plan)
        if self.then_apply and not self.destroy and not plan.has_changes:
            _remember_inputs(ctx)  # the state matches these inputs
        if not self.keep:
            ctx.ws.plan_file.unlink(missing_ok=True)
        return _plan_detail(plan)

    def _plan_and_apply(self, ctx: Context, tf: TerraformEngine) -> str:
        handover = ctx.state.handover
        assert handover is not None

        def on_plan(plan: PlanResult) -> None:
            _planned(ctx, plan)
            ctx.confirm(plan)  # shows the plan; it approves any (Context.approves_any)
            handover(_plan_detail(plan))

        settled = _forget_inputs(ctx)
        with provider_hints(ctx):
            plan, result = tf.plan_and_apply(on_plan, destroy=self.destroy)
        if not plan.has_changes:
            if not self.destroy:
                _remember_inputs(ctx)
            return _NOTHING_TO_APPLY
        ctx.state.applied = True
        return _after_apply(ctx, tf, plan, result, settled)


# Beside the state: a digest of the Terraform inputs (the root module Terraform runs, with its lock
# file and overrides) the last `up` applied, or planned without changes. `up --auto-approve` with
# other inputs expects changes and plans and applies in one Terraform call; with the same inputs
# it expects none and plans alone, which costs no apply walk when, as usually then, there is nothing
# to do (a change found, drift to revert, is applied from the saved plan). Speed only: either way
# applies the same plan.
APPLIED_INPUTS = "applied-inputs.sha256"


def _inputs_digest(ctx: Context) -> str:
    import hashlib

    root = ctx.ws.terraform_dir
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".terraform" not in p.relative_to(root).parts
                   and not p.name.endswith((".tfstate", ".tfstate.backup", ".tfplan")))
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(b"state:" + str(ctx.ws.state_file.is_file()).encode())  # a local state lost: changes
    return digest.hexdigest()


def _inputs_applied(ctx: Context) -> bool:
    """These inputs are what the last ``up`` left the state matching (APPLIED_INPUTS)."""
    stamp = ctx.ws.env_dir / APPLIED_INPUTS
    try:
        return stamp.read_text().strip() == _inputs_digest(ctx)
    except OSError:
        return False


def _forget_inputs(ctx: Context) -> bool:
    """Before an apply: the stamp goes (an apply that stops half-way leaves none); whether there was
    one, that is whether the state was settled (refreshed after its last apply) before this one."""
    try:
        (ctx.ws.env_dir / APPLIED_INPUTS).unlink()
    except FileNotFoundError:
        return False
    return True


def _remember_inputs(ctx: Context) -> None:
    if ctx.state.record.command == "up":  # (a rollback is an up too)
        write_private(ctx.ws.env_dir / APPLIED_INPUTS, _inputs_digest(ctx) + "\n")


def _planned(ctx: Context, plan: PlanResult) -> None:
    ctx.state.plan = plan
    ctx.state.record.plan = {
        "has_changes": plan.has_changes,
        "add": plan.add,
        "change": plan.change,
        "destroy": plan.destroy,
        "by_type": plan.by_type,
    }


def _plan_detail(plan: PlanResult) -> str:
    if not plan.has_changes:
        return "no changes"
    return f"{plan.add} to add, {plan.change} to change, {plan.destroy} to destroy"


def _read_outputs_meanwhile(tf: TerraformEngine) -> Future:
    """``terraform output`` in a thread while the plan runs: a plan writes no state, so when it
    finds nothing to change these are the outputs ``up`` would read after it, one terraform call
    earlier (issue 24: a no-op ``up`` costs what ``terraform plan`` does). After an apply they are
    not used. Its own process and temporary files: nothing shared with the plan's."""
    from concurrent.futures import Future

    future: Future = Future()

    def read() -> None:
        try:
            future.set_result(tf.output())
        except BaseException as exc:  # the outputs stage reads them again, and reports that error
            future.set_exception(exc)

    threading.Thread(target=read, name="terraform-output", daemon=True).start()
    return future


_NOTHING_TO_APPLY = "skipped: the plan has no changes"


class ApplyStage:
    """Applies the saved plan after confirmation; nothing at all when the plan is empty. After an
    ``up``, the state is refreshed (changing nothing) so that ``infra drift`` starts clean."""

    name = "apply"

    def run(self, ctx: Context) -> str:
        plan = ctx.state.plan
        if plan is None or not plan.has_changes:
            return _NOTHING_TO_APPLY
        if not ctx.confirm(plan):
            raise Cancelled()
        tf = ctx.terraform()
        settled = _forget_inputs(ctx)
        with provider_hints(ctx):
            result = tf.apply(ctx.ws.plan_file, total=plan.steps)
        ctx.state.applied = True
        ctx.ws.plan_file.unlink(missing_ok=True)
        return _after_apply(ctx, tf, plan, result, settled)


def _after_apply(ctx: Context, tf: TerraformEngine, plan: PlanResult, result: ApplyResult, settled: bool) -> str:
    """After an apply (not ``down``'s): the refresh that keeps ``infra drift`` clean, of the resources
    whose attributes this apply's changes settle (``refresh_targets``; all of those types when the
    state was not known settled before it: a first apply, or one after an apply that stopped
    half-way); the stage's one-line result."""
    if ctx.state.record.command != "down":
        targets = refresh_targets(tf.state_resources(), set(plan.by_type) if settled else None)
        if targets is None or targets:
            tf.refresh_state(targets or ())
        _remember_inputs(ctx)
    return f"{result.add} added, {result.change} changed, {result.destroy} destroyed"


def refresh_targets(resources: list[dict], changed: set[str] | None = None) -> list[str] | None:
    """What the refresh after an apply must cover: the addresses of the state's resources whose
    attributes other resources change (``data/terraform/settling.yaml``, with a source for each),
    of the types that ``changed`` (the resource types the apply created, updated or deleted; None:
    any) holds a changer of; ``[]`` when there are none, or ``None`` (refresh everything) when the
    state holds a managed resource of a provider that table does not cover."""
    from .. import datafiles, paths

    table = datafiles.load(paths.package_data() / "terraform" / "settling.yaml")
    covered = tuple(f"{p}_" for p in table["providers"])
    settled = {rtype for rtype, entry in table["types"].items()
               if changed is None or changed & set(entry["changed_by"])}
    targets: set[str] = set()
    for r in resources:
        if r.get("mode") != "managed":
            continue
        rtype, name = str(r.get("type", "")), str(r.get("name", ""))
        if not rtype.startswith(covered):
            return None
        if rtype in settled:
            targets.add(".".join(p for p in (r.get("module"), rtype, name) if p))
    return sorted(targets)


SENSITIVE_OUTPUTS = "outputs-sensitive.json"  # beside outputs.json: for ${output:ENV.NAME} elsewhere


class OutputsStage:
    """Reads Terraform outputs and keeps them (0600) for the later stages and ``status``."""

    name = "outputs"

    def run(self, ctx: Context) -> str:
        outputs = _early_outputs(ctx) or ctx.terraform().output()
        ctx.state.outputs = dict(outputs)
        write_private(ctx.ws.outputs_file, json.dumps(ctx.state.outputs, indent=2, sort_keys=True) + "\n")
        sensitive = sorted(getattr(outputs, "sensitive", ()))
        write_private(ctx.ws.env_dir / SENSITIVE_OUTPUTS, json.dumps(sensitive) + "\n")
        from ..shared_outputs import publish_outputs

        publish_outputs(ctx, ctx.state.outputs, sensitive)  # the state is in a bucket: beside it too
        return f"{len(outputs)} outputs"


def _early_outputs(ctx: Context):
    """The outputs read while this run planned, when nothing was applied since (else None)."""
    early, ctx.state.early_outputs = ctx.state.early_outputs, None
    if early is None or ctx.state.applied or (ctx.state.plan is not None and ctx.state.plan.has_changes):
        return None
    try:
        return early.result(timeout=600)
    except Exception:  # noqa: BLE001 - read again by the caller, which reports its own error
        return None


def _drifted(address: str, action: str, attributes: list[str] | None) -> str:
    """``aws_eks_node_group.pool["gpu"] (update: scaling_config[0].max_size, tags.owner)``."""
    return f"{address} ({action}{': ' + ', '.join(attributes) if attributes else ''})"


class DriftStage:
    """``infra drift``: init + a refresh-only plan: what changed outside Terraform since the last
    apply (a tag, a size set by hand). Pending blueprint changes are not drift (``infra plan``
    shows those). Saves nothing, applies nothing; ``up`` refreshes the state after each apply, so
    attributes one resource sets on another (routes, security group rules) are not reported.
    """

    name = "drift"

    def run(self, ctx: Context) -> str:
        tf = _init(ctx)
        if not tf.managed_resources():  # nothing applied: nothing to drift (and a refresh-only plan of
            from ..engines.tfjson import PlanResult

            ctx.state.plan = PlanResult(has_changes=False)  # an empty state can fail on count-indexed data)
            ctx.state.record.plan = {"has_changes": False, "add": 0, "change": 0, "destroy": 0, "by_type": {},
                                     "drift": []}
            return "no drift: nothing applied here yet (the state holds no resources)"
        plan = tf.plan(ctx.ws.plan_file, refresh_only=True)
        drifted = sorted({_drifted(addr, action, plan.drift_attributes.get(addr)) for addr, action in plan.drift})
        ctx.state.plan = plan
        ctx.state.record.plan = {"has_changes": plan.has_changes, "add": 0, "change": 0, "destroy": 0,
                                 "by_type": {}, "drift": drifted}
        if not plan.has_changes:
            return "no drift"
        return f"drift: {', '.join(drifted)}"
