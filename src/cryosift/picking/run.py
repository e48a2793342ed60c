"""Picking over many micrographs: one pure job per micrograph, resumable, written atomically.

:func:`pick_micrograph` does everything for one micrograph (read, preprocess, embed, cluster,
find picks, map back to original px) and returns a table; it needs only the model, the
particle cluster and the settings, so a local pool or a Dask worker can run it. The driver
(:func:`run_picking`) writes ``Coordinates/<key>_autopick.star`` per micrograph (RELION
coordinate STAR with ``_rlnAutopickFigureOfMerit``) as each finishes, then the RELION 4/5
``autopick.star`` list and ``pick_summary.csv``. A rerun with the same settings skips
micrographs whose coordinate file exists; ``pick_settings.json`` records the settings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cryosift.errors import InputError
from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.coords import read_coords, write_relion
from cryosift.io.micrographs import read_micrograph
from cryosift.io.star import write_star
from cryosift.picking.embed import embed_micrograph
from cryosift.picking.model import PickerModel, cached_model
from cryosift.picking.pick import (
    DARK_Z,
    PickSettings,
    choose_particle_cluster,
    darkness,
    nearest_centroid,
    picks_from_mask,
    sequential_mask,
)
from cryosift.picking.rank import candidate_features
from cryosift.preprocess.micrograph import preprocess_stages

SETTINGS_FILE = "pick_settings.json"
#: Micrographs looked at to choose the particle cluster.
CHOOSE_FROM = 4


@dataclass(frozen=True)
class PickJob:
    """What picking one micrograph needs besides the model. ``diameter`` in original px,
    ``edge`` in original px (None: half a diameter), ``cluster``: the particle cluster,
    ``dark_z``: drop picks on areas darker than this (:func:`darkness`; None keeps them)."""

    diameter: float
    cluster: int
    edge: float | None = None
    area_fraction: float | None = None
    threshold: float | None = None
    sequential: bool = False
    seed: int = 0
    dark_z: float | None = DARK_Z


def _embed_labels(model: PickerModel, image: np.ndarray, diameter: float):
    """The resized micrograph, its preprocessed form, the resize plan, the token embeddings
    and their k-means labels."""
    small, pre, plan = preprocess_stages(image, diameter, **model.preprocess)
    emb = embed_micrograph(model.mae, pre, model.mean, model.std)
    return small, pre, plan, emb, nearest_centroid(emb, model.centroids)


@dataclass
class Candidates:
    """What picking found on one micrograph: ``picks`` (``x``, ``y`` in original px, ``score``,
    ``passes``, ``keep``), their positions ``rc`` ``(N, 2)`` (row, col) in preprocessed px,
    the token embeddings ``emb`` ``(h, w, D)``, the token side ``patch`` and the particle
    ``diameter`` in preprocessed px."""

    picks: pd.DataFrame
    rc: np.ndarray
    emb: np.ndarray
    patch: int
    diameter: float

    def features(self) -> np.ndarray:
        """``(N, D)`` mean embedding over each candidate's particle disc (the ranker's input)."""
        return candidate_features(self.emb, self.rc, self.patch, self.diameter)


def find_candidates(
    model: PickerModel, image: np.ndarray, job: PickJob, ranked: bool = True
) -> Candidates:
    """Candidates of one micrograph ``(rows, cols)``, scored by the model's ranker when it
    has one and ``ranked``, else by the particle map (see :func:`picks_from_mask`)."""
    small, pre, plan, emb, labels = _embed_labels(model, image, job.diameter)
    mask = labels == job.cluster
    if job.sequential:
        mask = sequential_mask(emb, mask, seed=job.seed)
    settings = PickSettings(
        diameter=job.diameter / plan.scale,
        edge=None if job.edge is None else job.edge / plan.scale,
        area_fraction=job.area_fraction,
        threshold=job.threshold,
        seed=job.seed,
    )
    exclude = None
    if job.dark_z is not None:
        exclude = darkness(small, settings.diameter) < -job.dark_z
    patch = model.mae.config.patch
    rescore = None
    if ranked and model.ranker is not None:
        ranker = model.ranker

        def rescore(rc: np.ndarray) -> np.ndarray:
            return ranker.probability(emb, rc, patch, settings.diameter)

    df = picks_from_mask(mask, patch, pre.shape, settings, exclude, rescore)
    rc = np.stack([df.y.to_numpy(), df.x.to_numpy()], axis=1).astype(np.int64)
    x, y = plan.to_original(df.x.to_numpy(), df.y.to_numpy())
    return Candidates(df.assign(x=x, y=y), rc, emb, patch, settings.diameter)


def pick_image(model: PickerModel, image: np.ndarray, job: PickJob) -> pd.DataFrame:
    """Picks of one micrograph ``(rows, cols)``: ``x``, ``y`` (original px, x = column),
    ``score`` in [0, 1], ``passes`` (the filters), ``keep`` (those and the threshold)."""
    return find_candidates(model, image, job).picks


def pick_micrograph(model: PickerModel, path: Path, job: PickJob, angpix=None) -> pd.DataFrame:
    """:func:`pick_image` on the micrograph file at ``path``."""
    return pick_image(model, read_micrograph(path, angpix).image, job)


def choose_cluster(
    model: PickerModel,
    paths: list[Path],
    diameter: float,
    example: tuple[Path, pd.DataFrame] | None = None,
) -> tuple[int, dict]:
    """The particle cluster of the model's k-means for these micrographs.

    Without ``example``: the cluster whose strongest blobs on the first :data:`CHOOSE_FROM`
    micrographs average to the most particle-like box (dark centre, brighter ring). With
    ``example`` (a micrograph and its annotated picks, the paper's mode): the cluster
    covering most of the annotated discs."""
    n = model.centroids.shape[0]
    p = model.mae.config.patch
    if example is not None:
        path, picks = example
        image = read_micrograph(path).image
        _, _, plan, _, labels = _embed_labels(model, image, diameter)
        x, y = plan.to_preprocessed(picks.x.to_numpy(), picks.y.to_numpy())
        r = diameter / plan.scale / 2
        rows, cols = np.mgrid[: labels.shape[0], : labels.shape[1]]
        ty, tx = (rows + 0.5) * p - 0.5, (cols + 0.5) * p - 0.5
        inside = np.zeros(labels.shape, bool)
        for cx, cy in zip(x, y, strict=True):
            inside |= (tx - cx) ** 2 + (ty - cy) ** 2 <= r * r
        share = [
            float(((labels == c) & inside).sum() / max(1, (labels == c).sum())) for c in range(n)
        ]
        return int(np.argmax(share)), {"mode": "example", "share_in_particles": share}
    labels, images = [], []
    d_pre = diameter
    for path in paths[:CHOOSE_FROM]:
        image = read_micrograph(path).image
        _, pre, plan, _, lab = _embed_labels(model, image, diameter)
        labels.append(lab)
        images.append(pre)
        d_pre = diameter / plan.scale
    cluster, scores = choose_particle_cluster(labels, images, p, d_pre, n)
    return cluster, {"mode": "mean-box contrast", "contrast": [round(v, 3) for v in scores]}


def _coord_name(key: str) -> str:
    return f"{key}_autopick.star"


def write_autopick_list(path: Path, rows: list[tuple[str, str]]) -> None:
    """RELION 4/5 ``autopick.star``: ``data_coordinate_files`` with micrograph and coordinate
    file names."""
    table = pd.DataFrame(rows, columns=["rlnMicrographName", "rlnMicrographCoordinates"])
    write_star({"coordinate_files": table}, path)


def _settings_match(outdir: Path, settings: dict) -> bool:
    f = outdir / SETTINGS_FILE
    if not f.exists():
        return False
    try:
        return json.loads(f.read_text()) == settings
    except ValueError:
        return False


@dataclass(frozen=True)
class PickTask:
    """One micrograph for :func:`pick_task`: ``model`` a folder (None: the shipped model)."""

    key: str
    path: Path
    job: PickJob
    model: str | None = None
    device: str = "cpu"
    angpix: float | None = None


def pick_task(task: PickTask) -> tuple[pd.DataFrame, float]:
    """The picks of one micrograph and the seconds they took (for a pool or Dask worker)."""
    t0 = time.perf_counter()
    df = pick_micrograph(cached_model(task.model, task.device), task.path, task.job, task.angpix)
    return df, time.perf_counter() - t0


def run_picking(
    mics: pd.DataFrame,
    model: str | None,
    job: PickJob,
    outdir: Path,
    settings: dict,
    on_progress: Callable[[int], None] | None = None,
    angpix: float | None = None,
    device: str = "cpu",
    jobs: int = 1,
) -> pd.DataFrame:
    """Pick every micrograph of ``mics`` (``key``, ``path``, ``name``) into ``outdir`` with
    the model in folder ``model`` (None: shipped), ``jobs`` micrographs at a time. Returns
    the per-micrograph summary (``micrograph``, ``picks``, ``candidates``, ``seconds``,
    ``status``: picked or resumed)."""
    from cryosift.pipeline.executors import run_tasks

    outdir.mkdir(parents=True, exist_ok=True)
    coords = outdir / "Coordinates"
    resume = _settings_match(outdir, settings)
    if not resume:
        for old in coords.glob("*_autopick.star"):
            old.unlink()
    write_all_or_nothing(
        {outdir / SETTINGS_FILE: lambda p: p.write_text(json.dumps(settings, indent=2))}
    )
    rows: dict[str, dict] = {}
    todo = []
    for mic in mics.itertuples():
        target = coords / _coord_name(mic.key)
        if resume and target.exists():
            done = read_coords(target, "relion")
            rows[mic.key] = {"picks": len(done), "candidates": np.nan, "seconds": 0.0}
            rows[mic.key]["status"] = "resumed"
            if on_progress:
                on_progress(1)
        else:
            todo.append(PickTask(mic.key, Path(mic.path), job, model, device, angpix))
    for i, (df, seconds) in run_tasks(pick_task, todo, jobs):
        key = todo[i].key
        kept = df[df.keep].assign(micrograph=key, diameter=job.diameter)
        write_all_or_nothing({coords / _coord_name(key): lambda p, k=kept: write_relion(p, k)})
        rows[key] = {
            "picks": len(kept),
            "candidates": len(df),
            "seconds": round(seconds, 3),
            "status": "picked",
        }
        if on_progress:
            on_progress(1)
    summary = pd.DataFrame([{"micrograph": k, **rows[k]} for k in mics.key])
    listing = [
        (str(m.name), str(Path("Coordinates") / _coord_name(m.key))) for m in mics.itertuples()
    ]
    write_all_or_nothing(
        {
            outdir / "autopick.star": lambda p: write_autopick_list(p, listing),
            outdir / "pick_summary.csv": lambda p: summary.to_csv(p, index=False),
        }
    )
    return summary


def diameter_pixels(diameter_A: float | None, diameter_px: float | None, angpix) -> float:
    """The particle diameter in micrograph px from ``--diameter-A`` or ``--diameter-px``."""
    if (diameter_A is None) == (diameter_px is None):
        raise InputError(None, "give exactly one of --diameter-A and --diameter-px")
    if diameter_px is not None:
        if diameter_px <= 2:
            raise InputError(None, f"--diameter-px {diameter_px} is too small (at least 3 px)")
        return float(diameter_px)
    if not angpix:
        raise InputError(
            None, "--diameter-A needs a pixel size: the micrographs state none, give --angpix"
        )
    d = diameter_A / angpix
    if d <= 2:
        raise InputError(
            None, f"particle diameter {diameter_A} Å is {d:.2f} px at {angpix} Å/px: too small"
        )
    return float(d)


def find_with_diameter(
    spec: Path, diameter_A: float | None, diameter_px: float | None, angpix: float | None
) -> tuple[pd.DataFrame, float | None, float]:
    """Micrographs from ``spec`` (every header checked), their one pixel size (Å, or None)
    and the particle diameter in micrograph px."""
    from cryosift.extract.run import find_micrographs, micrograph_angpix
    from cryosift.io.micrographs import probe_micrograph

    mics = find_micrographs(spec)
    infos = [probe_micrograph(p) for p in mics.path]
    mic_angpix = micrograph_angpix(mics, infos, angpix)
    return mics, mic_angpix, diameter_pixels(diameter_A, diameter_px, mic_angpix)
