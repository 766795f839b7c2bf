"""``infra validate`` and ``infra render``: read-only, no credentials, no network."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common, rollout_cmd


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("render")(render)


def validate(
    files: list[Path] = typer.Argument(..., help="Blueprint files to check.", show_default=False, metavar="FILE..."),
    output: str = common.OUTPUT_OPT,
    include: list[str] = rollout_cmd.INCLUDE_OPT,
    exclude: list[str] = rollout_cmd.EXCLUDE_OPT,
    changed_since: str = rollout_cmd.CHANGED_SINCE_OPT,
) -> None:
    """Check blueprints; print `ok: <name>` or every problem as `file:line:col path: message` (exit 2).

    A rollout file: every blueprint it names, and that each `${output:ENV.NAME}` names an output
    ENV's provider declares. `--include`/`--exclude`/`--changed-since`: also print which of a rollout's
    environments `plan` and `up` would select, and why (docs/rollouts.md).
    A `kubernetes.version` older than the hosts of this project's environment run, or more than one
    minor above it, is refused (docs/ansible.md, "Upgrading Kubernetes").
    """
    from .. import api

    common.check_output(output)
    report = api.validate(files, include=include or (), exclude=exclude or (), changed_since=changed_since)
    if output == "json":
        common.print_json([f.as_json() for f in report.files])
    else:
        for found in report.files:
            _print_validation(found)
        if report.problem_count:
            n = report.problem_count
            typer.echo(f"{n} problem{'s' if n != 1 else ''} found", err=True)
    if not report.ok:
        raise typer.Exit(report.exit_code)


def _print_validation(found) -> None:
    """One file's lines of ``infra validate`` (text): problems and warnings on stderr, ``ok:`` on stdout."""
    if found.error is not None:
        typer.echo(f"error: {found.error}", err=True)
    elif not found.ok:
        for p in found.problems:
            typer.echo(str(p), err=True)
    elif found.kind == "rollout":
        typer.echo(f"ok: rollout {found.name} ({', '.join(found.environments)})")
        for line in found.selection_lines:
            typer.echo(line)
    else:
        for w in found.warnings:
            typer.echo(f"warning: {w.file}:{w.line}:{w.column} {w.path}: {w.message}", err=True)
        typer.echo(f"ok: {found.name}")


def render(
    files: list[Path] = typer.Argument(..., help="Blueprint files, folders of blueprints, or a rollout file.",
                                       show_default=False, metavar="FILE..."),
    out: Path = common.OUT_DIR_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Write build/<name>/: Terraform root module + tfvars, Kubernetes manifests + kustomization.

    Deterministic (same input, same bytes); needs no credentials and resolves no secrets. Several
    files, a folder or a rollout file render every environment, in one process.
    """
    from .. import api
    from ..blueprint.rollout import is_rollout

    common.check_output(output)
    many = len(files) != 1 or files[0].is_dir() or is_rollout(files[0])
    results = api.render(files, out=out)
    if output == "json":
        common.print_json([r.as_json() for r in results] if many else results[0].as_json())
        return
    for r in results:
        c = r.counts()
        typer.echo(f"rendered {r.root}: {c['written']} written, {c['unchanged']} unchanged, {c['removed']} removed")
