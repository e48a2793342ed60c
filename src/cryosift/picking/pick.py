"""From token embeddings to particle coordinates (Cryo-EMMAE's clustering, and beyond it).

For one micrograph (embeddings ``(h, w, D)``, one per ``p x p``-px token):

1. the global k-means (4 centres, fitted on training embeddings) labels every token; the
   tokens of the particle cluster form the first particle mask;
2. optionally (``--sequential``, the paper's step) **sequential k-means** on this micrograph
   alone with 3, 4 and 5 clusters: each time the cluster that best overlaps (IoU) the
   previous mask becomes the mask (on EMPIAR-10017 it lowers F1 by 0.03, so it is off by
   default);
3. the mask is smoothed (3 x 3 mean) and upsampled bilinearly to preprocessed px: a particle
   map in [0, 1];
4. the map is smoothed at the particle scale and its local maxima at least half a diameter
   apart are the candidates; each one's **score** is the smoothed map at its core minus the
   map's mean over the ring around it (d/2 to d): high for a particle-sized blob, near zero
   inside a large region of the cluster (ice, carbon, aggregates). A model trained on the
   user's micrographs replaces it with its ranker's probability
   (:mod:`cryosift.picking.rank`);
5. the default threshold is set per micrograph from its own scores (:func:`score_split`: a
   two-component Gaussian mixture, the score where a candidate becomes more likely a
   particle than not), so it carries between datasets, or is the ranker's probability 0.5;
   ``threshold`` fixes one instead;
   ``area_fraction`` restores the paper's rule (the best candidates up to 4% of the area);
6. candidates closer than a box half-size to the edge, or inside mask components far larger
   than a particle (aggregates, ice, carbon), are dropped.

Choosing the particle cluster needs no annotation (:func:`choose_particle_cluster`): the
cluster whose strongest blobs, boxed and averaged, look like a particle (a dark disc of the
particle's diameter on a brighter surround) wins.
Lengths are px of the preprocessed micrograph unless stated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from cryosift.picking.rank import THRESHOLD as RANKED_THRESHOLD
from cryosift.picking.recentre import suppress

#: Cluster counts of the sequential per-micrograph k-means (the paper's).
SEQUENTIAL_K = (3, 4, 5)
#: Tokens drawn to fit each per-micrograph k-means (all tokens are then labelled).
FIT_SAMPLE = 20_000
#: Mask components larger than this many particle areas are aggregates/ice/carbon.
MAX_COMPONENT = 12.0
#: Threshold used when a micrograph has too few candidates to split their scores.
FALLBACK_THRESHOLD = 0.1
#: Picks where the micrograph, low-passed at the particle size, is darker than the median by
#: more than this many robust standard deviations lie on ice contamination or thick carbon.
DARK_Z = 5.0


@dataclass(frozen=True)
class PickSettings:
    """``diameter``: particle diameter in preprocessed px; ``edge``: minimum distance from the
    edge in preprocessed px (default half a diameter); ``area_fraction``: fixed share of the
    micrograph to cover (the paper's 0.04) instead of a score threshold; ``threshold``: keep
    scores at or above it (default: :func:`score_split` per micrograph); ``seed`` for the
    k-means and the mixture."""

    diameter: float
    edge: float | None = None
    area_fraction: float | None = None
    threshold: float | None = None
    seed: int = 0


def darkness(image: np.ndarray, diameter: float) -> np.ndarray:
    """Robust z-score ``(rows, cols)`` of ``image`` low-passed at the particle scale (Gaussian
    of sigma 0.75 ``diameter`` px): (low-pass - median) / (1.4826 MAD). Ice contamination
    and thick carbon score far below zero; single particles do not, being smoothed away.
    Computed on the image binned to about 8 px per diameter (the low-pass leaves nothing
    finer), then repeated back to full size."""
    from cryosift.picking.blobs import bin_mean

    factor = max(1, int(diameter // 8))
    binned = bin_mean(image, factor)
    low = ndimage.gaussian_filter(binned, 0.75 * diameter / factor)
    med = float(np.median(low))
    mad = 1.4826 * float(np.median(np.abs(low - med)))
    z = (low - med) / max(mad, 1e-12)
    if factor == 1:
        return z
    full = np.repeat(np.repeat(z, factor, axis=0), factor, axis=1)
    pad = ((0, image.shape[0] - full.shape[0]), (0, image.shape[1] - full.shape[1]))
    return np.pad(full, pad, mode="edge")


def nearest_centroid(emb: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Labels ``(h, w)`` of embeddings ``(h, w, D)`` by nearest centre ``(K, D)``."""
    flat = emb.reshape(-1, emb.shape[-1])
    d = (flat**2).sum(1)[:, None] - 2 * flat @ centroids.T + (centroids**2).sum(1)[None]
    return d.argmin(1).reshape(emb.shape[:2])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def sequential_mask(
    emb: np.ndarray, mask: np.ndarray, ks: tuple[int, ...] = SEQUENTIAL_K, seed: int = 0
) -> np.ndarray:
    """Refine a boolean token mask ``(h, w)`` by per-micrograph k-means with ``ks`` clusters,
    each time keeping the cluster of highest IoU with the previous mask."""
    from sklearn.cluster import KMeans

    flat = emb.reshape(-1, emb.shape[-1])
    rng = np.random.default_rng(seed)
    sample = flat[rng.choice(len(flat), size=min(FIT_SAMPLE, len(flat)), replace=False)]
    for k in ks:
        km = KMeans(k, n_init=1, random_state=seed).fit(sample)
        labels = km.predict(flat).reshape(mask.shape)
        scores = [iou(labels == j, mask) for j in range(k)]
        mask = labels == int(np.argmax(scores))
    return mask


def particle_map(mask: np.ndarray, patch: int, shape: tuple[int, int]) -> np.ndarray:
    """Smooth a token mask ``(h, w)`` (3 x 3 mean) and upsample it bilinearly to ``shape``
    px (token centres at ``(i + 0.5) * patch - 0.5``). Values in [0, 1]."""
    smooth = ndimage.uniform_filter(mask.astype(np.float32), 3, mode="nearest")
    rows = (np.arange(shape[0]) + 0.5) / patch - 0.5
    cols = (np.arange(shape[1]) + 0.5) / patch - 0.5
    coords = np.meshgrid(rows, cols, indexing="ij")
    return ndimage.map_coordinates(smooth, coords, order=1, mode="nearest").astype(np.float32)


def particle_area(diameter: float) -> float:
    return float(np.pi * (diameter / 2) ** 2)


def centre_contrast(image: np.ndarray, centres: np.ndarray, diameter: float) -> float:
    """How much darker the centre of the mean box around ``centres`` ``(N, 2)`` (row, col) is
    than its surroundings: ring mean (d/2 to d) minus centre-disc mean (d/4), in units of the
    image's standard deviation. Particles in micrographs are dark, so they score high."""
    half = int(np.ceil(diameter))
    ok = (
        (centres[:, 0] >= half)
        & (centres[:, 0] < image.shape[0] - half)
        & (centres[:, 1] >= half)
        & (centres[:, 1] < image.shape[1] - half)
    )
    if not ok.any():
        return float("-inf")
    mean = np.mean(
        [image[r - half : r + half + 1, c - half : c + half + 1] for r, c in centres[ok]], axis=0
    )
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    ring = mean[ring_kernel(diameter) > 0].mean()
    centre = mean[np.hypot(yy, xx) <= diameter / 4].mean()
    return float((ring - centre) / (image.std() + 1e-12))


def choose_particle_cluster(
    token_labels: list[np.ndarray],
    images: list[np.ndarray],
    patch: int,
    diameter: float,
    n_clusters: int,
    per_micrograph: int = 300,
) -> tuple[int, list[float]]:
    """The global cluster that looks most like particles on the given micrographs.

    For each cluster, the strongest ``per_micrograph`` peaks of its particle map (as
    :func:`picks_from_mask` finds them) are boxed in the preprocessed ``images`` and averaged:
    the particle cluster's mean box is a dark disc of the particle's size on a brighter ring,
    so it has the highest :func:`centre_contrast`. Returns the cluster and every score."""
    scores = []
    for c in range(n_clusters):
        values = []
        for labels, image in zip(token_labels, images, strict=True):
            pmap = particle_map(labels == c, patch, image.shape)
            smap = ndimage.gaussian_filter(pmap, diameter / 6)
            rc = find_peaks(smap, diameter / 2)[:per_micrograph]
            values.append(centre_contrast(image, rc, diameter))
        scores.append(float(np.mean(values)))
    return int(np.argmax(scores)), scores


def find_peaks(smap: np.ndarray, min_distance: float) -> np.ndarray:
    """Local maxima ``(N, 2)`` (row, col) of ``smap`` at least ``min_distance`` px apart,
    strongest first (greedy non-maximum suppression)."""
    size = max(3, round(min_distance) | 1)
    is_max = (smap == ndimage.maximum_filter(smap, size, mode="nearest")) & (smap > 0)
    rc = np.argwhere(is_max)
    if not len(rc):
        return rc
    rc = rc[np.argsort(-smap[rc[:, 0], rc[:, 1]], kind="stable")]
    return rc[suppress(rc, -np.arange(len(rc)), min_distance)]


def score_split(
    score: np.ndarray, seed: int = 0, lo: float = 0.0, hi: float = 1.0, fallback=None
) -> float:
    """The score above which a candidate is more likely in the high-scoring (particle) of two
    Gaussian components fitted to ``score`` ``(N,)``, searched on a grid over ``[lo, hi]``;
    ``fallback`` (default :data:`FALLBACK_THRESHOLD`) when there are fewer than 10
    candidates or no split."""
    from sklearn.mixture import GaussianMixture

    fallback = FALLBACK_THRESHOLD if fallback is None else fallback
    if len(score) < 10 or np.ptp(score) == 0:
        return fallback
    g = GaussianMixture(2, random_state=seed).fit(score.reshape(-1, 1))
    high = int(np.argmax(g.means_.ravel()))
    grid = np.linspace(lo, hi, 1001)
    above = grid[(g.predict_proba(grid.reshape(-1, 1))[:, high] >= 0.5) & (grid >= g.means_.min())]
    return float(above.min()) if len(above) else fallback


def ring_kernel(diameter: float) -> np.ndarray:
    """Normalised ring between radius ``diameter / 2`` and ``diameter`` (px), odd side."""
    half = int(np.ceil(diameter))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    rr = np.hypot(yy, xx)
    ring = ((rr >= diameter / 2) & (rr <= diameter)).astype(np.float32)
    return ring / ring.sum()


def peak_scores(pmap: np.ndarray, smap: np.ndarray, rc: np.ndarray, diameter: float) -> np.ndarray:
    """Score of each peak ``(N, 2)``: the particle map at its core (``smap``) minus the map's
    mean over the ring around it, clipped to [0, 1]. An isolated particle scores near its
    core value; the inside of a large dark region (ice, carbon, aggregate) near zero."""
    if not len(rc):
        return np.empty(0, np.float64)
    k = ring_kernel(diameter)
    h = k.shape[0] // 2
    padded = np.pad(pmap, h, mode="edge")
    ring = np.array([(padded[r : r + 2 * h + 1, c : c + 2 * h + 1] * k).sum() for r, c in rc])
    return np.clip(smap[rc[:, 0], rc[:, 1]] - ring, 0, 1).astype(np.float64)


def picks_from_mask(
    mask: np.ndarray,
    patch: int,
    shape: tuple[int, int],
    s: PickSettings,
    exclude: np.ndarray | None = None,
    rescore: Callable[[np.ndarray], np.ndarray] | None = None,
):
    """Candidates from a token mask: DataFrame ``x``, ``y`` (preprocessed px), ``score``,
    ``passes`` (the edge, aggregate and ``exclude`` filters; ``exclude`` is a bool map of
    ``shape``, True where no pick may be), ``keep`` (those and the threshold),
    ``excluded`` (left out only for ``exclude``: every other filter and the threshold kept it).

    ``rescore(rc)`` replaces the map scores of the candidates ``(N, 2)`` (row, col) by
    probabilities (a trained :class:`~cryosift.picking.rank.Ranker`); the default threshold
    is then :data:`~cryosift.picking.rank.THRESHOLD` instead of the mixture split."""
    pmap = particle_map(mask, patch, shape)
    smap = ndimage.gaussian_filter(pmap, s.diameter / 6)
    rc = find_peaks(smap, s.diameter / 2)
    score = peak_scores(pmap, smap, rc, s.diameter)
    if rescore is not None and len(rc):
        score = np.asarray(rescore(rc), np.float64)
    # components of the half-level mask, in particle areas
    comp, _ = ndimage.label(pmap > 0.5)
    sizes = np.bincount(comp.ravel()).astype(np.float64) / particle_area(s.diameter)
    sizes[0] = 0.0
    # dropped: in a component far larger than a particle, or in an excluded area
    huge = sizes[comp[rc[:, 0], rc[:, 1]]] > MAX_COMPONENT if len(rc) else np.empty(0, bool)
    excluded = np.zeros(len(rc), bool)
    if exclude is not None and len(rc):
        excluded = exclude[rc[:, 0], rc[:, 1]]
    dropped = huge | excluded
    edge = s.diameter / 2 if s.edge is None else s.edge
    inside = (
        (rc[:, 0] >= edge)
        & (rc[:, 0] <= shape[0] - 1 - edge)
        & (rc[:, 1] >= edge)
        & (rc[:, 1] <= shape[1] - 1 - edge)
        if len(rc)
        else np.empty(0, bool)
    )
    if s.area_fraction is None:
        usable = score[inside & ~dropped] if len(score) else score
        if s.threshold is not None:
            thr = s.threshold
        elif rescore is not None:
            thr = RANKED_THRESHOLD
        else:
            thr = score_split(usable, s.seed)
        passed = score >= thr
    else:
        expected = s.area_fraction * shape[0] * shape[1] / particle_area(s.diameter)
        order = np.argsort(-score, kind="stable")
        passed = np.zeros(len(rc), bool)
        passed[order[: round(expected)]] = True
    df = pd.DataFrame(
        {
            "x": rc[:, 1].astype(np.float64),
            "y": rc[:, 0].astype(np.float64),
            "score": score.astype(np.float64),
            "passes": inside & ~dropped,
            "keep": passed & inside & ~dropped,
            "excluded": passed & inside & ~huge & excluded,
        }
    )
    return df
