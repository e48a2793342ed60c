"""A plain per-image implementation of the detector: the yardstick for speed and correctness.

This is how the method is usually written (and how the reference code runs): one image at a
time, ``scipy.signal.fftconvolve`` or ``numpy.fft`` for the correlation, scikit-learn's DBSCAN,
and the rules as explicit ``if`` statements. :mod:`cryosift.outliers.detector` must give the
same verdicts; ``benchmarks/outlier_throughput.py`` measures how much faster it is.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from sklearn.cluster import DBSCAN

from cryosift.outliers.detector import DetectorParams
from cryosift.outliers.rules import Rules
from cryosift.outliers.template import gaussian_template


def naive_verdicts(
    images: np.ndarray, params: DetectorParams, rules: Rules, stack_mean: float | None = None
) -> list[str]:
    """Verdict per image (``inlier``, ``noise``, ``partial`` or ``multiple``) for ``(B, d, d)``."""
    d, r, a = params.size, params.radius, params.peaks
    omega = max(1, round(a / 3))
    template = gaussian_template(params.k)
    k = template.shape[0]
    if rules.normalise == "stack":
        images = images - (np.mean(images) if stack_mean is None else stack_mean)
    out = []
    for image in images:
        image = np.asarray(image, dtype=np.float64)
        if np.ptp(image) == 0:
            out.append("noise")
            continue
        if rules.normalise == "stack":
            image = image / image.max()
        else:
            image = (image - image.mean()) / image.std()
        if rules.correlation == "circular":
            ft = np.fft.fft2(image) * np.fft.fft2(template, s=image.shape)
            corr = np.roll(np.fft.ifft2(ft).real, -(k // 2), axis=(0, 1))
        else:
            corr = fftconvolve(image, template, mode="same")
        rows, cols = np.unravel_index(np.argsort(-corr.ravel(), kind="stable")[:a], corr.shape)
        pts = np.stack([rows, cols], axis=1).astype(float)
        labels = DBSCAN(eps=r, min_samples=omega).fit_predict(pts)
        out.append(_judge_one(pts, labels, d, r, omega, rules))
    return out


def _near_border(row: float, col: float, d: int, r: float, rule: str) -> list[bool]:
    if rule == "reference":
        return [row <= r, row >= d - r, col <= r, col >= d - r]
    return [row + 0.5 <= r, d - 0.5 - row <= r, col + 0.5 <= r, d - 0.5 - col <= r]


def _judge_one(
    pts: np.ndarray, labels: np.ndarray, d: int, r: float, omega: int, rules: Rules
) -> str:
    anomalies = pts[labels == -1]
    if len(anomalies) > omega:
        return "noise"
    if len(anomalies):
        hits = np.array([_near_border(p[0], p[1], d, r, rules.border_rule) for p in anomalies])
        if hits.all(axis=0).any():
            return "partial"
    clusters = [c for c in np.unique(labels) if c >= 0]
    for c in clusters:
        centre = pts[labels == c].mean(axis=0)
        if rules.border_rule == "reference":
            centre = np.round(centre)
        if any(_near_border(centre[0], centre[1], d, r, rules.border_rule)):
            return "partial"
    if rules.multiple_is_outlier and len(clusters) >= 2:
        return "multiple"
    return "inlier"
