"""The floor under ``infra --help``: a minimal Typer app with two commands and the same app
settings as ``infra``'s (no completion, no rich markup), run the same way (``python FILE --help``).
``python -m bench`` times ``infra --help`` against it."""

import typer

app = typer.Typer(name="minimal", help="A minimal Typer app.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def hello(name: str = typer.Argument("world", help="Who to greet.")) -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def bye(name: str = typer.Option("world", help="Who to see off.")) -> None:
    """Say goodbye."""
    typer.echo(f"bye {name}")


if __name__ == "__main__":
    app()
