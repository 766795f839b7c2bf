"""``infra state bootstrap FILE``: create the state backend's bucket (s3) or print the commands
that create it (gcs, azurerm). docs/state.md."""

from __future__ import annotations

from pathlib import Path

import typer

from . import common

app = typer.Typer(help="Terraform state storage: create what a blueprint's backend needs.", no_args_is_help=True)


@app.command("bootstrap")
def bootstrap(
    file: Path = common.FILE_ARG,
    sandbox: bool = common.SANDBOX_OPT,
    output: str = common.OUTPUT_OPT,
) -> None:
    """Create the state bucket before the first `up`: s3 (versioning, encryption, public access
    blocked; idempotent); gcs and azurerm: print the gcloud / az commands; local: nothing to do."""
    from ..state_bootstrap import bootstrap as run_bootstrap

    common.check_output(output)
    result = run_bootstrap(file, sandbox=sandbox)
    if output == "json":
        common.print_json(result.as_json())
        return
    out = common.console()
    if result.backend in ("local", "none"):
        out.print(f"state backend {result.backend}: {result.note}")
        return
    if result.commands:
        out.print(f"state backend {result.backend} ({result.target}): {result.note}")
        for command in result.commands:
            out.print(f"  {command}")
        return
    state = "created" if result.created else ("updated" if result.done else "exists, nothing to change")
    out.print(f"state backend {result.backend}: {result.target} {state}")
    for item in result.done:
        out.print(f"  set   {item}")
    for item in result.ok:
        out.print(f"  ok    {item}")
