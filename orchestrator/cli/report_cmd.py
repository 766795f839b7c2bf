"""``infra report FILE...|ROLLOUT --html OUT``: the static report page (docs/report.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import rollout_cmd


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    files: list[Path] = rollout_cmd.FILES_ARG,
    html: Path = typer.Option(None, "--html", metavar="OUT", show_default=False,
                              help="Write the page to OUT (one self-contained HTML file, mode 0600)."),
    limit: int = typer.Option(10, "--limit", "-n", min=1, help="Show at most this many runs per environment."),
    kubeconfig: Path = typer.Option(None, "--kubeconfig", show_default=False,
                                    help="Read the queues from this cluster (one environment only; default: the "
                                    "kubeconfig `infra up` saved here, if any)."),
    context: str = typer.Option(None, "--context", show_default=False, help="The kubeconfig context to use."),
) -> None:
    """Write one static HTML page: per environment the last plan, cost per pool, capacity and
    placement, the last runs and their audit chain, and the cluster's queues when it answers.

    Reads only: nothing is planned, locked or changed. No script on the page and nothing it loads
    from the network; what comes from blueprints and records is escaped, secret values never appear.
    Exit 2: bad input (a blueprint problem, a missing file, OUT not writable).
    """
    from ..errors import UsageError
    from ..report_page import collect, render
    from ..workspace import write_private

    if html is None:
        raise UsageError("infra report: say where to write the page: --html OUT")
    if html.is_dir():
        raise UsageError(f"infra report: --html {html} is a folder; give a file name (e.g. {html / 'report.html'})")
    page = collect(list(files), root=Path.cwd(), limit=limit, kubeconfig=kubeconfig, context=context)
    text = render(page)
    try:
        write_private(html, text)
    except OSError as exc:
        raise UsageError(f"infra report: cannot write {html}: {exc.strerror or exc}") from None
    n = len(page.environments)
    typer.echo(f"wrote {html} ({n} environment{'s' if n != 1 else ''})")
