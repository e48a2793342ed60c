"""Entry point of the ``cryosift`` command."""

from __future__ import annotations

import typer

from cryosift import __version__
from cryosift.cli import clean, evaluate, extract, pick, relion_external, run, simulate, train

app = typer.Typer(
    name="cryosift",
    help="Find particles in cryo-EM micrographs and remove the bad ones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("extract")(extract.main)
app.command("clean")(clean.main)
app.command("train")(train.main)
app.command("pick")(pick.main)
app.command("run")(run.main)
app.command(
    "relion-external",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(relion_external.main)
app.add_typer(simulate.app, name="simulate")
app.add_typer(evaluate.app, name="evaluate")


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit"),
) -> None:
    if version:
        typer.echo(f"cryosift {__version__}")
        raise typer.Exit()


if __name__ == "__main__":
    app()
