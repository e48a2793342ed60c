"""``cryosift extract``: cut particle boxes from micrographs at picked coordinates.

Reads micrographs (a folder, a glob, one file or a micrographs STAR; MRC, TIFF, PNG, JPEG) and
coordinates in any supported format (one file or a folder of per-micrograph files); cuts a box
of ``--box-px`` (or ``--box-A``) around every pick; optionally phase flips with a CTF STAR,
Fourier-crops (``--bin`` or ``--size``), normalises the background as RELION does and inverts
the contrast. Writes ``OUTDIR/particles.star`` (RELION 3.1) with ``Particles/<mic>.mrcs``,
which ``cryosift clean`` reads directly. Reruns skip micrographs already done.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from cryosift.cli.common import (
    ANGPIX,
    DIAMETER_A,
    DIAMETER_PX,
    MICROGRAPHS,
    PROJECT_DIR,
    STRICT,
    check_choice,
    console,
    guarded,
    one_size,
    print_skipped,
    progress_bar,
    skip_log,
    task_maker,
)
from cryosift.errors import InputError
from cryosift.executors import default_jobs
from cryosift.io.formats import COORDINATE_FORMATS as FORMATS

#: RELION's default background circle: 75% of the box diameter (its radius in whole px).
RELION_BG_FRACTION = 0.375


def output_size(box: int, size: int | None, binning: float | None) -> int:
    """Output side in px from ``--size`` or ``--bin`` (even when the box is even)."""
    if size is not None and binning is not None:
        raise typer.BadParameter("give --size or --bin, not both")
    if size is None and binning is None:
        return box
    if size is None:
        assert binning is not None  # given when --size is not
        if binning < 1:
            raise typer.BadParameter("--bin must be at least 1")
        size = round(box / binning)
        if box % 2 == 0 and size % 2:
            size += 1
    if not 4 <= size <= box:
        raise typer.BadParameter(f"output size {size} px must lie between 4 and the box ({box})")
    return size


def box_pixels(box_px: int | None, box_A: float | None, angpix: float | None) -> int:
    """The box side in micrograph px from ``--box-px`` or ``--box-A`` (rounded to even)."""
    if (box_px is None) == (box_A is None):
        raise typer.BadParameter("give exactly one of --box-px and --box-A")
    if box_px is not None:
        if box_px < 4:
            raise typer.BadParameter("--box-px must be at least 4")
        return int(box_px)
    if not angpix:
        raise InputError(
            None, "--box-A needs a pixel size: the micrographs state none, give --angpix"
        )
    assert box_A is not None  # exactly one of the two was given
    return max(4, 2 * round(box_A / angpix / 2))


def summary_table(summary, outdir: Path) -> Table:
    table = Table(title=f"cryosift extract -> {outdir}")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("micrographs", f"{len(summary):,}")
    table.add_row("picks", f"{int(summary.picks.sum()):,}")
    table.add_row("particles extracted", f"{int(summary.extracted.sum()):,}")
    action = summary.off_edge_action.iloc[0] if len(summary) else "skipped"
    table.add_row(f"boxes off the edge ({action})", f"{int(summary.off_edge.sum()):,}")
    table.add_row("micrographs with zero picks", f"{int((summary.picks == 0).sum()):,}")
    table.add_row("micrographs resumed", f"{int((summary.status == 'resumed').sum()):,}")
    return table


def _named(summary, mask, what: str, count_col: str | None = None) -> str | None:
    rows = summary[mask]
    if not len(rows):
        return None
    items = [
        f"{Path(r.micrograph).name} ({getattr(r, count_col)})"
        if count_col
        else Path(r.micrograph).name
        for r in rows.head(8).itertuples()
    ]
    more = f", and {len(rows) - 8} more" if len(rows) > 8 else ""
    return f"{what}: {', '.join(items)}{more}"


def _check_phase_flip(plan: list, angpix: float | None, ctf: Path | None, micrographs) -> None:
    """Phase flipping needs every micrograph's defocus and a pixel size."""
    from cryosift.extract.run import spec_label

    if not all(j.ctf for j in plan):
        raise InputError(
            ctf or spec_label(micrographs), "--phase-flip needs defoci: give --ctf STAR"
        )
    if not angpix:
        raise InputError(spec_label(micrographs), "--phase-flip needs a pixel size: give --angpix")


def _background_radius(
    diameter_A: float | None,
    diameter_px: float | None,
    angpix: float | None,
    box: int,
    out: int,
    micrographs: list[Path],
) -> float:
    """The normalisation's background radius in output px: the particle's radius when its
    diameter is given (in Å, or in micrograph px), else RELION's default share of the box."""
    if diameter_px is not None:
        return diameter_px / 2 * out / box
    if diameter_A is None:
        return int(RELION_BG_FRACTION * out)
    if not angpix:
        from cryosift.extract.run import spec_label

        raise InputError(spec_label(micrographs), "--diameter-A needs a pixel size: give --angpix")
    return diameter_A / 2 / angpix * out / box


