"""Entry point of the ``cryosift`` command.

Each command lives in its own module of :mod:`cryosift.cli`, imported only when that command
runs (or shows its own help): ``cryosift --help`` lists the commands from the short texts
below without importing torch, scipy or the commands' modules.
"""

from __future__ import annotations

import importlib

import typer
import typer.main

try:  # typer vendors click (its commands are typer._click's); older typer used click itself
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click  # type: ignore[no-redef]

from cryosift import __version__

#: name -> (module in cryosift.cli, one-line help shown by ``cryosift --help``).
COMMANDS: dict[str, tuple[str, str]] = {
    "extract": ("extract", "Cut particle boxes from micrographs at picked coordinates."),
    "clean": ("clean", "Remove noise, partial and multiple-particle images."),
    "classify": ("classify", "Reference-free 2D classification with good and bad classes."),
    "train": ("train", "Train the picker's masked autoencoder on unlabelled micrographs."),
    "pick": ("pick", "Pick particles with the self-supervised MAE picker."),
    "run": ("run", "Micrographs -> picks -> particles -> inliers, with a report."),
    "relion-external": ("relion_external", "Run as a RELION External job."),
    "simulate": ("simulate", "Simulate labelled particle stacks or micrographs."),
    "evaluate": ("evaluate", "Measure picks or cleaning against ground truth."),
}
#: Commands whose module holds a Typer group (``app``) rather than one ``main``.
GROUPS = {"simulate", "evaluate"}
#: Commands that take RELION's own ``--label value`` arguments.
PASS_THROUGH = {"relion-external"}


def load_command(name: str) -> click.Command:
    """The click command ``name``, importing its module now."""
    module = importlib.import_module(f"cryosift.cli.{COMMANDS[name][0]}")
    if name in GROUPS:
        return typer.main.get_group(module.app)
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    settings = {"allow_extra_args": True, "ignore_unknown_options": True}
    single.command(name, context_settings=settings if name in PASS_THROUGH else None)(module.main)
    return typer.main.get_command(single)


class LazyGroup(typer.core.TyperGroup):
    """A group that imports a command's module only when the command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_command(name) if name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


app = typer.Typer(
    name="cryosift",
    cls=LazyGroup,
    help="Find particles in cryo-EM micrographs and remove the bad ones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit"),
) -> None:
    if version:
        typer.echo(f"cryosift {__version__}")
        raise typer.Exit()


if __name__ == "__main__":
    app()
