"""``cryosift classify``: reference-free 2D classification of a particle set, with the classes
ranked good or bad and RELION's files written (``classes.mrcs``, ``model.star``,
``particles.star``)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from cryosift.cli.common import (
    ANGPIX,
    DEVICE,
    DIAMETER_A,
    DIAMETER_PX,
    PROJECT_DIR,
    console,
    guarded,
    one_size,
    progress_bar,
    task_maker,
)


@guarded("classify")
def main(
    particles: Path = typer.Argument(
        ..., help="Particles: RELION .star, .mrcs stack or cryoSPARC .cs"
    ),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder"),
    classes: int = typer.Option(50, "--classes", "-K", help="Number of classes"),
    diameter_A: float = DIAMETER_A,
    diameter_px: float = DIAMETER_PX,
    angpix: float = ANGPIX,
    iterations: int = typer.Option(6, "--iterations", help="Alignment iterations"),
    angles: int = typer.Option(72, "--angles", help="In-plane rotations searched (360/N deg)"),
    shift: int = typer.Option(4, "--shift-px", help="Largest shift searched, px of 64-px images"),
    datadir: Path = typer.Option(None, "--datadir", help="Where the stacks named in the file are"),
    seed: int = typer.Option(0, "--seed", help="Random seed (k-means initialisation)"),
    device: str = DEVICE,
    project_dir: Path = PROJECT_DIR,
) -> None:
    """Reference-free 2D classification (class averages, good and bad classes).

    The particle diameter (default: 60% of the box) sets the mask."""
    from cryosift.io.particles import read_particles

    one_size(diameter_A, diameter_px)
    if classes < 1:
        raise typer.BadParameter("--classes must be at least 1")
    if iterations < 1 or angles < 4 or shift < 0:
        raise typer.BadParameter("--iterations >= 1, --angles >= 4, --shift-px >= 0")
    started = time.perf_counter()
    # the particles are read (and a broken file refused) before torch is imported
    pset = read_particles(particles, datadir=datadir, angpix=angpix)
    from cryosift.classify.align import ClassifySettings
    from cryosift.classify.run import DEFAULT_RADIUS, SIZE, classify_file
    from cryosift.device import pick_device

    settings = ClassifySettings(
        classes=classes,
        iterations=iterations,
        angles=angles,
        shift=shift,
        radius=DEFAULT_RADIUS * SIZE,
        seed=seed,
    )
    with progress_bar() as bar:
        result, _, facts = classify_file(
            pset,
            outdir,
            settings,
            diameter_A=diameter_A,
            diameter_px=diameter_px,
            angpix=angpix,
            datadir=datadir,
            device=pick_device(device),
            project=project_dir or Path.cwd(),
            progress=task_maker(bar),
        )
    table = Table(title=f"cryosift classify -> {outdir}")
    for col in ("", "count"):
        table.add_column(col, justify="right" if col else "left")
    table.add_row("particles", f"{facts['particles']:,}")
    if facts["classified"] < facts["particles"]:  # the rest joined the sample's classes
        table.add_row("classified (an evenly spaced sample)", f"{facts['classified']:,}")
    table.add_row("classes", f"{len(result.counts)}")
    table.add_row("good classes", f"{facts['good_classes']}")
    table.add_row("share of particles in good classes", f"{facts['share_in_good_classes']:.1%}")
    console.print(table)
    console.print(
        f"{facts['size_px']} px images, {time.perf_counter() - started:.1f} s; "
        f"classes.mrcs, model.star, particles.star, classes.png in {outdir}",
        highlight=False,
    )
