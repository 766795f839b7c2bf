"""Helpers shared by the command modules: loading, options, confirmation, printing.

Commands only parse arguments and print; the work happens in library modules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    from ..api import RunResult
    from ..stages.context import Context

# No exists=/readable=/dir_okay= here: the loader checks the file (regular, readable, <= 1 MiB,
# UTF-8) and reports it in our format (`error: cannot read blueprint FILE: reason`, exit 2),
# where click would print its own usage block.
FILE_ARG = typer.Argument(..., help="Blueprint file (YAML, format version 1).", show_default=False)
SANDBOX_OPT = typer.Option(
    False, "--sandbox", help="Run against the embedded AWS emulator on loopback (no cloud account needed)."
)
AUTO_APPROVE_OPT = typer.Option(False, "--auto-approve", "-y", help="Apply without asking for confirmation.")
OUTPUT_OPT = typer.Option("text", "--output", "-o", help="Output format: text or json.")
OUT_DIR_OPT = typer.Option(None, "--out", help="Folder that receives <name>/ (default: ./build).")


def check_output(fmt: str) -> str:
    if fmt not in ("text", "json"):
        raise UsageError(f"--output must be text or json, not {fmt!r}")
    return fmt


def load(file: Path):
    from ..blueprint.loader import load as load_blueprint
    from ..render.kubernetes.placement import CHECKS

    return load_blueprint(file, checks=CHECKS)


def provider_for(loaded):
    from ..providers.registry import get

    return get(loaded.model.provider)


def workspace(loaded, sandbox: bool, out: Path | None = None):
    from ..workspace import Workspace

    return Workspace(root=Path.cwd(), name=loaded.model.name, sandbox=sandbox, build_root=out)


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """``--output json``: one of the boundaries where known secret values are redacted."""
    from ..secrets import redact

    sys.stdout.write(redact(json.dumps(data, indent=2, sort_keys=True, default=str)) + "\n")


def print_plan_table(plan) -> None:
    from rich.table import Table

    if not plan.has_changes:
        console().print("No changes: the environment matches the blueprint.")
        return
    table = Table(title="Plan", show_footer=True)
    table.add_column("resource type", footer="total")
    for col, total in (("add", plan.add), ("change", plan.change), ("destroy", plan.destroy)):
        table.add_column(col, justify="right", footer=str(total))
    for rtype, counts in sorted(plan.by_type.items()):
        table.add_row(rtype, *(str(counts.get(k, 0) or "") for k in ("add", "change", "destroy")))
    console().print(table)


def print_cost(est) -> None:
    """The estimated monthly cost per pool (``cost.Estimate``), after the plan's summary."""
    from rich import box
    from rich.table import Table

    from ..cost import DISCLAIMER, HOURS_PER_MONTH, money

    out = console()
    if est.note:
        out.print(f"\nEstimated monthly cost: {est.note}")
        return
    cur = est.currency
    table = Table(title=f"Estimated monthly cost ({cur}, {HOURS_PER_MONTH} h/month, "
                        f"list prices for {est.price_region or 'no region'}), at min – max nodes",
                  show_footer=True, box=box.SIMPLE)
    table.add_column("pool", footer="total")
    table.add_column("instance type", overflow="fold")
    table.add_column("nodes", no_wrap=True)

    def span(which: str, p=None) -> str:
        low, high = (est.total(e, which) for e in ("min", "max")) if p is None else (
            p.at(p.min_nodes, which), p.at(p.max_nodes, which))
        return f"{money(low, cur, cents=False)} – {money(high, cur, cents=False)}"

    for which, label in (("on_demand", "on-demand"), ("spot", "spot")):
        table.add_column(label, justify="right", no_wrap=True, footer=span(which))
    for p in est.pools:
        kind = "" if p.capacity == "on_demand" else f" {p.capacity.replace('_', ' ')}"
        table.add_row(p.pool, ", ".join(p.instance_types), f"{p.min_nodes}-{p.max_nodes}{kind}",
                      span("on_demand", p), span("spot", p))
    out.print()
    out.print(table)
    out.print(f"as configured (spot pools at spot prices): {money(est.total('min'), cur, cents=False)} per month "
              f"at min, {money(est.total('max'), cur, cents=False)} at max")
    if est.unpriced:
        out.print(f"not counted: {', '.join(est.unpriced)} (no price for the machine type, or a capacity block)")
    if est.region and est.price_region and est.region != est.price_region:
        out.print(f"note: the prices are for {est.price_region}; {est.region} may cost more or less")
    out.print(f"note: {DISCLAIMER}")
    for source, as_of in est.sources:
        out.print(f"prices: {source} (as of {as_of})")


def confirmer(auto_approve: bool, action: str):
    """A Confirm callback: --auto-approve, else ask on a terminal, else refuse."""

    def confirm(plan) -> bool:
        print_plan_table(plan)
        if auto_approve:
            return True
        if not sys.stdin.isatty():
            from ..errors import ConfirmationRequired

            raise ConfirmationRequired(
                f"refusing to {action} without confirmation: standard input is not a terminal",
                hint="pass --auto-approve to confirm non-interactively",
            )
        return typer.confirm(f"{action.capitalize()} these changes?", default=False)

    if auto_approve:
        from ..stages.context import approving_any

        return approving_any(confirm)  # shows the plan, asks nothing: plan and apply may be one call
    return confirm


def print_stage_summary(ctx: Context, command: str) -> None:
    from ..api import _run_result

    print_run(_run_result(ctx, command), command)


def print_run(result: RunResult, command: str) -> None:
    """A run's summary: outcome, each stage's time and detail, the outputs (``api.RunResult``)."""
    out = console()
    where = " (sandbox)" if result.sandbox else ""
    out.print(f"\n[bold]infra {command} {result.env}{where}: {result.outcome}[/bold] in {result.seconds:.1f}s")
    for s in result.stages:
        out.print(f"  {s.name:<13} {s.status:<6} {s.seconds:>7.1f}s  {s.detail}")
    for label, value in result.output_rows:
        out.print(f"  {label:<13} {value}")
    if result.sandbox and command == "up":
        out.print("  note: the sandbox emulates the AWS API only; EKS reports ACTIVE but runs no nodes")
