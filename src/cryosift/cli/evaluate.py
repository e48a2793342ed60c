"""``cryosift evaluate picks``: precision, recall and F1 of picks against ground truth.

PICKS and TRUTH are coordinate files in any supported format (one file, a folder or a glob).
Micrographs are matched by name (``mic_autopick.star`` belongs to ``mic``). Prints a table
per micrograph and pooled, with one-to-one (Hungarian) matching within half a diameter and
the Cryo-EMMAE paper's nearest-pick IoU > 0.6 rule; ``-o OUTDIR`` also writes
``pick_metrics.csv``, ``pr_curve.csv`` and ``pr_curve.png`` (over the pick score threshold).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from cryosift.cli.common import DIAMETER_A, DIAMETER_PX, console, guarded, one_size
from cryosift.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(help="Measure picks or cleaning against ground truth.", no_args_is_help=True)


def by_micrograph(spec: Path, fmt: str | None, keys: list[str] | None = None) -> dict:
    """``{micrograph key: picks}``; with ``keys``, names carrying a suffix map to their key."""
    import pandas as pd

    from cryosift.extract.run import read_all_picks
    from cryosift.io.micrographs import micrograph_key, resolve_key

    picks = read_all_picks(spec, fmt)
    out: dict[str, list[pd.DataFrame]] = {}
    known = set(keys or ())
    for name, group in picks.groupby("micrograph", sort=True):
        k = resolve_key(name, known) or micrograph_key(name)
        out.setdefault(k, []).append(group)
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}


def metrics_table(table: pd.DataFrame, title: str) -> Table:
    t = Table(title=title)
    for col in ("micrograph", "picks", "truth", "tp", "precision", "recall", "F1", "paper F1"):
        t.add_column(col, justify="left" if col == "micrograph" else "right")
    for r in table.itertuples():
        t.add_row(
            str(r.micrograph),
            f"{r.picks:,}",
            f"{r.truth:,}",
            f"{r.tp:,}",
            f"{r.precision:.3f}",
            f"{r.recall:.3f}",
            f"{r.f1:.3f}",
            f"{r.paper_f1:.3f}",
        )
    return t


def plot_curve(curve: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(curve.recall, curve.precision, "o-", ms=3)
    best = curve.iloc[int(curve.f1.to_numpy().argmax())]
    ax.plot(best.recall, best.precision, "r*", ms=12, label=f"best F1 {best.f1:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


@app.command("picks")
@guarded("evaluate picks")
def picks(
    picks: Path = typer.Argument(..., help="Picks: coordinate file, folder or glob"),
    truth: Path = typer.Argument(..., help="Ground truth: coordinate file, folder or glob"),
    diameter_A: float = DIAMETER_A,
    diameter_px: float = DIAMETER_PX,
    angpix: float = typer.Option(
        None, "--angpix", help="Pixel size of the coordinates in Å (with --diameter-A)"
    ),
    outdir: Path = typer.Option(None, "-o", "--outdir", help="Write CSVs and the PR curve here"),
    fmt: str = typer.Option(None, "--format", help="Format of the picks (default: guessed)"),
    truth_fmt: str = typer.Option(None, "--truth-format", help="Format of the truth"),
) -> None:
    """Precision, recall and F1 of picks against ground-truth coordinates (matched within
    half a particle diameter)."""
    from cryosift.evaluate.picks import best_threshold, evaluate_picks, pr_curve
    from cryosift.io.atomic import write_all_or_nothing

    one_size(diameter_A, diameter_px)
    if diameter_px is None:
        if diameter_A is None or not angpix:
            raise typer.BadParameter("give --diameter-px, or --diameter-A with --angpix")
        diameter_px = diameter_A / angpix
    if diameter_px <= 0:
        raise typer.BadParameter("--diameter-px must be positive")
    true = by_micrograph(truth, truth_fmt)
    if not true:
        raise InputError(truth, "holds zero true particles")
    found = by_micrograph(picks, fmt, list(true))
    stray = sorted(set(found) - set(true))
    if stray and not set(found) & set(true):
        raise InputError(picks, f"no micrograph in common with the truth (first: {stray[0]!r})")
    table = evaluate_picks(found, true, diameter_px)
    console.print(metrics_table(table, f"picks vs truth (match radius {diameter_px / 2:g} px)"))
    curve = pr_curve(found, true, diameter_px)
    scored = len(curve) > 1
    if scored:
        console.print(
            f"best F1 over the score threshold: {curve.f1.max():.3f} at score >= "
            f"{best_threshold(curve):.4g}",
            highlight=False,
        )
    if stray:
        console.print(f"{len(stray)} picked micrograph(s) have no truth, ignored: {stray[0]}")
    if outdir is not None:
        outdir.mkdir(parents=True, exist_ok=True)
        writers = {
            outdir / "pick_metrics.csv": lambda p: table.to_csv(p, index=False),
            outdir / "pr_curve.csv": lambda p: curve.to_csv(p, index=False),
        }
        if scored:
            writers[outdir / "pr_curve.png"] = lambda p: plot_curve(curve, p)
        write_all_or_nothing(writers)
        console.print(f"written: {', '.join(sorted(p.name for p in writers))} in {outdir}")
