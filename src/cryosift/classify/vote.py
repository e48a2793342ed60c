"""The class vote: when one image's radial profile cannot decide, its 2D class can.

The radial-profile detector (:mod:`cryosift.outliers`) judges each image alone. Where
particles hardly stand out of the noise, or touch their neighbours, that vote is noisy: it
removes real particles as "partial" or "noise". A 2D classification holds a stronger one:

- each **class average** is judged (:func:`cryosift.classify.judge.judge_classes`): a line
  or edge, round blobs of several sizes (ice), a rare strong blob or a class of too few
  images is junk, and so is a class holding less than :data:`MIN_AMPLITUDE` of the particle
  the classes share (an empty class);
- each **image's fit** is its best normalised correlation with a particle class's average,
  under every rotation and small shift (:func:`cryosift.classify.judge.template_match`, a
  matched filter with the particle's own views), compared with the same correlation for
  :data:`NULL_IMAGES` noise images that have the stack's mean power spectrum: ``fit_p`` is the
  share of those noise images that fit at least as well. An image *fits* when
  ``fit_p <= NOISE_PASS``, the share of noise the radial detector itself lets through. The
  averages an image is matched with are held out: those of the other half of the stack
  (even and odd images), since an average holds a part of each of its own images and so
  fits their noise, which the noise images' null would not see.

The votes combine (:func:`combine`): an image the radial profile rejects but that sits in a
particle class and fits one is kept (a centred particle with a neighbour in its box is one),
and so is one in a particle class whose own z-score passes the radial detector's first guess
(``z >= NOISE_Z``, reached by 10 % of noise, as the fit is): on crowded fields the
discriminant rejects centred particles whose z-score stands well out of noise
(``benchmarks/clean_on_picks.md``).
An image the radial profile keeps is removed when its class average shows a line or edge
(:data:`NO_PARTICLE`), or when its class is otherwise junk (empty, off-centre structure, a
round or rare strong blob), the image fits no particle class and its own z-score does not
pass the first guess (``z < NOISE_Z``, the rescue's mirror): a blob-like matched filter
answers to a carbon edge as much as to a particle, so the fit alone cannot clear a line, while
at low SNR empty and blob classes share their members with particles that fit the particle's
classes, or that stand out of noise by their own radial profile without fitting them (faint
particles classed with ice: 64-96 % of such removals, by kind, were particles on the benchmark's
fields, ``benchmarks/clean_on_picks.md``).
Only a line at least as strong as a typical particle is a line here: a class of weak
particles beside a neighbour also has more structure outside than its own faint particle
(``off-centre structure``), and most of its members are particles. Classes of too few images
do not vote. Each changed verdict's reason says that the class decided.

The vote abstains from removing when fewer than :data:`MIN_FIT_SHARE` of the images fit a
particle class: then the classes may not show what the images hold (at very low contrast the
classes mix particles and junk alike, and a class average with hardly any particle in it
looks like a line or an empty field), and the radial profile's inliers stand. It still keeps
the images that fit a particle class: the fit is measured against noise whatever the
classes look like, and a kept image costs less than a lost particle (2D classification sorts
junk; it cannot restore a particle). Nor do the classes then confirm what the radial
threshold removes: where it loses particles but was not loosened because the signal looked
strong (carbon and ice lend a faint field strong signal), the images the loosened decision
keeps (``kept_if_loosened``, :class:`cryosift.outliers.radial.RadialDecision`) are kept;
in ``cryosift run``, not when the classes say that the radial rejects are unlike its inliers:
their share that fits a particle class reaches noise's but exceeds it by under
:data:`NOISE_LIKE_FIT` of the inliers' excess (:func:`reject_fit_ratio`; such rejects were
2-5 % particles on a sparse field with ice). Rejects that fit less often than noise are not
read (the fit then fails for them, and on the faint fields where the radial profiles follow
ice those rejects are the particles), and only ``run`` reads it, where the picker's survey
can doubt the radial profiles (``benchmarks/clean_on_picks.md``).
And when there is reason to doubt the radial profiles themselves (``cryosift run``: the
picker's survey found that they call the candidates of its particle classes particles less
often than not, :func:`cryosift.picking.adapt.radial_doubt`), an abstaining vote keeps every
image: with neither vote to trust, nothing is removed (the profiles follow ice there, and
what they remove is as often a particle as not: ``benchmarks/clean_on_picks.md``).
And where the picker's default cut fell between two clear humps of its scores (``cryosift
run`` on a sparse field, :func:`cryosift.picking.adapt.picks_trusted`), the picks are
already told from the rest: a radial reject is kept unless its class is junk too (there the
radial verdicts removed particles more often than junk, ``benchmarks/clean_on_picks.md``).

Images are ``(B, n, n)`` centred on pixel ``n // 2``, the classification's own
(:func:`cryosift.classify.run.prepare`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd

from cryosift.classify.judge import JUNK_KINDS, judge_classes, template_match
from cryosift.outliers.radial import LOOSE_NOISE_PASS, NOISE_Z
from cryosift.progress import Progress, no_progress

if TYPE_CHECKING:
    from cryosift.classify.align import ClassifyResult
    from cryosift.io.particles import ParticleSet
    from cryosift.outliers.clean import CleanResult

#: Share of noise images an image must fit a particle class better than (1 - this), as the
#: radial detector's usual threshold lets this share of noise through.
NOISE_PASS = 0.10
#: A class holding less than this share of the particle (amplitude relative to the median
#: class's) is junk: an empty field, or background beside a particle.
MIN_AMPLITUDE = 0.5
#: Class kinds whose members are junk however well they fit a particle class.
NO_PARTICLE = ("line or edge",)
#: Class kinds that say nothing of their members.
NO_VOTE = ("too small",)
#: Share of the images that must fit a particle class for the vote to speak (a majority).
MIN_FIT_SHARE = 0.5
#: Noise images the fit is compared with.
NULL_IMAGES = 2000
#: Images whose power spectrum shapes the noise (evenly spaced).
SPECTRUM_SAMPLE = 4096
#: Radial rejects fit a particle class like noise when their share that fits reaches noise's
#: (:data:`NOISE_PASS`) but exceeds it by less than this fraction of the radial inliers'
#: excess (:func:`reject_fit_ratio` in [0, this)): an abstaining vote in ``cryosift run``
#: then does not keep them by the loosened threshold.
NOISE_LIKE_FIT = 0.1


@dataclass
class ClassVote:
    """Per image (``B``): its class ``labels`` and ``fit_p``; per class (``K``): whether it
    is a ``particle`` class, its ``kind`` (``particle``, ``empty``, or the judgement's junk
    verdict), the ``numbers`` users see it by (1-based) and the ``averages`` ``(K, n, n)``
    that were judged; the ``seconds`` the vote took (classification not included)."""

    labels: np.ndarray
    fit_p: np.ndarray
    particle: np.ndarray
    kind: list[str]
    seconds: float
    numbers: np.ndarray
    averages: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1)))
    #: the particle radius the classes were judged with (px of the averages)
    radius: float | None = None
    #: images kept and removed by the class against their radial profile (set by combine)
    changed: tuple[int, int] = (0, 0)
    #: radial rejects kept by the loosened threshold as the vote abstained (set by combine)
    loosened: int = 0
    #: radial rejects kept as the vote abstained and the radial profiles were doubted
    doubted: int = 0
    #: radial rejects kept as the picks were trusted (``picks_trusted`` of :func:`combine`)
    trusted: int = 0
    #: radial rejects the loosened threshold keeps, left out as the rejects fit like noise
    not_loosened: int = 0
    #: :func:`reject_fit_ratio` of the radial verdicts (set by combine)
    reject_fit_ratio: float | None = None

    @property
    def class_number(self) -> np.ndarray:
        """``(B,)`` each image's class as users see it numbered."""
        return np.asarray(self.numbers[self.labels])

    @property
    def fits(self) -> np.ndarray:
        """``(B,)`` bool: the image fits a particle class better than all but
        :data:`NOISE_PASS` of noise."""
        return self.fit_p <= NOISE_PASS

    @property
    def abstains(self) -> bool:
        """Fewer than :data:`MIN_FIT_SHARE` of the images fit a particle class: the vote
        removes nothing (it still keeps images that fit)."""
        return bool(self.fits.mean() < MIN_FIT_SHARE) if len(self.fits) else True

    @property
    def image_kinds(self) -> np.ndarray:
        """``(B,)`` the kind of each image's class (object array of str)."""
        return np.asarray(np.array(self.kind, dtype=object)[self.labels])

    @property
    def counts(self) -> np.ndarray:
        """``(K,)`` images in each class."""
        return np.bincount(self.labels, minlength=len(self.particle))

    @property
    def in_particle_class(self) -> np.ndarray:
        return np.asarray(self.particle[self.labels])

    def summary(self) -> dict[str, Any]:
        """JSON-ready record of the vote (what it changed: after :func:`combine`)."""
        counts = self.counts
        return {
            "kept_by_class": self.changed[0],
            "removed_by_class": self.changed[1],
            "kept_by_loosening": self.loosened,
            "kept_as_radial_profiles_doubted": self.doubted,
            "kept_as_picks_trusted": self.trusted,
            "loosened_but_fit_like_noise": self.not_loosened,
            "reject_fit_ratio": (
                None if self.reject_fit_ratio is None else round(self.reject_fit_ratio, 4)
            ),
            "images": len(self.labels),
            "classes": len(self.particle),
            "particle_classes": int(self.particle.sum()),
            "share_in_particle_classes": round(float(self.in_particle_class.mean()), 4),
            "share_fitting_a_particle_class": round(float(self.fits.mean()), 4),
            "abstained": self.abstains,
            "class_kinds": {k: int(counts[[c == k for c in self.kind]].sum()) for k in
                            sorted(set(self.kind))},
            "noise_pass": NOISE_PASS,
            "seconds": round(self.seconds, 2),
        }  # fmt: skip


