"""``cryosift train``: adapt (or train from scratch) the picker's masked autoencoder.

Self-supervised: needs only micrographs, the particle diameter and the pixel size. Each
micrograph is preprocessed as ``cryosift pick`` does; the MAE learns to fill in hidden tokens
of random tiles; a 4-cluster k-means on its embeddings is stored with it in
``OUTDIR/model.pt``. By default training starts from the shipped model; ``--from-scratch``
starts from random weights with ``--preset`` (``small``, the default, or ``paper``). An
interrupted run resumes from its last finished epoch when run again with the same settings.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from cryosift.cli.common import (
    ANGPIX,
    DEVICE,
    DIAMETER_A,
    DIAMETER_PX,
    MICROGRAPHS,
    STRICT,
    check_choice,
    console,
    guarded,
    print_skipped,
    progress_bar,
    skip_log,
)
from cryosift.device import pick_device
from cryosift.errors import SkipLog
from cryosift.picking.mae_config import DEFAULT_PRESET, PRESETS

# torch, scipy and the picker are imported by the functions that use them: --help answers
# at once.


def _preprocessed(
    paths, angpix: float | None, diameter: float, settings: dict, tile: int, skips: SkipLog
) -> tuple[list[Path], list]:
    """The micrographs at ``paths`` read and preprocessed for the MAE, each ``(rows, cols)``,
    and their paths; one that cannot be read or is smaller than a ``tile`` once
    preprocessed is left out through ``skips``."""
    from cryosift.errors import InputError
    from cryosift.io.micrographs import read_micrograph
    from cryosift.preprocess.micrograph import preprocess

    kept, images = [], []
    with progress_bar() as bar:
        task = bar.add_task("preprocessing", total=len(paths), rate="")
        for path in paths:
            bar.advance(task)
            try:
                image = preprocess(read_micrograph(path, angpix).image, diameter, **settings)[0]
                if min(image.shape) < tile:
                    raise InputError(path, f"smaller than one {tile}-px tile once preprocessed")
            except InputError as exc:
                skips.skip(exc, path)
                continue
            kept.append(Path(path))
            images.append(image)
    if not images:
        raise skips.none_left()
    return kept, images


def _learned_ranker(model, paths: list[Path], diameter: float, angpix, seed: int):
    """The candidate ranker learned on ``paths`` (:func:`train_ranker`), said in one line."""
    from cryosift.picking.train import RANK_MICROGRAPHS, train_ranker

    with progress_bar() as bar:
        task = bar.add_task("learning the ranker", total=min(len(paths), RANK_MICROGRAPHS), rate="")
        ranker = train_ranker(
            model, paths, diameter, angpix, seed, on_micrograph=lambda: bar.advance(task)
        )
    if ranker is None:
        console.print("ranker: too few candidates to learn from; picks keep the map score")
    else:
        r = ranker.info
        console.print(
            f"ranker: {r['positives']} pseudo-particles and {r['negatives']} rejected "
            f"boxes among {r['candidates']} candidates on {r['micrographs']} micrographs"
        )
    return ranker


@guarded("train")
def main(
    micrographs: list[Path] = MICROGRAPHS,
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Model folder to write"),
    diameter_A: float = DIAMETER_A,
    diameter_px: float = DIAMETER_PX,
    angpix: float = ANGPIX,
    epochs: int = typer.Option(
        None, "--epochs", help="Training epochs (3 from a trained model, 20 from scratch)"
    ),
    warmup: int = typer.Option(
        None, "--warmup", help="Warm-up epochs, then cosine (0 from a model, 5 from scratch)"
    ),
    batch: int = typer.Option(64, "--batch", help="Tiles per step"),
    lr: float = typer.Option(
        None, "--lr", help="Base rate, scaled by batch / 256 (1e-4 from a model, 1e-3 scratch)"
    ),
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Random initial weights instead of the shipped model"
    ),
    preset: str = typer.Option(
        DEFAULT_PRESET, "--preset", help=f"Architecture from scratch: {', '.join(PRESETS)}"
    ),
    init: Path = typer.Option(None, "--init", help="Start from this model folder"),
    rank: bool = typer.Option(
        True, "--rank/--no-rank", help="Learn the candidate ranker on these micrographs"
    ),
    device: str = DEVICE,
    seed: int = typer.Option(0, "--seed", help="Random seed"),
    strict: bool = STRICT,
) -> None:
    """Train the picker's masked autoencoder on unlabelled micrographs.

    A micrograph that cannot be used is skipped and named, and training goes on with the
    rest; --strict stops at it instead."""
    from cryosift.extract.run import find_with_diameter

    check_choice("--preset", preset, PRESETS)
    started = time.perf_counter()
    skips = skip_log("train", strict)
    mics, mic_angpix, diameter = find_with_diameter(
        micrographs, diameter_A, diameter_px, angpix, skips
    )
    # torch and the trainer only once the micrographs are known to be usable
    from cryosift.picking.model import load_model, save_model
    from cryosift.picking.train import FINE_TUNE, TrainSettings, tiles_per_epoch, train

    base = TrainSettings() if from_scratch else FINE_TUNE
    epochs = base.epochs if epochs is None else epochs
    warmup = min(base.warmup, epochs) if warmup is None else warmup
    lr = base.lr if lr is None else lr
    if epochs < 1 or batch < 1 or not 0 <= warmup <= epochs:
        raise typer.BadParameter("need epochs >= 1, batch >= 1 and 0 <= warmup <= epochs")
    dev = pick_device(device)
    start = None if from_scratch else load_model(init, dev)
    config = PRESETS[preset] if start is None else start.mae.config
    paths, images = _preprocessed(
        mics.path, angpix, diameter, start.preprocess if start else {}, config.tile, skips
    )
    settings = TrainSettings(epochs=epochs, warmup=warmup, batch=batch, lr=lr, seed=seed)
    steps = tiles_per_epoch(images, config.tile, batch) // batch
    with progress_bar() as bar:
        task = bar.add_task("training", total=epochs * steps, rate="")

        def epoch_done(e: int, loss: float, dt: float) -> None:
            bar.update(task, completed=e * steps, rate=f"loss {loss:.4f}")
            console.print(f"epoch {e}/{epochs}: loss {loss:.4f} ({dt:.0f} s)")

        model = train(
            images,
            config,
            settings,
            outdir,
            device=dev,
            init=start,
            info={
                "micrographs": [str(p) for p in paths],
                "diameter_px": diameter,
                "angpix": mic_angpix,
                "init": "scratch" if start is None else str(init or "shipped"),
            },
            on_epoch=epoch_done,
            on_step=lambda: bar.advance(task),
        )
    if rank:
        model.ranker = _learned_ranker(model, paths, diameter, angpix, seed)
        save_model(model, outdir)
    hist = model.info["loss_history"]
    console.print(
        f"model -> {outdir / 'model.pt'}; loss {hist[0]:.4f} -> {hist[-1]:.4f} over "
        f"{len(hist)} epochs on {dev}; {time.perf_counter() - started:.0f} s",
        highlight=False,
    )
    print_skipped(skips)
