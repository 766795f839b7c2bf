"""``infra lock acquire|release|show FILE``: hold an environment for a pull request (orchestrator/pr_lock.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common

lock_app = typer.Typer(help="Hold an environment (state in S3) for a pull request: `up`/`down` then run only "
                            "for its holder (INFRA_LOCK_HOLDER). docs/gitops.md.", no_args_is_help=True)
TARGET_ARG = typer.Argument(..., help="The environment's blueprint file (or its name: the one blueprint tracked "
                            "here with that name).", show_default=False)
HOLDER_OPT = typer.Option(..., "--holder", help="Who holds it, e.g. PR-123.", show_default=False)
SANDBOX_OPT = typer.Option(False, "--sandbox", help="The hold in the sandbox emulator's bucket (it must be running).")


def register(app: typer.Typer) -> None:
    app.add_typer(lock_app, name="lock")


@lock_app.command("acquire")
def acquire(target: str = TARGET_ARG, holder: str = HOLDER_OPT, sandbox: bool = SANDBOX_OPT) -> None:
    """Hold the environment for HOLDER (again by the same holder: kept); held by another: exit 6."""
    from .. import pr_lock

    shared, name = _shared(target, sandbox)
    hold, taken = pr_lock.acquire(shared, holder)
    typer.echo(f"{name}: {'held' if taken else 'already held'} for {pr_lock.describe(hold)} "
               f"({shared.where(pr_lock.KEY)})")


@lock_app.command("release")
def release(target: str = TARGET_ARG, holder: str = HOLDER_OPT, sandbox: bool = SANDBOX_OPT,
            force: bool = typer.Option(False, "--force", help="Release the hold whoever holds it.")) -> None:
    """Release HOLDER's hold (not held: says so, exit 0); held by another: exit 6 unless --force."""
    from .. import pr_lock

    shared, name = _shared(target, sandbox)
    hold = pr_lock.release(shared, holder, force=force)
    typer.echo(f"{name}: released the hold of {pr_lock.describe(hold)}" if hold else f"{name}: not held")


@lock_app.command("show")
def show(target: str = TARGET_ARG, sandbox: bool = SANDBOX_OPT, output: str = common.OUTPUT_OPT) -> None:
    """Who holds the environment, if anyone."""
    from .. import pr_lock

    common.check_output(output)
    shared, name = _shared(target, sandbox)
    current = pr_lock.read(shared)
    if output == "json":
        common.print_json({"env": name, "hold": current[0] if current else None, "object": shared.where(pr_lock.KEY)})
    else:
        typer.echo(f"{name}: held for {pr_lock.describe(current[0])}" if current else f"{name}: not held")


def _shared(target: str, sandbox: bool):
    """The store beside the environment's state; a usage error (exit 2) when it has none."""
    from .. import shared_store
    from ..errors import UsageError
    from ..workspace import Workspace
    from .records_cmd import _ENV_NAME, _by_name, _target

    if not _ENV_NAME.fullmatch(target) and not target.endswith((".yaml", ".yml")):
        raise UsageError(f"infra lock: {target!r} is neither an environment name nor a blueprint file (.yaml/.yml)")
    name, bp = _target(target)
    if bp is None:
        _, found = _by_name(name, "lock", sandbox)
        if found is None:
            raise UsageError(f"infra lock: no blueprint file of {name} found here: pass it (infra lock ... FILE.yaml)")
        bp = common.load(Path(found)).model
    if bp.state.backend != "s3" or not bp.state.bucket:
        raise UsageError(f"infra lock: {name}'s state backend is {bp.state.backend}: only an environment whose state "
                         "is in S3 can be held (every clone and CI runner must see the hold)")
    ws = Workspace(root=Path.cwd(), name=name, sandbox=sandbox)
    shared = shared_store.for_reading(bp, sandbox, ws.state_dir, lambda msg: None)
    if shared is None:
        raise UsageError("infra lock --sandbox: the sandbox emulator is not running (start it with a --sandbox run, "
                         "or name it with INFRA_SANDBOX_ENDPOINT)")
    return shared, name
