"""Picking over many micrographs: one pure job per micrograph, resumable, written atomically.

:func:`pick_micrograph` does everything for one micrograph (read, preprocess, embed, cluster,
find picks, map back to original px) and returns a table; it needs only the model, the
particle cluster and the settings (and the ranker adapted on this run's micrographs), so a
local pool or a Dask worker can run it. The driver (:func:`run_picking`) first surveys the
first micrographs (:mod:`cryosift.picking.adapt`: particle cluster, adapted ranker, their
picks), then picks the rest; it writes ``Coordinates/<key>_autopick.star`` per micrograph
(RELION coordinate STAR with ``_rlnAutopickFigureOfMerit``) as each finishes, then the
RELION 4/5 ``autopick.star`` list and ``pick_summary.csv``. A rerun with the same settings
skips micrographs whose coordinate file exists and reuses the survey's cluster and ranker
from ``pick_state.json``; ``pick_settings.json`` records the settings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cryosift.errors import InputError, SkipLog, skipped_writer
from cryosift.executors import jobs_for, run_tasks
from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.coords import read_coords, write_relion
from cryosift.io.micrographs import read_micrograph, unskipped
from cryosift.io.star import write_star
from cryosift.picking.blobs import blob_features
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
from cryosift.picking.rank import Ranker, candidate_features
from cryosift.picking.recentre import place_picks
from cryosift.preprocess.micrograph import Resize, preprocess_stages
from cryosift.progress import Progress, no_progress

SETTINGS_FILE = "pick_settings.json"
#: The particle cluster and the ranker learned on the survey, for a resumed run.
STATE_FILE = "pick_state.json"
#: Micrographs looked at to choose the particle cluster.
CHOOSE_FROM = 4
#: The survey's class averages, framed particle or junk (written when adapting).
CLASSES_FIGURE = "survey_classes.png"


@dataclass(frozen=True)
class PickJob:
    """What picking one micrograph needs besides the model. ``diameter`` in original px,
    ``edge`` in original px (None: half a diameter), ``cluster``: the particle cluster,
    ``dark_z``: drop picks on areas darker than this (:func:`darkness`; None keeps them),
    ``ranker``: the candidate ranker learned on this run's micrographs
    (:mod:`cryosift.picking.adapt`; None: the model's own, if any)."""

    diameter: float
    cluster: int
    edge: float | None = None
    area_fraction: float | None = None
    threshold: float | None = None
    sequential: bool = False
    seed: int = 0
    dark_z: float | None = DARK_Z
    ranker: Ranker | None = field(default=None, compare=False, repr=False)

    def describe(self) -> dict:
        """The settings as JSON-ready values (the ranker, learned, is recorded elsewhere)."""
        return {k: v for k, v in self.__dict__.items() if k != "ranker"}


@dataclass
class Embedded:
    """One micrograph seen by the model: ``small`` the resized micrograph and ``pre`` its
    preprocessed form (both ``(rows, cols)``), the resize ``plan``, the token embeddings
    ``emb`` ``(h, w, D)`` and their k-means ``labels`` ``(h, w)``."""

    small: np.ndarray
    pre: np.ndarray
    plan: Resize
    emb: np.ndarray
    labels: np.ndarray


def embed_image(model: PickerModel, image: np.ndarray, diameter: float) -> Embedded:
    """Preprocess, embed and label one micrograph ``(rows, cols)``."""
    small, pre, plan = preprocess_stages(image, diameter, **model.preprocess)
    emb = embed_micrograph(model.mae, pre, model.mean, model.std)
    return Embedded(small, pre, plan, emb, nearest_centroid(emb, model.kmeans()))


@dataclass
class Candidates:
    """What picking found on one micrograph: ``picks`` (``x``, ``y`` in original px, moved onto
    their blob, :mod:`cryosift.picking.recentre`; ``score``, ``passes``, ``keep``), where the
    particle map found them ``rc`` ``(N, 2)`` (row, col) in preprocessed px (the ranker's
    features and the survey's boxes are taken there),
    the token embeddings ``emb`` ``(h, w, D)``, the token side ``patch``, the particle
    ``diameter`` in preprocessed px and the resized micrograph ``small`` (the blob
    features' source)."""

    picks: pd.DataFrame
    rc: np.ndarray
    emb: np.ndarray
    patch: int
    diameter: float
    small: np.ndarray

    def features(self) -> np.ndarray:
        """``(N, D + B)`` the ranker's input: the mean embedding over each candidate's
        particle disc, then its blob features."""
        disc = candidate_features(self.emb, self.rc, self.patch, self.diameter)
        blobs = blob_features(self.small, self.rc, self.diameter)
        return np.concatenate([disc, blobs], axis=1)


def active_ranker(model: PickerModel, job: PickJob) -> Ranker | None:
    """The ranker that scores candidates: the one learned in this run, else the model's."""
    return job.ranker if job.ranker is not None else model.ranker


def candidates_of(
    model: PickerModel, seen: Embedded, job: PickJob, ranker: Ranker | None, place: bool = True
) -> Candidates:
    """Candidates of an embedded micrograph, scored by ``ranker`` (None: the particle map;
    see :func:`picks_from_mask`); ``place``: picks moved onto their blob and coincident
    kept ones dropped (:func:`~cryosift.picking.recentre.place_picks`), else where the map
    found them."""
    mask = seen.labels == job.cluster
    if job.sequential:
        mask = sequential_mask(seen.emb, mask, seed=job.seed)
    plan = seen.plan
    threshold = job.threshold
    if threshold is None and ranker is not None:  # a trained model's own default
        threshold = ranker.info.get("default_threshold")
    settings = PickSettings(
        diameter=job.diameter / plan.scale,
        edge=None if job.edge is None else job.edge / plan.scale,
        area_fraction=job.area_fraction,
        threshold=threshold,
        seed=job.seed,
    )
    exclude = None
    if job.dark_z is not None:
        exclude = darkness(seen.small, settings.diameter) < -job.dark_z
    patch = model.mae.config.patch
    rescore = None
    if ranker is not None:

        def rescore(rc: np.ndarray) -> np.ndarray:
            blobs = matches = None
            if ranker.blob_weights is not None:
                blobs = blob_features(seen.small, rc, settings.diameter)
            if ranker.uses_templates and ranker.templates is not None:
                from cryosift.picking.classes import class_boxes, template_match

                boxes = class_boxes(seen.small, rc, settings.diameter)
                matches = template_match(ranker.templates, boxes)
            return ranker.probability(seen.emb, rc, patch, settings.diameter, blobs, matches)

    df = picks_from_mask(mask, patch, seen.pre.shape, settings, exclude, rescore)
    rc = np.stack([df.y.to_numpy(), df.x.to_numpy()], axis=1).astype(np.int64)
    moved, alone = rc, df.keep.to_numpy()
    if place:
        edge = settings.diameter / 2 if settings.edge is None else settings.edge
        moved, alone = place_picks(seen.small, rc, alone, settings.diameter, edge)
    x, y = plan.to_original(moved[:, 1].astype(np.float64), moved[:, 0].astype(np.float64))
    duplicate = df.keep.to_numpy() & ~alone
    df = df.assign(x=x, y=y, passes=df.passes & ~duplicate, keep=df.keep & ~duplicate)
    return Candidates(df, rc, seen.emb, patch, settings.diameter, seen.small)


def find_candidates(
    model: PickerModel, image: np.ndarray, job: PickJob, ranked: bool = True
) -> Candidates:
    """Candidates of one micrograph ``(rows, cols)``, scored by the run's or the model's
    ranker when there is one and ``ranked``, else by the particle map."""
    seen = embed_image(model, image, job.diameter)
    return candidates_of(model, seen, job, active_ranker(model, job) if ranked else None)


def pick_image(model: PickerModel, image: np.ndarray, job: PickJob) -> pd.DataFrame:
    """Picks of one micrograph ``(rows, cols)``: ``x``, ``y`` (original px, x = column),
    ``score`` in [0, 1], ``passes`` (the filters), ``keep`` (those and the threshold)."""
    return find_candidates(model, image, job).picks


def pick_micrograph(model: PickerModel, path: Path, job: PickJob, angpix=None) -> pd.DataFrame:
    """:func:`pick_image` on the micrograph file at ``path``."""
    return pick_image(model, read_micrograph(path, angpix).image, job)


def cluster_from_survey(
    model: PickerModel, seen: list[Embedded], diameter: float
) -> tuple[int, dict]:
    """The particle cluster of the model's k-means: the one whose strongest blobs on the
    embedded micrographs ``seen`` average to the most particle-like box (dark centre,
    brighter ring)."""
    n = model.kmeans().shape[0]
    d_pre = diameter / seen[0].plan.scale
    labels, images = [s.labels for s in seen], [s.pre for s in seen]
    cluster, scores = choose_particle_cluster(labels, images, model.mae.config.patch, d_pre, n)
    return cluster, {"mode": "mean-box contrast", "contrast": [round(v, 3) for v in scores]}


def choose_cluster(
    model: PickerModel,
    paths: list[Path],
    diameter: float,
    example: tuple[Path, pd.DataFrame] | None = None,
) -> tuple[int, dict]:
    """The particle cluster of the model's k-means for these micrographs.

    Without ``example``: :func:`cluster_from_survey` on the first :data:`CHOOSE_FROM`
    micrographs. With ``example`` (a micrograph and its annotated picks, the paper's mode):
    the cluster covering most of the annotated discs."""
    if example is None:
        seen = [embed_image(model, read_micrograph(p).image, diameter) for p in paths[:CHOOSE_FROM]]
        return cluster_from_survey(model, seen, diameter)
    n = model.kmeans().shape[0]
    p = model.mae.config.patch
    path, picks = example
    one = embed_image(model, read_micrograph(path).image, diameter)
    labels, plan = one.labels, one.plan
    x, y = plan.to_preprocessed(picks.x.to_numpy(), picks.y.to_numpy())
    r = diameter / plan.scale / 2
    rows, cols = np.mgrid[: labels.shape[0], : labels.shape[1]]
    ty, tx = (rows + 0.5) * p - 0.5, (cols + 0.5) * p - 0.5
    inside = np.zeros(labels.shape, bool)
    for cx, cy in zip(x, y, strict=True):
        inside |= (tx - cx) ** 2 + (ty - cy) ** 2 <= r * r
    share = [float(((labels == c) & inside).sum() / max(1, (labels == c).sum())) for c in range(n)]
    return int(np.argmax(share)), {"mode": "example", "share_in_particles": share}


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


def _prepare_or_resume(
    mics: pd.DataFrame,
    model: str | None,
    job: PickJob,
    outdir: Path,
    resume: bool,
    device: str,
    angpix: float | None,
    adapt: bool,
    example: tuple | None,
    skips: SkipLog | None = None,
    progress: Progress = no_progress,
) -> tuple[PickJob, dict, dict]:
    """The job to pick with, the surveyed micrographs' candidates by key and the state (see
    :func:`cryosift.picking.adapt.prepare_picking`, its steps reported through ``progress``),
    or those a resumed run recorded."""
    from cryosift.picking.adapt import job_from_state, prepare_picking

    path = outdir / STATE_FILE
    if resume and path.exists():
        try:
            state = json.loads(path.read_text())
            return job_from_state(job, state), {}, state
        except (ValueError, KeyError):
            pass
    paths = dict(zip(mics.key, mics.path, strict=True))
    picker = cached_model(model, device)
    job, picks, state, classes = prepare_picking(
        picker, paths, job, angpix, adapt, example, skips, progress
    )
    writers = {path: lambda p: p.write_text(json.dumps(state, indent=2))}
    if classes is not None:
        from cryosift.picking.classes import survey_classes_figure

        writers[outdir / CLASSES_FIGURE] = lambda p: survey_classes_figure(classes, p)
    write_all_or_nothing(writers)
    return job, picks, state


def run_picking(
    mics: pd.DataFrame,
    model: str | None,
    job: PickJob,
    outdir: Path,
    settings: dict,
    on_progress: Callable[[int], None] | None = None,
    angpix: float | None = None,
    device: str = "cpu",
    jobs: int | None = 1,
    adapt: bool = True,
    example: tuple | None = None,
    skips: SkipLog | None = None,
    progress: Progress = no_progress,
) -> tuple[pd.DataFrame, dict]:
    """Pick every micrograph of ``mics`` (``key``, ``path``, ``name``) into ``outdir`` with
    the model in folder ``model`` (None: shipped), ``jobs`` micrographs at a time: first the
    survey (particle cluster, and the ranker learned on it when ``adapt``; its steps through
    ``progress``), then the rest.
    Returns the per-micrograph summary (``micrograph``, ``picks``, ``below_threshold``: the
    candidates the threshold left out, ``candidates``: all peaks found, ``on_dark_areas``:
    picks the darkness filter left out (``job.dark_z``), ``seconds``,
    ``status``: picked or resumed) and the state (cluster, ranker). With ``skips``, a
    micrograph that cannot be used is left out through it (no coordinate file, no row) and
    the others go on; without, its error ends the run."""
    coords = outdir / "Coordinates"
    resume = _start(outdir, settings)
    t0 = time.perf_counter()
    job, surveyed, state = _prepare_or_resume(
        mics, model, job, outdir, resume, device, angpix, adapt, example, skips, progress
    )
    survey_seconds = (time.perf_counter() - t0) / max(1, len(surveyed))
    rows: dict[str, dict] = {}

    def write(key: str, df: pd.DataFrame, seconds: float) -> None:
        kept = df[df.keep].assign(micrograph=key, diameter=job.diameter)
        write_all_or_nothing({coords / _coord_name(key): lambda p: write_relion(p, kept)})
        rows[key] = _picked_row(df, seconds)
        if on_progress:
            on_progress(1)

    todo = []
    for mic in unskipped(mics, skips).itertuples():
        target = coords / _coord_name(mic.key)
        if resume and target.exists():
            rows[mic.key] = _resumed_row(len(read_coords(target, "relion")))
            if on_progress:
                on_progress(1)
        elif mic.key in surveyed:
            write(mic.key, surveyed[mic.key], survey_seconds)
        else:
            todo.append(PickTask(mic.key, Path(mic.path), job, model, device, angpix))

    def failed(i: int, exc: InputError) -> None:
        if skips is None:
            raise exc
        skips.skip(exc, todo[i].path)
        if on_progress:
            on_progress(1)

    on_error = None if skips is None else failed
    for i, (df, seconds) in run_tasks(pick_task, todo, jobs_for(len(todo), jobs), None, on_error):
        write(todo[i].key, df, seconds)
    return _write_listing(outdir, mics[mics.key.isin(rows)], rows, skips), state


def _start(outdir: Path, settings: dict) -> bool:
    """Whether a pick into ``outdir`` resumes (its recorded settings are ``settings``); if
    not, the outputs of other settings are removed. The settings are recorded either way."""
    outdir.mkdir(parents=True, exist_ok=True)
    resume = _settings_match(outdir, settings)
    if not resume:
        for old in (outdir / "Coordinates").glob("*_autopick.star"):
            old.unlink()
        (outdir / STATE_FILE).unlink(missing_ok=True)
        (outdir / CLASSES_FIGURE).unlink(missing_ok=True)
    write_all_or_nothing(
        {outdir / SETTINGS_FILE: lambda p: p.write_text(json.dumps(settings, indent=2))}
    )
    return resume


def _picked_row(df: pd.DataFrame, seconds: float) -> dict:
    """The summary row of a micrograph picked now from its candidates ``df``."""
    return {
        "picks": int(df.keep.sum()),
        "below_threshold": int((df.passes & ~df.keep).sum()),  # left out by the threshold
        "candidates": len(df),
        "on_dark_areas": int(df.excluded.sum()),
        "seconds": round(seconds, 3),
        "status": "picked",
    }


def _resumed_row(picks: int) -> dict:
    """The summary row of a micrograph picked by an earlier run (``picks`` in its file)."""
    unknown = {k: np.nan for k in ("below_threshold", "candidates", "on_dark_areas")}
    return {"picks": picks, **unknown, "seconds": 0.0, "status": "resumed"}


def _write_listing(
    outdir: Path, done: pd.DataFrame, rows: dict[str, dict], skips: SkipLog | None
) -> pd.DataFrame:
    """``autopick.star``, ``pick_summary.csv`` (and the skipped list) of the micrographs
    ``done`` (``key``, ``name``) with their summary ``rows`` by key; returns the summary."""
    if not len(done):
        raise (skips or SkipLog()).none_left()
    summary = pd.DataFrame([{"micrograph": k, **rows[k]} for k in done.key])
    listing = [
        (str(m.name), str(Path("Coordinates") / _coord_name(m.key))) for m in done.itertuples()
    ]
    writers = {
        outdir / "autopick.star": lambda p: write_autopick_list(p, listing),
        outdir / "pick_summary.csv": lambda p: summary.to_csv(p, index=False),
    }
    write_all_or_nothing({**writers, **skipped_writer(outdir, skips)})
    return summary
