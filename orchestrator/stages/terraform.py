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
    removes the saved plan once it is summarised: ``up`` plans again, so nothing would read it."""

    def __init__(self, destroy: bool = False, keep: bool = True) -> None:
        self.destroy = destroy
        self.keep = keep
        self.name = "plan-destroy" if destroy else "plan"

    def run(self, ctx: Context) -> str:
        tf = _init(ctx)
        if self.keep and not self.destroy and ctx.state.record.command == "up":
            ctx.state.early_outputs = _read_outputs_meanwhile(tf)
        with provider_hints(ctx):
            plan = tf.plan(ctx.ws.plan_file, destroy=self.destroy)
        ctx.state.plan = plan
        ctx.state.record.plan = {
            "has_changes": plan.has_changes,
            "add": plan.add,
            "change": plan.change,
            "destroy": plan.destroy,
            "by_type": plan.by_type,
        }
        if not self.keep:
            ctx.ws.plan_file.unlink(missing_ok=True)
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


class ApplyStage:
    """Applies the saved plan after confirmation; nothing at all when the plan is empty. After an
    ``up``, the state is refreshed (changing nothing) so that ``infra drift`` starts clean."""

    name = "apply"

    def run(self, ctx: Context) -> str:
        plan = ctx.state.plan
        if plan is None or not plan.has_changes:
            return "skipped: the plan has no changes"
        if not ctx.confirm(plan):
            raise Cancelled()
        tf = ctx.terraform()
        with provider_hints(ctx):
            result = tf.apply(ctx.ws.plan_file, total=plan.steps)
        ctx.state.applied = True
        ctx.ws.plan_file.unlink(missing_ok=True)
        if ctx.state.record.command != "down":
            targets = refresh_targets(tf.state_resources())
            if targets is None or targets:
                tf.refresh_state(targets or ())
        return f"{result.add} added, {result.change} changed, {result.destroy} destroyed"


def refresh_targets(resources: list[dict]) -> list[str] | None:
    """What the refresh after an apply must cover: the addresses of the state's resources whose
    attributes other resources change (``data/terraform/settling.yaml``, with a source for each),
    ``[]`` when there are none, or ``None`` (refresh everything) when the state holds a managed
    resource of a provider that table does not cover."""
    from .. import datafiles, paths

    table = datafiles.load(paths.package_data() / "terraform" / "settling.yaml")
    covered = tuple(f"{p}_" for p in table["providers"])
    targets: set[str] = set()
    for r in resources:
        if r.get("mode") != "managed":
            continue
        rtype, name = str(r.get("type", "")), str(r.get("name", ""))
        if not rtype.startswith(covered):
            return None
        if rtype in table["types"]:
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
