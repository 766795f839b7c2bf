"""``infra history``: the run records of an environment, and ``--verify`` of their audit chain."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from . import common

_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{1,38}$")  # the blueprint's `name` rule


def register(app: typer.Typer) -> None:
    app.command("history")(history)
    app.command("rollback")(rollback)


def rollback(
    env: str = typer.Argument(..., help="Environment name, or its blueprint file (.yaml/.yml: also reads the "
                              "records kept beside the state).", show_default=False),
    run_id: str = typer.Argument(..., help="Id of the run to go back to (`infra history ENV`).", show_default=False),
    sandbox: bool = common.SANDBOX_OPT,
    auto_approve: bool = common.AUTO_APPROVE_OPT,
    write: bool = typer.Option(False, "--write", help="After the rollback, write the blueprint change to commit "
                               "into the blueprint file (atomically) instead of printing it."),
) -> None:
    """Re-apply the blueprint an earlier successful `up` applied: plan, confirm, apply, recorded
    as a rollback of RUN_ID. Then print the change of the blueprint file that makes it say what
    was applied (a unified diff to commit), or write it with --write (docs/rollouts.md, "Rollback")."""
    from ..errors import UsageError
    from ..stages import commands

    if not _ENV_NAME.fullmatch(env) and not env.endswith((".yaml", ".yml")):
        raise UsageError(f"infra rollback: {env!r} is not an environment name ([a-z][a-z0-9-]{{1,38}}) "
                         "nor a blueprint file (.yaml/.yml)")
    name, bp = _target(env)
    file = Path(env) if bp is not None else None
    if bp is None:
        bp, file = _by_name(name, "rollback", sandbox)
    if write and file is None:
        raise UsageError(f"infra rollback --write: no blueprint file of {name} found here",
                         hint=f"pass it: `infra rollback FILE.yaml {run_id} --write`")
    ctx = commands.rollback(name, run_id, common.confirmer(auto_approve, "apply"), sandbox=sandbox, bp=bp)
    common.print_stage_summary(ctx, f"rollback (to {run_id})")
    if file is None:
        typer.echo(f"note: no blueprint file of {name} found here: pass it (`infra rollback FILE.yaml {run_id}`) "
                   "to see the change to commit", err=True)
        return
    _blueprint_change(file, ctx, run_id, sandbox, write)


def _blueprint_change(file: Path, ctx, run_id: str, sandbox: bool, write: bool) -> None:
    """Print (or, with ``write``, write) the edit of ``file`` after which it says what the rollback applied."""
    from .. import rollback_change
    from ..errors import InfraError
    from ..stages.commands import open_environment, outputs_lookup

    lookup = outputs_lookup(Path.cwd(), sandbox, file)
    try:
        current = open_environment(file, sandbox, outputs_of=lookup).loaded
    except InfraError as exc:
        typer.echo(f"warning: {file} not compared with what the rollback applied: {exc.message}", err=True)
        return
    change = rollback_change.change(file, current, ctx.loaded.data, lookup)
    for note in change.notes:
        typer.echo(f"note: {note}", err=True)
    if change.refused:
        typer.echo(f"{file} not changed: see the note above", err=True)
    elif change.empty:
        typer.echo(f"{file} already says what run {run_id} applied: nothing to commit")
    elif write:
        rollback_change.write(change)
        typer.echo(f"wrote {file} ({change.how}): it says what run {run_id} applied; commit it so the next merge "
                   "keeps the rollback")
    else:
        typer.echo("blueprint change to commit, so the next merge keeps the rollback (`--write` writes it):")
        typer.echo(change.diff(str(file)), nl=False)


def _by_name(name: str, command: str, sandbox: bool, need_file: bool = True):
    """(Blueprint, file) of the one blueprint named ``name`` this repository tracks (blueprint/by_name.py):
    the Blueprint only when nothing is recorded here and its state is in a bucket (a fresh clone: the
    records are read from there), the file whenever there is exactly one (``need_file``: else only in a
    fresh clone). Nothing recorded here, no such file, and the committed chain head says runs were
    recorded: a usage error saying to pass the file."""
    from .. import records, records_heads
    from ..blueprint import by_name
    from ..errors import InfraError, UsageError
    from ..workspace import Workspace

    root = Path.cwd()
    try:
        fresh = not records.list_records(Workspace(root=root, name=name, sandbox=sandbox).records_dir)
    except records.RecordsUnreadable:
        return None, None  # reported where the records are read
    if not fresh and not need_file:
        return None, None
    loaded = []
    for path in by_name.candidates(name, root):
        try:
            model = common.load(root / path).model
        except InfraError:
            continue
        if model.name == name:
            loaded.append((path, model))
    if len(loaded) > 1 and fresh:
        raise UsageError(f"infra {command}: {len(loaded)} blueprints are named {name} "
                         f"({', '.join(str(p) for p, _ in loaded[:4])}): pass the one to read")
    if len(loaded) == 1:
        path, model = loaded[0]
        remote = model.state.backend == "s3" and bool(model.state.bucket)
        return (model if fresh and remote else None), path
    head = records_heads.head_dir(root) / f"{name}.json"
    if fresh and head.is_file():
        shown = head.relative_to(root) if head.is_relative_to(root) else head
        raise UsageError(f"infra {command}: no runs of {name} recorded here, yet {shown} says there are: pass its "
                         f"blueprint file (`infra {command} FILE.yaml`) to read the records kept beside its state")
    return None, None


def history(
    target: str = typer.Argument(..., help="Environment name, or its blueprint file (.yaml/.yml).", show_default=False),
    limit: int = typer.Option(20, "--limit", "-n", help="Show at most this many (newest last)."),
    verify: bool = typer.Option(
        False, "--verify", help="Check every record, signature and head; exit 8 if the audit chain is broken."
    ),
    against: str = typer.Option(
        None, "--against", metavar="REV", show_default=False,
        help="Also check the chain against the repository head as committed at git revision REV (e.g. HEAD).",
    ),
    sandbox: bool = typer.Option(
        False, "--sandbox", help="With a blueprint file whose state is in S3: read the records kept in the "
        "sandbox emulator's bucket (never starts the emulator).",
    ),
    output: str = common.OUTPUT_OPT,
) -> None:
    """List the environment's run records: when, who, what, plan summary, outcome.

    The hash chain is always checked (problems are warnings); --verify also checks the state
    backend's head and fails with exit code 8 on any problem. --against REV also compares the
    chain with the repository head committed at REV, which a rewrite of the working tree cannot change.
    Given the blueprint file of an environment whose state is in S3, the records kept beside the
    state are read first (a fresh clone has them all) and, with --verify, compared with these.
    """
    from ..api import _history

    common.check_output(output)
    name, bp = _target(target)
    if bp is None:  # a fresh clone given a name: the blueprint named so, when the store is beside its state
        bp, _ = _by_name(name, "history", sandbox, need_file=False)
    found = _history(name, bp, limit=limit, verify=verify, against=against, sandbox=sandbox)
    if output == "json":
        common.print_json(found.as_json())
    elif not found.count:
        typer.echo(f"no runs recorded for '{name}' in {found.records_dir}")
    else:
        _table(name, found.entries)
    for warning in found.warnings:
        typer.echo(f"warning: {warning}", err=True)
    found.check()  # verified with problems: AuditError (exit 8)
    if not verify:
        for problem in found.problems:
            typer.echo(f"warning: {problem}", err=True)
    elif output != "json":
        heads_text = f"matches {', '.join(found.heads_matched)}" if found.heads_matched else "no head yet"
        typer.echo(f"verified: {found.count} records, chain intact, {heads_text}")


def _target(target: str):
    """(environment name, Blueprint or None); anything but a name or a .yaml/.yml path is refused unread."""
    from ..errors import UsageError

    if target.endswith((".yaml", ".yml")):
        model = common.load(Path(target)).model
        return model.name, model
    if _ENV_NAME.fullmatch(target):
        return target, None
    raise UsageError(f"infra history: {target!r} is neither an environment name ([a-z][a-z0-9-]{{1,38}}) "
                     "nor a blueprint file (.yaml/.yml)")


def _table(name: str, shown) -> None:
    from rich.table import Table

    table = Table(title=f"runs of {name}")
    for col in ("seq", "finished (UTC)", "id", "command", "user", "sandbox", "plan", "outcome", "seconds",
                "rollback"):
        table.add_column(col)
    for e in shown:
        if not e.ok:
            table.add_row(str(e.seq if e.seq is not None else "?"), "", e.file, "", "", "", "", "corrupt", "", "")
            continue
        r = e.data
        plan = r["plan"] or {}
        summary = f"+{plan.get('add', 0)} ~{plan.get('change', 0)} -{plan.get('destroy', 0)}" if plan else ""
        table.add_row(
            str(r["seq"]), r["finished_at"], r["id"], r["command"], r["user"], "yes" if r["sandbox"] else "",
            summary, r["outcome"] + (f" (rollback of {r['rollback_of']})" if r.get("rollback_of") else ""),
            f"{r['duration_s']:.1f}", "can restore" if e.restorable else "",
        )
    common.console().print(table)
