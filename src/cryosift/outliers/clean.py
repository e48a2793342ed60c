"""Clean a particle set: stream its images, run the detector, write inliers and outliers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cryosift.errors import InputError
from cryosift.io.atomic import write_all_or_nothing
from cryosift.io.particles import ParticleSet, write_cs_subset, write_particles_star
from cryosift.outliers.detector import Correlator, DetectorParams, detect
from cryosift.outliers.profile import ProfileStats, estimate_radius, image_moments
from cryosift.outliers.radial import (
    SMOOTH_RADII,
    RadialDecision,
    RingProfiles,
    central_window,
    null_profiles,
    polarity,
    radial_decision,
    separability,
    window_size,
)
from cryosift.outliers.rules import DEFAULT_PRESET, POLARITIES, VERDICTS, Rules, get_rules
from cryosift.preprocess.particles import prepared_rows

#: Memory the image buffers of one chunk may take, bytes.
CHUNK_BYTES = 256 * 2**20
#: Images the stack's typical radial profile is estimated from (evenly spaced).
PROFILE_SAMPLE = 4096
#: A particle radius given more than this factor away from the stack's own is warned about.
#: Not the ~1.3 first tried: the mean image's half-contrast radius is 0.45-0.51 particle
#: radii on EMPIAR-10017 and the 70S ribosome but 0.36 on the simulator's phantom (the
#: `make demo` particles), so 1.3 warned on the demo's correct size.
SIZE_TOLERANCE = 1.5


@dataclass
class CleanConfig:
    """Parameters of ``cryosift clean``.

    Particle size: ``diameter_A`` (needs the pixel size) or ``radius_px`` (pixels of the input
    images). ``size`` is the side the images are Fourier-cropped to (never up-sampled),
    ``peaks`` the number A of correlation maxima, ``phase_flip`` ``None`` for automatic
    (flip when the input has CTF parameters and is not marked as already flipped),
    ``polarity`` ``"auto"``, ``"bright"`` or ``"dark"`` (``None``: the preset's), ``seed``
    the seed of the simulated noise that calibrates the ``radial`` threshold. ``eps_px``:
    the ``reference`` preset's DBSCAN eps and border margin (the published code's ``r``), in
    input px; None: the particle radius. The other presets ignore it. ``loosen``: whether the
    ``radial`` threshold may let more noise through at moderate separability
    (:func:`cryosift.outliers.radial.radial_decision`).
    """

    diameter_A: float | None = None
    radius_px: float | None = None
    eps_px: float | None = None
    size: int = 55
    peaks: int = 10
    rules: str = DEFAULT_PRESET
    polarity: str | None = None
    phase_flip: bool | None = None
    chunk: int | None = None
    workers: int = -1
    seed: int = 0
    loosen: bool = True


@dataclass
class CleanResult:
    """Per-particle table (one row per input particle, input order) and run statistics;
    ``figures``: pictures written with the outputs, a writer ``(path) -> None`` by file name
    (the class vote's, :mod:`cryosift.classify.vote`)."""

    table: pd.DataFrame
    size: int
    radius: float
    seconds: float
    phase_flipped: bool
    stats: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Callable[[Path], None]] = field(default_factory=dict)

    @property
    def inliers(self) -> np.ndarray:
        return np.flatnonzero(self.table["verdict"].to_numpy() == "inlier")

    @property
    def outliers(self) -> np.ndarray:
        return np.flatnonzero(self.table["verdict"].to_numpy() != "inlier")

    def counts(self) -> dict[str, int]:
        v = self.table["verdict"].to_numpy()
        return {name: int((v == name).sum()) for name in VERDICTS}


def detector_geometry(pset: ParticleSet, cfg: CleanConfig) -> DetectorParams:
    """Downsampled size d and radius r (px of the downsampled images) for this particle set."""
    if cfg.peaks < 3:
        raise InputError(None, f"--peaks must be at least 3 (got {cfg.peaks})")
    if cfg.radius_px is not None:
        radius = float(cfg.radius_px)
    elif cfg.diameter_A is not None:
        if not pset.angpix:
            raise InputError(
                pset.source, "pixel size unknown: pass --angpix, or give the size as --diameter-px"
            )
        radius = cfg.diameter_A / 2 / pset.angpix
    else:
        raise InputError(None, "give the particle size as --diameter-A or --diameter-px")
    if not np.isfinite(radius) or radius <= 0:
        raise InputError(None, f"particle radius must be positive (got {radius:g} px)")
    if 2 * radius >= pset.box:
        raise InputError(
            pset.source,
            f"particle radius {radius:.1f} px does not fit the {pset.box} px box "
            f"(diameter must be smaller than the box)",
        )
    d = min(int(cfg.size), pset.box)
    return DetectorParams(size=d, radius=radius * d / pset.box, peaks=cfg.peaks)