@guarded("extract")
def main(
    micrographs: list[Path] = MICROGRAPHS,
    coords: Path = typer.Argument(
        ..., help="Coordinates: one file (STAR, .box, .cbox, .csv, topaz .txt, .cs) or a folder"
    ),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder"),
    box_px: int = typer.Option(None, "--box-px", help="Box side in micrograph pixels"),
    box_A: float = typer.Option(None, "--box-A", help="Box side in Å (rounded to even px)"),
    binning: float = typer.Option(None, "--bin", help="Downsample by this factor (Fourier crop)"),
    size: int = typer.Option(None, "--size", help="Output box side in px (Fourier crop)"),
    diameter_A: float = DIAMETER_A,
    diameter_px: float = DIAMETER_PX,
    bg_radius_px: float = typer.Option(
        None,
        "--bg-radius-px",
        help="Background circle radius in output px (default: particle "
        "radius, or RELION's 37.5% of the box, whole px)",
    ),
    normalise: bool = typer.Option(
        True, "--normalise/--no-normalise", help="Background to mean 0, std 1 (RELION)"
    ),
    ramp: bool = typer.Option(
        True, "--ramp/--no-ramp", help="Remove the background's fitted plane first (RELION)"
    ),
    invert: bool = typer.Option(False, "--invert/--no-invert", help="Invert the contrast"),
    pad: bool = typer.Option(
        True,
        "--pad/--skip-off-edge",
        help="Boxes that leave the micrograph: cut with its edge pixels repeated (RELION), "
        "or skipped; reported by micrograph either way",
    ),
    subpixel: bool = typer.Option(
        False,
        "--subpixel",
        help="Centre each box on its pick to a fraction of a px by a Fourier shift "
        "(RELION centres on the pick's whole px)",
    ),
    project_dir: Path = PROJECT_DIR,
    ctf: Path = typer.Option(None, "--ctf", help="Micrographs STAR with defocus U/V/angle"),
    phase_flip: bool = typer.Option(
        False, "--phase-flip/--no-phase-flip", help="Phase flip with the CTF"
    ),
    angpix: float = ANGPIX,
    scale: float = typer.Option(None, "--scale", help="Multiply coordinates by this factor"),
    coords_angpix: float = typer.Option(
        None, "--coords-angpix", help="Pixel size (Å) the coordinates were picked at"
    ),
    fmt: str = typer.Option(None, "--format", help=f"Coordinate format: {', '.join(FORMATS)}"),
    voltage: float = typer.Option(300.0, "--voltage", help="kV, when no CTF STAR states it"),
    cs: float = typer.Option(2.7, "--cs", help="Spherical aberration (mm), when not stated"),
    amplitude_contrast: float = typer.Option(0.1, "--amplitude-contrast", help="When not stated"),
    jobs: int = typer.Option(
        default_jobs(), "--jobs", "-j", help="Micrographs processed in parallel"
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo micrographs already done"),
    strict: bool = STRICT,
) -> None:
    """Cut particle boxes from micrographs at picked coordinates (RELION 3.1 output).

    A micrograph that cannot be used is skipped and named (its picks left out), and the
    rest are extracted; --strict stops at it instead."""
    from cryosift.extract.run import ExtractSettings, fitting_a_box, plan_extraction, run_extraction

    if scale is not None and coords_angpix is not None:
        raise typer.BadParameter("give --scale or --coords-angpix, not both")
    if fmt is not None:
        check_choice("--format", fmt, FORMATS)
    one_size(diameter_A, diameter_px)
    started = time.perf_counter()
    skips = skip_log("extract", strict)
    plan, mic_angpix = plan_extraction(
        micrographs,
        coords,
        fmt=fmt,
        ctf_star=ctf,
        angpix=angpix,
        scale=scale,
        coords_angpix=coords_angpix,
        project=project_dir or Path.cwd(),
        skips=skips,
    )
    if phase_flip:
        _check_phase_flip(plan, mic_angpix, ctf, micrographs)
    box = box_pixels(box_px, box_A, mic_angpix)
    out = output_size(box, size, binning)
    fit = fitting_a_box([j.path for j in plan], [j.shape for j in plan], box, skips)
    plan = [plan[i] for i in fit]
    if bg_radius_px is None:
        bg_radius_px = _background_radius(
            diameter_A, diameter_px, mic_angpix, box, out, micrographs
        )
    optics = next((j.ctf for j in plan if j.ctf), None) or {}
    settings = ExtractSettings(
        box=box,
        size=out,
        angpix=mic_angpix,
        bg_radius=round(float(bg_radius_px), 3),
        invert=invert,
        normalise=normalise,
        phase_flip=phase_flip,
        pad=pad,
        ramp=ramp,
        subpixel=subpixel,
        voltage=float(optics.get("rlnVoltage", voltage)),
        cs=float(optics.get("rlnSphericalAberration", cs)),
        amplitude_contrast=float(optics.get("rlnAmplitudeContrast", amplitude_contrast)),
    )
    with progress_bar() as bar:
        summary = run_extraction(
            plan,
            settings,
            outdir,
            n_jobs=jobs,
            overwrite=overwrite,
            on_progress=task_maker(bar)("extracting", len(plan)),
            project=project_dir or Path.cwd(),
            skips=skips,
        )
    console.print(summary_table(summary, outdir))
    for line in (
        _named(summary, summary.off_edge > 0, "boxes off the edge", "off_edge"),
        _named(summary, summary.picks == 0, "micrographs with zero picks"),
    ):
        if line:
            console.print(line, highlight=False)
    seconds = time.perf_counter() - started
    console.print(
        f"box {box} px -> {out} px"
        + (f" ({settings.out_angpix:.3f} Å/px)" if settings.out_angpix else "")
        + f", background radius {settings.bg_radius:g} px"
        + f", phase flip {'on' if phase_flip else 'off'}, invert {'on' if invert else 'off'}"
        + f"; {seconds:.1f} s",
        highlight=False,
    )
    print_skipped(skips)
