"""Self-supervised training of the picker's MAE on tiles of preprocessed micrographs.

An epoch draws as many random ``tile x tile`` windows (with random flips and quarter turns)
as would tile every micrograph once. The learning rate is ``lr * batch / 256`` (AdamW, weight
decay 0.05), warmed up linearly over ``warmup`` epochs and then cosine-annealed to zero, as in
the paper. Every epoch ends with an atomic checkpoint, so an interrupted run resumes at the
last finished epoch with the same result it would have had. Random draws come from
``numpy.random.default_rng([seed, epoch])`` and a torch generator seeded the same way.
After training, a 4-cluster k-means is fitted on a subsample of the training micrographs'
token embeddings and stored with the model. Then :func:`train_ranker` learns how to rank the
candidates on those micrographs (:mod:`cryosift.picking.rank`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosift.picking.embed import embed_micrograph
from cryosift.picking.mae import MaeConfig, MaskedAutoencoder
from cryosift.picking.model import STATE_FILE, PickerModel, atomic_torch_save, save_model
from cryosift.picking.rank import Ranker

#: Clusters of the global k-means (the paper's 4).
N_CLUSTERS = 4
#: Token embeddings drawn from the training micrographs to fit it.
KMEANS_SAMPLE = 40_000
#: Training micrographs (evenly spaced) whose candidates teach the ranker.
RANK_MICROGRAPHS = 30


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 20
    warmup: int = 5
    batch: int = 64
    lr: float = 1e-3  # base rate, scaled by batch / 256
    weight_decay: float = 0.05
    seed: int = 0


#: Defaults when training starts from a trained model: a tenth of the learning rate, no
#: warm-up, a few epochs. On EMPIAR-10017 the full-rate schedule of training from scratch
#: (1e-3 with warm-up) wiped out the particle cluster of the shipped model (F1 0.735 -> 0.001
#: after 8 epochs), while 3 epochs at 1e-4 keep it (0.734, docs/picking.md).
FINE_TUNE = TrainSettings(epochs=3, warmup=0, lr=1e-4)


def tiles_per_epoch(images: list[np.ndarray], tile: int, batch: int) -> int:
    """Enough tiles to cover every micrograph once, in whole batches (at least one)."""
    n = sum(im.shape[0] * im.shape[1] for im in images) // (tile * tile)
    return max(1, n // batch) * batch


def draw_tiles(images: list[np.ndarray], n: int, tile: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 1, tile, tile)`` float32 random windows, flipped and turned at random."""
    weights = np.array([im.size for im in images], np.float64)
    which = rng.choice(len(images), size=n, p=weights / weights.sum())
    out = np.empty((n, 1, tile, tile), np.float32)
    for i, k in enumerate(which):
        im = images[k]
        r = rng.integers(0, im.shape[0] - tile + 1)
        c = rng.integers(0, im.shape[1] - tile + 1)
        t = im[r : r + tile, c : c + tile]
        t = np.rot90(t, int(rng.integers(4)))
        out[i, 0] = t[:, ::-1] if rng.integers(2) else t
    return out


