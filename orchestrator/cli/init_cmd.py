"""``infra init DIR``: write a GitOps repository to start from (``rollout.scaffold``)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    target: Path = typer.Argument(Path("."), help="Folder to create the repository in."),
    state_bucket: str = typer.Option(None, "--state-bucket", metavar="PREFIX",
                                     help="S3 state buckets: PREFIX-dev, PREFIX-prod (default: infra-state-<random>)."),
) -> None:
    """Write blueprints/, rollout.yaml, .gitignore, a CI workflow (GitHub Actions, GitLab notes) and a README."""
    from ..rollout.scaffold import scaffold

    for path in scaffold(target, state_bucket):
        typer.echo(f"wrote {path}")
    typer.echo(f"next: cd {target} && infra validate rollout.yaml && infra plan rollout.yaml --sandbox")
    typer.echo(f"before the first CI run: {target / 'README.md'} (state buckets, roles, reviewers, a runner)")
