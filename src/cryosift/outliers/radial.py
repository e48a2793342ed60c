"""The ``radial`` preset's decision: radial mean/variance profiles judged against the stack.

Every image (``(B, n, n)``, centre at pixel ``n // 2``) is summarised by its radial profiles:
the mean and the variance of its low-passed, standardised pixels in each one-pixel ring
around the centre (``2 * n_rings`` numbers, the same for every in-plane rotation of the
image). The decision has three steps, none of which needs a label:

1. **Null-calibrated first guess.** The radial-profile z-score (:mod:`cryosift.outliers.profile`)
   of pure noise is about N(0, 1) whatever the SNR, so ``z >= NOISE_Z`` (1.28) lets through
   10 % of noise images and splits the stack into provisional particles and outliers.
2. **Ranking.** A linear discriminant (shrinkage LDA) between the two provisional groups, on
   the standardised radial profiles, scores every image; it is refitted on its own ranking a
   few times (as many on top as the first guess kept). The profiles rank partial and
   multiple-particle images (mass in the outer rings, a flatter centre) below particles
   better than the z-score alone.
3. **Threshold from simulated noise.** Gaussian noise images with the stack's own mean power
   spectrum are scored by the same discriminant, and the threshold lets through the same
   10 % of them as the first guess did; the discriminant is refitted once on the groups this
   threshold makes, and the threshold taken again. The first guess loses the particles whose
   z-score falls below 1.28 (one in nine at SNR 1/70); the discriminant's score separates them
   from noise, so the threshold keeps them. It does not depend on how many outliers the stack
   holds.

**Separability.** When the particles are faint (small, low contrast, thick ice), steps 1-3
cannot tell them from noise, and a threshold that lets through 10 % of noise loses most of
them. The z-score says how faint they are: pure noise has z ~ N(0, 1), particles
~ N(mu, 1), so the stack's mean ``m = f mu`` and variance ``v = 1 + f (1 - f) mu^2`` give the
particles' typical signal ``mu = (v - 1 + m^2) / m`` and their share ``f = m / mu``
(:func:`separability`). When ``mu`` is so low that the z-score alone, at its 10 % noise
pass, would lose more than :data:`WEAK_SIGNAL_LOSS` of the particles, and the discriminant's
decision is expected to keep less than ``1 - LOW_LOSS`` of the particles (each image weighted
by its probability of being one, from a two-Gaussian mixture of the z-scores:
:func:`expected_tpr`, :func:`particle_posterior`), the decision also keeps every
image whose z-score reaches ``m - Phi^-1(1 - EXPECTED_LOSS)`` (it keeps what it cannot
judge, at an expected loss of true particles of at most ``EXPECTED_LOSS``, since
``mu >= m``) unless its score lies below what 99 % of noise
reaches (clear junk). A stack without any particle signal (``m`` within three standard
errors of 0) is judged as before: noise is removed.

**Moderate separability.** Otherwise, when ``mu`` is below 2.93 (the z-score alone would
lose more than ``EXPECTED_LOSS`` of the particles) and the usual threshold loses particles
(:func:`loses_particles`: it keeps less than :data:`MODERATE_KEEP` of the images that do not
score like noise, :func:`kept_share`, or is expected to keep less than ``1 - LOW_LOSS`` of
the particles, :func:`expected_tpr`), it lets :data:`LOOSE_NOISE_PASS` of the noise through
instead of ``NOISE_PASS``, and also keeps every image whose z-score reaches
``mu - Phi^-1(1 - FLOOR_LOSS)`` (:data:`FLOOR_LOSS`; unless its score is clear junk, as
above): more junk for 2D classification, fewer particles lost. (The second estimate catches
stacks above the low band, particle signal 1.5-2.2 noise sd, where junk with some particle
signal makes the first read 0.97-1.2 while the usual threshold keeps 0.41-0.87 of the
particles; there the z-score keeps particles the discriminant's loosened threshold does
not.)

Also here: the detection window (a central crop sized from the particle diameter) and the
contrast polarity found from the stack's typical profile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import ndimage

from cryosift.outliers.lda import Discriminant, fit_shrinkage_lda
from cryosift.outliers.mixture import fit_tied_mixture
from cryosift.outliers.profile import ProfileStats, image_moments, ring_index

#: Share of pure-noise images the decision lets through.
NOISE_PASS = 0.10
#: z-score above which pure noise falls with probability ``NOISE_PASS`` (the standard
#: normal's 0.9 quantile): the first guess lets through one noise image in ten.
NOISE_Z = 1.2816
#: Simulated noise images that calibrate the final threshold.
NULL_IMAGES = 16384
#: Gaussian low-pass applied before the ring profiles, its sigma in particle radii: finer
#: detail is mostly noise at the SNRs where the decision is hard.
SMOOTH_RADII = 1 / 12
#: Times the discriminant is fitted, each time on the groups the previous fit ranked.
REFINE_ROUNDS = 3
#: Separability may be low when the z-score alone, at the ``NOISE_PASS`` threshold, would lose
#: more than this share of the particles (the particles' signal ``mu`` below 1.53 noise sd).
#: Above that, the discriminant's ring profiles separated particles from junk in every stack
#: measured (constructed discs at mu 1.9-2.2, EMPIAR-10017 boxes at 2.4).
WEAK_SIGNAL_LOSS = 0.40
#: ... and it is low when the discriminant's decision is also expected to keep less than
#: ``1 - LOW_LOSS`` of the particles (:func:`expected_tpr`).
LOW_LOSS = 0.15
#: Share of true particles the decision may lose when separability is low.
EXPECTED_LOSS = 0.05
#: Share of noise scoring below the level under which a low-separability stack's images are
#: clear junk and stay out.
JUNK_QUANTILE = 0.01
#: The usual decision should keep at least this share of the images that do not score like
#: noise (:func:`kept_share`); when it keeps less, the threshold lets ``LOOSE_NOISE_PASS`` of
#: the noise through instead of ``NOISE_PASS``.
MODERATE_KEEP = 0.95
#: Share of pure-noise images the loosened threshold lets through (at SNR 1/70 in coloured
#: noise it keeps 0.91-0.94 of the particles, at TNR 0.72-0.76).
LOOSE_NOISE_PASS = 0.30
#: Share of the particles the loosened decision's z-score floor may leave below it: images
#: whose z-score reaches ``mu - Phi^-1(1 - FLOOR_LOSS)`` are kept too (particles score about
#: N(mu, 1) on z; on real low-contrast boxes the z-score separates better than the
#: discriminant, in coloured noise worse, so the loosened decision keeps what either keeps).
FLOOR_LOSS = 0.10


@dataclass(frozen=True)
class Separability:
    """How far the stack's particles stand out of noise, from the z-scores alone.

    ``signal``: the particles' typical z-score ``mu`` (noise standard deviations; 0 when the
    stack shows no particle signal), ``share``: the estimated share of particle images
    (``m / mu``; once the decision is made, the mean of :func:`particle_posterior`; recorded,
    not said in :meth:`sentence`: where nearly every image holds a particle, as in picks, the
    mixture's two components split the particles themselves and the share reads far too low,
    0.13 on a simulated crowded field of 99 % particles),
    ``auc``: the chance that a particle outscores a noise image on z (``Phi(mu / sqrt 2)``),
    ``detected``: whether any particle signal is there at all, ``low``: whether the usual
    decision would lose more than :data:`LOW_LOSS` of the particles, ``expected_tpr``: the
    share of particles the usual decision is expected to keep (:func:`expected_tpr`, once
    known), ``mean_z``: the stack's mean z-score ``m = f mu``, ``kept_share``: the share of
    the images that do not score like noise the usual decision keeps (:func:`kept_share`),
    ``loosened``: whether the threshold was loosened because that share was too small."""

    signal: float
    share: float
    auc: float
    detected: bool
    low: bool
    expected_tpr: float | None = None
    mean_z: float = 0.0
    kept_share: float | None = None
    loosened: bool = False

    @property
    def moderate(self) -> bool:
        """Whether the z-score alone, at its ``NOISE_PASS`` threshold, would lose more than
        ``EXPECTED_LOSS`` of the particles (``mu`` below 2.93 noise sd): only then may the
        threshold be loosened; above, what the threshold loses is junk that stands out of
        noise, not particles."""
        return self.detected and NormalDist().cdf(NOISE_Z - self.signal) > EXPECTED_LOSS

    @property
    def floor(self) -> float:
        """A z-score above which at least ``1 - EXPECTED_LOSS`` of the particles lie
        whatever their share: from the stack's mean z (``f mu <= mu``), not from ``mu``,
        whose estimate leans on non-particles scoring with unit variance (real noise boxes
        score with 1.05-1.1, which inflates ``mu`` when the signal is faint)."""
        return self.mean_z - NormalDist().inv_cdf(1 - EXPECTED_LOSS)

    @property
    def moderate_floor(self) -> float:
        """The z-score the loosened decision keeps images from: ``1 - FLOOR_LOSS`` of the
        particles (z about N(mu, 1)) lie above it."""
        return self.signal - NormalDist().inv_cdf(1 - FLOOR_LOSS)

    @property
    def level(self) -> str:
        """``none`` (no particle signal), ``LOW``, ``moderate`` (the threshold was loosened)
        or ``good``: the word the summary line shows."""
        if not self.detected:
            return "none"
        return "LOW" if self.low else "moderate" if self.loosened else "good"

    def describe(self) -> dict[str, Any]:
        out = {
            "level": self.level,
            "signal_z": round(self.signal, 3),
            "particle_share": round(self.share, 3),
            "auc": round(self.auc, 3),
            "particle_signal_found": self.detected,
            "low": self.low,
        }
        if self.expected_tpr is not None:
            out["expected_tpr_of_the_usual_decision"] = round(self.expected_tpr, 3)
        if self.kept_share is not None:
            out["non_noise_kept_by_the_usual_decision"] = round(self.kept_share, 3)
        out["noise_pass"] = LOOSE_NOISE_PASS if self.loosened else NOISE_PASS
        if self.low:
            out["expected_particle_loss"] = EXPECTED_LOSS
            out["keep_z_from"] = round(self.floor, 3)
        elif self.loosened:
            out["keep_z_from"] = round(self.moderate_floor, 3)
        return out

    def sentence(self) -> str:
        """One line for a summary."""
        if not self.detected:
            return "separability: no particle signal found (the stack looks like noise)"
        text = (
            f"separability {self.level}: particle signal {self.signal:.2f} noise sd "
            f"(AUC {self.auc:.2f})"
        )
        if self.low:
            text += (
                f"; kept what cannot be judged (z >= {self.floor:.2f}, expected loss of true "
                f"particles at most {EXPECTED_LOSS:.0%}), clear junk still removed"
            )
        elif self.loosened:
            few = (
                f"{self.kept_share:.0%} of the images that do not look like noise"
                if self.kept_share is not None and self.kept_share < MODERATE_KEEP
                else f"{self.expected_tpr or 0:.0%} of the particles"
            )
            text += (
                f"; the usual threshold would keep only {few}, so it lets "
                f"{LOOSE_NOISE_PASS:.0%} of noise through instead of {NOISE_PASS:.0%} and keeps "
                f"z >= {self.moderate_floor:.2f} (more junk kept, for 2D classification to "
                "sort; --strict-threshold keeps the usual threshold)"
            )
        return text


def separability(z: np.ndarray) -> Separability:
    """:class:`Separability` from the radial-profile z-scores ``(B,)`` of a stack (method
    of moments for a mixture of N(0, 1) non-particles and N(mu, 1) particles)."""
    z = np.asarray(z, dtype=np.float64)
    n = len(z)
    m = float(z.mean()) if n else 0.0
    if n < 20 or m <= 3 / np.sqrt(n):
        return Separability(0.0, 0.0, 0.5, detected=False, low=False)
    mu = max(float((z.var() - 1 + m * m) / m), m)
    low = NormalDist().cdf(NOISE_Z - mu) > WEAK_SIGNAL_LOSS
    auc = NormalDist().cdf(mu / np.sqrt(2))
    return Separability(mu, m / mu, auc, True, low, mean_z=m)


def particle_posterior(z: np.ndarray) -> np.ndarray:
    """Each image's probability ``(B,)`` of being a particle, from the z-scores ``(B,)``
    alone: a mixture of two Gaussians with one shared variance (non-particles and
    particles, :func:`cryosift.outliers.mixture.fit_tied_mixture`), the particles being the
    component with the higher mean. Unlike the method of moments it does not assume unit
    variance, which real and constructed stacks both break (0.5-0.9). Deterministic."""
    z = np.asarray(z, dtype=np.float64)
    if len(z) < 4 or float(z.std()) == 0.0:
        return np.full(len(z), 0.5)
    return fit_tied_mixture(z).posterior(z)[:, 1]


def expected_tpr(kept: np.ndarray, posterior: np.ndarray) -> float:
    """The share of the particles a decision keeping ``kept`` ``(B,)`` keeps, each image
    weighted by its probability of being a particle, ``posterior`` ``(B,)``
    (:func:`particle_posterior`)."""
    weight = float(posterior.sum())
    return float((posterior * kept).sum() / weight) if weight > 0 else 1.0


def kept_share(score: np.ndarray, null_scores: np.ndarray, threshold: float) -> float | None:
    """The estimated share of the images that do not score like noise which ``score > threshold``
    keeps, from the stack's scores ``(B,)`` and the noise's ``(M,)`` alone.

    Few images that stand out of noise score below the noise's median, so the images
    that score like noise are about ``g = 2 P(score < noise median)`` of the stack, and of
    them the share the threshold lets through pure noise passes. None when ``g`` leaves
    less than a tenth of the stack (no share to speak of)."""
    score, null_scores = np.asarray(score), np.asarray(null_scores)
    g = 2 * float((score < np.median(null_scores)).mean())
    if g > 0.9:
        return None
    passed = float((null_scores > threshold).mean())
    return float(((score > threshold).mean() - g * passed) / (1 - g))


def loses_particles(expected: float, share: float | None) -> bool:
    """Whether the usual threshold loses particles, by either estimate: it is expected to keep
    less than ``1 - LOW_LOSS`` of them (:func:`expected_tpr`), or less than
    :data:`MODERATE_KEEP` of the images that do not score like noise (:func:`kept_share`,
    None when it cannot be told)."""
    return expected < 1 - LOW_LOSS or (share is not None and share < MODERATE_KEEP)


def window_size(size: int, radius: float, diameters: float) -> int:
    """Side of the central detection window: ``diameters`` particle diameters (``2 radius``
    px), with the parity of ``size`` so that it shares the image centre, at most ``size``."""
    w = round(diameters * 2 * radius)
    if (size - w) % 2:
        w += 1
    return max(1, min(size, w))


def central_window(images: np.ndarray, w: int) -> np.ndarray:
    """The central ``w x w`` crop (a view) of ``(..., n, n)`` images; pixel ``n // 2`` stays
    the centre because ``n - w`` is even."""
    n = images.shape[-1]
    if (n - w) % 2:
        raise ValueError(f"window {w} and image {n} must have the same parity")
    s = (n - w) // 2
    return images[..., s : s + w, s : s + w]


def polarity(template: np.ndarray, radius: float) -> int:
    """+1 when the stack's typical particle is brighter than its surroundings, -1 when darker.

    ``template``: ``(n, n)`` zero-mean radial profile image (:func:`radial_template`);
    ``radius``: particle radius, px. The sign of the template's mean inside half the radius.
    """
    rings = ring_index(template.shape[-1])
    centre = template[rings <= max(1.0, radius / 2)]
    return -1 if centre.mean() < 0 else 1


class RingProfiles:
    """Per-image radial mean and variance profiles of ``(B, n, n)`` images.

    Each image is low-passed by a Gaussian of ``smooth`` px (none at 0), standardised (zero
    mean, unit standard deviation; blank images stay zero), then averaged over the rings of
    :func:`ring_index`; the result is ``(B, 2 * n_rings)``: ring means first, then ring
    variances.
    """

    def __init__(self, size: int, smooth: float = 0.0):
        rings = ring_index(size).ravel()
        counts = np.bincount(rings).astype(np.float64)
        self.n_rings = len(counts)
        self.size = size
        self.smooth = float(smooth)
        # dense (n * n, n_rings): a BLAS product is about 5x scipy.sparse's at these sizes
        self._avg = np.zeros((size * size, self.n_rings), np.float32)
        self._avg[np.arange(size * size), rings] = (1.0 / counts)[rings]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        if self.smooth > 0:
            x = ndimage.gaussian_filter(x, self.smooth, axes=(-2, -1), mode="reflect")
        mean, sd = (m.astype(np.float32)[:, None] for m in image_moments(x))
        x = (x.reshape(len(x), -1) - mean) / sd
        ring_mean = x @ self._avg
        ring_sq = (x * x) @ self._avg
        return np.hstack([ring_mean, np.maximum(ring_sq - ring_mean**2, 0)])


@dataclass(frozen=True)
class RadialDecision:
    """``score`` ``(B,)`` (LDA log-odds, particles high) and the ``threshold``: an image is
    kept when ``score > threshold``, or, when separability is low or the threshold was
    loosened, when its z-score reaches the ``floor`` and its score is above ``junk``.
    ``provisional`` ``(B,)`` is the first guess (``z >= NOISE_Z``); ``expected_tpr`` the
    share of particles the score's decision is expected to keep (:func:`expected_tpr`; None
    without a separability to base it on); ``kept_share`` the share of the images that do
    not score like noise that the usual threshold keeps (:func:`kept_share`) and, when the
    threshold was loosened, ``usual_threshold`` the one it replaced; ``particle_share`` the
    stack's estimated share of particles (the mean of :func:`particle_posterior`)."""

    score: np.ndarray
    threshold: float
    provisional: np.ndarray
    z: np.ndarray | None = None
    floor: float = np.inf
    junk: float = -np.inf
    expected_tpr: float | None = None
    kept_share: float | None = None
    usual_threshold: float | None = None
    particle_share: float | None = None
    #: ``(B,)`` what the loosened decision would keep, where the usual threshold stands
    #: although it loses particles (the signal looked too strong to loosen): the class vote
    #: loosens it when it abstains (:func:`cryosift.classify.vote.combine`); else None.
    if_loosened: np.ndarray | None = None

    @property
    def noise_pass(self) -> float:
        """The share of pure-noise images the threshold lets through."""
        return NOISE_PASS if self.usual_threshold is None else LOOSE_NOISE_PASS

    @property
    def low(self) -> bool:
        """Whether the z-score floor is the low-separability one."""
        return bool(np.isfinite(self.floor)) and self.usual_threshold is None

    @property
    def kept_by_loosening(self) -> np.ndarray:
        """``(B,)`` images kept only because the decision was loosened: score between
        ``threshold`` and ``usual_threshold``, or kept by the z-score floor alone."""
        if self.usual_threshold is None:
            return np.zeros(len(self.score), bool)
        return self.kept & (self.score <= self.usual_threshold)

    @property
    def by_score(self) -> np.ndarray:
        return self.score > self.threshold

    @property
    def kept(self) -> np.ndarray:
        if self.z is None or not np.isfinite(self.floor):
            return self.by_score
        return self.by_score | ((self.z >= self.floor) & (self.score > self.junk))


