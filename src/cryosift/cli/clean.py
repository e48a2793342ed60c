"""``cryosift clean``: remove noise, partial and multiple-particle images from a particle stack.

Reads a RELION particles STAR (3.0 or 3.1+), a bare ``.mrcs`` stack or a cryoSPARC ``.cs``;
phase flips with the CTF in the metadata when the particles are not yet corrected;
Fourier-crops to ``--size``; runs the radial-profile detector; where the particles do not
stand out clearly (or with ``--classes N``), 2D-classifies the stack and lets the classes vote
(:mod:`cryosift.classify.vote`); writes ``inliers.star``,
``outliers.star`` and ``scores.csv`` (plus ``inliers.cs``/``outliers.cs`` for ``.cs`` input,
and ``class_vote.png``, the classes that voted, when they did) into OUTDIR and prints a
summary.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cryosift.cli.common import (
    ANGPIX,
    DEVICE,
    DIAMETER_A,
    DIAMETER_PX,
    STRICT_THRESHOLD,
    check_choice,
    console,
    guarded,
    one_size,
    progress_bar,
    task_maker,
)
from cryosift.outliers.rules import DEFAULT_PRESET, POLARITIES, PRESETS, VERDICTS


def summary_table(result, n_total: int, outdir: Path) -> Table:
    """The end-of-run table: counts and rates by verdict, throughput."""
    table = Table(title=f"cryosift clean -> {outdir}", show_lines=False)
    table.add_column("verdict")
    table.add_column("particles", justify="right")
    table.add_column("fraction", justify="right")
    counts = result.counts()
    for name in VERDICTS:
        table.add_row(name, f"{counts[name]:,}", f"{counts[name] / max(n_total, 1):.1%}")
    table.add_row("[bold]total", f"[bold]{n_total:,}", "")
    return table


def summary_line(result, n_total: int) -> str:
    """Parameters and throughput, one line under the table."""
    rate = n_total / max(result.seconds, 1e-9)
    st = result.stats
    return (
        f"rules {st['rules']}, d = {result.size} px, r = {result.radius:.2f} px, "
        f"window {st['window']} px, A = {st['peaks']}, "
        f"particles {'bright' if st['polarity'] > 0 else 'dark'}, "
        f"phase flip {'on' if result.phase_flipped else 'off'}; "
        f"{result.seconds:.2f} s, {rate:,.0f} images/s"
    )


def class_refiner(classes: int | None, seed: int, device: str, progress=None):
    """The ``refine`` of :func:`cryosift.outliers.clean.clean_file`: the class vote when
    :func:`cryosift.classify.vote.wanted` says so for the stack's separability, its
    classification's steps shown through ``progress`` (:func:`task_maker`)."""

    def refine(pset, result) -> None:
        from cryosift.classify.vote import CLEAN_CLASSES, vote_on_particles, wanted
        from cryosift.device import pick_device

        level = result.stats.get("separability", {}).get("level")
        if wanted(level, classes):
            vote_on_particles(pset, result, classes or CLEAN_CLASSES, seed, pick_device(device),
                              progress)  # fmt: skip

    return refine


def print_notes(stats: dict) -> None:
    """:func:`cryosift.outliers.clean.clean_notes` and the class vote's line, warnings in
    yellow."""
    from cryosift.classify.vote import vote_note
    from cryosift.outliers.clean import clean_notes

    vote = vote_note(stats)
    for line in clean_notes(stats) + ([vote] if vote else []):
        console.print(line, style="yellow" if line.startswith("warning") else None, highlight=False)


@guarded("clean")
def main(
    particles: Path = typer.Argument(
        ..., help="Particles: RELION .star, .mrcs stack or cryoSPARC .cs"
    ),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder"),
    diameter_A: float = DIAMETER_A,
    diameter_px: float = DIAMETER_PX,
    eps_px: float = typer.Option(
        None,
        "--eps-px",
        help="reference preset only: DBSCAN eps and border margin in input px (the "
        "published code's r; default: the particle radius)",
    ),
    angpix: float = ANGPIX,
    size: int = typer.Option(55, "--size", help="Side d the images are Fourier-cropped to, px"),
    peaks: int = typer.Option(10, "--peaks", help="Number A of correlation peaks (about d/5)"),
    rules: str = typer.Option(DEFAULT_PRESET, "--rules", help=f"Rule preset: {', '.join(PRESETS)}"),
    polarity: str = typer.Option(
        None,
        "--polarity",
        help="Particle contrast: auto (from the stack), bright, or dark (default: the preset's;"
        " radial: auto, paper/reference: bright)",
    ),
    phase_flip: bool = typer.Option(
        None,
        "--phase-flip/--no-phase-flip",
        help="Phase flip with the file's CTF (default: when CTF is known and not yet applied)",
    ),
    datadir: Path = typer.Option(None, "--datadir", help="Where the stacks named in the file are"),
    chunk: int = typer.Option(None, "--chunk", help="Images per batch (default: from memory)"),
    seed: int = typer.Option(
        0, "--seed", help="Random seed of the simulated noise that sets the radial threshold"
    ),
    strict_threshold: bool = STRICT_THRESHOLD,
    classes: int = typer.Option(
        None,
        "--classes",
        min=0,
        help="2D classes whose vote joins the radial profile's (default: 20 classes when "
        "separability is not good, none otherwise; 0: never)",
    ),
    no_classes: bool = typer.Option(
        False, "--no-classes", help="Radial profile only, never classify (same as --classes 0)"
    ),
    device: str = DEVICE,
) -> None:
    """Remove noise, partial and multiple-particle images (radial-profile outlier removal)."""
    from cryosift.outliers.clean import CleanConfig, clean_file

    one_size(diameter_A, diameter_px)
    check_choice("--rules", rules, PRESETS)
    if polarity is not None:
        check_choice("--polarity", polarity, POLARITIES)
    cfg = CleanConfig(
        diameter_A=diameter_A,
        radius_px=None if diameter_px is None else diameter_px / 2,
        eps_px=eps_px,
        size=size,
        peaks=peaks,
        rules=rules,
        polarity=polarity,
        phase_flip=phase_flip,
        chunk=chunk,
        seed=seed,
        loosen=not strict_threshold,
    )
    with progress_bar() as bar:
        tasks = task_maker(bar)
        refine = class_refiner(0 if no_classes else classes, seed, device, tasks)
        result = clean_file(particles, cfg, outdir, angpix=angpix, datadir=datadir,
                            progress=lambda total: tasks("cleaning", total),
                            refine=refine)  # fmt: skip
    from cryosift.classify.vote import drop_stale_figure

    drop_stale_figure(outdir, result.figures)
    n = len(result.table)
    console.print(summary_table(result, n, outdir))
    console.print(summary_line(result, n), highlight=False)
    print_notes(result.stats)
    if eps_px is not None and rules != "reference":
        console.print(f"note: --eps-px applies to the reference preset only; {rules} ignores it")
