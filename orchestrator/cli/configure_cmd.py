"""``infra configure``: render, then the Ansible stage alone (Terraform is not run)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common

LIMIT_OPT = typer.Option(None, "--limit", help="Only these hosts or groups (comma-separated names).")
CHECK_OPT = typer.Option(False, "--check", help="Dry run: report what would change, change nothing.")
EXTRA_VARS_OPT = typer.Option(
    None, "--extra-vars", "-e",
    help="YAML file of role variables (driver branch, package mirrors, ...); may be repeated.",
)


def register(app: typer.Typer) -> None:
    app.command("configure")(configure)


def configure(
    file: Path = common.FILE_ARG,
    limit: str = LIMIT_OPT,
    check: bool = CHECK_OPT,
    extra_vars: list[Path] = EXTRA_VARS_OPT,
) -> None:
    """Configure the blueprint's hosts with Ansible: GPU driver, containerd, kubeadm, model server.

    The same stage `infra up` runs after Terraform. Exit 4 names each host that failed and its task.
    """
    from ..stages import commands

    ctx = commands.configure(file, limit=limit, check=check, extra_vars=tuple(extra_vars or ()))
    common.print_stage_summary(ctx, "configure")
