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
    from ..blueprint.rollout import folder_files, is_folder, is_rollout
    from ..errors import BlueprintError, UsageError

    common.check_output(output)
    results, problems, unreadable = [], 0, 0
    queue = list(files)
    while queue:
        file = queue.pop(0)
        try:
            if is_folder(file):  # its blueprints, in place of the folder (none: a usage error below)
                queue[0:0] = folder_files(file)
                continue
            if is_rollout(file):
                problems += _validate_rollout(file, output, results)
                continue
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
        warnings = _warnings(loaded)
        results.append({"file": str(file), "name": loaded.model.name, "ok": True, "problems": [],
                        **({"warnings": warnings} if warnings else {})})
        if output == "text":
            for line in warnings:
                typer.echo(f"warning: {line}", err=True)
            typer.echo(f"ok: {loaded.model.name}")
    if output == "json":
        common.print_json(results)
    elif problems:
        typer.echo(f"{problems} problem{'s' if problems != 1 else ''} found", err=True)
    if problems or unreadable:
        raise typer.Exit(2)


def _validate_rollout(file: Path, output: str, results: list) -> int:
    """A rollout file and every blueprint it names; returns how many problems were found."""
    from ..blueprint.rollout import load_rollout
    from ..render.kubernetes.placement import CHECKS

    rollout = load_rollout(file, CHECKS)  # BlueprintError: reported by the caller
    results.append({"file": str(file), "rollout": rollout.name, "ok": True, "problems": [],
                    "environments": [e.name for e in rollout.environments]})
    if output == "text":
        names = ", ".join(e.name for e in rollout.environments)
        typer.echo(f"ok: rollout {rollout.name} ({names})")
    return 0


def _warnings(loaded) -> list[str]:
    """What validation reports without failing (a Kubernetes version in extended support; with
    ``overcommit: true``, guarantees beyond capacity), as ``file:line:col path: message``."""
    from ..blueprint import semantics
    from ..blueprint.yamlpos import format_path

    lines = []
    for path, message in semantics.warnings(loaded.model):
        file, line, col = loaded.locate(path)
        lines.append(f"{file}:{line}:{col} {format_path(path)}: {message}")
    return lines


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
    from ..blueprint.rollout import is_rollout

    common.check_output(output)
    if len(files) != 1 or files[0].is_dir() or is_rollout(files[0]):
        return _render_many(files, out, output)
    _render_one(common.load(files[0]), out, output)


def _render_many(files: list[Path], out: Path | None, output: str) -> None:
    from ..blueprint.rollout import expand
    from ..render.kubernetes.placement import CHECKS

    rollout = expand(list(files), checks=CHECKS)  # every blueprint checked first: a problem renders nothing
    results = [_render_one(env.loaded, out, output, quiet=output == "json") for env in rollout.environments]
    if output == "json":
        common.print_json(results)


def _render_one(loaded, out: Path | None, output: str, quiet: bool = False) -> dict:
    from ..render import render as do_render

    provider = common.provider_for(loaded)
    ws = common.workspace(loaded, sandbox=False, out=out)
    result = do_render(loaded.model, provider, ws.build_dir.parent)
    doc = {"root": str(result.root), "parts": {k: v.__dict__ for k, v in result.parts.items()},
           "changed": result.changed}
    if output == "json":
        if not quiet:
            common.print_json(doc)
        return doc
    c = result.counts()
    typer.echo(f"rendered {result.root}: {c['written']} written, {c['unchanged']} unchanged, {c['removed']} removed")
    return doc