def _standardiser(x: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Maps ``(B', F)`` features to zero mean, unit variance by the columns of ``x`` ``(B, F)``
    (constant columns are only centred)."""
    mean, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return lambda y: (np.asarray(y, dtype=np.float64) - mean) / sd


def _noise_threshold(null_scores: np.ndarray) -> float:
    """The score above which ``NOISE_PASS`` of the noise images' scores ``(M,)`` fall."""
    return float(np.quantile(null_scores, 1 - NOISE_PASS))


def radial_decision(
    profiles: np.ndarray,
    z: np.ndarray,
    null: np.ndarray | None = None,
    z0: float = NOISE_Z,
    rounds: int = REFINE_ROUNDS,
    sep: Separability | None = None,
    loosen: bool = True,
) -> RadialDecision:
    """Judge a whole stack from its radial profiles ``(B, F)`` and z-scores ``(B,)``.

    The provisional particles are ``z >= z0``; a shrinkage LDA between them and the rest
    ranks every image. It is fitted ``rounds`` times, each time between the top of the
    previous ranking (as many images as there are provisional particles) and the rest.

    With ``null`` ``(M, F)``, the profiles of pure-noise images (:func:`null_profiles`),
    the threshold lets through ``NOISE_PASS`` of them; the LDA is refitted once between the
    images above it and the rest, and the threshold is taken again. Without, the threshold
    keeps as many images as the first guess. When the first guess keeps all or none (or the
    stack is tiny) the z-score is the score and ``z0`` the threshold. With ``sep`` low (and
    ``null``), and the score's decision expected to keep less than ``1 - LOW_LOSS`` of the
    particles (:func:`expected_tpr`), images whose z-score reaches ``sep.floor`` are kept
    too, unless their score is below what 99 % of the noise reaches. Otherwise, with
    ``loosen``, when ``sep`` is :attr:`Separability.moderate` and the threshold loses
    particles (:func:`loses_particles`), it is loosened to let :data:`LOOSE_NOISE_PASS` of
    the noise through, and images whose z-score reaches ``sep.moderate_floor`` are kept too
    (unless their score is clear junk, as above). When only the signal's strength stops the
    loosening, what it would keep is returned as ``if_loosened``. Deterministic: no random
    choice is made.
    """
    z = np.asarray(z, dtype=np.float64)
    provisional = z >= z0
    n_keep = int(provisional.sum())
    if n_keep < 2 or len(z) - n_keep < 2:
        return RadialDecision(z, float(z0), provisional)
    x = np.asarray(profiles, dtype=np.float64)
    standardise = _standardiser(x)
    x = standardise(x)
    lda, score, ranked = _ranked_lda(x, provisional, rounds)
    if null is None:
        threshold = float((ranked[n_keep - 1] + ranked[n_keep]) / 2)
        return RadialDecision(score, threshold, provisional)
    score, null_scores, threshold = _against_noise(x, score, standardise(null), lda)
    if sep is None or not sep.detected:
        return RadialDecision(score, threshold, provisional)
    return _by_separability(score, threshold, provisional, z, null_scores, sep, loosen)


def _ranked_lda(
    x: np.ndarray, provisional: np.ndarray, rounds: int
) -> tuple[Discriminant, np.ndarray, np.ndarray]:
    """A shrinkage LDA fitted ``rounds`` times on the standardised profiles ``x`` ``(B, F)``,
    first between the ``provisional`` particles and the rest, then between the top of its
    previous ranking (as many) and the rest: the last LDA, its ``(B,)`` scores and those
    sorted in decreasing order."""
    n_keep = int(provisional.sum())
    group = provisional
    for _ in range(max(1, rounds)):
        lda = fit_shrinkage_lda(x, group)
        score = lda.decision_function(x)
        ranked = np.sort(score)[::-1]
        group = score >= ranked[n_keep - 1]
    return lda, score, ranked


def _against_noise(
    x: np.ndarray, score: np.ndarray, null_x: np.ndarray, lda: Discriminant
) -> tuple[np.ndarray, np.ndarray, float]:
    """The threshold that lets ``NOISE_PASS`` of the noise profiles ``null_x`` ``(M, F)``
    through ``lda``'s scores (``score`` ``(B,)`` of the images ``x`` ``(B, F)``), the LDA
    refitted once between the images above it and the rest and the threshold taken again: the
    ``(B,)`` scores, the ``(M,)`` noise's scores and the threshold."""
    null_scores = lda.decision_function(null_x)
    threshold = _noise_threshold(null_scores)
    group = score > threshold
    if 2 <= group.sum() <= len(x) - 2:
        lda = fit_shrinkage_lda(x, group)
        score = lda.decision_function(x)
        null_scores = lda.decision_function(null_x)
        threshold = _noise_threshold(null_scores)
    return score, null_scores, threshold


def _by_separability(
    score: np.ndarray,
    threshold: float,
    provisional: np.ndarray,
    z: np.ndarray,
    null_scores: np.ndarray,
    sep: Separability,
    loosen: bool,
) -> RadialDecision:
    """The decision on ``score`` ``(B,)`` at ``threshold`` when ``sep`` detected a particle
    signal: with the z-score floor where separability is low and the usual decision loses
    particles, loosened where it is moderate (or what loosening would keep recorded), as
    :func:`radial_decision` says."""
    posterior = particle_posterior(z)
    usual = expected_tpr(score > threshold, posterior)
    share_found = float(posterior.mean())
    junk = float(np.quantile(null_scores, JUNK_QUANTILE))
    if sep.low and usual < 1 - LOW_LOSS:
        return RadialDecision(
            score, threshold, provisional, z, sep.floor, junk, usual, particle_share=share_found
        )
    share = kept_share(score, null_scores, threshold)
    decision = RadialDecision(
        score,
        threshold,
        provisional,
        expected_tpr=usual,
        kept_share=share,
        particle_share=share_found,
    )
    if not loosen or not loses_particles(usual, share):
        return decision
    loosened = RadialDecision(
        score,
        float(np.quantile(null_scores, 1 - LOOSE_NOISE_PASS)),
        provisional,
        z,
        sep.moderate_floor,
        junk,
        expected_tpr=usual,
        kept_share=share,
        usual_threshold=threshold,
        particle_share=share_found,
    )
    if sep.moderate:
        return loosened
    return dataclasses.replace(decision, if_loosened=loosened.kept)


def null_profiles(
    stats: ProfileStats, rings: RingProfiles, seed: int = 0, n: int = NULL_IMAGES
) -> np.ndarray:
    """Radial profiles ``(n, F)`` of Gaussian noise images with the mean power spectrum of
    the images ``stats`` has seen: ``n // 2`` images and their negatives, so that the null
    (and the decision) is the same for either contrast polarity. Made 512 at a time;
    deterministic per ``seed``."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(0, n // 2, 512):
        noise = stats.noise_images(min(512, n // 2 - i), rng)
        parts += [rings(noise), rings(-noise)]
    return np.concatenate(parts)