def eps_prepared(pset: ParticleSet, cfg: CleanConfig, d: int) -> float | None:
    """``cfg.eps_px`` in px of the prepared ``d x d`` images (None when not given)."""
    if cfg.eps_px is None:
        return None
    if not np.isfinite(cfg.eps_px) or cfg.eps_px <= 0:
        raise InputError(None, f"--eps-px must be positive (got {cfg.eps_px:g})")
    return cfg.eps_px * d / pset.box


def _polarity_of(choice: str | None, rules: Rules, template: np.ndarray, radius: float) -> int:
    """+1 (particles bright) or -1 (dark) from ``--polarity`` or, when automatic, the stack."""
    choice = choice or rules.polarity
    if choice == "auto":
        return polarity(template, radius)
    if choice not in POLARITIES:
        raise InputError(
            None, f"--polarity must be one of {', '.join(POLARITIES)} (got {choice!r})"
        )
    return 1 if choice == "bright" else -1


def judge_stack(
    prepare: Callable[[np.ndarray], np.ndarray],
    n: int,
    params: DetectorParams,
    rules: Rules,
    *,
    chunk: int = 4096,
    polarity_choice: str | None = None,
    workers: int = -1,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
    scale: float = 1.0,
    angpix: float | None = None,
    eps: float | None = None,
    loosen: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Judge ``n`` images read through ``prepare(rows) -> (len(rows), d, d)``.

    ``params`` holds the image side d and the particle radius r (px of the prepared images);
    the preset decides the detection window, the polarity and who decides (peak rules or
    radial profiles, its threshold calibrated on noise simulated from ``seed``). Returns the
    per-image table (offsets in prepared px) and run facts. ``eps`` (prepared px) replaces
    the ``reference`` preset's DBSCAN eps and border margin. Facts: the window, the polarity, the
    radius check (a warning when the stack suggests another size; ``scale`` input px per
    prepared px and ``angpix`` word it) and, for the radial decision, its threshold and the
    stack's :func:`cryosift.outliers.radial.separability`. ``loosen=False`` keeps the usual
    threshold at moderate separability (for labels to learn from rather than a user's
    particles to keep).
    """
    d, radius = params.size, params.radius
    w = window_size(d, radius, rules.window) if rules.window else d
    cluster_r = (
        eps if eps is not None and rules.name == "reference" else radius * rules.radius_scale
    )
    det_params = DetectorParams(size=w, radius=cluster_r, peaks=params.peaks)

    def windowed(rows: np.ndarray) -> np.ndarray:
        return central_window(prepare(rows), w)

    def chunks() -> Iterator[np.ndarray]:
        for start in range(0, n, chunk):
            yield windowed(np.arange(start, min(start + chunk, n)))

    stats, held_out_z, mean_image = _typical_profile(prepare, n, d, w, workers)
    size_check = check_radius(radius, estimate_radius(mean_image), scale, angpix)
    profile_z = stats.scorer()
    sign = _polarity_of(polarity_choice, rules, profile_z.template, radius)
    stack_mean = _stack_mean(chunks()) if rules.normalise == "stack" else 0.0
    correlator = Correlator(w, rules.correlation, rules.dtype, workers)
    rings = RingProfiles(w, SMOOTH_RADII * radius) if rules.decision == "profile" else None
    parts, profiles = [], []
    for images in chunks():
        oriented = images if sign == 1 else -images
        det = detect(oriented, det_params, rules, stack_mean=stack_mean, correlator=correlator)
        frame = det.to_frame()
        frame["profile_z"] = profile_z(images)
        parts.append(frame)
        if rings is not None:
            profiles.append(rings(images))
        if on_progress:
            on_progress(len(images))
    table = pd.concat(parts, ignore_index=True)
    facts = {"window": w, "polarity": sign, "cluster_eps_px": round(cluster_r, 3), **size_check}
    if rings is not None:
        null = null_profiles(stats, rings, seed)
        facts.update(_judge_radial(table, np.concatenate(profiles), null, held_out_z, loosen))
    return table, facts


def _typical_profile(
    prepare: Callable[[np.ndarray], np.ndarray], n: int, d: int, w: int, workers: int
) -> tuple[ProfileStats, np.ndarray, np.ndarray]:
    """The stack's typical radial profile (of the central ``w x w`` windows), from an evenly
    spaced sample of at most :data:`PROFILE_SAMPLE` of its ``n`` images (``d x d``) read
    through ``prepare``; the sample's held-out z-scores ``(S,)`` (:func:`_held_out_z`) and
    its mean standardised image ``(d, d)``. Scattered reads fault in whole read-ahead
    windows, so they go 256 at a time (half the sample when smaller: each half of the held-out
    split needs some)."""
    sample = np.unique(np.linspace(0, n - 1, min(n, PROFILE_SAMPLE)).astype(int))
    halves = (ProfileStats(w), ProfileStats(w))
    kept: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    full_sum = np.zeros((d, d))
    step = max(1, min(256, -(-len(sample) // 2)))
    for i, start in enumerate(range(0, len(sample), step)):
        full = prepare(sample[start : start + step])
        full_sum += _standardised_sum(full)
        images = central_window(full, w)
        halves[i % 2].add(images, workers)
        kept[i % 2].append(images)
    return halves[0] + halves[1], _held_out_z(halves, kept), full_sum / max(len(sample), 1)


def _stack_mean(chunks: Iterable[np.ndarray]) -> float:
    """The mean pixel of every ``(B, w, w)`` chunk together."""
    total, count = 0.0, 0
    for images in chunks:
        total += float(images.sum(dtype=np.float64))
        count += images.size
    return total / max(count, 1)


def _judge_radial(
    table: pd.DataFrame,
    profiles: np.ndarray,
    null: np.ndarray,
    held_out_z: np.ndarray,
    loosen: bool = True,
) -> dict[str, Any]:
    """The radial decision on the stack's ring ``profiles`` ``(B, F)`` against the ``null``
    noise profiles ``(M, F)``, applied to ``table`` (its ``profile_z`` column read); returns
    the facts: the threshold and the separability found (from ``held_out_z``)."""
    sep = separability(held_out_z)
    z = table["profile_z"].to_numpy()
    decision = radial_decision(profiles, z, null, sep=sep, loosen=loosen)
    _apply_radial(table, decision)
    if sep.detected:
        sep = dataclasses.replace(
            sep,
            share=sep.share if decision.particle_share is None else decision.particle_share,
            low=decision.low,
            expected_tpr=decision.expected_tpr,
            kept_share=decision.kept_share,
            loosened=decision.usual_threshold is not None,
        )
    separable = {**sep.describe(), "note": sep.sentence()}
    return {"radial_threshold": decision.threshold, "separability": separable}


def _standardised_sum(images: np.ndarray) -> np.ndarray:
    """Sum over ``(B, n, n)`` images, each brought to mean 0 and standard deviation 1."""
    mean, sd = image_moments(images)
    return np.asarray(((images - mean[:, None, None]) / sd[:, None, None]).sum(axis=0))


def check_radius(
    given: float, found: float | None, scale: float = 1.0, angpix: float | None = None
) -> dict[str, Any]:
    """Facts on the particle radius (px of the prepared images): the one ``given`` and the
    one the stack's mean image suggests (:func:`cryosift.outliers.profile.estimate_radius`),
    with a warning when they differ by more than :data:`SIZE_TOLERANCE` times; the warning
    states diameters in input px (``scale`` input px per prepared px) and Å."""
    out: dict[str, Any] = {"radius_given_px": round(given, 2), "radius_from_stack_px": None}
    if found is None:
        return out
    out["radius_from_stack_px"] = round(found, 2)
    ratio = given / found
    if not 1 / SIZE_TOLERANCE <= ratio <= SIZE_TOLERANCE:

        def size(r: float) -> str:
            a = f" ({2 * r * scale * angpix:.0f} Å)" if angpix else ""
            return f"{2 * r * scale:.1f} px{a}"

        out["warnings"] = [
            f"particle diameter given {size(given)}, but the stack's mean image suggests "
            f"{size(found)} ({ratio:.0%} of it): check --diameter-A / --diameter-px and the "
            "pixel size"
        ]
    return out


def clean_notes(stats: dict[str, Any]) -> list[str]:
    """The lines a user must read about a cleaning whose facts are ``stats``: the stack's
    separability and any warning."""
    out = [stats["separability"]["note"]] if "separability" in stats else []
    return out + [f"warning: {w}" for w in stats.get("warnings", [])]


def _held_out_z(
    halves: tuple[ProfileStats, ProfileStats],
    images: tuple[list[np.ndarray], list[np.ndarray]],
) -> np.ndarray:
    """z-scores of each half of the sample against the other half's typical profile: a
    stack's own template also fits its noise, which biases z upwards (by about
    sqrt(rings / images)); held out, pure noise scores N(0, 1)."""
    parts = []
    for stats, chunks in zip(halves[::-1], images, strict=True):
        if chunks and stats.count:
            scorer = stats.scorer()
            parts += [scorer(c) for c in chunks]
    return np.concatenate(parts) if parts else np.zeros(0)


def _apply_radial(table: pd.DataFrame, decision: RadialDecision) -> None:
    """Verdicts from the radial decision; the peak rules name the type of each outlier
    (partial or multiple when they say so, noise otherwise) and their own finding is kept
    in the reason."""
    rules_verdict = table["verdict"].to_numpy().astype(object)
    rules_reason = table["reason"].to_numpy().astype(object)
    kept, score, t = decision.kept, decision.score, decision.threshold
    z = decision.z if decision.z is not None else np.full(len(table), np.nan)
    loosened = decision.kept_by_loosening
    rescued = kept & ~decision.by_score & ~loosened
    verdict = np.where(kept, "inlier", rules_verdict).astype(object)
    verdict[~kept & (rules_verdict == "inlier")] = "noise"
    reason = np.full(len(table), "", dtype=object)
    # particles both judges keep need no reason; only the others are formatted
    for i in np.flatnonzero(~kept | (rules_verdict != "inlier") | rescued | loosened):
        if rescued[i]:
            reason[i] = (
                f"kept: low separability, z {z[i]:.2f} >= {decision.floor:.2f} "
                f"(radial profile {score[i]:.2f} <= {t:.2f})"
            )
        elif loosened[i]:
            peaks = f"; peaks: {rules_reason[i]}" if rules_reason[i] else ""
            why = (
                f"radial profile {score[i]:.2f} > {t:.2f}"
                if decision.by_score[i]
                else f"z {z[i]:.2f} >= {decision.floor:.2f}, radial profile {score[i]:.2f}"
            )
            reason[i] = (
                f"kept: moderate separability, {why} "
                f"(usual threshold {decision.usual_threshold:.2f}{peaks})"
            )
        elif kept[i]:
            reason[i] = f"kept: radial profile {score[i]:.2f} > {t:.2f} (peaks: {rules_reason[i]})"
        else:
            peaks = f"; peaks: {rules_reason[i]}" if rules_reason[i] else ""
            reason[i] = f"radial profile {score[i]:.2f} <= {t:.2f}{peaks}"
    table["verdict"] = verdict.astype(str)
    table["reason"] = reason.astype(str)
    table["radial_score"] = score
    table["kept_if_loosened"] = kept if decision.if_loosened is None else decision.if_loosened


def clean_particles(
    pset: ParticleSet,
    cfg: CleanConfig,
    on_progress: Callable[[int], None] | None = None,
) -> CleanResult:
    """Run the detector over every particle of ``pset`` in bounded-memory chunks.

    ``on_progress(n)`` is called after each chunk with the number of images just done.
    """
    rules = get_rules(cfg.rules)
    params = detector_geometry(pset, cfg)
    flip = cfg.phase_flip
    if flip is None:
        flip = pset.ctf is not None and not pset.phase_flipped
    if flip and pset.ctf is None:
        raise InputError(pset.source, "--phase-flip needs CTF parameters, which this file lacks")
    if flip and not pset.angpix:
        raise InputError(pset.source, "phase flipping needs the pixel size: pass --angpix")
    chunk = cfg.chunk or int(np.clip(CHUNK_BYTES // (pset.box * pset.box * 4 * 8), 64, 8192))

    def prepare(rows: np.ndarray) -> np.ndarray:
        return prepared_rows(pset, rows, params.size, flip, cfg.workers)

    t0 = time.perf_counter()
    table, facts = judge_stack(
        prepare,
        len(pset),
        params,
        rules,
        chunk=chunk,
        polarity_choice=cfg.polarity,
        workers=cfg.workers,
        seed=cfg.seed,
        on_progress=on_progress,
        scale=pset.box / params.size,
        angpix=pset.angpix,
        eps=eps_prepared(pset, cfg, params.size),
        loosen=cfg.loosen,
    )
    seconds = time.perf_counter() - t0
    scale = pset.box / params.size
    table["offset_x_px"] *= scale
    table["offset_y_px"] *= scale
    table.insert(0, "image_name", pset.particles["rlnImageName"].astype(str).to_numpy())
    table.insert(0, "particle", np.arange(1, len(table) + 1))
    return CleanResult(
        table=table,
        size=params.size,
        radius=params.radius,
        seconds=seconds,
        phase_flipped=bool(flip),
        stats={"rules": rules.name, "peaks": params.peaks, "chunk": chunk, **facts},
    )


def clean_images(
    images: np.ndarray,
    radius: float,
    rules: str = DEFAULT_PRESET,
    *,
    peaks: int = 10,
    polarity_choice: str | None = None,
    seed: int = 0,
    eps: float | None = None,
    loosen: bool = True,
) -> pd.DataFrame:
    """Judge an in-memory stack ``(B, d, d)`` (already phase flipped and cropped) with
    particle radius ``radius`` px (and the ``reference`` preset's ``eps``, px): the
    per-image table of :func:`judge_stack` (``loosen`` passed on)."""
    images = np.asarray(images)
    table, _ = judge_stack(
        lambda rows: images[rows],
        len(images),
        DetectorParams(size=images.shape[-1], radius=radius, peaks=peaks),
        get_rules(rules),
        polarity_choice=polarity_choice,
        seed=seed,
        eps=eps,
        loosen=loosen,
    )
    return table


def write_clean_outputs(outdir: Path, pset: ParticleSet, result: CleanResult) -> list[Path]:
    """Write ``inliers.star``, ``outliers.star``, ``scores.csv`` (and ``.cs`` subsets for a
    cryoSPARC input) and the ``result``'s figures into ``outdir``, all or nothing. Returns the
    paths written."""
    outdir = Path(outdir)
    inl, outl = result.inliers, result.outliers
    writers = {
        outdir / "inliers.star": lambda p: write_particles_star(p, pset, inl),
        outdir / "outliers.star": lambda p: write_particles_star(p, pset, outl),
        outdir / "scores.csv": lambda p: result.table.round(4).to_csv(p, index=False),
    }
    if pset.cs_records is not None:
        writers[outdir / "inliers.cs"] = lambda p: write_cs_subset(p, pset, inl)
        writers[outdir / "outliers.cs"] = lambda p: write_cs_subset(p, pset, outl)
    writers.update({outdir / name: write for name, write in result.figures.items()})
    write_all_or_nothing(writers)
    return list(writers)


def clean_file(
    path: str | Path,
    cfg: CleanConfig,
    outdir: str | Path,
    *,
    angpix: float | None = None,
    datadir: str | Path | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
    refine: Callable[[ParticleSet, CleanResult], None] | None = None,
) -> CleanResult:
    """``cryosift clean`` on one particles file (STAR, ``.mrcs`` or ``.cs``): read it, judge
    every particle and write the outputs of :func:`write_clean_outputs` into ``outdir``.
    ``progress(n_particles)`` returns the function told of each chunk done; ``refine(pset,
    result)``, when given, may change the verdicts before they are written (the class
    vote, :mod:`cryosift.classify.vote`)."""
    from cryosift.io.particles import read_particles

    pset = read_particles(path, datadir=datadir, angpix=angpix)
    try:
        on_progress = progress(len(pset)) if progress else None
        result = clean_particles(pset, cfg, on_progress=on_progress)
        if refine is not None:
            refine(pset, result)
        write_clean_outputs(Path(outdir), pset, result)
    finally:
        pset.close()
    return result
