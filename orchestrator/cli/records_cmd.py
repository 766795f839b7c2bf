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
) -> None:
    """Re-apply the blueprint an earlier successful `up` applied: plan, confirm, apply, recorded
    as a rollback of RUN_ID."""
    from ..errors import UsageError
    from ..stages import commands

    if not _ENV_NAME.fullmatch(env) and not env.endswith((".yaml", ".yml")):
        raise UsageError(f"infra rollback: {env!r} is not an environment name ([a-z][a-z0-9-]{{1,38}}) "
                         "nor a blueprint file (.yaml/.yml)")
    name, bp = _target(env)
    ctx = commands.rollback(name, run_id, common.confirmer(auto_approve, "apply"), sandbox=sandbox, bp=bp)
    common.print_stage_summary(ctx, f"rollback (to {run_id})")


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
    from .. import records, records_audit, records_heads, shared_store
    from ..errors import AuditError
    from ..workspace import Workspace

    common.check_output(output)
    name, bp = _target(target)
    ws = Workspace(root=Path.cwd(), name=name)
    notes: list[str] = []
    shared = shared_store.for_reading(bp, sandbox, ws.state_dir, notes.append)
    pulled = shared_store.locked_pull(shared, ws.records_dir, notes.append) if shared is not None else None
    heads = records_heads.heads_for(ws.root, name, bp, shared=shared, sandbox=sandbox)
    if against is not None:
        heads.append(records_heads.GitHead(records_heads.head_dir(ws.root) / f"{name}.json", against))
    report = records_audit.audit(ws.records_dir, name, heads if verify else [h for h in heads if h.local],
                                 records.hmac_key())
    report.warnings[:0] = notes
    if not report.readable:  # nothing to list or check: one line, whatever the flags
        raise AuditError(report.problems, hint="infra needs to read (and, to record runs, write) that folder")
    if verify and shared is not None:
        problems, warnings = shared.compare(ws.records_dir, pulled)
        report.problems.extend(problems)
        report.warnings.extend(warnings)
    if verify:
        note = records_heads.unchecked_backend(bp)
        if bp is None:
            note = "given an environment name, no state-backend head was checked (pass the blueprint file for that)"
        report.warnings.extend([note] if note else [])
    entries = report.entries
    shown = entries[-limit:] if limit > 0 else entries
    if output == "json":
        data = {
            "env": name,
            "records": [e.data if e.ok else {"seq": e.seq, "file": e.path.name, "corrupt": e.problem} for e in shown],
            "chain_problems": report.problems,
        }
        if report.warnings:
            data["warnings"] = report.warnings
        if verify:
            data["verified"] = not report.problems
        common.print_json(data)
    elif not entries:
        typer.echo(f"no runs recorded for '{name}' in {ws.records_dir}")
    else:
        _table(name, shown)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if verify and report.problems:
        raise AuditError(report.problems, hint=f"the records in {ws.records_dir} are not what the runs wrote: "
                                               "see docs/records.md (Verifying)")
    if not verify:
        for problem in report.problems:
            typer.echo(f"warning: {problem}", err=True)
    elif output != "json":
        heads_text = f"matches {', '.join(report.heads_matched)}" if report.heads_matched else "no head yet"
        typer.echo(f"verified: {len(entries)} records, chain intact, {heads_text}")


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
    from ..stages.commands import restorable

    for col in ("seq", "finished (UTC)", "id", "command", "user", "sandbox", "plan", "outcome", "seconds",
                "rollback"):
        table.add_column(col)
    for e in shown:
        if not e.ok:
            table.add_row(str(e.seq if e.seq is not None else "?"), "", e.path.name, "", "", "", "", "corrupt", "", "")
            continue
        r = e.data
        plan = r["plan"] or {}
        summary = f"+{plan.get('add', 0)} ~{plan.get('change', 0)} -{plan.get('destroy', 0)}" if plan else ""
        table.add_row(
            str(r["seq"]), r["finished_at"], r["id"], r["command"], r["user"], "yes" if r["sandbox"] else "",
            summary, r["outcome"] + (f" (rollback of {r['rollback_of']})" if r.get("rollback_of") else ""),
            f"{r['duration_s']:.1f}", "can restore" if restorable(r) is not None else "",
        )
    common.console().print(table)
