"""Judge 2D class averages: what is common to many images is the particle.

An average of N aligned images has about sqrt(N) times the SNR of one, so a class average
shows what single images cannot: a line, an empty field, an off-centre or doubled blob, or
the particle. Each average is judged by its radial profile against the profile the classes
share:

- the **consensus profile** is, ring by ring, the median over classes of their rotationally
  averaged profiles, weighted by class size (what most candidates have in common); its image
  ``T`` (zero mean inside the mask, unit norm) is the template;
- a class's **amplitude** is its average's projection on ``T``, relative to the
  candidate-weighted median amplitude: how much of the common particle it holds;
- its **outer structure** is the energy of its average that is not rotationally symmetric,
  outside the particle (beyond :data:`OUTER_RADII` radii, inside the mask), with the noise
  of an average of that many images subtracted, over the energy of its amplitude (at least a
  tenth of the median's): a carbon edge, a line or a neighbouring blob put structure there,
  a centred particle does not.

Verdicts, per class:

- ``line or edge``: outer structure above :data:`MAX_OUTER` (more structure beyond the
  particle than particle), and above it too against the particle energy of the median class
  (a line or edge as strong as a typical particle);
- ``off-centre structure``: outer structure above :data:`MAX_OUTER` of the class's own weak
  particle, but not of the median class's: a faint line, or a class of weak or off-centre
  particles that share a neighbour at one place (centred picks of touching particles give
  such averages). Junk for the picker's survey as a line is; the class vote
  (:mod:`cryosift.classify.vote`) removes only its members that fit no particle class;
- ``round blob``: strong classes (amplitude above :data:`STRONG` times the median) whose
  average is featureless and round (less than :data:`ROUND` of its energy inside the particle
  is not rotationally symmetric, the noise of its mean removed, about the average's own centre:
  :func:`recentred`; a large crystal is often left a pixel or two off the box's centre by the
  alignment, which would read as structure), when there are two or more
  of them and their sizes (the radius where the profile falls to half its central contrast)
  differ by at least :data:`SIZES_DIFFER`: discs of many sizes are ice crystals, whatever
  share of the candidates they hold. A particle's views show features, and a spherical
  particle has one size: its round classes are judged as the other strong classes are;
- ``rare strong blob``: the other featureless round strong classes, when all the strong
  classes (round blobs included) together hold less than :data:`RARE` of the candidates:
  rare, high-contrast and featureless is junk (crisp ice), not the particle. A rare strong
  class with features is not a blob: it holds the clearest views of a sparse particle, whose
  other views are weaker. When the strong classes hold more, they are the particle (a sparse
  field of clear particles, where most candidates are background);
- the others get an estimated **particle share** ``pi``: where their amplitude lies between
  the weakest and the strongest classes (candidate-weighted :data:`SHARE_QUANTILES`),
  clipped to [0, 1]; ``particle`` when ``pi >= 0.5``, ``weak`` below (background or partial
  particles). When the classes' amplitudes hardly spread (the strongest less than
  :data:`MIN_SPREAD` times the weakest), no class can be told from another: every class
  keeps ``pi = 1`` (``particle``) and the ranking is left to the single boxes.

The estimated share of particles among the candidates (``pi`` weighted by class size) says how
precise picking every candidate would be (:attr:`ClassJudgement.particle_share`).
Averages are ``(K, n, n)`` means of standardised images, centred on pixel ``n // 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Classes smaller than this are not judged (verdict ``too small``, ``pi = 0``).
MIN_MEMBERS = 5
#: Outer structure starts this many particle radii from the centre.
OUTER_RADII = 1.05
#: A class whose outer structure exceeds this (in units of its particle energy) is junk.
MAX_OUTER = 1.0
#: Amplitude, relative to the median, above which a class is strong ...
STRONG = 2.5
#: ... and the share of candidates below which the strong classes are rare (junk).
RARE = 0.10
#: Candidate-weighted quantiles of the amplitudes taken as no particle and all particle.
SHARE_QUANTILES = (0.1, 0.9)
#: The amplitudes spread when the upper quantile is at least this times the lower.
MIN_SPREAD = 1.2
#: A strong class is round when less than this share of its energy inside the particle is not
#: rotationally symmetric about its own centre (:func:`recentred`; on the survey classes of
#: benchmarks/picking_carry.py's 67 sets: classes under 45 % particles -0.12-0.06, 222 of 223
#: under this; classes of at least 80 % particles 0.01-0.35, 2 of 66 under it) ...
ROUND = 0.05
#: ... and round strong classes are ice when the largest is this many times the smallest.
SIZES_DIFFER = 1.25

#: Round strong classes of several sizes: ice crystals.
ROUND_BLOB = "round blob"

#: A class's outer structure above :data:`MAX_OUTER` of its own particle energy but not of
#: the median class's: a faint line or a neighbour beside weak particles.
OFF_CENTRE = "off-centre structure"

#: Verdicts that call a class junk whatever its amplitude.
JUNK_KINDS = ("line or edge", OFF_CENTRE, ROUND_BLOB, "rare strong blob", "too small")


@dataclass
class ClassJudgement:
    """Per class (``K``): ``counts``, ``amplitude`` (relative to the median), ``outer``
    structure, estimated particle share ``pi`` and ``verdict``; the consensus ``profile``
    ``(R,)`` and whether the amplitudes ``spread``."""

    counts: np.ndarray
    amplitude: np.ndarray
    outer: np.ndarray
    pi: np.ndarray
    verdict: list[str]
    profile: np.ndarray
    spread: bool

    @property
    def particle(self) -> np.ndarray:
        """``(K,)`` bool: the classes judged particle."""
        return np.array([v == "particle" for v in self.verdict], bool)

    @property
    def particle_share(self) -> float:
        """Estimated share of particles among the candidates classified."""
        total = self.counts.sum()
        return float((self.pi * self.counts).sum() / total) if total else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready record of the judgement."""
        return {
            "classes": len(self.counts),
            "particle_classes": int(self.particle.sum()),
            "particle_share": round(self.particle_share, 4),
            "amplitudes_spread": self.spread,
            "counts": [int(c) for c in self.counts],
            "amplitude": [round(float(a), 3) for a in self.amplitude],
            "outer": [round(float(o), 3) for o in self.outer],
            "pi": [round(float(p), 3) for p in self.pi],
            "verdict": list(self.verdict),
        }


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``values`` ``(K,)`` each counted ``weights`` ``(K,)`` times."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(np.asarray(weights, np.float64)[order])
    return float(values[order][min(np.searchsorted(cum, q * cum[-1]), len(cum) - 1)])


