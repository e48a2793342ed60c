"""``cryosift run``: micrographs to clean particles in one command, with a report.

Picks every micrograph with the self-supervised picker, cuts a box around each pick (phase
flipped when the CTF is known, contrast inverted, Fourier-cropped), removes noise, partial and
multiple-particle images with the radial-profile detector, and writes RELION-ready files, a
self-contained ``report.html`` and ``run.json`` under OUTDIR. Per-micrograph work runs in a
local process pool (``--jobs``) or on a Dask cluster (``--dask-scheduler``). A rerun resumes.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from cryosift.cli.common import (
    ANGPIX,
    DEVICE,
    DIAMETER_A,
    DIAMETER_PX,
    JOBS,
    KEEP_DARK_AREAS,
    MICROGRAPHS,
    OUTDIR,
    PROJECT_DIR,
    STRICT,
    STRICT_THRESHOLD,
    WATCH_IDLE,
    WATCH_POLL,
    check_choice,
    check_pick_options,
    console,
    guarded,
    print_skipped,
    progress_bar,
    skip_log,
    task_maker,
    watch_rounds,
)
from cryosift.device import pick_device
from cryosift.errors import InputError, SkipLog
from cryosift.outliers.rules import DEFAULT_PRESET, PRESETS, VERDICTS

if TYPE_CHECKING:
    from cryosift.pipeline.run import RunConfig, RunResult
# torch and the pipeline are imported by the functions that use them: --help answers at once.

#: Box side in particle diameters, and the largest side boxes are cropped to by default.
BOX_DIAMETERS, MAX_SIZE = 2.0, 128

INTERRUPTED = "interrupted; finished micrographs are kept, run the same command to resume"


def box_and_size(
    diameter: float, box_px: int | None, box_A: float | None, size: int | None, angpix
) -> tuple[int, int]:
    """Box side (micrograph px; default two diameters) and the side it is cropped to
    (default: the box, at most :data:`MAX_SIZE`)."""
    from cryosift.cli.extract import box_pixels

    if box_px is None and box_A is None:
        box = max(4, 2 * round(BOX_DIAMETERS * diameter / 2))
    else:
        box = box_pixels(box_px, box_A, angpix)
    if box <= diameter:
        raise typer.BadParameter(f"box {box} px must be larger than the particle ({diameter:.0f})")
    out = size if size is not None else min(box, MAX_SIZE)
    if not 16 <= out <= box:
        raise typer.BadParameter(f"--size {out} px must lie between 16 and the box ({box} px)")
    return box, out


def read_truth(spec: Path, mics, fmt: str | None = None, skipped=None, drop=False) -> dict:
    """True coordinates by micrograph key (any coordinate format; a folder or one file);
    those of micrographs ``skipped`` left out are dropped, and with ``drop`` those of
    micrographs not among ``mics``."""
    from cryosift.extract.run import match_picks, read_all_picks

    return match_picks(mics, read_all_picks(spec, fmt), skipped, drop)


def summary_table(run: RunResult, outdir: Path) -> Table:
    """The end-of-run table: one row per quantity, stage by stage."""
    s = run.summary
    table = Table(title=f"cryosift run -> {outdir}")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_column("", justify="right")
    n = len(run.scores)
    table.add_row("micrographs", f"{len(s):,}", f"{int((s.status == 'resumed').sum())} resumed")
    table.add_row("picks", f"{int(s.picks.sum()):,}", f"{s.picks.median():.0f} per micrograph")
    dark = s.on_dark_areas.sum()  # NaN (skipped) in records written before the count
    if dark > 0:
        table.add_row("  left out on dark areas", f"{int(dark):,}", "--keep-dark-areas")
    table.add_row("particles extracted", f"{n:,}", f"{int(s.off_edge.sum())} off the edge")
    for v in VERDICTS:
        k = int((run.scores.verdict == v).sum())
        table.add_row(f"  {v}", f"{k:,}", f"{k / max(n, 1):.1%}")
    if run.metrics is not None:
        for m in run.metrics.itertuples():
            table.add_row(
                f"vs truth: {m.set}",
                f"P {m.precision:.3f}",
                f"R {m.recall:.3f}  F1 {m.f1:.3f}",
            )
    return table


class _Interrupt:
    """The SIGINT and SIGTERM handler: raises KeyboardInterrupt (a kill ends the run like
    Ctrl-C, temporary files removed) and remembers the request, so that an interrupt Python
    swallows (raised inside a finaliser, ``__del__``) still stops the run at the next
    micrograph."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum, frame):
        self.requested = True
        raise KeyboardInterrupt


