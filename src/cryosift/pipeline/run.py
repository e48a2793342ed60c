"""``cryosift run``'s driver: micrographs -> picks -> particles -> inliers, resumable.

Layout of OUTDIR (names relative to it; ``name_prefix``, OUTDIR seen from the RELION project
directory, is put in front of the file names written *inside* STAR files, so that RELION,
which resolves them from its project directory, finds them: :mod:`cryosift.io.paths`):

- ``Coordinates/<key>_autopick.star`` per micrograph and ``autopick.star`` (RELION 4/5 list);
- ``Particles/<key>.mrcs`` per micrograph and ``particles.star`` (RELION 3.1, all picks whose
  box lies inside the micrograph);
- ``inliers.star``, ``outliers.star``, ``scores.csv`` (``cryosift clean``'s outputs, with the
  micrograph and coordinates of each particle added);
- ``pick_summary.csv`` (one row per micrograph), ``metrics.csv`` (with ``--truth``),
  ``report.html`` and ``run.json`` (every parameter, versions, timings).

Each micrograph's files are written together, ``Done/<key>.json`` last: a micrograph counts as
finished only when that record exists, so a run killed at any moment leaves nothing a rerun
would trust half-written; a rerun with the same settings skips finished micrographs. Files that
sum up the whole run are written at the end, all or nothing.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cryosift import __version__
from cryosift.errors import InputError, SkipLog, skipped_writer
from cryosift.executors import jobs_for, run_tasks
from cryosift.extract.run import ExtractSettings, MicrographJob, particle_rows
from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.coords import read_coords, write_relion
from cryosift.io.micrographs import unskipped
from cryosift.io.mrc import write_stack
from cryosift.io.particles import read_particles
from cryosift.io.star import write_star
from cryosift.outliers.clean import CleanConfig, clean_particles, write_clean_outputs
from cryosift.picking.model import cached_model
from cryosift.picking.run import PickJob, write_autopick_list
from cryosift.pipeline.tasks import MicrographResult, MicrographTask, process_micrograph
from cryosift.progress import Progress, no_progress

if TYPE_CHECKING:
    from cryosift.picking.classes import SurveyClasses

STATE_FILE = "run_state.json"


class Aborted(Exception):
    """The run was asked to stop (e.g. RELION's ``RELION_JOB_ABORT_NOW``)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides the outputs. Lengths in micrograph px unless stated:
    ``diameter`` of the particle, ``box`` cut around each pick, ``size`` the boxes are
    Fourier-cropped to; ``clean_size`` the side the outlier detector works at; ``classes``
    the 2D classes of all particles (0: no classification); ``strict_clean``: the radial
    threshold is never loosened at moderate separability (``--strict-threshold``);
    ``keep_dark_areas``: picks on areas far darker than the micrograph are kept
    (``--keep-dark-areas``; :data:`cryosift.picking.pick.DARK_Z`)."""

    diameter: float
    box: int
    size: int
    angpix: float | None = None
    threshold: float | None = None
    area_fraction: float | None = None
    edge: float | None = None
    sequential: bool = False
    model: str | None = None
    phase_flip: bool = True
    invert: bool = True
    rules: str = "radial"
    adapt: bool = True
    peaks: int = 10
    clean_size: int = 55
    classes: int = 20
    seed: int = 0
    strict_clean: bool = False
    keep_dark_areas: bool = False

    def describe(self) -> dict:
        """The settings as JSON-ready values; ``keep_dark_areas`` only when set, so that a
        run started before it existed resumes with the same settings."""
        out = dataclasses.asdict(self)
        if not self.keep_dark_areas:
            out.pop("keep_dark_areas")
        return out


@dataclass
class RunResult:
    """Per-micrograph summary, the clean table, metrics (or None) and timings (s)."""

    summary: pd.DataFrame
    scores: pd.DataFrame
    metrics: pd.DataFrame | None
    timings: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)
    #: The micrographs left out (``micrograph``, ``reason``), in the order they were met.
    skipped: list = field(default_factory=list)
    #: PNG bytes of the 2D class averages of the inliers and of the removed particles.
    class_galleries: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- state


def _check_state(outdir: Path, settings: dict, overwrite: bool) -> dict | None:
    """The previous run's state when it had the same settings; an :class:`InputError` when
    it had others (unless ``overwrite``)."""
    path = outdir / STATE_FILE
    if not path.exists() or overwrite:
        return None
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return None
    if old.get("settings") != settings:
        before = old.get("settings") or {}
        diff = [k for k in settings if before.get(k) != settings[k]]
        raise InputError(
            path,
            f"holds a run with other settings ({', '.join(diff) or 'format'}); "
            "choose another --outdir or pass --overwrite",
        )
    return old


def _clear(outdir: Path) -> None:
    """Remove a previous run's per-micrograph outputs (``--overwrite``)."""
    for sub, pattern in (("Done", "*.json"), ("Coordinates", "*_autopick.star")):
        for f in (outdir / sub).glob(pattern):
            f.unlink()
    for f in (outdir / "Particles").glob("*.mrcs"):
        f.unlink()
    (outdir / "survey_classes.png").unlink(missing_ok=True)


def _remove_stale_parts(outdir: Path) -> None:
    """Temporary files of a run that was killed before it could rename them."""
    for f in outdir.rglob(".*.part"):
        f.unlink(missing_ok=True)


def _done_path(outdir: Path, key: str) -> Path:
    return outdir / "Done" / f"{key}.json"


def _read_done(outdir: Path, key: str) -> dict | None:
    path = _done_path(outdir, key)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return None
    files = [outdir / f for f in record.get("files", [])]
    return record if all(f.exists() for f in files) else None


def _prepare(
    mics: pd.DataFrame,
    cfg: RunConfig,
    device: str,
    given: dict | None,
    skips: SkipLog | None,
    progress: Progress = no_progress,
) -> tuple[dict, dict[str, pd.DataFrame], SurveyClasses | None]:
    """The run's state (particle cluster, ranker adapted on the survey), the surveyed
    micrographs' candidates by key and the survey's classes
    (:func:`cryosift.picking.adapt.prepare_picking`, its steps reported as "survey")."""
    if given is not None:
        how = {"mode": "given coordinates, no picking"}
        return {"cluster": -1, "cluster_choice": how, "ranker": None, "adapt": None}, {}, None
    from cryosift.picking.adapt import prepare_picking

    model = cached_model(cfg.model, device)
    paths = dict(zip(mics.key, mics.path, strict=True))
    _, surveyed, state, classes = prepare_picking(
        model, paths, pick_job(cfg), cfg.angpix, cfg.adapt, skips=skips, progress=progress
    )
    return state, surveyed, classes


# --------------------------------------------------------------------------- one micrograph


def _particle_rows(task: MicrographTask, res: MicrographResult) -> dict:
    """The STAR columns of one micrograph's extracted particles (names relative to OUTDIR)."""
    job = MicrographJob(task.key, task.name, task.path, res.shape, res.picks, task.ctf)
    rows = particle_rows(job, np.flatnonzero(res.inside), f"Particles/{task.key}.mrcs")
    return rows.to_dict(orient="list")


def write_micrograph(outdir: Path, task: MicrographTask, res: MicrographResult) -> dict:
    """Write one micrograph's coordinates, stack and record (the record last). Returns the
    record: its summary row and particle rows."""
    coords = f"Coordinates/{task.key}_autopick.star"
    stack = f"Particles/{task.key}.mrcs"
    picks = res.picks.assign(micrograph=task.key)
    summary = {
        "micrograph": task.name,
        "key": task.key,
        "candidates": res.candidates,
        "on_dark_areas": res.on_dark_areas,
        "picks": len(res.picks),
        "extracted": int(res.inside.sum()),
        "off_edge": int((~res.inside).sum()),
        "seconds": round(res.seconds, 3),
    }
    files = [coords]
    record = {"summary": summary, "particles": _particle_rows(task, res), "files": files}
    writers: dict[Path, Callable[[Path], object]] = {
        outdir / coords: partial(write_relion, picks=picks)
    }
    if len(res.boxes):
        files.append(stack)
        writers[outdir / stack] = lambda p: write_stack(p, res.boxes, task.extract.out_angpix)
    writers[_done_path(outdir, task.key)] = lambda p: p.write_text(json.dumps(record))
    write_all_or_nothing(writers)
    return record


# --------------------------------------------------------------------------- the run


def pick_job(cfg: RunConfig, state: dict | None = None) -> PickJob:
    """How to pick, from the run's settings and (when known) its state: the particle
    cluster and the adapted ranker."""
    from cryosift.picking.adapt import job_from_state

    job = PickJob(
        diameter=cfg.diameter,
        cluster=-1,
        edge=cfg.edge,
        area_fraction=cfg.area_fraction,
        threshold=cfg.threshold,
        sequential=cfg.sequential,
        seed=cfg.seed,
    )
    if cfg.keep_dark_areas:
        job = replace(job, dark_z=None)
    return job if state is None else job_from_state(job, state)


def make_tasks(
    mics: pd.DataFrame,
    cfg: RunConfig,
    state: dict,
    device: str,
    ctf: dict[str, dict] | None,
    given: dict[str, pd.DataFrame] | None = None,
    surveyed: dict[str, pd.DataFrame] | None = None,
) -> list[MicrographTask]:
    """One task per micrograph of ``mics`` (``key``, ``name``, ``path``); with ``given``
    picks by key, those are extracted instead of picking; ``surveyed`` micrographs' picks
    (candidates with ``keep``) were found already, so their tasks only extract."""
    optics = next(iter(ctf.values())) if ctf else {}
    settings = extract_settings(cfg, optics, phase_flip=cfg.phase_flip and bool(ctf))
    job = pick_job(cfg, state)
    surveyed = surveyed or {}

    def known(key: str) -> pd.DataFrame | None:
        if given is not None:
            return _given(given[key])
        found = surveyed.get(key)
        return None if found is None else found[["x", "y", "score", "keep", "excluded"]]

    return [
        MicrographTask(
            key=m.key,
            name=str(m.name),
            path=Path(m.path),
            pick=job,
            extract=settings,
            model=cfg.model,
            device=device,
            ctf=ctf[m.key] if ctf else None,
            angpix=cfg.angpix,
            given=known(m.key),
        )
        for m in mics.itertuples()
    ]


def _given(picks: pd.DataFrame) -> pd.DataFrame:
    """Picks read by :func:`cryosift.io.coords.read_coords` (``score`` NaN when the format
    has none) as a task takes them: every one kept, none left out on a dark area."""
    return picks[["x", "y", "score"]].reset_index(drop=True).assign(keep=True, excluded=False)


def extract_settings(cfg: RunConfig, optics: dict, phase_flip: bool) -> ExtractSettings:
    """How boxes are cut: background outside the particle circle, contrast inverted (RELION's
    convention: particles bright), phase flipped when the CTF is known."""
    return ExtractSettings(
        box=cfg.box,
        size=cfg.size,
        angpix=cfg.angpix,
        bg_radius=round(cfg.diameter / 2 * cfg.size / cfg.box, 3),
        invert=cfg.invert,
        phase_flip=phase_flip,
        voltage=float(optics.get("rlnVoltage", 300.0)),
        cs=float(optics.get("rlnSphericalAberration", 2.7)),
        amplitude_contrast=float(optics.get("rlnAmplitudeContrast", 0.1)),
    )


def _prefixed(prefix: str, names: pd.Series) -> pd.Series:
    """``name_prefix`` inserted after ``NNNNNN@`` of image names, or before plain names."""
    if not prefix:
        return names
    return names.str.replace(r"^(\d+@)?", lambda m: (m.group(1) or "") + prefix, regex=True)


def _write_lists(
    outdir: Path,
    mics: pd.DataFrame,
    records: list[dict],
    settings: ExtractSettings,
    prefix: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``autopick.star``, ``particles.star`` and ``pick_summary.csv`` from the records."""
    summary = pd.DataFrame([r["summary"] for r in records])
    if "on_dark_areas" not in summary:  # records written before the count: unknown
        summary["on_dark_areas"] = np.nan
    parts = [pd.DataFrame(r["particles"]) for r in records if r["summary"]["extracted"]]
    particles = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(particles):
        particles["rlnImageName"] = _prefixed(prefix, particles["rlnImageName"])
    optics = settings.optics()
    listing = [
        (str(m.name), f"{prefix}Coordinates/{m.key}_autopick.star") for m in mics.itertuples()
    ]
    writers = {
        outdir / "autopick.star": lambda p: write_autopick_list(p, listing),
        outdir / "pick_summary.csv": lambda p: summary.to_csv(p, index=False),
    }
    if len(particles):
        writers[outdir / "particles.star"] = lambda p: write_star(
            {"optics": optics, "particles": particles}, p
        )
    write_all_or_nothing(writers)
    return summary, particles


def truth_metrics(
    truth: dict[str, pd.DataFrame],
    picks: dict[str, pd.DataFrame],
    scores: pd.DataFrame,
    keys: dict[str, str],
    diameter: float,
) -> pd.DataFrame:
    """Pooled one-to-one precision / recall / F1 (within half a diameter) of the picks, of
    the extracted particles and of the inliers. ``truth`` and ``picks`` by micrograph key;
    ``scores`` has ``micrograph`` (names, mapped to keys by ``keys``), ``x_px``, ``y_px``."""
    from cryosift.evaluate.picks import evaluate_picks

    table = scores.assign(key=scores.micrograph.map(keys), x=scores.x_px, y=scores.y_px)
    sets = {
        "picks": picks,
        "extracted particles": {k: g for k, g in table.groupby("key")},
        "inliers (cleaned)": {k: g for k, g in table[table.verdict == "inlier"].groupby("key")},
    }
    rows = []
    for label, by_key in sets.items():
        pooled = evaluate_picks(by_key, truth, diameter).iloc[-1]
        rows.append(
            {
                "set": label,
                "picks": int(pooled.picks),
                "true_positives": int(pooled.tp),
                "truth": int(pooled.truth),
                "precision": float(pooled.precision),
                "recall": float(pooled.recall),
                "f1": float(pooled.f1),
            }
        )
    return pd.DataFrame(rows)


def _classify_stage(
    pset,
    result,
    cfg: RunConfig,
    device: str,
    timings: dict,
    adapted: dict | None,
    progress: Progress = no_progress,
):
    """2D classes of all particles (``cfg.classes``; None at 0 or with too few particles; beyond
    :data:`cryosift.classify.run.MAX_CLASSIFIED` particles, those of an evenly spaced
    sample, which the others then join: :func:`cryosift.classify.vote.join_rest`; the
    classification and the join are tasks of ``progress``), and their vote on the cleaning
    ``result`` (:mod:`cryosift.classify.vote`), whose table and statistics it changes;
    ``adapted``, the picker's adaptation record, says whether the survey doubts the radial
    profiles (:func:`cryosift.picking.adapt.radial_doubt`); with it, the vote may leave out
    loosened rejects that fit like noise, and, when the picks were cut between two humps at
    the defaults (no ``--threshold``, ``--area-fraction`` or ``--strict-threshold``), keeps
    the radial rejects (:func:`cryosift.picking.adapt.picks_trusted`)."""
    if cfg.classes <= 0:
        return None
    from cryosift.classify.run import class_numbers, classify_run_particles
    from cryosift.classify.vote import class_vote, combine, join_rest, record
    from cryosift.picking.adapt import picks_trusted, radial_doubt

    t0 = time.perf_counter()
    found = classify_run_particles(pset, cfg.diameter / 2 / cfg.box, cfg.classes, cfg.seed,
                                   device, progress=progress)  # fmt: skip
    timings["2D classes"] = time.perf_counter() - t0
    if found is None:
        return None
    vote = class_vote(found.images, found.result, found.radius, cfg.seed)
    if found.sampled:  # the other particles join the sample's classes and vote
        whole, vote = join_rest(pset, found.rows, found.images, found.sample, vote, cfg.seed,
                                device, progress)  # fmt: skip
        found = replace(found, result=whole)
    vote.numbers = class_numbers(found.result, found.ranking)  # as the classes' files number
    default = cfg.threshold is None and cfg.area_fraction is None and not cfg.strict_clean
    trusted = picks_trusted(adapted) if default else None
    combine(result.table, vote, radial_doubt(adapted), adapted is not None, trusted)
    record(result, vote, classified=len(found.rows))
    timings["class vote"] = vote.seconds
    return found


def _write_classes(run: RunResult, found, pset, outdir: Path, prefix: str) -> None:
    """The classes' files into ``outdir/classes``; their facts and galleries into ``run``."""
    if found is None:
        return
    from cryosift.classify.run import write_run_classes

    inlier = run.scores["verdict"].to_numpy() == "inlier"
    written = write_run_classes(found, pset, inlier, outdir / "classes", f"{prefix}classes/")
    run.facts["classes"] = written["facts"]
    run.class_galleries = written["galleries"]


def versions() -> dict:
    """Versions of cryosift and of the libraries that decide its numbers."""
    import mrcfile
    import scipy
    import sklearn
    import starfile
    import torch

    return {
        "cryosift": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "mrcfile": mrcfile.__version__,
        "starfile": getattr(starfile, "__version__", "unknown"),
    }


def _survey(
    mics: pd.DataFrame,
    cfg: RunConfig,
    outdir: Path,
    settings: dict,
    overwrite: bool,
    device: str,
    given: dict | None,
    skips: SkipLog | None = None,
    progress: Progress = no_progress,
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The run's state (particle cluster, adapted ranker), from a previous run with the same
    ``settings`` or from a new survey (written to :data:`STATE_FILE`), and the surveyed
    micrographs' candidates by key (empty when resumed)."""
    state = _check_state(outdir, settings, overwrite)
    if overwrite:
        _clear(outdir)
    if state is not None:
        return state, {}
    state, surveyed, classes = _prepare(mics, cfg, device, given, skips, progress)
    state = {"settings": settings, **state}
    writers = {outdir / STATE_FILE: lambda p: p.write_text(json.dumps(state, indent=2))}
    if classes is not None:
        from cryosift.picking.classes import survey_classes_figure
        from cryosift.picking.run import CLASSES_FIGURE

        writers[outdir / CLASSES_FIGURE] = lambda p: survey_classes_figure(classes, p)
    write_all_or_nothing(writers)
    return state, surveyed


def _pick_and_extract(
    tasks: list[MicrographTask],
    outdir: Path,
    jobs: int | None,
    scheduler: str | None,
    progress: Progress,
    stop: Callable[[], bool],
    skips: SkipLog | None = None,
) -> list[dict]:
    """Every micrograph's record (in the order of ``tasks``): finished ones read back, the
    rest picked and extracted, each written as soon as it is done; with ``skips``, one that
    fails on its input is left out through it (and has no record). Raises :class:`Aborted`
    when ``stop`` says so between micrographs."""
    records: dict[str, dict] = {}
    todo = []
    for task in tasks:
        done = _read_done(outdir, task.key)
        if done is not None:
            records[task.key] = {**done, "status": "resumed"}
        else:
            todo.append(task)
    advance = progress("picking + extracting", len(tasks))
    advance(len(tasks) - len(todo))
    if stop():
        raise Aborted("stop requested before picking")

    def failed(i: int, exc: InputError) -> None:
        if skips is None:
            raise exc
        skips.skip(exc, todo[i].path)
        advance(1)

    on_error = None if skips is None else failed
    jobs = jobs_for(sum(t.given is None for t in todo), jobs)
    for i, res in run_tasks(process_micrograph, todo, jobs, scheduler, on_error):
        records[res.key] = {**write_micrograph(outdir, todo[i], res), "status": "picked"}
        advance(1)
        if stop():
            raise Aborted(f"stop requested after {len(records)} of {len(tasks)} micrographs")
    ordered = [records[t.key] for t in tasks if t.key in records]
    for rec in ordered:
        rec["summary"]["status"] = rec["status"]
    return ordered


def clean_config(cfg: RunConfig) -> CleanConfig:
    """How a run cleans its extracted particles (already phase flipped when the run flips):
    the particle radius in px of the extracted boxes, the run's size, preset and seed."""
    return CleanConfig(
        radius_px=cfg.diameter / 2 * cfg.size / cfg.box,
        size=cfg.clean_size,
        peaks=cfg.peaks,
        rules=cfg.rules,
        phase_flip=False,
        seed=cfg.seed,
        loosen=not cfg.strict_clean,
    )


def _clean(pset, particles: pd.DataFrame, cfg: RunConfig, progress: Progress):
    """``cryosift clean`` on the extracted particles ``pset``; its result, whose table gains
    each particle's micrograph, coordinates (px) and pick score from ``particles``."""
    progress_cb = progress("cleaning", len(pset))
    result = clean_particles(pset, clean_config(cfg), on_progress=progress_cb)
    table = result.table
    table.insert(2, "micrograph", particles["rlnMicrographName"].to_numpy())
    table.insert(3, "x_px", particles["rlnCoordinateX"].to_numpy())
    table.insert(4, "y_px", particles["rlnCoordinateY"].to_numpy())
    fom = particles.get("rlnAutopickFigureOfMerit", pd.Series(np.nan, particles.index))
    table.insert(5, "pick_score", fom.to_numpy(float))
    return result


def _ranker_fact(ranker: dict | None) -> dict | None:
    """The ranker for ``run.json``: its templates (the survey's particle class averages,
    kept in the run's state file) named by their number and size, not listed."""
    if ranker is None or ranker.get("templates") is None:
        return ranker
    t = np.asarray(ranker["templates"])
    return {**ranker, "templates": f"{len(t)} particle class averages of {t.shape[-1]} px"}


def _facts(state: dict, result, extract: ExtractSettings) -> dict:
    """What the run found out (cluster, adaptation, cleaning's statistics) for ``run.json``."""
    return {
        "particle_cluster": int(state["cluster"]),
        "cluster_choice": state["cluster_choice"],
        "adaptation": state.get("adapt"),
        "ranker": _ranker_fact(state.get("ranker")),
        "clean": {
            **result.stats,
            "size": result.size,
            "radius_px": round(result.radius, 3),
            "phase_flipped": result.phase_flipped,
        },
        "extract": extract.describe(),
    }


def _write_run_json(outdir: Path, run: RunResult, result, cfg: RunConfig, context: dict) -> None:
    """``run.json``: inputs, parameters, facts, counts, metrics, timings, versions;
    ``context`` holds ``inputs``, ``jobs``, ``dask_scheduler`` and ``device``."""
    summary, inputs = run.summary, context["inputs"]
    doc = {
        "complete": True,
        "command": inputs.get("command"),
        "inputs": inputs,
        "parameters": cfg.describe(),
        "facts": run.facts,
        "counts": {
            "micrographs": len(summary),
            "micrographs_resumed": int((summary.status == "resumed").sum()),
            "micrographs_skipped": len(run.skipped),
            "picks": int(summary.picks.sum()),
            "particles": len(run.scores),
            **{f"verdict_{k}": v for k, v in result.counts().items()},
        },
        "skipped": run.skipped,
        "metrics": None if run.metrics is None else run.metrics.to_dict(orient="records"),
        "timings_s": {k: round(v, 3) for k, v in run.timings.items()},
        "versions": versions(),
        **{k: context[k] for k in ("jobs", "dask_scheduler", "device")},
    }
    write_all_or_nothing(
        {outdir / "run.json": lambda p: p.write_text(json.dumps(doc, indent=2, default=str))}
    )


def _resume_settings(
    cfg: RunConfig, ctf: dict | None, given: dict[str, pd.DataFrame] | None
) -> dict:
    """What a rerun must match to resume. The micrographs are not part of it: a rerun with
    more (data still being collected) picks the new ones with the same particle cluster and
    keeps the rest. Nor is ``strict_clean``: the cleaning is redone over all particles on
    every run."""
    settings = {**cfg.describe(), "ctf": bool(ctf)}
    settings.pop("strict_clean")
    if given is not None:
        settings["given_picks"] = {k: len(v) for k, v in sorted(given.items())}
    return settings


def _metrics(
    outdir: Path,
    summary: pd.DataFrame,
    truth: dict[str, pd.DataFrame],
    table: pd.DataFrame,
    diameter: float,
) -> pd.DataFrame:
    """:func:`truth_metrics` of the written picks (``summary``'s micrographs) and the clean
    ``table`` against the true coordinates ``truth`` by key."""
    picks = {
        k: read_coords(outdir / f"Coordinates/{k}_autopick.star", "relion") for k in summary.key
    }
    keys = dict(zip(summary.micrograph, summary.key, strict=True))
    return truth_metrics(truth, picks, table, keys, diameter)


def _report(
    outdir: Path,
    run: RunResult,
    pset,
    cfg: RunConfig,
    inputs: dict,
    done: pd.DataFrame,
    progress: Progress,
) -> None:
    """``report.html`` of the particles ``pset`` from the micrographs ``done``, timed into
    ``run.timings`` and shown as a "report" step."""
    from cryosift.report.html import write_report

    t0 = time.perf_counter()
    finish = progress("report", 1)
    write_report(outdir, run, pset, cfg, inputs, done)
    run.timings["report"] = time.perf_counter() - t0
    finish(1)


def run_pipeline(
    mics: pd.DataFrame,
    cfg: RunConfig,
    outdir: str | Path,
    *,
    ctf: dict[str, dict] | None = None,
    truth: dict[str, pd.DataFrame] | None = None,
    given: dict[str, pd.DataFrame] | None = None,
    jobs: int | None = 1,
    scheduler: str | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    name_prefix: str = "",
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    report: bool = True,
    inputs: dict | None = None,
    skips: SkipLog | None = None,
) -> RunResult:
    """Run every stage over the micrographs ``mics`` (``key``, ``name``, ``path``) into
    ``outdir``. ``ctf``: CTF columns by micrograph key (phase flip when ``cfg.phase_flip``);
    ``truth``: true coordinates by key (adds ``metrics.csv``); ``given``: picks by key to
    extract instead of picking (the picker is skipped). ``should_stop`` is polled
    between micrographs; when it returns True the run raises :class:`Aborted`, keeping
    finished micrographs for a rerun. With ``skips`` (:class:`cryosift.errors.SkipLog`), a
    micrograph that cannot be used is left out and named, and the run goes on without it
    (a rerun tries it again); without, its error ends the run."""
    progress = progress or no_progress
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(outdir)
    timings: dict[str, float] = {}
    settings = _resume_settings(cfg, ctf, given)
    t0 = time.perf_counter()
    state, surveyed = _survey(
        mics, cfg, outdir, settings, overwrite, device, given, skips, progress
    )
    timings["survey (cluster, adaptation)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tasks = make_tasks(unskipped(mics, skips), cfg, state, device, ctf, given, surveyed)
    stop = should_stop or (lambda: False)
    records = _pick_and_extract(tasks, outdir, jobs, scheduler, progress, stop, skips)
    timings["pick + extract"] = time.perf_counter() - t0
    if not records:
        raise (skips or SkipLog()).none_left()
    done = mics[mics.key.isin([r["summary"]["key"] for r in records])]
    summary, particles = _write_lists(outdir, done, records, tasks[0].extract, name_prefix)
    write_all_or_nothing(skipped_writer(outdir, skips))
    if not len(particles):
        raise InputError(
            None,
            f"zero particles on all {len(tasks)} micrograph(s): check --diameter-A and the "
            "pixel size (coordinates are kept in Coordinates/)",
        )

    t0 = time.perf_counter()
    pset = read_particles(outdir / "particles.star")
    try:
        result = _clean(pset, particles, cfg, progress)
        timings["clean"] = time.perf_counter() - t0
        found = _classify_stage(pset, result, cfg, device, timings, state.get("adapt"), progress)
        metrics = None
        if truth is not None:
            metrics = _metrics(outdir, summary, truth, result.table, cfg.diameter)
        facts = _facts(state, result, tasks[0].extract)
        run = RunResult(summary, result.table, metrics, timings, facts)
        run.skipped = skips.records() if skips is not None else []
        write_clean_outputs(outdir, pset, result)
        from cryosift.classify.vote import drop_stale_figure

        drop_stale_figure(outdir, result.figures)
        _write_classes(run, found, pset, outdir, name_prefix)
        if metrics is not None:
            csv = outdir / "metrics.csv"
            write_all_or_nothing(
                {csv: lambda p: metrics.to_csv(p, index=False, float_format="%.4f")}
            )
        if report:
            _report(outdir, run, pset, cfg, inputs or {}, done, progress)
    finally:
        pset.close()
    context = {
        "inputs": inputs or {},
        "jobs": "auto" if jobs is None else jobs,
        "dask_scheduler": scheduler,
        "device": device,
    }
    _write_run_json(outdir, run, result, cfg, context)
    return run
