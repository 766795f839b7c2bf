"""The ``infra`` command: Typer app and the one error boundary.

Library code raises ``InfraError`` subclasses; ``run()`` prints their one-line message (and
hint) and exits with their code: 2 bad input, 3 terraform, 4 ansible, 5 kubernetes,
6 environment locked, 7 sandbox, 8 audit chain broken, 130 interrupted (docs/exit-codes.md). No traceback unless
``--debug``. Every line printed here goes through ``secrets.redact`` (an error may quote a tool
that echoed a secret value).
"""

from __future__ import annotations

import os
import sys

import typer

from .. import __version__
from ..secrets import redact
from . import (
    configure_cmd,
    init_cmd,
    kube_cmd,
    lifecycle,
    lock_cmd,
    records_cmd,
    render_cmd,
    report_cmd,
    rollout_cmd,
    sandbox_cmd,
    state_cmd,
)

app = typer.Typer(
    name="infra",
    help="Turn a per-environment blueprint into a working GPU platform: "
    "Terraform, then Ansible, then Kubernetes, with every run recorded.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"infra {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


render_cmd.register(app)
lifecycle.register(app)
records_cmd.register(app)
lock_cmd.register(app)
kube_cmd.register(app)
configure_cmd.register(app)
rollout_cmd.register(app)
init_cmd.register(app)
report_cmd.register(app)
app.add_typer(sandbox_cmd.app, name="sandbox")
app.add_typer(state_cmd.app, name="state")


def _fail(lines: list[str], hint: str | None, code: int) -> int:
    for line in lines:
        sys.stderr.write(redact(f"error: {line}") + "\n")
    if hint:
        sys.stderr.write(redact(f"hint: {hint}") + "\n")
    return code


def run() -> None:
    """Console-script entry point."""
    # Before any file is written: state, plans, logs and records are owner-only, and terraform,
    # ansible and the sandbox server inherit it (docs/records.md, "Files and permissions").
    # Restored on the way out, for callers that run the CLI in-process (tests, bench).
    previous_umask = os.umask(0o077)
    try:  # recent typer vendors click; older releases raise click's own exceptions
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click.exceptions import ClickException

    from ..errors import BlueprintError, InfraError

    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except BlueprintError as exc:
        for line in exc.lines():
            sys.stderr.write(redact(line) + "\n")
        n = len(exc.problems)
        sys.stderr.write(f"{n} problem{'s' if n != 1 else ''} found\n")
        if exc.hint:
            sys.stderr.write(redact(f"hint: {exc.hint}") + "\n")
        sys.exit(exc.exit_code)
    except InfraError as exc:
        if _state["debug"]:
            raise
        sys.exit(_fail(exc.lines(), exc.hint, exc.exit_code))
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    finally:
        os.umask(previous_umask)
