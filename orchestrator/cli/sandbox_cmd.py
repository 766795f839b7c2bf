"""``infra sandbox start|stop|status``: the embedded AWS emulator."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common

app = typer.Typer(
    help="The embedded AWS emulator used by --sandbox. It emulates the AWS API only: "
    "EKS reports ACTIVE but runs no nodes.",
    no_args_is_help=True,
)


def _state_dir() -> Path:
    from ..workspace import Workspace

    return Workspace(root=Path.cwd(), name="-").state_dir


@app.command("start")
def start() -> None:
    """Start the emulator (if it is not running) and print its endpoint."""
    from .. import sandbox

    info = sandbox.start(_state_dir())
    typer.echo(f"sandbox running at {info.endpoint} (pid {info.pid})")


@app.command("stop")
def stop() -> None:
    """Stop the emulator. Sandbox resources vanish with it; their state is discarded next time."""
    from .. import sandbox

    info = sandbox.stop(_state_dir())
    typer.echo(f"sandbox stopped (pid {info.pid})" if info else "sandbox was not running")


@app.command("status")
def status(output: str = common.OUTPUT_OPT) -> None:
    """Show whether the emulator runs, and where."""
    from .. import sandbox

    common.check_output(output)
    info = sandbox.status(_state_dir())
    if output == "json":
        common.print_json(info.__dict__ | {"endpoint": info.endpoint, "running": True} if info else {"running": False})
        return
    typer.echo(f"sandbox running at {info.endpoint} (pid {info.pid})" if info else "sandbox not running")
