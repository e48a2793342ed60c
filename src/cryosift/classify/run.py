"""``cryosift classify``: read a particle set, classify it, rank the classes, write RELION files.

Particles are phase flipped when their CTF is known and not yet flipped, Fourier-cropped to
at most :data:`SIZE` px, classified (:func:`cryosift.classify.align.classify`) and the
classes ranked by the resolution their two half-sets agree to (:func:`rank_classes`).
Written into OUTDIR, all or nothing: ``classes.mrcs`` (the averages, largest class first),
``model.star`` (``data_model_classes``: ``_rlnReferenceImage``, ``_rlnClassDistribution``,
``_rlnEstimatedResolution`` and the verdict), ``particles.star`` (the input's rows with
``_rlnClassNumber``, ``_rlnAnglePsi``, ``_rlnOriginXAngst``, ``_rlnOriginYAngst``),
``classify.json`` (settings, facts, timing) and ``classes.png``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from cryosift.classify.align import (
    ClassifyResult,
    ClassifySettings,
    assign,
    classify,
    classify_steps,
    rotate_shift,
)
from cryosift.errors import InputError
from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.mrc import write_stack
from cryosift.io.particles import ParticleSet, one_optics_group
from cryosift.io.star import write_star
from cryosift.preprocess.particles import prepared_rows
from cryosift.progress import Progress, no_progress

#: Side the particles are Fourier-cropped to before classification (px).
SIZE = 64
#: Particle radius, as a fraction of the classified images' side, when no size is given.
DEFAULT_RADIUS = 0.3
#: A class is good when its half-sets agree (FRC 0.5) to within this factor of the best
#: class's resolution.
GOOD_FACTOR = 1.5
#: Particles read and prepared at once.
CHUNK = 4096

#: Most particles classified at once (``cryosift run``, ``clean``'s vote, ``classify``):
#: beyond them an evenly spaced sample of this many is classified and every other particle
#: joins its classes in one pass (:func:`join_classes`), so that memory and time stay
#: bounded on a dataset of millions (classifying holds about 50 kB per particle: 2.5 GB for
#: this many; ``benchmarks/classify_scale.py``).
MAX_CLASSIFIED = 50_000


def sample_rows(n: int, limit: int) -> np.ndarray:
    """``(min(n, limit),)`` evenly spaced rows of ``n`` particles (in a run's order, every
    micrograph's share)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


@dataclass
class ClassRanking:
    """Per class (in the result's order): ``resolution_A`` (or px when no pixel size) at which
    the half-set averages' FRC falls below 0.5, ``good`` and the ``reason``."""

    resolution: np.ndarray
    good: np.ndarray
    reason: list[str]


def prepare(
    pset: ParticleSet, size: int = SIZE, workers: int = -1, rows: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """The particles ``rows`` ``(R,)`` (default: all) phase flipped (when their CTF is known
    and not yet applied) and Fourier-cropped to ``min(size, box)`` px: ``(R, d, d)`` float32,
    and the cropped pixel size (Å, or 0 when unknown)."""
    rows = np.arange(len(pset)) if rows is None else np.asarray(rows)
    d = min(size, pset.box)
    out = np.empty((len(rows), d, d), np.float32)
    done = 0
    for _, images in prepared_chunks(pset, rows, size, workers):
        out[done : done + len(images)] = images
        done += len(images)
    return out, (pset.angpix or 0.0) * pset.box / d


def prepare_sample(
    pset: ParticleSet, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """The particles of ``pset`` that are classified (at most ``limit``, default
    :data:`MAX_CLASSIFIED`: :func:`sample_rows`), prepared as :func:`prepare` does: their
    rows ``(S,)``, images ``(S, d, d)`` and the cropped pixel size."""
    rows = sample_rows(len(pset), MAX_CLASSIFIED if limit is None else limit)
    images, angpix = prepare(pset, rows=rows)
    return rows, images, angpix


def prepared_chunks(
    pset: ParticleSet, rows: np.ndarray, size: int = SIZE, workers: int = -1
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The particles ``rows`` of ``pset`` prepared as :func:`prepare` does, :data:`CHUNK` at
    a time: each chunk's rows ``(b,)`` and images ``(b, d, d)``."""
    d = min(size, pset.box)
    flip = pset.ctf is not None and not pset.phase_flipped and bool(pset.angpix)
    for start in range(0, len(rows), CHUNK):
        part = np.asarray(rows[start : start + CHUNK])
        yield part, prepared_rows(pset, part, d, flip, workers)


def frc_resolution(a: np.ndarray, b: np.ndarray) -> float:
    """The spatial frequency (cycles per px) at which the Fourier ring correlation of two
    ``(n, n)`` images first falls below 0.5 (Nyquist, 0.5, when it never does)."""
    n = a.shape[-1]
    fa, fb = np.fft.rfft2(a), np.fft.rfft2(b)
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    shell = np.rint(np.hypot(fy, fx) * n).astype(int).ravel()
    num = np.bincount(shell, (fa * fb.conj()).real.ravel())
    den = np.sqrt(
        np.bincount(shell, (abs(fa) ** 2).ravel()) * np.bincount(shell, (abs(fb) ** 2).ravel())
    )
    frc = num / np.maximum(den, 1e-30)
    below = np.flatnonzero(frc[1 : n // 2 + 1] < 0.5)
    return (below[0] + 0.5) / n if len(below) else 0.5


def aligned(images: np.ndarray, result: ClassifyResult, rows: np.ndarray) -> np.ndarray:
    """The images ``rows`` of ``(B, n, n)`` brought into their class average's frame: the
    inverse of image = shift_origin(rotate_psi(average)), shift back first, then turn."""
    import torch

    x = torch.as_tensor(images[rows])
    psi = torch.as_tensor(np.radians(result.psi[rows]), dtype=torch.float32)
    shift = torch.as_tensor(result.shifts[rows], dtype=torch.float32)
    moved = rotate_shift(x, torch.zeros_like(psi), -shift)
    return rotate_shift(moved, -psi, torch.zeros_like(shift)).numpy()


def subset_averages(images: np.ndarray, result: ClassifyResult, keep: np.ndarray) -> np.ndarray:
    """``(K, n, n)`` class averages of only the images where ``keep`` ``(B,)`` is true
    (zeros for a class with none of them)."""
    k, n = len(result.averages), images.shape[-1]
    out = np.zeros((k, n, n), np.float32)
    for c in range(k):
        rows = np.flatnonzero((result.labels == c) & keep)
        if len(rows):
            out[c] = aligned(images, result, rows).mean(axis=0)
    return out


def rank_classes(images: np.ndarray, result: ClassifyResult, angpix: float) -> ClassRanking:
    """Each class's half-set resolution: its particles (every other one) averaged in two
    halves after alignment, the FRC of the halves; good when within :data:`GOOD_FACTOR` of the
    best class. Classes of fewer than 4 particles are not judged good."""

    k = len(result.averages)
    res = np.full(k, np.inf)
    for c in range(k):
        members = np.flatnonzero(result.labels == c)
        if len(members) < 4:
            continue
        back = aligned(images, result, members)
        f = frc_resolution(back[0::2].mean(axis=0), back[1::2].mean(axis=0))
        res[c] = (angpix or 1.0) / f
    best = res.min() if np.isfinite(res).any() else np.inf
    good = np.isfinite(res) & (res <= GOOD_FACTOR * best)
    unit = "Å" if angpix else "px"
    reason = [
        f"half-sets agree to {r:.1f} {unit} (best {best:.1f}; good within {GOOD_FACTOR}x)"
        if np.isfinite(r)
        else "fewer than 4 particles"
        for r in res
    ]
    return ClassRanking(res, good, reason)


def largest_first(result: ClassifyResult, ranking: ClassRanking) -> np.ndarray:
    """Class indices by decreasing size (ties: better resolution first)."""
    return np.lexsort((ranking.resolution, -result.counts))


def class_numbers(result: ClassifyResult, ranking: ClassRanking) -> np.ndarray:
    """``(K,)`` the number (1-based, largest class first) each class is written as."""
    order = largest_first(result, ranking)
    numbers = np.empty(len(order), np.int64)
    numbers[order] = np.arange(1, len(order) + 1)
    return numbers


def write_outputs(
    outdir: Path,
    pset: ParticleSet,
    result: ClassifyResult,
    ranking: ClassRanking,
    angpix: float,
    facts: dict[str, Any],
    prefix: str = "",
    radius: float | None = None,
) -> list[Path]:
    """The files of the module docstring, classes renumbered largest first. ``prefix`` is
    OUTDIR seen from the RELION project directory (names inside STAR files); ``radius``, the
    particle's (px of the averages), is drawn on ``classes.png``."""
    order = largest_first(result, ranking)
    new_number = class_numbers(result, ranking)
    names = [f"{i:06d}@{prefix}classes.mrcs" for i in range(1, len(order) + 1)]
    model = pd.DataFrame(
        {
            "rlnReferenceImage": names,
            "rlnClassDistribution": result.counts[order] / max(result.counts.sum(), 1),
            "rlnEstimatedResolution": np.where(np.isfinite(ranking.resolution[order]),
                                               ranking.resolution[order], 999.0),
            "rlnCryosiftClassSize": result.counts[order],
            "rlnCryosiftGoodClass": ranking.good[order].astype(int),
        }
    )  # fmt: skip
    parts = pset.particles.copy()
    parts["rlnClassNumber"] = new_number[result.labels]
    blocks = alignment_blocks(pset, parts, result, result.averages.shape[-1])
    averages = result.averages[order].astype(np.float32)
    writers = {
        outdir / "classes.mrcs": lambda p: write_stack(p, averages, angpix or None),
        outdir / "model.star": lambda p: write_star({"model_classes": model}, p),
        outdir / "particles.star": lambda p: write_star(blocks, p),
        outdir / "classify.json": lambda p: p.write_text(json.dumps(facts, indent=2, default=str)),
        outdir / "classes.png": lambda p: gallery(p, averages, numbered(result.counts[order]),
                                                  ranking.good[order], result.counts[order],
                                                  None if radius is None else 2 * radius),
    }  # fmt: skip
    write_all_or_nothing(writers)
    return list(writers)


#: RELION's particle origin columns: 3.0's in px, 3.1+'s in Å.
ORIGIN_COLUMNS = ("rlnOriginX", "rlnOriginY", "rlnOriginXAngst", "rlnOriginYAngst")


def alignment_blocks(
    pset: ParticleSet, parts: pd.DataFrame, result: ClassifyResult, side: int
) -> dict[str, pd.DataFrame]:
    """The STAR blocks of ``parts`` with each particle's ``_rlnAnglePsi`` and origin, in the
    input's RELION convention (the classified images were ``side`` px; origins are written
    in the input images' px or Å). RELION 3.1+ input: ``_rlnOriginX/YAngst`` beside its
    optics block. RELION 3.0 input (no optics): ``_rlnOriginX/Y`` in px. A bare stack: an
    optics group of its own (pixel size from the header, else 1 Å = 1 px), which RELION 3.1+
    needs to read origins in Å. RELION's origin is minus the particle's offset from the box
    centre (re-centred coordinates are the coordinate minus the origin): checked by
    ``relion_stack_create --apply_transformation``, whose aligned particles average to our
    class averages (tests/classify)."""
    parts["rlnAnglePsi"] = np.round(result.psi, 3)
    px = -result.shifts * (pset.box / side)  # (N, 2) x, y origins in px of the input images
    in_px = pset.optics is None and pset.kind == "star" and "rlnOriginXAngst" not in parts
    parts = parts.drop(columns=[c for c in ORIGIN_COLUMNS if c in parts])
    if in_px:  # RELION 3.0
        parts["rlnOriginX"], parts["rlnOriginY"] = np.round(px.T, 3)
    else:
        parts["rlnOriginXAngst"], parts["rlnOriginYAngst"] = np.round(px.T * (pset.angpix or 1), 3)
    if pset.optics is not None:
        return {"optics": pset.optics, "particles": parts}
    if pset.kind == "star":
        return {pset.block_name or "particles": parts}
    parts["rlnOpticsGroup"] = 1  # a bare stack: an optics group of its own
    optics = one_optics_group(pset.angpix or 1.0, pset.box, pset.ctf, pset.phase_flipped)
    return {"optics": optics, "particles": parts}


def numbered(counts: np.ndarray) -> list[str]:
    """Titles of classes shown in order: number and size."""
    return [f"{i + 1}: {n}" for i, n in enumerate(counts)]


def gallery(
    path: str | os.PathLike[str] | BinaryIO,
    averages: np.ndarray,
    titles: list[str],
    good: np.ndarray,
    counts: np.ndarray,
    diameter: float | None = None,
) -> None:
    """A PNG (to a path or a binary file) of the class ``averages`` ``(K, n, n)`` in order,
    each with its title, framed green when ``good``; a class of no image (``counts`` 0) is
    drawn as the word "empty", not as a blank average. With ``diameter`` (px of the
    averages), the particle's size as given is drawn on each as a dashed circle."""
    from cryosift.classify.gallery import draw_grid, min_max

    colours = ["#2ca02c" if g else "#d62728" for g in good]
    fig = draw_grid(averages, 10, [min_max(a) for a in averages], 1.1, titles, colours,
                    np.asarray(counts) == 0, diameter)  # fmt: skip
    fig.savefig(path, format="png", dpi=80)


def classify_file(
    path: str | Path | ParticleSet,
    outdir: str | Path,
    settings: ClassifySettings,
    *,
    diameter_A: float | None = None,
    diameter_px: float | None = None,
    angpix: float | None = None,
    datadir: str | Path | None = None,
    device: str = "cpu",
    project: str | Path | None = None,
    progress: Progress = no_progress,
) -> tuple[ClassifyResult, ClassRanking, dict[str, Any]]:
    """``cryosift classify`` on one particles file (or its :class:`ParticleSet`, already
    read: it is closed here); returns the result, ranking and facts. The particle size:
    ``diameter_A``, or ``diameter_px`` in px of the file's images. The classification's
    steps go to a "classifying" task of ``progress``. Beyond :data:`MAX_CLASSIFIED`
    particles an evenly spaced sample is classified and the others join its classes
    (:func:`join_classes`, a task of its own)."""
    from cryosift.io.particles import read_particles
    from cryosift.io.paths import folder_prefix

    t0 = time.perf_counter()
    if isinstance(path, ParticleSet):
        pset = path
    else:
        pset = read_particles(path, datadir=datadir, angpix=angpix)
    try:
        rows, images, crop_angpix = prepare_sample(pset)
        d = images.shape[-1]
        radius = settings.radius
        if diameter_px is not None:
            radius = diameter_px / 2 * d / pset.box
        elif diameter_A is not None:
            if not crop_angpix:
                raise InputError(pset.source, "--diameter-A needs a pixel size: pass --angpix")
            radius = diameter_A / 2 / crop_angpix
        elif radius >= d / 2:  # images smaller than the default radius assumes
            radius = DEFAULT_RADIUS * d
        if not 2 <= radius < d / 2:
            raise InputError(pset.source, f"particle radius {radius:.1f} px does not fit {d} px")
        run = ClassifySettings(**{**asdict(settings), "radius": float(radius)})
        result = classify(images, run, device, progress("classifying", classify_steps(run)))
        ranking = rank_classes(images, result, crop_angpix)
        if len(rows) < len(pset):  # beyond MAX_CLASSIFIED: the others join the sample
            result = join_classes(pset, rows, result, run, device, progress)
        good_share = float(result.counts[ranking.good].sum() / max(len(pset), 1))
        facts = {
            "settings": asdict(run),
            "particles": len(pset),
            "classified": len(rows),
            "size_px": d,
            "angpix": crop_angpix,
            "good_classes": int(ranking.good.sum()),
            "share_in_good_classes": round(good_share, 4),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        outdir = Path(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        prefix = folder_prefix(outdir, project) if project is not None else ""
        write_outputs(outdir, pset, result, ranking, crop_angpix, facts, prefix, run.radius)
    finally:
        pset.close()
    return result, ranking, facts


#: Fewest particles per class for ``cryosift run`` to classify (fewer classes otherwise).
PER_CLASS = 10


def class_count(n: int, classes: int) -> int:
    """Classes for ``n`` particles: ``classes``, fewer when there are fewer than
    :data:`PER_CLASS` particles a class (below 2: too few to classify)."""
    return min(classes, n // PER_CLASS)


@dataclass
class RunClasses:
    """``cryosift run``'s classification: the classified ``images`` ``(S, n, n)`` (the
    particles ``rows`` ``(S,)`` of the set, all of them unless there were more than
    :data:`MAX_CLASSIFIED`), their pixel size ``angpix`` (Å, 0 unknown), the ``sample``'s
    classification (of those images), the ``result`` for every particle of the set (the
    sample's until the others join it), the ``ranking``, the particle ``radius`` (px of the
    images) and the ``seconds`` it took."""

    images: np.ndarray
    angpix: float
    result: ClassifyResult
    ranking: ClassRanking
    radius: float
    seconds: float
    rows: np.ndarray
    sample: ClassifyResult
    total: int

    @property
    def sampled(self) -> bool:
        """Only a sample was classified: the other particles have yet to join."""
        return len(self.rows) < self.total


def classify_run_particles(
    pset: ParticleSet,
    radius_fraction: float,
    classes: int,
    seed: int = 0,
    device: str = "cpu",
    limit: int | None = None,
    progress: Progress = no_progress,
) -> RunClasses | None:
    """``cryosift run``'s 2D classification of its particles ``pset`` (at most ``limit``,
    default :data:`MAX_CLASSIFIED`, of them: :func:`prepare_sample`), the particle radius
    ``radius_fraction`` of the box, into ``classes`` classes (fewer when there are fewer
    than :data:`PER_CLASS` particles per class), its steps a "2D classes" task of
    ``progress``; None when there are too few particles for two classes."""
    t0 = time.perf_counter()
    rows, images, angpix = prepare_sample(pset, limit)
    k = class_count(len(rows), classes)
    if k < 2:
        return None
    radius = radius_fraction * images.shape[-1]
    settings = ClassifySettings(classes=k, radius=radius, seed=seed)
    result = classify(images, settings, device, progress("2D classes", classify_steps(settings)))
    ranking = rank_classes(images, result, angpix)
    seconds = time.perf_counter() - t0
    return RunClasses(images, angpix, result, ranking, radius, seconds, rows, result, len(pset))


def join_classes(
    pset: ParticleSet,
    rows: np.ndarray,
    sample: ClassifyResult,
    settings: ClassifySettings,
    device: str = "cpu",
    progress: Progress = no_progress,
    visit: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> ClassifyResult:
    """The classification ``sample`` of the particles ``rows`` ``(S,)`` of ``pset`` grown to
    every particle: each other one joins the class, rotation and shift it correlates best
    with (:func:`cryosift.classify.align.assign`; an emptied class takes nobody), the
    averages unchanged, :data:`CHUNK` particles at a time (a step each of a "joining the
    classes" task of ``progress``), each chunk's rows ``(b,)`` and prepared images
    ``(b, n, n)`` also shown to ``visit``."""
    b = len(pset)
    labels, psi, scores, shifts = np.zeros(b, np.int64), np.zeros(b), np.zeros(b), np.zeros((b, 2))
    for whole, part in ((labels, sample.labels), (psi, sample.psi), (scores, sample.scores),
                        (shifts, sample.shifts)):  # fmt: skip
        whole[rows] = part
    rest = np.setdiff1d(np.arange(b), rows)
    live = np.flatnonzero(sample.counts > 0)
    advance = progress("joining the classes", -(-len(rest) // CHUNK))
    for part, chunk in prepared_chunks(pset, rest):
        joined = assign(chunk, sample.averages[live], settings, device)
        labels[part], psi[part], scores[part] = live[joined.labels], joined.psi, joined.scores
        shifts[part] = joined.shifts
        if visit is not None:
            visit(part, chunk)
        advance(1)
    counts = np.bincount(labels, minlength=len(sample.averages))
    return ClassifyResult(sample.averages, labels, psi, shifts, scores, counts)


def write_run_classes(
    found: RunClasses, pset: ParticleSet, inlier: np.ndarray, outdir: Path, prefix: str = ""
) -> dict[str, Any]:
    """Write the files of :func:`write_outputs` for ``found`` into ``outdir``; return the
    facts (share of all particles, of the inliers ``inlier`` ``(B,)`` and of the removed
    ones in good classes) and the two galleries (PNG bytes: class averages of the inliers
    and of the removed particles, largest class first; of the classified sample's, counted
    over all)."""
    import io

    result, ranking = found.result, found.ranking
    k = len(result.averages)
    inlier = np.asarray(inlier, bool)
    good = ranking.good[result.labels]

    def share(mask: np.ndarray) -> float:
        return round(float(good[mask].mean()) if mask.any() else 0.0, 4)

    facts = {
        "classes": k,
        "good_classes": int(ranking.good.sum()),
        "good_factor": GOOD_FACTOR,
        "classified": len(found.rows),
        "particles": found.total,
        "share_in_good_classes": {"all": share(np.ones_like(inlier)), "inliers": share(inlier),
                                  "removed": share(~inlier)},
    }  # fmt: skip
    order = largest_first(result, ranking)
    pngs = {}
    for name, mask in (("inliers", inlier), ("removed", ~inlier)):
        counts = np.bincount(result.labels[mask], minlength=k)[order]
        averages = subset_averages(found.images, found.sample, mask[found.rows])[order]
        buf = io.BytesIO()
        gallery(buf, averages, numbered(counts), ranking.good[order], counts, 2 * found.radius)
        pngs[name] = buf.getvalue()
    facts["seconds"] = round(found.seconds, 2)
    outdir.mkdir(parents=True, exist_ok=True)
    write_outputs(outdir, pset, result, ranking, found.angpix, facts, prefix, found.radius)
    return {"facts": facts, "galleries": pngs}
