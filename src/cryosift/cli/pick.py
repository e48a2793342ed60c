"""``cryosift pick``: find particles in micrographs with the self-supervised MAE picker.

Reads micrographs (several files, a folder, a glob, one file or a micrographs STAR),
preprocesses each at a scale set by the particle, embeds it with the picker model (the shipped
one unless ``--model``), clusters the token embeddings, ranks the candidates with a ranking
adapted on the first micrographs (``--no-adapt`` skips it) and writes per-micrograph RELION
coordinate STAR files with
``_rlnAutopickFigureOfMerit`` under ``OUTDIR/Coordinates``, the RELION 4/5 ``autopick.star``
list and ``pick_summary.csv``. Reruns skip micrographs already picked with the same settings.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

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
    STRICT,
    WATCH_IDLE,
    WATCH_POLL,
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
from cryosift.errors import InputError

# torch and the picker are imported by main: --help answers at once.


def summary_table(summary, outdir: Path, cluster: int) -> Table:
    table = Table(title=f"cryosift pick -> {outdir}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("micrographs", f"{len(summary):,}")
    table.add_row("picks", f"{int(summary.picks.sum()):,}")
    table.add_row("picks per micrograph (median)", f"{float(summary.picks.median()):.0f}")
    table.add_row("micrographs with zero picks", f"{int((summary.picks == 0).sum()):,}")
    below = summary.below_threshold.sum()
    if below > 0:
        table.add_row("candidates below the threshold", f"{int(below):,}")
    dark = summary.on_dark_areas.sum()
    if dark > 0:  # the darkness filter's drops: carbon film, thick ice, contamination
        table.add_row("picks left out on dark areas (--keep-dark-areas)", f"{int(dark):,}")
    table.add_row("micrographs resumed", f"{int((summary.status == 'resumed').sum()):,}")
    done = summary[summary.status == "picked"]
    if len(done):
        table.add_row("seconds per micrograph", f"{done.seconds.mean():.2f}")
    table.add_row("particle cluster", str(cluster))
    return table


def adapt_line(state: dict) -> str:
    """One line on what adaptation learned (or why it did not) and the default it set."""
    info = state.get("adapt")
    if info is None:
        return "adaptation: off (--no-adapt)"
    line = f"adaptation: {info['candidates']} candidates on {info['micrographs']} micrographs"
    classes = info.get("classes")
    if classes:
        n = len(info.get("proposed_keep_shares", ()))  # one per classification, when pooled
        times = f"{n} classifications, " if n > 1 else ""
        line += (
            f" in {classes['classes']} 2D classes ({classes['particle_classes']} particle, "
            f"{classes['particle_share']:.0%} of candidates estimated particles; "
            f"{times}{classes['seconds']:.1f} s)"
        )
    if state.get("ranker") is None:
        line += "; no ranker (too few pseudo-labels): scores are the particle map's"
    else:
        line += f"; ranker from {info['positives']} pseudo-particles, {info['negatives']} others"
    default = info.get("default", "")
    if default.startswith("every candidate"):
        return line + f"; default threshold keeps {default} (--threshold overrides)"
    return line + f"; default threshold: {default}"


def _example(path: Path, mics) -> tuple[Path, object]:
    """The micrograph (among ``mics``) that the annotated picks at ``path`` belong to, and
    the picks: the paper's way to choose the particle cluster."""
    from cryosift.io.coords import read_coords
    from cryosift.io.micrographs import resolve_key

    picks = read_coords(path)
    if not len(picks):
        raise InputError(path, "holds zero picks: cannot choose the cluster")
    name = str(picks.micrograph.iloc[0])
    key = resolve_key(name, set(mics.key))
    if key is None:
        raise InputError(path, f"micrograph {name!r} is not among those given")
    return Path(mics.path[mics.key == key].iloc[0]), picks


