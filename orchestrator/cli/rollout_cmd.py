"""Rollouts on the command line: ``plan|up|down ROLLOUT`` (called from lifecycle), ``infra drift``
and ``infra graph``. Parse, call ``orchestrator.rollout``, print: one live line per environment,
then the final table (environment, provider, result, duration, changes)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import typer

from . import common

FORMAT_OPT = typer.Option("text", "--format", "-f", help="Output: text, markdown (a PR comment) or json.")
FILES_ARG = typer.Argument(..., help="Blueprint files, folders of blueprints, or one rollout file.",
                           show_default=False, metavar="FILE...")
INCLUDE_OPT = typer.Option(None, "--include", metavar="PATTERN", show_default=False,
                           help="Only environments whose name matches PATTERN (shell-style; repeatable).")
EXCLUDE_OPT = typer.Option(None, "--exclude", metavar="PATTERN", show_default=False,
                           help="Leave out environments whose name matches PATTERN (shell-style; repeatable).")
CHANGED_SINCE_OPT = typer.Option(None, "--changed-since", metavar="REV", show_default=False,
                                 help="Only environments changed since git revision REV, and their dependents.")


def register(app: typer.Typer) -> None:
    app.command("drift")(drift)
    app.command("graph")(graph)


def selection(include: list[str] | None, exclude: list[str] | None, changed_since: str | None):
    """``--include``/``--exclude``/``--changed-since`` as one ``Selection`` (empty: everything)."""
    from ..rollout.select import Selection

    return Selection(tuple(include or ()), tuple(exclude or ()), changed_since)


def check_format(fmt: str) -> str:
    from ..errors import UsageError

    if fmt not in ("text", "markdown", "json"):
        raise UsageError(f"--format must be text, markdown or json, not {fmt!r}")
    return fmt


class _Live:
    """One line per environment: a live table on a terminal, else a line per start/finish."""

    def __init__(self, names: list[str], stream) -> None:
        self.lines = {n: "waiting" for n in names}
        self.lock = threading.Lock()
        self.stream = stream
        self.live = None
        if getattr(stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._table(), console=Console(file=stream), refresh_per_second=4, transient=True)

    def _table(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for name, line in self.lines.items():
            table.add_row(name, line[:100])
        return table

    def __call__(self, name: str, text: str, milestone: bool) -> None:
        from ..secrets import redact

        with self.lock:
            self.lines[name] = redact(text)
            if self.live is not None:
                self.live.update(self._table())
            elif milestone:
                self.stream.write(redact(f"[{name}] {text}") + "\n")
                self.stream.flush()

    def __enter__(self):
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.stop()


def run_many(files: list[Path], command: str, *, sandbox: bool = False, auto_approve: bool = False,
             fmt: str = "text", select=None, out: Path | None = None, plan_dir: Path | None = None) -> None:
    """``infra COMMAND`` over a rollout file, several files or folders; exits like the worst one.
    ``select``: a ``Selection`` (--include, --exclude, --changed-since): only those environments.
    ``out`` (plan --out), ``plan_dir`` (up --plan): saved plans, one folder per environment."""
    from ..blueprint.rollout import expand
    from ..render.kubernetes.placement import CHECKS
    from ..rollout import report, runner
    from ..rollout.select import select as do_select

    rollout = expand(list(files), checks=CHECKS)
    stream = sys.stdout if fmt == "text" else sys.stderr
    chosen = do_select(rollout, select) if select else None
    if chosen is not None:
        stream.write("\n".join(chosen.lines()) + "\n")
        rollout = chosen.rollout
    if command in ("up", "down") and not auto_approve:  # run in parallel, nothing can be asked one by one
        _refuse_unapproved(rollout, command, files)
    cancel = threading.Event()
    with _Live([e.name for e in rollout.environments], stream) as live:
        results, record = runner.run_rollout(rollout, command, sandbox=sandbox, auto_approve=auto_approve,
                                              status=live, cancel=cancel,
                                              providers=chosen.providers if chosen is not None else None,
                                              out=out, plan_dir=plan_dir)
    if fmt == "markdown":
        sys.stdout.write(report.markdown(rollout, command, results) + (chosen.markdown() if chosen else ""))
    elif fmt == "json":
        common.print_json({**report.as_json(rollout, command, results), "record": str(record),
                           **({"selection": chosen.as_json()} if chosen is not None else {})})
    else:
        _table(rollout.name, command, report.rows(results))
        for r in results:  # drift: what drifted, one line each (a resource, or a host's task)
            for item in (r.changes or {}).get("drift") or []:
                typer.echo(f"{r.name}: drifted: {item}")
            for line in report.placeholder_lines(r):
                typer.echo(f"{r.name}: placeholder: {line}")
        typer.echo(f"logs: {runner.log_dir(Path.cwd(), rollout)}/<environment>.log  record: {record}")
    raise typer.Exit(exit_code(results, command, cancel.is_set()))


def _refuse_unapproved(rollout, command: str, files: list[Path]) -> None:
    """``up``/``down`` of a rollout without --auto-approve: refused before anything is planned (exit 2)."""
    from ..errors import ConfirmationRequired

    n = len(rollout.environments)
    what = "destroy" if command == "down" else "apply"
    raise ConfirmationRequired(
        f"refusing to {what} rollout {rollout.name} ({n} environment{'s' if n != 1 else ''}) without "
        "--auto-approve: its environments run in parallel and are not asked one by one; nothing was planned",
        hint=f"review `infra plan {' '.join(str(f) for f in files)}` first, then run with --auto-approve"
             + (" (or apply the reviewed plans: `infra plan ... --out DIR`, `infra up ... --plan DIR "
                "--auto-approve`)" if command == "up" else ""))


def exit_code(results, command: str, interrupted: bool) -> int:
    if interrupted or any(r.result in ("cancelled", "interrupted") for r in results):
        return 130
    failed = [r for r in results if r.result == "failed"]
    if failed:
        return failed[0].code or 1
    if any(r.result in ("skipped", "not-started") for r in results):
        return 1
    if command == "drift" and any(r.extra.get("drift") for r in results):
        return 2
    return 0


def _table(name: str, command: str, rows) -> None:
    from rich.table import Table

    table = Table(title=f"infra {command} {name}")
    for col in ("environment", "provider", "result", "duration", "changes"):
        table.add_column(col, justify="right" if col == "duration" else "left")
    for row in rows:
        table.add_row(*row)
    common.console().print(table)


def drift(
    files: list[Path] = FILES_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    fmt: str = FORMAT_OPT,
) -> None:
    """Refresh-only plan per environment: did anything change outside infra? Changes nothing.

    Bare metal: Ansible check mode over the hosts; each task that would change a host is drift.
    Exit 0: no drift; 2: drift found (like terraform's -detailed-exitcode); other codes as for plan
    (4: a host unreachable or failing).
    """
    run_many(files, "drift", sandbox=sandbox, fmt=check_format(fmt))


def graph(
    file: Path = typer.Argument(..., help="Rollout file.", show_default=False),
    fmt: str = typer.Option("text", "--format", "-f", help="text or mermaid."),
    reverse: bool = typer.Option(False, "--reverse", help="The order `infra down` uses."),
) -> None:
    """Show a rollout's order: waves of environments that may run together."""
    from ..blueprint.rollout import expand
    from ..errors import UsageError
    from ..rollout import graph as g

    if fmt not in ("text", "mermaid"):
        raise UsageError(f"--format must be text or mermaid, not {fmt!r}")
    rollout = expand([file])
    typer.echo(g.mermaid(rollout) if fmt == "mermaid" else g.text(rollout, reverse))