def _checked_model(model: Path | None, device: str) -> str | None:
    """The model folder as recorded (absolute), loaded once so that a damaged model fails
    before any output; None for the shipped model."""
    from cryosift.picking.model import cached_model

    if model is None:
        return None
    folder = str(model.resolve())
    cached_model(folder, device)
    return folder


def _run_with_progress(
    mics: list[Path], cfg: RunConfig, outdir: Path, interrupt: _Interrupt, **kwargs
) -> RunResult:
    """:func:`cryosift.pipeline.run.run_pipeline` with a progress bar per stage; stops at the
    next micrograph once ``interrupt`` has been requested (as Ctrl-C)."""
    from cryosift.pipeline.run import Aborted, run_pipeline

    with progress_bar() as bar:
        try:
            return run_pipeline(
                mics,
                cfg,
                outdir,
                progress=task_maker(bar),
                should_stop=lambda: interrupt.requested,
                **kwargs,
            )
        except Aborted:
            raise KeyboardInterrupt from None


def _inputs(micrographs: list[Path], ctf: Path | None, truth: Path | None) -> dict:
    """What the run was given, as ``run.json`` records it."""
    return {
        "command": " ".join(["cryosift", *sys.argv[1:]]),
        "micrographs": [str(m) for m in micrographs],
        "ctf": str(ctf) if ctf else None,
        "truth": str(truth) if truth else None,
    }


def _round_line(result: tuple) -> str:
    """What a round of ``--watch`` has done, in one line."""
    run, skips, _ = result
    s = run.summary
    new = int((s.status != "resumed").sum())
    inliers = int((run.scores.verdict == "inlier").sum())
    return (
        f"round: {len(s)} micrographs ({new} new, {len(skips.skipped)} skipped), "
        f"{int(s.picks.sum())} picks, {len(run.scores)} particles, {inliers} inliers"
    )


def _print_result(run: RunResult, outdir: Path) -> None:
    """The summary table, the adaptation line and the cleaning's notes."""
    from cryosift.cli.clean import print_notes
    from cryosift.cli.pick import adapt_line

    console.print(summary_table(run, outdir))
    state = {"adapt": run.facts.get("adaptation"), "ranker": run.facts.get("ranker")}
    console.print(adapt_line(state), highlight=False)
    print_notes(run.facts["clean"])


