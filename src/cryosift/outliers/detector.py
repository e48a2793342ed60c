"""Batched radial-profile outlier detection (Kapnulin, Heimowitz & Sharon).

For each particle image (``d x d``, phase flipped and downsampled):

1. correlate with a sum of Gaussians of size ``k = round(0.3 d)``;
2. take the ``A`` highest correlation values;
3. DBSCAN their positions with ``eps = r`` and ``min_samples = omega = round(A / 3)``;
4. judge: *noise* if more than ``omega`` peaks are unclustered; *partial* if a cluster centroid,
   or all of the unclustered peaks, lie within ``r`` of one border; *multiple* if two or more
   clusters remain (when the preset says so); otherwise *inlier*.

Everything runs on a batch ``(B, d, d)`` at once: correlation with ``scipy.fft`` (threaded),
peak selection with ``argpartition`` and DBSCAN vectorised over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import fft as sfft

from cryosift.outliers.dbscan import dbscan_batch
from cryosift.outliers.rules import Rules
from cryosift.outliers.template import gaussian_template, template_size

BORDER_NAMES = ("top", "bottom", "left", "right")


@dataclass(frozen=True)
class DetectorParams:
    """Geometry of the detector on the downsampled images.

    Attributes
    ----------
    size: side ``d`` of the (downsampled) images, px.
    radius: particle radius ``r`` in downsampled px; DBSCAN eps and border margin.
    peaks: number ``A`` of correlation maxima clustered.
    """

    size: int
    radius: float
    peaks: int = 10

    @property
    def omega(self) -> int:
        """DBSCAN ``min_samples`` and the noise threshold: ``round(A / 3)``."""
        return max(1, round(self.peaks / 3))

    @property
    def k(self) -> int:
        return template_size(self.size)


@dataclass
class Detection:
    """Per-image results of :func:`detect` for a batch of ``B`` images (all arrays ``(B,)``).

    Offsets are those of the main (largest) cluster's centroid from the image centre
    ``(d // 2, d // 2)``, in downsampled pixels (multiply by the binning factor for original
    pixels). ``score`` is in ``[0, 1]``: the fraction of peaks in the main cluster times how far
    that cluster sits from the partial-border zone (1 at the centre, 0 at the border margin).
    ``peak_contrast`` is the mean of the top-A correlation values in standard deviations above
    the image's mean correlation.
    """

    verdict: np.ndarray
    reason: np.ndarray
    n_clusters: np.ndarray
    n_anomalies: np.ndarray
    offset_x: np.ndarray
    offset_y: np.ndarray
    score: np.ndarray
    peak_contrast: np.ndarray

    def to_frame(self, scale: float = 1.0) -> pd.DataFrame:
        """Table with offsets multiplied by ``scale`` (e.g. original / downsampled px)."""
        return pd.DataFrame(
            {
                "verdict": self.verdict,
                "reason": self.reason,
                "n_clusters": self.n_clusters,
                "n_anomalies": self.n_anomalies,
                "offset_x_px": self.offset_x * scale,
                "offset_y_px": self.offset_y * scale,
                "score": self.score,
                "peak_contrast": self.peak_contrast,
            }
        )


class Correlator:
    """Correlates batches of ``d x d`` images with the Gaussian template via real FFTs.

    Holds the template's transform so that it is computed once per run.
    """

    def __init__(self, d: int, mode: str, dtype: str = "float32", workers: int = -1):
        self.d = d
        self.mode = mode
        self.k = template_size(d)
        self.dtype = np.dtype(dtype)
        self.workers = workers
        template = gaussian_template(self.k)
        if mode == "circular":
            self.n_fft = d
            self.start = self.k // 2  # the reference code rolls the result by -floor(k/2)
        elif mode == "linear":
            self.n_fft = sfft.next_fast_len(d + self.k - 1, real=True)
            self.start = (self.k - 1) // 2  # crop of scipy.signal.fftconvolve(mode="same")
        else:
            raise ValueError(f"unknown correlation mode {mode!r}")
        padded = np.zeros((self.n_fft, self.n_fft))
        padded[: self.k, : self.k] = template
        self.template_ft = sfft.rfft2(padded).astype(np.result_type(self.dtype, np.complex64))
        #: where the correlation peak of an object centred at pixel c appears: c + peak_shift
        self.peak_shift = (self.k - 1) / 2 - self.start

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """``(B, d, d)`` images -> ``(B, d, d)`` correlation maps (same dtype as ``self.dtype``)."""
        x = np.asarray(images, dtype=self.dtype)
        n = self.n_fft
        ft = sfft.rfft2(x, s=(n, n), workers=self.workers)
        ft *= self.template_ft
        full = sfft.irfft2(ft, s=(n, n), workers=self.workers)
        if self.mode == "circular":
            return np.roll(full, (-self.start, -self.start), axis=(1, 2))
        s = self.start
        return np.asarray(full[:, s : s + self.d, s : s + self.d])


def normalise(images: np.ndarray, rules: Rules, stack_mean: float = 0.0) -> np.ndarray:
    """Normalise a batch ``(B, d, d)`` as the preset says (see :class:`Rules`).

    Blank (constant) images come out as all zeros rather than NaN.
    """
    x = np.asarray(images, dtype=np.float64 if rules.dtype == "float64" else np.float32)
    if rules.normalise == "stack":
        x = np.subtract(x, stack_mean)
        peak = x.max(axis=(1, 2), keepdims=True)
        peak = np.where(peak == 0, 1, peak)
        return np.asarray(x / peak)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return np.asarray((x - mean) / np.where(std > 0, std, 1))


def top_peaks(corr: np.ndarray, a: int) -> np.ndarray:
    """Positions ``(B, A, 2)`` (row, col) of the A largest values of each ``(B, d, d)`` map,
    strongest first (ties: lower flat index first)."""
    b, h, w = corr.shape
    flat = corr.reshape(b, h * w)
    idx = np.argpartition(-flat, a - 1, axis=1)[:, :a]
    idx.sort(axis=1)
    vals = np.take_along_axis(flat, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    return np.stack(np.divmod(idx, w), axis=-1)


def _border_hits(coords: np.ndarray, d: int, r: float, rule: str) -> np.ndarray:
    """Which of the four borders (top, bottom, left, right) each (row, col) is within r of.

    ``coords``: ``(..., 2)``; returns bool ``(..., 4)``.
    """
    row, col = coords[..., 0], coords[..., 1]
    if rule == "reference":
        return np.stack([row <= r, row >= d - r, col <= r, col >= d - r], axis=-1)
    # distance from the pixel's centre to the image edge, which lies half a pixel beyond
    return np.stack(
        [row + 0.5 <= r, d - 0.5 - row <= r, col + 0.5 <= r, d - 0.5 - col <= r], axis=-1
    )


def _cluster_centroids(points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak counts ``(B, K)`` and centroids ``(B, K, 2)`` (NaN where empty) of every cluster
    of ``points`` ``(B, A, 2)`` labelled ``labels`` ``(B, A)`` (K: the most clusters, at
    least 1)."""
    kmax = int(max(labels.max(initial=-1) + 1, 1))
    onehot = labels[:, :, None] == np.arange(kmax)[None, None, :]  # (B, A, K)
    counts = onehot.sum(axis=1)
    sums = np.einsum("bak,bac->bkc", onehot.astype(np.float64), points.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts, sums / counts[:, :, None]


def judge(
    points: np.ndarray, labels: np.ndarray, params: DetectorParams, rules: Rules
) -> dict[str, np.ndarray]:
    """Apply the verdict rules to clustered peaks.

    Parameters
    ----------
    points: ``(B, A, 2)`` peak positions (row, col), downsampled px.
    labels: ``(B, A)`` DBSCAN labels.

    Returns a dict of ``(B,)`` arrays: verdict, reason, n_clusters, n_anomalies,
    centroid (``(B, 2)``, of the main cluster, NaN if none), main_size.
    """
    b = labels.shape[0]
    d, r, omega = params.size, params.radius, params.omega
    anomaly = labels < 0
    n_anom = anomaly.sum(axis=1)
    n_clusters = np.maximum(labels.max(axis=1, initial=-1) + 1, 0)

    counts, centroids = _cluster_centroids(points, labels)
    exists = counts > 0
    cents_for_rule = np.where(exists[:, :, None], centroids, d / 2)
    if rules.border_rule == "reference":
        cents_for_rule = np.round(cents_for_rule)
    cluster_border = _border_hits(cents_for_rule, d, r, rules.border_rule) & exists[:, :, None]
    anom_border = _border_hits(points.astype(np.float64), d, r, rules.border_rule)  # (B,A,4)
    all_anom_same_border = (
        np.any(np.all(np.where(anomaly[:, :, None], anom_border, True), axis=1), axis=1)
    ) & (n_anom > 0)

    main = np.argmax(counts, axis=1)  # largest cluster, lowest label on ties
    main_size = np.take_along_axis(counts, main[:, None], axis=1)[:, 0]
    main_centroid = np.take_along_axis(centroids, main[:, None, None], axis=1)[:, 0]
    main_centroid[n_clusters == 0] = np.nan

    noise = n_anom > omega
    partial = ~noise & (cluster_border.any(axis=(1, 2)) | all_anom_same_border)
    multiple = ~noise & ~partial & (n_clusters >= 2)
    verdict = np.full(b, "inlier", dtype=object)
    verdict[noise] = "noise"
    verdict[partial] = "partial"
    if rules.multiple_is_outlier:
        verdict[multiple] = "multiple"
    reason = np.full(b, "", dtype=object)
    for i in np.flatnonzero(noise):
        reason[i] = f"{n_anom[i]} of {labels.shape[1]} peaks unclustered (> {omega})"
    for i in np.flatnonzero(partial):
        reason[i] = _partial_reason(cluster_border[i], anomaly[i], anom_border[i], r)
    for i in np.flatnonzero(multiple):
        text = f"{n_clusters[i]} clusters of peaks"
        reason[i] = text if rules.multiple_is_outlier else f"{text} (kept: preset {rules.name})"
    return {
        "verdict": verdict,
        "reason": reason,
        "n_clusters": n_clusters.astype(np.int64),
        "n_anomalies": n_anom.astype(np.int64),
        "centroid": main_centroid,
        "main_size": main_size,
    }


def _partial_reason(
    cluster_border: np.ndarray, anomaly: np.ndarray, anom_border: np.ndarray, r: float
) -> str:
    """Why one image is partial: a cluster centroid at a border (``cluster_border``
    ``(K, 4)``), else all its unclustered peaks (``anomaly`` ``(A,)``) at one border
    (``anom_border`` ``(A, 4)``)."""
    hits = cluster_border.any(axis=0)
    if hits.any():
        side = BORDER_NAMES[int(np.argmax(hits))]
        return f"cluster centroid within r = {r:g} px of the {side} border"
    side_hits = np.where(anomaly[:, None], anom_border, True).all(axis=0)
    side = BORDER_NAMES[int(np.argmax(side_hits))]
    return f"all {int(anomaly.sum())} unclustered peaks within r = {r:g} px of the {side} border"


def _peak_contrast(corr: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(B,)`` mean of each ``(d, d)`` correlation map's peaks at ``points`` ``(B, A, 2)``,
    in standard deviations above the map's mean (0 for a flat map)."""
    b, _, w = corr.shape
    cflat = corr.reshape(b, -1)
    top_mean = np.take_along_axis(cflat, points[..., 0] * w + points[..., 1], axis=1).mean(axis=1)
    std = cflat.std(axis=1)
    return np.where(std > 0, (top_mean - cflat.mean(axis=1)) / np.where(std > 0, std, 1), 0.0)


def _detector_score(
    main_size: np.ndarray,
    offset_x: np.ndarray,
    offset_y: np.ndarray,
    has: np.ndarray,
    params: DetectorParams,
) -> np.ndarray:
    """``(B,)`` score in [0, 1]: the share of peaks in the main cluster times how far its
    centroid (offset from the centre, px) sits from the border margin (0 without a cluster,
    ``has`` False)."""
    half = params.size / 2
    border_dist = half - np.maximum(np.abs(offset_x), np.abs(offset_y))
    room = max(half - params.radius, 1e-6)
    centrality = np.clip((border_dist - params.radius) / room, 0.0, 1.0)
    return np.where(has, main_size / params.peaks * centrality, 0.0)


def detect(
    images: np.ndarray,
    params: DetectorParams,
    rules: Rules,
    *,
    stack_mean: float = 0.0,
    correlator: Correlator | None = None,
) -> Detection:
    """Run the detector on a batch of images.

    Parameters
    ----------
    images: ``(B, d, d)`` phase-flipped, downsampled particle images (particles bright).
    params: geometry (d, r, A).
    rules: preset (:mod:`cryosift.outliers.rules`).
    stack_mean: mean of the whole stack, used by the ``"stack"`` normalisation.
    correlator: reuse one across batches to keep the template transform.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (params.size, params.size):
        raise ValueError(f"expected images of shape (B, {params.size}, {params.size})")
    if correlator is None:
        correlator = Correlator(params.size, rules.correlation, rules.dtype)
    b = images.shape[0]
    blank = np.ptp(images.reshape(b, -1), axis=1) == 0

    x = normalise(images, rules, stack_mean)
    corr = correlator(x)
    points = top_peaks(corr, params.peaks)
    labels = dbscan_batch(points.astype(np.float64), params.radius, params.omega)
    out = judge(points, labels, params, rules)

    contrast = _peak_contrast(corr, points)
    centroid = out["centroid"] - correlator.peak_shift
    centre = params.size // 2
    has = np.isfinite(centroid[:, 0])
    offset_y = np.where(has, centroid[:, 0] - centre, 0.0)
    offset_x = np.where(has, centroid[:, 1] - centre, 0.0)
    score = _detector_score(out["main_size"], offset_x, offset_y, has, params)

    verdict, reason = out["verdict"], out["reason"]
    n_clusters, n_anom = out["n_clusters"], out["n_anomalies"]
    if blank.any():
        verdict[blank] = "noise"
        reason[blank] = "blank image (constant pixel values)"
        n_clusters[blank] = 0
        n_anom[blank] = params.peaks
        score[blank] = 0.0
        contrast[blank] = 0.0
        offset_x[blank] = 0.0
        offset_y[blank] = 0.0
    return Detection(
        verdict=verdict.astype(str),
        reason=reason.astype(str),
        n_clusters=n_clusters,
        n_anomalies=n_anom,
        offset_x=offset_x.astype(np.float64),
        offset_y=offset_y.astype(np.float64),
        score=score.astype(np.float64),
        peak_contrast=contrast.astype(np.float64),
    )