@guarded("pick")
def main(
    micrographs: list[Path] = MICROGRAPHS,
    outdir: Path = OUTDIR,
    diameter_A: float = DIAMETER_A,
    diameter_px: float = DIAMETER_PX,
    angpix: float = ANGPIX,
    model: Path = typer.Option(
        None, "--model", help="Model folder from cryosift train (default: the shipped model)"
    ),
    example_coords: Path = typer.Option(
        None,
        "--example-coords",
        help="Annotated picks of one micrograph: choose the particle cluster from them (paper)",
    ),
    threshold: float = typer.Option(
        None,
        "--threshold",
        help="Keep picks with score >= this (default: per micrograph, 0.5 if ranked)",
    ),
    sequential: bool = typer.Option(
        False, "--sequential/--no-sequential", help="Per-micrograph k-means 3-4-5 (paper)"
    ),
    area_fraction: float = typer.Option(
        None, "--area-fraction", help="Cover this share of the micrograph (paper: 0.04)"
    ),
    edge_px: float = typer.Option(
        None, "--edge-px", help="Drop picks closer than this to the edge (default: radius)"
    ),
    device: str = DEVICE,
    jobs: int | None = JOBS,
    adapt: bool = typer.Option(
        True,
        "--adapt/--no-adapt",
        help="Learn how to rank candidates on these micrographs first (no annotation)",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (k-means, adaptation)"),
    keep_dark_areas: bool = KEEP_DARK_AREAS,
    strict: bool = STRICT,
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Keep running: pick micrographs as they arrive in the folder, glob or STAR "
        "(stop: Ctrl-C or --watch-idle)",
    ),
    watch_idle: float = WATCH_IDLE,
    watch_poll: float = WATCH_POLL,
) -> None:
    """Pick particles with the self-supervised MAE picker (RELION coordinate STAR output).

    A micrograph that cannot be used is skipped and named, and the rest are picked;
    --strict stops at it instead."""
    started = time.perf_counter()
    check_pick_options(threshold, area_fraction, jobs)
    warned: set = set()

    def one_round(only: set[str] | None, fresh: bool) -> tuple:
        """Pick the micrographs given (``only`` those when watching): the summary, state,
        skips and closing line."""
        from cryosift.extract.run import find_with_diameter

        skips = skip_log("pick", strict, warned)
        mics, mic_angpix, diameter = find_with_diameter(
            micrographs, diameter_A, diameter_px, angpix, skips, only
        )
        # torch and the picker only once the micrographs are known to be usable
        from cryosift.picking.model import cached_model
        from cryosift.picking.run import PickJob, run_picking

        dev = pick_device(device)
        folder = str(model.resolve()) if model else None
        picker = cached_model(folder, dev)  # kept for the micrographs picked in this process
        example = None if example_coords is None else _example(example_coords, mics)
        job = PickJob(
            diameter=diameter,
            cluster=-1,
            edge=edge_px,
            area_fraction=area_fraction,
            threshold=threshold,
            sequential=sequential,
            seed=seed,
        )
        if keep_dark_areas:
            job = replace(job, dark_z=None)
        settings = {
            "job": job.describe(),
            "adapt": adapt,
            "example_coords": str(example_coords) if example_coords else None,
            "model": str(model) if model else "shipped",
            "model_info": {k: v for k, v in picker.info.items() if k != "loss_history"},
            "angpix": mic_angpix,
        }
        with progress_bar() as bar:
            tasks = task_maker(bar)
            summary, state = run_picking(
                mics,
                folder,
                job,
                outdir,
                settings,
                on_progress=tasks("picking", len(mics)),
                angpix=angpix,
                device=dev,
                jobs=jobs,
                adapt=adapt,
                example=example,
                skips=skips,
                progress=tasks,
            )
        line = f"diameter {diameter:.1f} px" + (f" ({mic_angpix:.3f} Å/px)" if mic_angpix else "")
        return summary, state, skips, line

    if watch:
        last = watch_rounds(micrographs, one_round, _round_line, watch_poll, watch_idle)
        if last is None:
            return
        summary, state, skips, line = last
    else:
        summary, state, skips, line = one_round(None, True)
    console.print(adapt_line(state), highlight=False)
    console.print(summary_table(summary, outdir, int(state["cluster"])))
    if threshold is None and summary.below_threshold.sum() > 0:
        console.print(
            "candidates below the default threshold are left out: --threshold 0 writes them "
            "all with their scores (_rlnAutopickFigureOfMerit) to choose from later",
            highlight=False,
        )
    console.print(
        f"{line}; {time.perf_counter() - started:.1f} s; coordinates in {outdir / 'Coordinates'}",
        highlight=False,
    )
    print_skipped(skips)


def _round_line(result: tuple) -> str:
    """What a round of ``--watch`` has done, in one line."""
    summary, _, skips, _ = result
    new = int((summary.status != "resumed").sum())
    return (
        f"round: {len(summary)} micrographs ({new} new, {len(skips.skipped)} skipped), "
        f"{int(summary.picks.sum())} picks"
    )