def learning_rate(step: int, steps_per_epoch: int, s: TrainSettings) -> float:
    """Linear warm-up over ``s.warmup`` epochs, then cosine to zero at ``s.epochs``."""
    base = s.lr * s.batch / 256
    warm = s.warmup * steps_per_epoch
    total = s.epochs * steps_per_epoch
    if step < warm:
        return base * (step + 1) / warm
    return 0.5 * base * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def fit_kmeans(
    mae: MaskedAutoencoder, images: list[np.ndarray], mean: float, std: float, seed: int
) -> np.ndarray:
    """``(4, width)`` k-means centres on a subsample of the training token embeddings."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng([seed, 7])
    per = max(1, KMEANS_SAMPLE // len(images))
    parts = []
    for im in images:
        e = embed_micrograph(mae, im, mean, std)
        e = e.reshape(-1, e.shape[-1])
        parts.append(e[rng.choice(len(e), size=min(per, len(e)), replace=False)])
    km = KMeans(N_CLUSTERS, n_init=4, random_state=seed).fit(np.concatenate(parts))
    return km.cluster_centers_.astype(np.float32)


def train(
    images: list[np.ndarray],
    config: MaeConfig,
    settings: TrainSettings,
    outdir: Path,
    device: str = "cpu",
    init: PickerModel | None = None,
    info: dict | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
    on_step: Callable[[], None] | None = None,
) -> PickerModel:
    """Train on preprocessed ``images`` (each ``(rows, cols)``, both at least one tile) and
    write ``outdir/model.pt`` after every epoch. ``init`` starts from a trained model (its
    configuration wins); a ``train_state.pt`` left by an interrupted run with the same
    settings is resumed. Returns the trained model with its k-means."""
    outdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    if init is not None:
        config = init.mae.config
    mae = MaskedAutoencoder(config)
    if init is not None:
        mae.load_state_dict(init.mae.state_dict())
    mae.to(device).train()
    stack = np.concatenate([im.ravel()[:: max(1, im.size // 100_000)] for im in images])
    mean, std = float(stack.mean()), float(stack.std() + 1e-6)
    opt = torch.optim.AdamW(mae.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    n_tiles = tiles_per_epoch(images, config.tile, settings.batch)
    state_path = outdir / STATE_FILE
    key = {"settings": settings.__dict__, "config": config.to_dict(), "n_tiles": n_tiles}
    start, history = _resume(state_path, key, mae, opt)
    record = dict(info or {})
    for epoch in range(start, settings.epochs):
        t0 = time.time()
        rng = np.random.default_rng([settings.seed, epoch])
        tiles = (draw_tiles(images, n_tiles, config.tile, rng) - mean) / std
        history.append(_train_epoch(mae, opt, tiles, epoch, settings, device, on_step))
        state = {"key": key, "mae": mae.state_dict(), "opt": opt.state_dict()}
        atomic_torch_save({**state, "epoch": epoch + 1, "history": history}, state_path)
        if on_epoch:
            on_epoch(epoch + 1, history[-1], time.time() - t0)
    mae.eval()
    centroids = fit_kmeans(mae, images, mean, std, settings.seed)
    record.update(
        {
            "seed": settings.seed,
            "epochs": settings.epochs,
            "batch": settings.batch,
            "loss_history": history,
            "torch": torch.__version__,
        }
    )
    model = PickerModel(mae, mean, std, centroids, info=record)
    if init is not None:
        model.preprocess = dict(init.preprocess)
    save_model(model, outdir)
    return model


def _resume(
    state_path: Path, key: dict, mae: MaskedAutoencoder, opt: torch.optim.Optimizer
) -> tuple[int, list[float]]:
    """Load an interrupted run's weights and optimiser from ``state_path`` when it was
    started with the same ``key``; returns the first epoch still to do and the loss history."""
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("key") == key:
            mae.load_state_dict(state["mae"])
            opt.load_state_dict(state["opt"])
            return state["epoch"], list(state["history"])
    return 0, []


def _train_epoch(
    mae: MaskedAutoencoder,
    opt: torch.optim.Optimizer,
    tiles: np.ndarray,
    epoch: int,
    settings: TrainSettings,
    device: str,
    on_step: Callable[[], None] | None,
) -> float:
    """One pass over ``tiles`` ``(N, 1, tile, tile)`` (standardised) in batches; returns the
    mean loss. The masks are drawn from a generator seeded by the seed and the epoch."""
    gen = torch.Generator().manual_seed(settings.seed * 100_003 + epoch)
    steps = len(tiles) // settings.batch
    total = 0.0
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = learning_rate(epoch * steps + i, steps, settings)
        batch = torch.from_numpy(tiles[i * settings.batch : (i + 1) * settings.batch])
        loss = mae(batch.to(device), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach())
        if on_step:
            on_step()
    return total / steps


def train_ranker(
    model: PickerModel,
    paths: list[Path],
    diameter: float,
    angpix: float | None = None,
    seed: int = 0,
    on_micrograph: Callable[[], None] | None = None,
) -> Ranker | None:
    """Learn the model's candidate ranker on the micrographs at ``paths`` (particle
    ``diameter`` in their px), without annotation, as every run adapts one
    (:func:`cryosift.picking.adapt.learn_ranker`) but on up to :data:`RANK_MICROGRAPHS`
    micrographs. None when there are too few of either label."""
    from cryosift.io.micrographs import read_micrograph
    from cryosift.picking.adapt import learn_ranker
    from cryosift.picking.run import PickJob, choose_cluster, embed_image

    cluster, _ = choose_cluster(model, paths, diameter)
    job = PickJob(diameter=diameter, cluster=cluster, seed=seed)
    take = np.unique(np.linspace(0, len(paths) - 1, min(len(paths), RANK_MICROGRAPHS)).astype(int))

    def seen():
        for i in take:
            image = read_micrograph(paths[i], angpix).image
            yield image, embed_image(model, image, diameter)

    ranker, *_ = learn_ranker(model, seen(), job, on_micrograph)
    if ranker is not None:
        ranker.info["cluster"] = cluster
    return ranker
