"""``infra history``: the run records of an environment."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common


def register(app: typer.Typer) -> None:
    app.command("history")(history)


def history(
    target: str = typer.Argument(..., help="Environment name, or its blueprint file.", show_default=False),
    limit: int = typer.Option(20, "--limit", "-n", help="Show at most this many (newest last)."),
    output: str = common.OUTPUT_OPT,
) -> None:
    """List the environment's run records: when, who, what, plan summary, outcome."""
    from .. import records
    from ..workspace import Workspace

    common.check_output(output)
    name = common.load(Path(target)).model.name if target.endswith((".yaml", ".yml")) else target
    ws = Workspace(root=Path.cwd(), name=name)
    recs = records.list_records(ws.records_dir)
    problems = records.verify(recs)
    shown = recs[-limit:] if limit > 0 else recs
    if output == "json":
        common.print_json({"env": name, "records": shown, "chain_problems": problems})
        return
    if not recs:
        typer.echo(f"no runs recorded for '{name}' in {ws.records_dir}")
        return
    from rich.table import Table

    table = Table(title=f"runs of {name}")
    for col in ("finished (UTC)", "id", "command", "user", "sandbox", "plan", "outcome", "seconds"):
        table.add_column(col)
    for r in shown:
        plan = r.get("plan") or {}
        summary = f"+{plan.get('add', 0)} ~{plan.get('change', 0)} -{plan.get('destroy', 0)}" if plan else ""
        table.add_row(
            r.get("finished_at", ""), r.get("id", ""), r.get("command", ""), r.get("user", ""),
            "yes" if r.get("sandbox") else "", summary, r.get("outcome", ""), f"{r.get('duration_s', 0):.1f}",
        )
    common.console().print(table)
    for p in problems:
        typer.echo(f"warning: {p}", err=True)