def particle_classes(
    averages: np.ndarray, counts: np.ndarray, radius: float
) -> tuple[np.ndarray, list[str]]:
    """Which class ``averages`` ``(K, n, n)`` of ``counts`` ``(K,)`` images show the particle
    (particle ``radius`` px): ``(K,)`` bool and each class's kind (see the module)."""
    j = judge_classes(averages, counts, radius)
    kind = [
        v if v in JUNK_KINDS else "empty" if a < MIN_AMPLITUDE else "particle"
        for v, a in zip(j.verdict, j.amplitude, strict=True)
    ]
    return np.array([k == "particle" for k in kind], bool), kind


def noise_like(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``(n, s, s)`` Gaussian noise images with the mean power spectrum of the standardised
    ``images`` ``(B, s, s)`` (an evenly spaced sample of them); deterministic per ``seed``."""
    from cryosift.outliers.profile import ProfileStats

    step = max(1, len(images) // SPECTRUM_SAMPLE)
    stats = ProfileStats(images.shape[-1])
    stats.add(np.asarray(images[::step], np.float32))
    return stats.noise_images(n, np.random.default_rng(seed))


def fit_pvalues(
    images: np.ndarray,
    templates: np.ndarray,
    radius: float,
    seed: int = 0,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """``(B,)`` for each of ``images`` ``(B, n, n)``, the share of :data:`NULL_IMAGES` noise
    images (``noise``, default :func:`noise_like`) whose best match with ``templates``
    ``(P, n, n)`` is at least its own (1 when there is no template)."""
    if not len(templates) or not len(images):
        return np.ones(len(images))
    if noise is None:
        noise = noise_like(images, NULL_IMAGES, seed)
    null = np.sort(template_match(templates, noise, radius))
    return share_above(null, template_match(templates, images, radius))


def share_above(null: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``(B,)`` the share of the sorted ``null`` scores at least each ``score`` ``(B,)``."""
    return 1.0 - np.searchsorted(null, score, side="left") / len(null)


def held_out_fit(
    images: np.ndarray, result: ClassifyResult, particle: np.ndarray, radius: float, seed: int
) -> np.ndarray:
    """``(B,)`` :func:`fit_pvalues` of the even images against the ``particle`` classes'
    averages of the odd ones, and of the odd against those of the even."""
    from cryosift.classify.run import subset_averages

    noise = noise_like(images, NULL_IMAGES, seed)
    half = np.arange(len(images)) % 2
    out = np.ones(len(images))
    for h in (0, 1):
        others = subset_averages(images, result, half != h)[particle]
        counts = np.bincount(result.labels[half != h], minlength=len(particle))[particle]
        mine = half == h
        out[mine] = fit_pvalues(images[mine], others[counts > 0], radius, noise=noise)
    return out


def class_vote(
    images: np.ndarray,
    result: ClassifyResult,
    radius: float,
    seed: int = 0,
    numbers: np.ndarray | None = None,
) -> ClassVote:
    """The vote of the classification ``result`` of ``images`` ``(B, n, n)`` (particle
    ``radius`` px), classes shown as ``numbers`` ``(K,)`` (default: 1, 2, ...);
    deterministic per ``seed``."""
    t0 = time.perf_counter()
    particle, kind = particle_classes(result.averages, result.counts, radius)
    fit_p = held_out_fit(images, result, particle, radius, seed)
    if numbers is None:
        numbers = np.arange(1, len(particle) + 1)
    seconds = time.perf_counter() - t0
    return ClassVote(
        result.labels,
        fit_p,
        particle,
        kind,
        seconds,
        np.asarray(numbers),
        result.averages,
        radius=radius,
    )


def join_rest(
    pset: ParticleSet,
    rows: np.ndarray,
    images: np.ndarray,
    sample: ClassifyResult,
    vote: ClassVote,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = no_progress,
) -> tuple[ClassifyResult, ClassVote]:
    """The classification ``sample`` of the particles ``rows`` ``(S,)`` of ``pset`` (their
    prepared ``images`` ``(S, n, n)``) and its ``vote``, grown to every particle of ``pset``:
    the others join the sample's classes (:func:`cryosift.classify.run.join_classes`) and
    are fitted against its particle classes' averages, which hold none of them (no half
    need be held out); deterministic per ``seed``."""
    from cryosift.classify.align import ClassifySettings
    from cryosift.classify.run import join_classes

    t0 = time.perf_counter()
    radius = float(vote.radius or 0.0)
    fit_p = np.ones(len(pset))
    fit_p[rows] = vote.fit_p
    templates = sample.averages[vote.particle & (sample.counts > 0)]
    noise = noise_like(images, NULL_IMAGES, seed)
    null = np.sort(template_match(templates, noise, radius)) if len(templates) else None

    def fit(part: np.ndarray, chunk: np.ndarray) -> None:
        if null is not None:
            fit_p[part] = share_above(null, template_match(templates, chunk, radius))

    settings = ClassifySettings(classes=len(sample.averages), radius=radius, seed=seed)
    result = join_classes(pset, rows, sample, settings, device, progress, fit)
    seconds = vote.seconds + time.perf_counter() - t0
    return result, replace(vote, labels=result.labels, fit_p=fit_p, seconds=seconds)


#: The picture of the vote, written beside the cleaned outputs (:func:`vote_figure`).
FIGURE = "class_vote.png"


def drop_stale_figure(outdir: str | Path, figures: dict[str, Any]) -> None:
    """Remove a previous run's :data:`FIGURE` from ``outdir`` when this cleaning, written
    there, had no vote (its ``figures`` do not hold one)."""
    if FIGURE not in figures:
        (Path(outdir) / FIGURE).unlink(missing_ok=True)


def vote_titles(vote: ClassVote) -> list[str]:
    """Each class's title (``K``, class order): its number as users see it, its size and its
    kind on a second line (``3: 412`` over ``line or edge``)."""
    return [f"{n}: {c}\n{k}" for n, c, k in zip(vote.numbers, vote.counts, vote.kind, strict=True)]


def vote_figure(vote: ClassVote, path: str | Path | BinaryIO) -> None:
    """A PNG (to a path or a binary file) of the class averages that voted, in the order of
    their numbers, each titled by :func:`vote_titles` and framed green (shows the particle:
    its members that fit it are kept) or red (junk, or too small to vote), the particle's
    diameter as a dashed circle."""
    from cryosift.classify.run import gallery

    order = np.argsort(vote.numbers, kind="stable")
    titles = vote_titles(vote)
    diameter = None if vote.radius is None else 2 * vote.radius
    gallery(path, vote.averages[order], [titles[k] for k in order], vote.particle[order],
            vote.counts[order], diameter)  # fmt: skip


def reject_fit_ratio(fits: np.ndarray, radial_kept: np.ndarray) -> float | None:
    """How the radial rejects fit a particle class beside its inliers: (the rejects' share
    that fits - :data:`NOISE_PASS`) / (the inliers' share - :data:`NOISE_PASS`), from
    ``fits`` and ``radial_kept`` ``(B,)``. Were particles to fit at one rate and junk at
    noise's, it would be the rejects' share of particles over the inliers'; fainter particles
    fit less often, so it reads low. None when either group is empty or the inliers fit no
    more often than noise (then the fit says nothing)."""
    if radial_kept.all() or not radial_kept.any():
        return None
    excess = float(fits[radial_kept].mean()) - NOISE_PASS
    if excess <= 0:
        return None
    return (float(fits[~radial_kept].mean()) - NOISE_PASS) / excess


@dataclass
class _Changes:
    """What :func:`combine` changes, per image ``(B,)``: radial rejects ``rescued`` (fit or
    z-score), ``loosened``, ``doubted`` and ``trusted`` (kept), radial inliers ``dropped``
    (removed), and the rejects the loosening would keep but ``not_loosened`` as they fit like
    noise."""

    rescued: np.ndarray
    dropped: np.ndarray
    loosened: np.ndarray
    doubted: np.ndarray
    trusted: np.ndarray
    not_loosened: np.ndarray


def _changes(
    table: pd.DataFrame,
    vote: ClassVote,
    radial_doubt: str | None,
    noise_like_out: bool,
    picks_trusted: str | None,
) -> _Changes:
    """The rules of the module docstring applied to ``table``'s radial verdicts (one row per
    image) and ``vote``; sets ``vote.reject_fit_ratio``."""
    radial_kept = table["verdict"].to_numpy() == "inlier"
    fits, in_particle, z = vote.fits, vote.in_particle_class, _profile_z(table)
    kinds = vote.image_kinds
    rescued = ~radial_kept & in_particle & (fits | (z >= NOISE_Z))
    voting_junk = ~in_particle & ~np.isin(kinds, NO_VOTE)
    junk_rules = np.isin(kinds, NO_PARTICLE) | (voting_junk & ~fits & ~(z >= NOISE_Z))
    class_junk = (not vote.abstains) & junk_rules
    if_loosened = _column(table, "kept_if_loosened", False).astype(bool)
    vote.reject_fit_ratio = ratio = reject_fit_ratio(fits, radial_kept)
    like_noise = noise_like_out and ratio is not None and 0 <= ratio < NOISE_LIKE_FIT
    would_loosen = vote.abstains & ~radial_kept & ~rescued & if_loosened
    loosened = would_loosen & (not like_noise)
    doubted = (vote.abstains and radial_doubt is not None) & ~radial_kept & ~rescued & ~loosened
    trusted = (picks_trusted is not None) & ~radial_kept & ~rescued & ~loosened & ~doubted
    trusted &= ~class_junk
    not_loosened = would_loosen & ~loosened & ~doubted & ~trusted
    return _Changes(rescued, radial_kept & class_junk, loosened, doubted, trusted, not_loosened)


def _reasons(
    table: pd.DataFrame,
    vote: ClassVote,
    ch: _Changes,
    radial_doubt: str | None,
    picks_trusted: str | None,
) -> np.ndarray:
    """``(B,)`` the reasons of ``table`` with those of the images ``ch`` changes rewritten to
    say which vote decided and what the image was alone."""
    verdict = table["verdict"].to_numpy()
    reason: np.ndarray = table["reason"].to_numpy().astype(object)
    z, fits, number = _profile_z(table), vote.fits, vote.class_number
    kinds = vote.image_kinds
    for i in np.flatnonzero(ch.rescued):
        why = (
            f"fits a particle class better than {1 - vote.fit_p[i]:.0%} of noise"
            if fits[i]
            else f"its radial z-score {z[i]:.2f} >= {NOISE_Z:.2f}"
        )
        reason[i] = (
            f"kept by its class: class {number[i]} shows the particle and the image {why}; "
            f"alone it was {verdict[i]}: {reason[i]}"
        )
    for i in np.flatnonzero(ch.dropped):
        fit = 1 - vote.fit_p[i]
        why = (
            ""
            if kinds[i] in NO_PARTICLE
            else f", fits a particle class better than {fit:.0%} of noise"
            + ("" if np.isnan(z[i]) else f" and its radial z-score {z[i]:.2f} < {NOISE_Z:.2f}")
        )
        alone = f": {reason[i]}" if reason[i] else ""
        reason[i] = (
            f"removed by its class: class {number[i]} is {kinds[i]}{why}; alone it was kept{alone}"
        )
    kept_as = {
        "loosened": "the class vote abstained: the radial threshold loosened to let "
        f"{LOOSE_NOISE_PASS:.0%} of noise through (or the z-score floor) keeps it",
        "doubted": f"the class vote abstained and {radial_doubt}",
        "trusted": f"{picks_trusted}",
    }
    for name, why in kept_as.items():
        for i in np.flatnonzero(getattr(ch, name)):
            reason[i] = f"kept as {why}; alone it was {verdict[i]}: {reason[i]}"
    return reason


def combine(
    table: pd.DataFrame,
    vote: ClassVote,
    radial_doubt: str | None = None,
    noise_like_out: bool = False,
    picks_trusted: str | None = None,
) -> None:
    """Both votes into ``table`` (the radial detector's: ``verdict``, ``reason``; one row per
    image), by the rules of the module docstring: rescued images become inliers, removed
    ones ``noise``; the reasons of those say so. Nothing is removed when the vote abstains,
    and the radial rejects its ``kept_if_loosened`` column marks are kept (with
    ``noise_like_out``, not when the rejects fit like noise, :data:`NOISE_LIKE_FIT`); all of
    them when ``radial_doubt`` (why the radial profiles are doubted) is given. With
    ``picks_trusted`` (why), whether the vote speaks or not, the radial rejects are kept
    unless their class is junk by the rules that remove radial inliers.
    Adds ``class`` (as numbered), ``class_kind``, ``class_fit_p`` and ``decided_by``
    (``radial``, ``class``, or ``picker`` where ``picks_trusted`` kept a radial reject)."""
    ch = _changes(table, vote, radial_doubt, noise_like_out, picks_trusted)
    reason = _reasons(table, vote, ch, radial_doubt, picks_trusted)
    verdict = table["verdict"].to_numpy().astype(object)
    verdict[ch.rescued | ch.loosened | ch.doubted | ch.trusted] = "inlier"
    verdict[ch.dropped] = "noise"
    vote.changed = (int(ch.rescued.sum()), int(ch.dropped.sum()))
    vote.loosened, vote.doubted = int(ch.loosened.sum()), int(ch.doubted.sum())
    vote.trusted, vote.not_loosened = int(ch.trusted.sum()), int(ch.not_loosened.sum())
    table["verdict"] = verdict.astype(str)
    table["reason"] = reason.astype(str)
    table["class"] = vote.class_number
    table["class_kind"] = vote.image_kinds.astype(str)
    table["class_fit_p"] = np.round(vote.fit_p, 4)
    by_class = ch.rescued | ch.dropped | ch.loosened | ch.doubted
    table["decided_by"] = np.where(by_class, "class", np.where(ch.trusted, "picker", "radial"))


def _column(table: pd.DataFrame, name: str, missing: float | bool) -> np.ndarray:
    """``(B,)`` the ``table``'s column ``name``; ``missing`` for each row when it has none."""
    if name not in table:
        return np.full(len(table), missing)
    return np.asarray(table[name].to_numpy())


def _profile_z(table: pd.DataFrame) -> np.ndarray:
    """``(B,)`` each image's own radial z-score (``profile_z``); NaN, which passes no
    cut, when the table has none."""
    return _column(table, "profile_z", np.nan).astype(np.float64)


#: Classes ``cryosift clean`` sorts a stack into for its vote (fewer for small stacks).
CLEAN_CLASSES = 20


def wanted(separability_level: str | None, classes: int | None) -> bool:
    """Whether ``cryosift clean`` classifies for a vote: ``classes`` given (0: never), or
    else when the radial detector's separability (:attr:`Separability.level
    <cryosift.outliers.radial.Separability.level>`) is not ``good``."""
    if classes is not None:
        return classes > 0
    return separability_level not in (None, "good")


def vote_on_images(
    images: np.ndarray,
    table: pd.DataFrame,
    radius: float,
    classes: int = CLEAN_CLASSES,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = no_progress,
) -> ClassVote | None:
    """Classify ``images`` ``(B, n, n)`` (particle ``radius`` px) into ``classes`` classes
    (fewer when there are fewer than 10 images a class) and let the classes vote on the
    radial detector's ``table`` (:func:`combine`); None (nothing changed) when there are too
    few images for two classes. The classification's steps go to a "class vote" task of
    ``progress``."""
    found = classified_vote(images, radius, classes, seed, device, progress)
    if found is None:
        return None
    combine(table, found[1])
    return found[1]


def classified_vote(
    images: np.ndarray,
    radius: float,
    classes: int = CLEAN_CLASSES,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = no_progress,
) -> tuple[ClassifyResult, ClassVote] | None:
    """The classification of ``images`` of :func:`vote_on_images` and its vote, before the
    vote is combined with anything; None when there are too few images for two classes."""
    from cryosift.classify.align import ClassifySettings, classify, classify_steps
    from cryosift.classify.run import class_count

    k = class_count(len(images), classes)
    if k < 2:
        return None
    settings = ClassifySettings(classes=k, radius=radius, seed=seed)
    advance = progress("class vote", classify_steps(settings))
    classified = classify(images, settings, device, advance)
    return classified, class_vote(images, classified, radius, seed)


def vote_if_wanted(
    images: np.ndarray, table: pd.DataFrame, radius: float, level: str | None, seed: int = 0
) -> ClassVote | None:
    """What ``cryosift clean`` does at its defaults to an in-memory stack ``images``
    ``(B, n, n)`` judged by the radial detector (``table``, whose separability ``level``):
    :func:`vote_on_images` when :func:`wanted` says so, else nothing (None)."""
    return vote_on_images(images, table, radius, seed=seed) if wanted(level, None) else None


def vote_on_particles(
    pset: ParticleSet,
    result: CleanResult,
    classes: int = CLEAN_CLASSES,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress = no_progress,
) -> ClassVote | None:
    """:func:`vote_on_images` for the particle set ``pset`` (prepared as
    :func:`cryosift.classify.run.prepare` does) on the cleaning ``result``
    (:class:`cryosift.outliers.clean.CleanResult`), whose table and statistics change.
    Beyond :data:`cryosift.classify.run.MAX_CLASSIFIED` particles an evenly spaced sample is
    classified and the others join it (:func:`join_rest`)."""
    from cryosift.classify.run import prepare_sample

    t0 = time.perf_counter()
    rows, images, _ = prepare_sample(pset)
    radius = result.radius * images.shape[-1] / result.size
    found = classified_vote(images, radius, classes, seed, device, progress)
    if found is None:
        return None
    classified, vote = found
    if len(rows) < len(pset):
        vote = join_rest(pset, rows, images, classified, vote, seed, device, progress)[1]
    combine(result.table, vote)
    seconds = round(time.perf_counter() - t0 - vote.seconds, 2)
    record(result, vote, classification_seconds=seconds, classified=len(rows))
    return vote


def record(result: CleanResult, vote: ClassVote, **extra: Any) -> None:
    """The ``vote`` (after :func:`combine`) into the cleaning ``result``: its summary (and
    ``extra`` facts) in the statistics, its picture (:data:`FIGURE`) among the figures."""
    result.stats["class_vote"] = {**vote.summary(), **extra}
    result.figures[FIGURE] = lambda p: vote_figure(vote, p)


def vote_note(stats: dict[str, Any]) -> str | None:
    """One line on what the class vote changed, from the cleaning's ``stats``."""
    v = stats.get("class_vote")
    if not v:
        return None
    if v.get("abstained"):
        return (
            f"class vote abstained from removing: only {v['share_fitting_a_particle_class']:.0%} "
            f"of the images fit a particle class (under {MIN_FIT_SHARE:.0%}), so the classes may "
            f"not show what the images hold; {v['kept_by_class']:,} image(s) that fit one kept "
            "against their radial profile"
            + (
                f", and {v['kept_by_loosening']:,} that the radial threshold loosened keeps"
                if v.get("kept_by_loosening")
                else ""
            )
            + (
                f"; {v['loosened_but_fit_like_noise']:,} that the loosened threshold keeps left "
                "out, as the radial rejects fit a particle class like noise (fit ratio "
                f"{v['reject_fit_ratio']:.2f} < {NOISE_LIKE_FIT})"
                if v.get("loosened_but_fit_like_noise")
                else ""
            )
            + (
                f"; {v['kept_as_radial_profiles_doubted']:,} more kept, as the picker's survey "
                "doubts the radial profiles"
                if v.get("kept_as_radial_profiles_doubted")
                else ""
            )
            + _trusted_note(v)
            + _sample_note(v)
        )
    return (
        f"class vote: {v['particle_classes']} of {v['classes']} classes show the particle; "
        f"{v['kept_by_class']:,} image(s) kept and {v['removed_by_class']:,} removed by their "
        "class against their radial profile" + _trusted_note(v) + _sample_note(v)
    )


def _sample_note(v: dict[str, Any]) -> str:
    """The vote note's clause on a classified sample (beyond
    :data:`cryosift.classify.run.MAX_CLASSIFIED` images)."""
    classified, images = v.get("classified"), v.get("images")
    if classified is None or images is None or classified >= images:
        return ""
    return f" (classes of an evenly spaced sample of {classified:,} of the {images:,} images)"


def _trusted_note(v: dict[str, Any]) -> str:
    """The vote note's clause on the radial rejects kept as the picks were trusted."""
    n = v.get("kept_as_picks_trusted")
    return (
        f"; {n:,} radial reject(s) kept, as the picks are the upper of two clear humps of the "
        "picker's scores"
        if n
        else ""
    )