def consensus_template(
    averages: np.ndarray, counts: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """The consensus radial profile ``(R,)`` of class ``averages`` ``(K, n, n)`` (ring by ring
    the median over classes, weighted by ``counts``), out to 1.3 ``radius``, and its image
    ``(n, n)``: zero mean inside that disc, zero outside, unit norm."""
    from cryosift.outliers.profile import radial_average, ring_index

    n = averages.shape[-1]
    rings = ring_index(n)
    last = min(int(np.ceil(1.3 * radius)), n // 2)
    prof = np.stack([radial_average(a)[: last + 1] for a in averages])
    w = np.asarray(counts, np.float64)
    profile = np.array([weighted_quantile(prof[:, i], w, 0.5) for i in range(last + 1)])
    inside = rings <= last
    t = np.where(inside, profile[np.minimum(rings, last)], 0.0)
    t[inside] -= t[inside].mean()
    norm = np.linalg.norm(t)
    return profile, t / norm if norm > 0 else t


def nonsymmetric_energy(averages: np.ndarray, counts: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(K,)`` energy of each average ``(K, n, n)`` inside ``mask`` ``(n, n)`` (bool) that is
    not rotationally symmetric, less what the noise of a mean of ``counts`` ``(K,)``
    unit-variance images leaves there."""
    from cryosift.outliers.profile import radial_average, ring_index

    rings = ring_index(averages.shape[-1])
    out = np.array([((a - radial_average(a)[rings])[mask] ** 2).sum() for a in averages])
    return np.asarray(out - mask.sum() / np.maximum(np.asarray(counts, np.float64), 1.0))


def outer_structure(averages: np.ndarray, counts: np.ndarray, radius: float) -> np.ndarray:
    """``(K,)`` :func:`nonsymmetric_energy` of each average ``(K, n, n)`` between
    :data:`OUTER_RADII` and 1.3 ``radius``."""
    from cryosift.outliers.profile import centre_distance

    rr = centre_distance(averages.shape[-1])
    ring = (rr > OUTER_RADII * radius) & (rr <= 1.3 * radius)
    return nonsymmetric_energy(averages, counts, ring)


def asymmetry(average: np.ndarray, count: int, radius: float) -> float:
    """The share of the energy of ``average`` ``(n, n)`` (a mean of ``count`` unit-variance
    images) inside 1.3 ``radius`` that is not rotationally symmetric
    (:func:`nonsymmetric_energy`), each energy less what the noise of such a mean leaves
    there."""
    from cryosift.outliers.profile import centre_distance

    disc = centre_distance(average.shape[-1]) <= 1.3 * radius
    total = float(((average - average[disc].mean())[disc] ** 2).sum()) - disc.sum() / max(count, 1)
    return float(nonsymmetric_energy(average[None], np.array([count]), disc)[0] / max(total, 1e-12))


def half_radius(average: np.ndarray, radius: float) -> float:
    """Where the rotational profile of ``average`` ``(n, n)`` falls to half its central
    contrast against its value at 1.3 ``radius`` (px, interpolated)."""
    from cryosift.outliers.profile import half_crossing, radial_average

    profile = radial_average(average)[: int(np.ceil(1.3 * radius)) + 1]
    centre = profile[0] - profile[-1]
    if centre == 0:
        return 0.0
    r = half_crossing((profile - profile[-1]) / centre, 0.5)
    return float(len(profile) - 1) if r is None else r


def recentred(average: np.ndarray, radius: float) -> np.ndarray:
    """``average`` ``(n, n)`` shifted (sub-pixel, by a Fourier phase ramp) so that the centroid
    of its contrast inside 1.3 ``radius`` lies on pixel ``n // 2``: the contrast against the
    median beyond 1.3 ``radius``, of the sign the disc holds most of (a dark or a bright blob).
    Unchanged when there is no such contrast."""
    from cryosift.outliers.profile import centre_distance

    n = average.shape[-1]
    rr = centre_distance(n)
    disc, beyond = rr <= 1.3 * radius, (rr > 1.3 * radius) & (rr <= n / 2)
    contrast = np.where(disc, average - np.median(average[beyond if beyond.any() else disc]), 0.0)
    weight = np.clip((np.sign(contrast.sum()) or 1.0) * contrast, 0.0, None)
    if weight.sum() <= 0:
        return average
    rows, cols = np.indices((n, n))
    dy = (weight * rows).sum() / weight.sum() - n // 2
    dx = (weight * cols).sum() / weight.sum() - n // 2
    ramp = np.exp(2j * np.pi * (np.fft.fftfreq(n)[:, None] * dy + np.fft.fftfreq(n)[None, :] * dx))
    return np.real(np.fft.ifft2(np.fft.fft2(average) * ramp))


def featureless(
    averages: np.ndarray, counts: np.ndarray, radius: float, which: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Of the classes ``which`` (``(K,)`` bool; ``averages`` ``(K, n, n)`` of ``counts``
    ``(K,)`` images), those that are round about their own centre (:func:`asymmetry` of the
    :func:`recentred` average under :data:`ROUND`): ``(K,)`` bool, and each one's
    :func:`half_radius` ``(K,)`` (0 for the others)."""
    out, sizes = np.zeros(len(counts), bool), np.zeros(len(counts))
    for k in np.flatnonzero(which):
        average = recentred(averages[k], radius)
        out[k] = asymmetry(average, int(counts[k]), radius) < ROUND
        sizes[k] = half_radius(average, radius) if out[k] else 0.0
    return out, sizes


def round_blobs(round_: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(K,)`` bool: the ``round_`` classes (``(K,)`` bool, :func:`featureless`) when there are
    two or more and their ``sizes`` ``(K,)`` differ by at least :data:`SIZES_DIFFER` times."""
    found = sizes[round_]
    if len(found) < 2 or found.max() < SIZES_DIFFER * max(found.min(), 1e-12):
        return np.zeros(len(round_), bool)
    return round_.copy()


def judge_classes(averages: np.ndarray, counts: np.ndarray, radius: float) -> ClassJudgement:
    """Judge class ``averages`` ``(K, n, n)`` (means of standardised images, particle
    ``radius`` px) of ``counts`` ``(K,)`` members (see the module docstring)."""
    counts = np.asarray(counts, np.int64)
    judged = counts >= MIN_MEMBERS
    if not judged.any():
        k = len(counts)
        return ClassJudgement(counts, np.zeros(k), np.zeros(k), np.zeros(k), ["too small"] * k,
                              np.zeros(1), False)  # fmt: skip
    profile, template = consensus_template(averages[judged], counts[judged], radius)
    raw = np.tensordot(averages, template, axes=((1, 2), (0, 1)))
    median = weighted_quantile(raw[judged], counts[judged], 0.5)
    amplitude = raw / median if median > 0 else np.zeros_like(raw)
    # over the particle energy, floored at a tenth of the median's: bounded for empty classes
    floor = max(0.1 * median, 1e-12)
    energy = outer_structure(averages, counts, radius)
    outer = energy / np.maximum(raw, floor) ** 2
    typical = energy / np.maximum(raw, max(median, 1e-12)) ** 2  # against the median's too
    verdict = np.where(judged, "", "too small").astype(object)
    above = judged & (outer > MAX_OUTER)
    verdict[above] = np.where(typical[above] > MAX_OUTER, "line or edge", OFF_CENTRE)
    share = counts / counts.sum()
    strong = judged & (verdict == "") & (amplitude > STRONG)
    rare = strong.any() and share[strong].sum() < RARE  # round blobs included
    round_, sizes = featureless(averages, counts, radius, strong)
    ice = round_blobs(round_, sizes)
    verdict[ice] = ROUND_BLOB
    if rare:  # a rare strong class with features is the clearest views of a sparse particle
        verdict[strong & round_ & ~ice] = "rare strong blob"
    rest = verdict == ""
    pi = np.zeros(len(counts))
    spread = False
    if rest.any():
        lo, hi = (weighted_quantile(amplitude[rest], counts[rest], q) for q in SHARE_QUANTILES)
        spread = bool(lo > 0 and hi >= MIN_SPREAD * lo) or bool(lo <= 0 < hi)
        pi[rest] = np.clip((amplitude[rest] - lo) / (hi - lo), 0, 1) if spread else 1.0
    verdict[rest] = np.where(pi[rest] >= 0.5, "particle", "weak")
    return ClassJudgement(counts, amplitude, outer, pi, list(verdict), profile, spread)


def template_match(
    templates: np.ndarray, boxes: np.ndarray, radius: float, batch: int = 1024
) -> np.ndarray:
    """``(N,)`` each box's best normalised correlation with any of ``templates``
    ``(P, n, n)`` under every in-plane rotation and small shift (the classification's own
    search, :class:`cryosift.classify.align.Aligner`, for a particle of ``radius`` px);
    ``boxes`` ``(N, n, n)``. A matched filter with the particle's own views."""
    import torch

    from cryosift.classify.align import Aligner, ClassifySettings, lowpass, normalise

    if not len(boxes) or not len(templates):
        return np.zeros(len(boxes))
    n = boxes.shape[-1]
    aligner = Aligner(n, ClassifySettings(radius=radius), torch.device("cpu"))
    refs = torch.as_tensor(np.asarray(templates, np.float32))
    ref_spec, _ = aligner.reference_spectra(normalise(lowpass(refs, 0.5), aligner.mask))
    x = torch.as_tensor(np.asarray(boxes, np.float32))
    out = []
    for chunk in torch.split(x, batch):
        spec = aligner.spectra(normalise(chunk, aligner.mask))
        out.append(aligner.best(spec, ref_spec)[2])
    return torch.cat(out).double().numpy()
