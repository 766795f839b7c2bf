"""The real per-environment run of a rollout, and the rollout's own record.

Each environment runs through ``stages.commands`` exactly as ``infra plan|up|down FILE`` would:
its own lock, its own run record. Its progress goes to ``.infra/logs/<rollout>/<env>.log``
(owner-only, redacted like every progress line); the last line it printed is the environment's
live status. The rollout record (``.infra/rollouts/<rollout>/<UTC>-<id>.json``) lists every
environment's result and the id of its run record.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..blueprint.rollout import Rollout, RolloutEnv
from ..errors import ConfirmationRequired, InfraError
from .scheduler import EnvResult, RunOne, Status, schedule

COMMANDS = ("plan", "up", "down", "drift")


class _LineTee:
    """A text stream that appends to the log and reports each finished line."""

    def __init__(self, log: Any, on_line: Any) -> None:
        self.log, self.on_line, self._buf = log, on_line, ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self.log.flush()
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self.on_line(line.strip())
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def isatty(self) -> bool:
        return False


def log_dir(root: Path, rollout: Rollout) -> Path:
    return root / ".infra" / "logs" / rollout.name


def _confirm(auto_approve: bool, action: str):
    def confirm(plan: object) -> bool:
        if auto_approve:
            return True
        raise ConfirmationRequired(
            f"refusing to {action} an environment of a rollout without --auto-approve",
            hint="review `infra plan ROLLOUT` first, then run with --auto-approve",
        )
    if auto_approve:
        from ..stages.context import approving_any

        return approving_any(confirm)
    return confirm


def env_runner(command: str, *, root: Path, logs: Path, sandbox: bool = False,
               auto_approve: bool = False, providers: dict[str, str] | None = None,
               out: Path | None = None, plan_dir: Path | None = None) -> RunOne:
    """The function ``schedule`` calls for each environment: one ``infra COMMAND FILE``. ``plan``
    with ``providers`` (the rollout's environments -> their providers): an environment that reads
    one of them not applied yet plans with placeholders (blueprint/placeholders.py), listed in
    ``extra["placeholders"]``."""
    from ..blueprint.placeholders import Placeholders, marks
    from ..progress import Progress
    from ..stages import commands
    from ..workspace import private_dir

    private_dir(logs)

    def run_one(env: RolloutEnv, status: Any) -> EnvResult:
        import os

        path = logs / f"{env.name}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as log:
            tee = _LineTee(log, status)
            progress = Progress(stream=tee, err_stream=tee, interactive=False)
            result = EnvResult(env.name, env.provider)
            ctx = None
            try:
                action = "destroy" if command == "down" else "apply"
                env_sandbox = sandbox and not configured_only(env.provider)
                lookup = (Placeholders(commands.outputs_lookup(root, env_sandbox, env.path), providers)
                          if command == "plan" and providers else None)
                ctx = commands.build_context(env.path, command, _confirm(auto_approve, action),
                                             sandbox=env_sandbox, root=root, progress=progress,
                                             outputs_of=lookup)
                if lookup is not None and lookup.used:
                    result.extra["placeholders"] = marks(ctx.loaded.references, lookup.used)
                    for mark in result.extra["placeholders"]:
                        progress.warn(f"placeholder: {mark['field']} = {mark['value']} "
                                      f"({mark['reference']}: {mark['environment']} has no outputs yet)")
                stages = commands.stages_for(ctx, command)
                if out is not None or plan_dir is not None:  # plan --out, up --plan (stages/saved_plan.py)
                    from ..stages import saved_plan

                    used = [m["reference"] for m in result.extra.get("placeholders") or []]
                    stages = saved_plan.stages(ctx, command, out=out, plan_dir=plan_dir, placeholders=used)
                commands.run(ctx, command, stages)
            except InfraError as exc:
                from ..secrets import redact

                result.result = "interrupted" if exc.exit_code == 130 else "failed"
                result.error, result.code = redact(exc.message), exc.exit_code
                result.record_id = ctx.state.record.id if ctx is not None else None
                if ctx is not None and ctx.state.record.plan:  # planned, then failed: what was applied
                    result.changes = failed_changes(ctx, command, exc)
                tee.write(f"error: {result.error}\n")
                return result
            rec = ctx.state.record
            result.result, result.record_id = rec.outcome, rec.id
            if ctx.state.plan is not None:
                result.changes = dict(rec.plan or {})
            if rec.stages and rec.stages[0]["name"] == "render":
                result.extra["render"] = rec.stages[0].get("detail", "")
            if command == "drift":
                result.extra["drift"] = bool(ctx.state.plan is not None and ctx.state.plan.has_changes)
            if command == "plan":
                result.extra["cost"] = cost_of(ctx)
            return result

    return run_one


def failed_changes(ctx: Any, command: str, exc: Exception) -> dict[str, Any]:
    """The plan's counts of a run that failed after planning; for ``up``/``down`` with ``applied``:
    what the failed apply did (counted from the resources Terraform reported complete), or None when
    nothing was applied (the run failed before its apply); absent when the apply finished."""
    changes = dict(ctx.state.record.plan)
    if command not in ("up", "down") or ctx.state.applied:
        return changes
    partial = getattr(exc, "result", None)
    if partial is None:
        changes["applied"] = None
        return changes
    done = {"add": partial.add, "change": partial.change, "destroy": partial.destroy}
    if not any(done.values()):
        actions = [action for _, action, _ in partial.completed]
        done = {"add": actions.count("create"), "change": actions.count("update"),
                "destroy": actions.count("delete")}
    changes["applied"] = done
    return changes


def configured_only(provider: str) -> bool:
    """A provider with no cloud resources (bare metal: hosts configured, never created): in a
    ``--sandbox`` rollout its environments run as usual, against their real hosts, since there is
    nothing to emulate. Clouds the emulator cannot stand in for still refuse ``--sandbox``."""
    from ..providers.registry import get as get_provider

    return bool(provider) and get_provider(provider).terraform_module is None


def cost_of(ctx: Any) -> dict[str, Any]:
    """The plan's cost estimate (docs/cost.md), with ``was_max``: the configured monthly cost at max
    of the blueprint the last successful ``up`` applied (None when there is none or it has no price)."""
    import contextlib

    from .. import records
    from ..blueprint.models import Blueprint
    from ..cost import estimate
    from ..stages.commands import restorable

    doc = estimate(ctx.bp).as_json()
    if not doc["estimate"]:
        return doc
    doc["was_max"] = None
    applied = [r for r in records.list_records(ctx.ws.records_dir)
               if restorable(r) is not None and bool(r.get("sandbox")) == ctx.ws.sandbox]
    if applied:
        with contextlib.suppress(ValueError):  # a blueprint the current model no longer accepts: no comparison
            doc["was_max"] = estimate(Blueprint.model_validate(restorable(applied[-1]))).total("max")
    return doc


def run_rollout(rollout: Rollout, command: str, *, root: Path | None = None, sandbox: bool = False,
                auto_approve: bool = False, status: Status | None = None,
                cancel: threading.Event | None = None,
                providers: dict[str, str] | None = None, out: Path | None = None,
                plan_dir: Path | None = None) -> tuple[list[EnvResult], Path]:
    """Run ``command`` over the rollout; returns the results and the rollout record's path.
    ``providers``: for ``plan``, the environments (-> provider) whose missing outputs become
    placeholders; default: the rollout's own (a selection passes the whole rollout's)."""
    root = root if root is not None else Path.cwd()
    if sandbox:  # one emulator for all: started here, before the threads race to start it
        from ..providers.registry import get as get_provider
        from ..sandbox import Sandbox

        if any(get_provider(e.provider).sandbox for e in rollout.environments):
            Sandbox.start(root / ".infra")
    started = time.time()
    if providers is None:
        providers = {e.name: e.provider for e in rollout.environments}
    runner = env_runner(command, root=root, logs=log_dir(root, rollout), sandbox=sandbox,
                        auto_approve=auto_approve, providers=providers, out=out, plan_dir=plan_dir)
    results = schedule(rollout, runner, reverse=command == "down", cancel=cancel, status=status)
    return results, write_record(root, rollout, command, sandbox, started, results)


def write_record(root: Path, rollout: Rollout, command: str, sandbox: bool, started: float,
                 results: list[EnvResult]) -> Path:
    from ..secrets import redact
    from ..workspace import private_dir, write_private

    finished = time.time()
    body = {
        "id": uuid.uuid4().hex[:8],
        "rollout": rollout.name,
        "file": str(rollout.path) if rollout.path else None,
        "command": command,
        "sandbox": sandbox,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_s": round(finished - started, 3),
        "outcome": overall(results),
        "environments": [r.as_json() for r in results],
    }
    folder = private_dir(root / ".infra" / "rollouts" / rollout.name)
    path = folder / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(finished))}-{body['id']}.json"
    write_private(path, redact(json.dumps(body, indent=2, sort_keys=True)) + "\n")
    return path


def overall(results: list[EnvResult]) -> str:
    if all(r.result in ("success", "no-changes") for r in results):
        return "success"
    if all(r.result in ("success", "no-changes", "drift") for r in results):
        return "drift"
    if any(r.result in ("cancelled", "interrupted") for r in results):
        return "interrupted"
    return "failed"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
