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
    from ..blueprint.rollout import folder_files, is_folder, is_rollout
    from ..errors import BlueprintError, UsageError
    from ..stages.versions import check_version_step
    from ..workspace import Workspace

    common.check_output(output)
    chosen = rollout_cmd.selection(include, exclude, changed_since)
    if chosen and not any(is_rollout(f) for f in files):
        raise UsageError("--include, --exclude and --changed-since select environments of a rollout file: "
                         "give one")
    results, problems, unreadable = [], 0, 0
    queue = list(files)
    while queue:
        file = queue.pop(0)
        try:
            if is_folder(file):  # its blueprints, in place of the folder (none: a usage error below)
                queue[0:0] = folder_files(file)
                continue
            if is_rollout(file):
                problems += _validate_rollout(file, output, results, chosen)
                continue
            loaded = common.load(file)
            check_version_step(loaded, Workspace(root=Path.cwd(), name=loaded.model.name).env_dir)
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


def _validate_rollout(file: Path, output: str, results: list, chosen=None) -> int:
    """A rollout file and every blueprint it names; returns how many problems were found.
    ``chosen``: a non-empty ``Selection``: which environments it selects is reported too."""
    from ..blueprint.rollout import load_rollout
    from ..render.kubernetes.placement import CHECKS
    from ..rollout.select import select

    rollout = load_rollout(file, CHECKS)  # BlueprintError: reported by the caller
    picked = select(rollout, chosen) if chosen else None  # UsageError (an unknown revision): the caller's
    results.append({"file": str(file), "rollout": rollout.name, "ok": True, "problems": [],
                    "environments": [e.name for e in rollout.environments],
                    **({"selection": picked.as_json()} if picked is not None else {})})
    if output == "text":
        names = ", ".join(e.name for e in rollout.environments)
        typer.echo(f"ok: rollout {rollout.name} ({names})")
        for line in picked.lines() if picked is not None else ():
            typer.echo(line)
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
