"""``cryosift clean``: remove noise, partial and multiple-particle images from a particle stack.

Reads a RELION particles STAR (3.0 or 3.1+), a bare ``.mrcs`` stack or a cryoSPARC ``.cs``;
phase flips with the CTF in the metadata when the particles are not yet corrected;
Fourier-crops to ``--size``; runs the radial-profile detector; writes ``inliers.star``,
``outliers.star`` and ``scores.csv`` (plus ``inliers.cs``/``outliers.cs`` for ``.cs`` input)
into OUTDIR and prints a summary.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cryosift.cli.common import check_choice, console, guarded, progress_bar
from cryosift.outliers.clean import CleanConfig, clean_file
from cryosift.outliers.detector import VERDICTS
from cryosift.outliers.rules import DEFAULT_PRESET, POLARITIES, PRESETS


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


def print_notes(stats: dict) -> None:
    """:func:`cryosift.outliers.clean.clean_notes`, warnings in yellow."""
    from cryosift.outliers.clean import clean_notes

    for line in clean_notes(stats):
        console.print(line, style="yellow" if line.startswith("warning") else None, highlight=False)


@guarded("clean")
def main(
    particles: Path = typer.Argument(
        ..., help="Particles: RELION .star, .mrcs stack or cryoSPARC .cs"
    ),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder"),
    diameter_A: float = typer.Option(None, "--diameter-A", help="Particle diameter in Å"),
    radius_px: float = typer.Option(
        None, "--radius-px", help="Particle radius in pixels of the input images"
    ),
    eps_px: float = typer.Option(
        None,
        "--eps-px",
        help="reference preset only: DBSCAN eps and border margin in input px (the "
        "published code's r; default: the particle radius)",
    ),
    angpix: float = typer.Option(None, "--angpix", help="Pixel size in Å (overrides the file)"),
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
    strict: bool = typer.Option(
        False,
        "--strict",
        help="radial: keep the usual threshold (10% of noise let through) even when the "
        "particles stand out of noise only moderately (default: loosen it to 30%)",
    ),
) -> None:
    """Remove noise, partial and multiple-particle images (radial-profile outlier removal)."""
    check_choice("--rules", rules, PRESETS)
    if polarity is not None:
        check_choice("--polarity", polarity, POLARITIES)
    cfg = CleanConfig(
        diameter_A=diameter_A,
        radius_px=radius_px,
        eps_px=eps_px,
        size=size,
        peaks=peaks,
        rules=rules,
        polarity=polarity,
        phase_flip=phase_flip,
        chunk=chunk,
        seed=seed,
        loosen=not strict,
    )
    with progress_bar() as bar:

        def start(total: int):
            task = bar.add_task("cleaning", total=total, rate="")
            return lambda n: bar.advance(task, n)

        result = clean_file(particles, cfg, outdir, angpix=angpix, datadir=datadir, progress=start)
    n = len(result.table)
    console.print(summary_table(result, n, outdir))
    console.print(summary_line(result, n), highlight=False)
    print_notes(result.stats)
    if eps_px is not None and rules != "reference":
        console.print(f"note: --eps-px applies to the reference preset only; {rules} ignores it")