@guarded("run", interrupted=INTERRUPTED)
def main(
    micrographs: list[Path] = MICROGRAPHS,
    outdir: Path = OUTDIR,
    diameter_A: float = DIAMETER_A,
    diameter_px: float = DIAMETER_PX,
    angpix: float = ANGPIX,
    ctf: Path = typer.Option(
        None, "--ctf", help="Micrographs STAR with defoci (default: MICROGRAPHS if a STAR has them)"
    ),
    phase_flip: bool = typer.Option(
        True, "--phase-flip/--no-phase-flip", help="Phase flip the boxes when the CTF is known"
    ),
    truth: Path = typer.Option(
        None, "--truth", help="True coordinates (any format, file or folder): adds P/R/F1"
    ),
    box_px: int = typer.Option(None, "--box-px", help="Box side in micrograph px (2 diameters)"),
    box_A: float = typer.Option(None, "--box-A", help="Box side in Å"),
    size: int = typer.Option(None, "--size", help=f"Crop boxes to this side, px (<= {MAX_SIZE})"),
    model: Path = typer.Option(None, "--model", help="Picker model folder (the shipped one)"),
    threshold: float = typer.Option(None, "--threshold", help="Pick score threshold (per mic)"),
    area_fraction: float = typer.Option(
        None, "--area-fraction", help="Picks cover this share of the micrograph (paper: 0.04)"
    ),
    rules: str = typer.Option(
        DEFAULT_PRESET, "--rules", help=f"Outlier rules: {', '.join(PRESETS)}"
    ),
    jobs: int | None = JOBS,
    dask_scheduler: str = typer.Option(
        None, "--dask-scheduler", help="Run per-micrograph work on this Dask cluster (tcp://H:P)"
    ),
    device: str = DEVICE,
    adapt: bool = typer.Option(
        True,
        "--adapt/--no-adapt",
        help="Learn how to rank candidates on the first micrographs (no annotation)",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
    keep_dark_areas: bool = KEEP_DARK_AREAS,
    strict_clean: bool = STRICT_THRESHOLD,
    overwrite: bool = typer.Option(False, "--overwrite", help="Start again, ignoring past runs"),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html"),
    classes: int = typer.Option(
        20,
        "--classes",
        help="2D classes of all particles (beyond 50,000: of a sample, which the rest join): "
        "they vote on the cleaning and show in the report (0: skip, the radial profile alone "
        "decides)",
    ),
    project_dir: Path = PROJECT_DIR,
    strict: bool = STRICT,
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Keep running: process micrographs as they arrive in the folder, glob or STAR, "
        "updating the outputs as it goes (stop: Ctrl-C or --watch-idle)",
    ),
    watch_idle: float = WATCH_IDLE,
    watch_poll: float = WATCH_POLL,
) -> None:
    """Micrographs -> picks -> particles -> inliers, with report.html and run.json.

    A micrograph that cannot be used (unreadable, truncated, blank, NaN pixels, a movie,
    another pixel size, smaller than a box) is skipped and named, and the run goes on;
    --strict stops at it instead."""
    from cryosift.extract.run import ctf_by_micrograph, find_with_diameter, in_project, spec_label
    from cryosift.io.paths import folder_prefix

    started = time.perf_counter()
    check_choice("--rules", rules, PRESETS)
    check_pick_options(threshold, area_fraction, jobs)
    interrupt = _Interrupt()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)
    warned: set = set()

    def one_round(only: set[str] | None, fresh: bool) -> tuple[RunResult, SkipLog, str]:
        """The run over the micrographs given (``only`` those when watching); ``fresh``:
        honour --overwrite. Returns the result, what was skipped and the closing line."""
        skips = skip_log("run", strict, warned)
        mics, mic_angpix, diameter = find_with_diameter(
            micrographs, diameter_A, diameter_px, angpix, skips, only
        )
        project = project_dir or Path.cwd()
        mics = in_project(mics, project)
        ctf_by_key = ctf_by_micrograph(mics, ctf, mic_angpix, micrographs)
        if phase_flip and ctf_by_key and not mic_angpix:
            raise InputError(
                spec_label(micrographs), "phase flipping needs a pixel size: give --angpix"
            )
        true_coords = None
        if truth is not None:
            true_coords = read_truth(truth, mics, skipped=skips, drop=only is not None)
        box, out = box_and_size(diameter, box_px, box_A, size, mic_angpix)
        dev = pick_device(device)
        from cryosift.pipeline.run import RunConfig  # torch: once the inputs are checked

        cfg = RunConfig(
            diameter=round(diameter, 3),
            box=box,
            size=out,
            angpix=mic_angpix,
            threshold=threshold,
            area_fraction=area_fraction,
            model=_checked_model(model, dev),
            phase_flip=phase_flip,
            rules=rules,
            adapt=adapt,
            classes=max(0, classes),
            seed=seed,
            strict_clean=strict_clean,
            keep_dark_areas=keep_dark_areas,
        )
        run = _run_with_progress(
            mics,
            cfg,
            outdir,
            interrupt,
            ctf=ctf_by_key,
            truth=true_coords,
            jobs=jobs,
            scheduler=dask_scheduler,
            device=dev,
            overwrite=overwrite and fresh,
            name_prefix=folder_prefix(outdir, project),
            report=report,
            inputs=_inputs(micrographs, ctf, truth),
            skips=skips,
        )
        where = outdir / "report.html" if report else outdir
        return run, skips, f"diameter {diameter:.1f} px, box {box} -> {out} px; report: {where}"

    if watch:
        last = watch_rounds(micrographs, one_round, _round_line, watch_poll, watch_idle)
        if last is None:
            return
        run, skips, line = last
    else:
        run, skips, line = one_round(None, True)
    _print_result(run, outdir)
    print_skipped(skips)
    console.print(f"{line}; {time.perf_counter() - started:.1f} s", highlight=False)
