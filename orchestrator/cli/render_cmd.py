"""``infra validate`` and ``infra render``: read-only, no credentials, no network."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("render")(render)


def validate(
    files: list[Path] = typer.Argument(..., help="Blueprint files to check.", show_default=False, metavar="FILE..."),
    output: str = common.OUTPUT_OPT,
) -> None:
    """Check blueprints; print `ok: <name>` or every problem as `file:line:col path: message` (exit 2)."""
    from ..errors import BlueprintError, UsageError

    common.check_output(output)
    results, problems, unreadable = [], 0, 0
    for file in files:
        try:
            loaded = common.load(file)
        except BlueprintError as exc:
            problems += len(exc.problems)
            results.append({"file": str(file), "ok": False, "problems": [str(p) for p in exc.problems]})
            if output == "text":
                for line in exc.lines():
                    typer.echo(line, err=True)
            continue
        except UsageError as exc:  # e.g. a missing file: report it and check the others
            unreadable += 1
            results.append({"file": str(file), "ok": False, "problems": [exc.message]})
            if output == "text":
                typer.echo(f"error: {exc.message}", err=True)
            continue
        results.append({"file": str(file), "name": loaded.model.name, "ok": True, "problems": []})
        if output == "text":
            typer.echo(f"ok: {loaded.model.name}")
    if output == "json":
        common.print_json(results)
    elif problems:
        typer.echo(f"{problems} problem{'s' if problems != 1 else ''} found", err=True)
    if problems or unreadable:
        raise typer.Exit(2)


def render(
    file: Path = common.FILE_ARG,
    out: Path = common.OUT_DIR_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Write build/<name>/: Terraform root module + tfvars, Kubernetes manifests + kustomization.

    Deterministic (same input, same bytes); needs no credentials and resolves no secrets.
    """
    from ..render import render as do_render

    common.check_output(output)
    loaded = common.load(file)
    provider = common.provider_for(loaded)
    ws = common.workspace(loaded, sandbox=False, out=out)
    result = do_render(loaded.model, provider, ws.build_dir.parent)
    if output == "json":
        common.print_json(
            {
                "root": str(result.root),
                "parts": {k: v.__dict__ for k, v in result.parts.items()},
                "changed": result.changed,
            }
        )
        return
    c = result.counts()
    typer.echo(f"rendered {result.root}: {c['written']} written, {c['unchanged']} unchanged, {c['removed']} removed")
